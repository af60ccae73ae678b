"""Test setup shared by every test module.

On the TensorFlow backend the CPU is split into two logical devices before any TF op runs, so that
`tf.distribute.MirroredStrategy` can be tested with two replicas on a machine without accelerators.
"""

import os

import keras
import pytest

LOGICAL_CPUS = 2

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    _cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        _cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(LOGICAL_CPUS)]
    )


def pytest_report_header(config):
    return f"keras backend: {keras.backend.backend()}, keras {keras.__version__}"


@pytest.fixture
def tensorflow_only():
    """Skips a test that exercises a TensorFlow-only feature on other backends."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip(f"TensorFlow-only feature; backend is {keras.backend.backend()}")


@pytest.fixture(autouse=True)
def _float32_policy():
    """Every test starts and ends with the float32 dtype policy (mixed-precision tests change it)."""
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


SHARED_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")
