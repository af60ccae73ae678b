"""The process a job runs in: optional dependencies, deterministic kernels, the
versions behind a result."""

import importlib.util
import sys

SERVING_API_PIP = "pip install 'tensorflow-serving-api>=2.16,<2.22'"


class OptionalDependencyError(ImportError):
    """A feature the job was asked for needs a package that is not installed."""


def installed(module):
    return importlib.util.find_spec(module) is not None


def optional_features(export):
    """Checks the optional dependencies before any work: {"tensorboard": bool, "plot": bool}.

    TensorBoard logs and the learning-curve plot are turned off, with a warning, where their package
    is missing (TensorFlow 2.21 no longer installs TensorBoard; Keras's callback would fail in the
    first epoch). An export cannot do without its warm-up requests, which need
    tensorflow-serving-api.

    Args:
        export: whether the job exports a SavedModel.

    Raises:
        OptionalDependencyError: `export` without tensorflow-serving-api.
    """
    if export and not installed("tensorflow_serving"):
        raise OptionalDependencyError(
            "`export_dir` writes TF Serving warm-up requests, which need tensorflow-serving-api: "
            + SERVING_API_PIP
        )
    features = {}
    for feature, module, what in (
        ("tensorboard", "tensorboard", "TensorBoard logs"),
        ("plot", "matplotlib", "learning_curves.png"),
    ):
        features[feature] = installed(module)
        if not features[feature]:
            print(
                f"Warning: {what} turned off: {module} is not installed (pip install {module})",
                file=sys.stderr,
            )
    return features


def set_op_determinism(enabled):
    """Turns TensorFlow's deterministic kernels on or off (a process-wide setting)."""
    import tensorflow as tf

    if enabled:
        tf.config.experimental.enable_op_determinism()
    else:
        # Off explicitly: an earlier run in this process may have turned it on. No
        # public alias exists.
        from tensorflow.python.framework import config

        config.disable_op_determinism()


def versions():
    """The versions of what computed the numbers (a run is only repeatable on the same ones)."""
    import keras
    import tensorflow as tf
    import tensorflow_text

    import keras_mtsa

    return {
        "keras_mtsa": keras_mtsa.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tensorflow_text": tensorflow_text.__version__,
    }
