"""XLA compilation of a pure tensor function inside a layer, on the TensorFlow backend only.

Keras turns model-level XLA off under `tf.distribute` (and `model.compile(jit_compile=True)`
fails with a MirroredStrategy of 2+ replicas), but an inner `tf.function(jit_compile=True)`
is still compiled per replica. On JAX the whole train step is already traced by `jax.jit`, so
nothing is needed there.
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

    The wrapped function must take tensors and hashable Python values only (Python values become
    part of the trace key) and must not capture variables, so it can be shared by every layer
    instance and never ends up tracked (or saved) as a layer attribute. The function is returned as
    is while a SavedModel is traced (`model.export`, `tf.saved_model.save`; unless inside
    `xla_in_saved_models()`), when the caller is already being compiled by XLA
    (`model.compile(jit_compile=True)`): a nested must-compile function there is compiled again for
    every batch, with the outer step's values as constants; and in eager execution, as Keras's own
    `jit_compile` leaves eager calls alone: XLA would compile anew for every new input shape, which
    costs more than its faster calls save unless one shape is called dozens of times
    (benchmarks/README.md, Findings). `fit`, `predict`, `evaluate` and any `tf.function` trace the
    call and keep XLA.
    """
    if keras.backend.backend() != "tensorflow":
        return function
    import tensorflow as tf

    if tf.executing_eagerly() or _inside_xla():
        return function
    if _saving() and not getattr(_state, "saved_models_xla", False):
        return function
    return _compiled(function)


def _saving():
    """Whether a SavedModel is being traced (`tf.saved_model.save`, Keras
    `model.export`, ExportArchive).

    An exported must-compile function is one TF Serving on CPU refuses to run unless it was started
    with `--xla_cpu_compilation_enabled=true`, so SavedModels get the plain graph (TF has no
    public API for this).
    """
    try:
        from tensorflow.python.saved_model import save_context
    except (
        ImportError
    ):  # a TF without this internal: the export keeps its XLA core (the checker flags it)
        return False
    return save_context.in_save_context()


def _inside_xla():
    """Whether the graph being traced is itself compiled by XLA (TF has no public API for this)."""
    try:
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # a TF without these internals: compiling twice is slow, not wrong
        return False
    return control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph())


@contextlib.contextmanager
def xla_in_saved_models():
    """Within this block (this thread), SavedModels keep the XLA-compiled core: for servers that run
    XLA (TF Serving on GPU, or on CPU with `--xla_cpu_compilation_enabled=true`)."""
    previous = getattr(_state, "saved_models_xla", False)
    _state.saved_models_xla = True
    try:
        yield
    finally:
        _state.saved_models_xla = previous
