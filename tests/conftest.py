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


@pytest.fixture
def write(tmp_path):
    """Writes bytes to a file in tmp_path and returns its path (the readers' tests)."""

    def write_file(name, content):
        path = tmp_path / name
        path.write_bytes(content)
        return path

    return write_file


@pytest.fixture(autouse=True)
def _float32_policy():
    """Every test starts and ends with the float32 dtype policy (mixed-precision
    tests change it)."""
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


SHARED_DATA = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data"
)


def require_shared_data(*paths):
    """Skips a real-data test when a file of ../shared/data is missing; in CI (CI=true), where the
    data is always laid out beside the clone, fails instead, so that a moved dataset cannot turn
    tests into skips."""
    missing = [str(path) for path in paths if not os.path.exists(path)]
    if not missing:
        return
    message = f"real data not found: {', '.join(missing)}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: the shared data must be there)")
    pytest.skip(message)
