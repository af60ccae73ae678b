"""XLA compilation of a pure tensor function inside a layer, on the TensorFlow backend only.

Keras turns model-level XLA off under `tf.distribute` (and `model.compile(jit_compile=True)` fails with a
MirroredStrategy of 2+ replicas), but an inner `tf.function(jit_compile=True)` is still compiled per replica.
On JAX the whole train step is already traced by `jax.jit`, so nothing is needed there.
"""

import contextlib
import functools
import threading

import keras

_state = threading.local()


@functools.lru_cache(maxsize=None)
def _compiled(function):
    import tensorflow as tf

    return tf.function(function, jit_compile=True, autograph=False)


def xla_compiled(function):
    """Returns `function` wrapped in `tf.function(jit_compile=True)` on TensorFlow, else `function`.

    The wrapped function must take tensors and hashable Python values only (Python values become part of
    the trace key) and must not capture variables, so it can be shared by every layer instance and never
    ends up tracked (or saved) as a layer attribute. Inside `xla_disabled()` the function is returned as is,
    and so it is when the caller is already being compiled by XLA (`model.compile(jit_compile=True)`):
    a nested must-compile function there is compiled again for every batch, with the outer step's values
    as constants.
    """
    if keras.backend.backend() != "tensorflow" or getattr(_state, "disabled", False):
        return function
    if _inside_xla():
        return function
    return _compiled(function)


def _inside_xla():
    """Whether the graph being traced is itself compiled by XLA (TF has no public API for this)."""
    try:
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # a TF without these internals: compiling twice is slow, not wrong
        return False
    return control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph())


@contextlib.contextmanager
def xla_disabled():
    """Within this block (this thread), `xla_compiled` compiles nothing: e.g. while tracing an export for
    servers that run XLA:CPU only on request (TF Serving's `--xla_cpu_compilation_enabled`)."""
    previous = getattr(_state, "disabled", False)
    _state.disabled = True
    try:
        yield
    finally:
        _state.disabled = previous
