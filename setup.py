"""keras-mtsa: Multi-mask Tensorized Self-Attention for Keras 3."""

import pathlib
import re

from setuptools import find_packages
from setuptools import setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"', (HERE / "keras_mtsa" / "__init__.py").read_text()
).group(1)

setup(
    name="keras-mtsa",
    version=VERSION,
    description="Multi-mask Tensorized Self-Attention (Shen et al., NAACL 2019) as a Keras 3 layer",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_mtsa", "keras_mtsa.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16,<2.22",
        # 3.15: earlier releases give rank-3 EinsumDense kernels conv-style fans (value
        # kernels start 10x small).
        "keras>=3.15,<4",
        "tensorflow-text>=2.16,<2.22",
        "numpy",
    ],
    extras_require={
        # jax: the layer tests also run on Keras's JAX backend.
        # ruff: `make lint` (pinned to a minor release: its formatting may change between them).
        "test": ["pytest>=7", "jax>=0.4.30", "ruff>=0.17,<0.18"],
        # matplotlib: learning curves and attention heatmaps; tensorboard: training logs;
        # tensorflow-serving-api: warm-up records.
        "examples": ["matplotlib>=3.7", "tensorboard", "tensorflow-serving-api>=2.16,<2.22"],
    },
    entry_points={
        "console_scripts": [
            "keras-mtsa-serving=keras_mtsa.serving:main",
            "keras-mtsa-train=keras_mtsa.training:main",
            "keras-mtsa-train-pair=keras_mtsa.training:main_pair",
        ]
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Keras",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
