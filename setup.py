"""keras-mtsa: Multi-mask Tensorized Self-Attention for Keras 3."""

import pathlib
import re

from setuptools import find_packages
from setuptools import setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"', (HERE / "keras_mtsa" / "__init__.py").read_text()
).group(1)

# No public repository address is recorded for this project, so the home page is the paper the
# layer implements, and the wheel itself carries what the README names (the docs, the example
# scripts, the benchmarks): it installs them under <prefix>/share/doc/keras-mtsa/, as the README's
# install section says, and the sdist carries them through MANIFEST.in.
PAPER = "https://aclanthology.org/N19-1127/"
DOC_DIR = "share/doc/keras-mtsa"


def doc_files(folder, pattern):
    """Returns the data_files entry that installs folder/pattern under DOC_DIR/folder."""
    paths = (HERE / folder).glob(pattern)
    files = sorted(str(path.relative_to(HERE)) for path in paths if path.is_file())
    if not files:
        # A wheel built from an sdist without them would silently lack the README's documents.
        raise FileNotFoundError(f"no {folder}/{pattern} beside setup.py: MANIFEST.in must ship it")
    return (f"{DOC_DIR}/{folder}", files)


setup(
    name="keras-mtsa",
    version=VERSION,
    description="Multi-mask Tensorized Self-Attention (Shen et al., NAACL 2019) as a Keras 3 layer",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    author="The keras-mtsa Authors",
    # PEP 639's License-Expression (setuptools 77, required in pyproject.toml), which replaces
    # the License field and the license classifiers.
    license_expression="Apache-2.0",
    license_files=["LICENSE"],
    url=PAPER,
    project_urls={
        "Paper": PAPER,
        "Authors' code": "https://github.com/taoshen58/mtsa",
    },
    packages=find_packages(include=["keras_mtsa", "keras_mtsa.*"]),
    data_files=[
        doc_files("docs", "*.md"),
        # The accuracy study's records: examples/reproduce_results.py --table-only prints them.
        doc_files("docs/results", "*.jsonl"),
        doc_files("examples", "*.py"),
        doc_files("benchmarks", "*.py"),
        doc_files("benchmarks", "README.md"),
    ],
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
        # trove-classifiers: the packaging test checks the classifiers against PyPI's list.
        # pytest-xdist: `make test` runs the tests on every core. pytest below 9: on pytest 9,
        # xdist 3.8's --dist loadgroup silently stops grouping (pytest-xdist issue 1386), and
        # the tests sharing a module's trained model would train it once per worker.
        "test": [
            "pytest>=8,<9",
            "pytest-xdist>=3",
            "jax>=0.4.30",
            "ruff>=0.17,<0.18",
            "trove-classifiers",
        ],
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
    # Keras has no "Framework ::" classifier on PyPI: the keywords name it instead.
    keywords=["keras", "tensorflow", "jax", "attention", "self-attention", "nlp"],
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Developers",
        "Intended Audience :: Science/Research",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Topic :: Software Development :: Libraries :: Python Modules",
        "Topic :: Text Processing :: Linguistic",
    ],
)
