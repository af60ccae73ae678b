"""Shared test helpers: independent float64 numpy oracles, the one backend-specific autodiff helper,
and small utilities. The oracles are written from the method's description (docs/mtsa.md), in plain
numpy, and share no code with `keras_mtsa`.
"""

import math

import keras
import numpy as np

BACKEND = keras.backend.backend()

# The most precise float dtype the backend runs by default: JAX keeps x64 off, so float64 inputs
# would be silently truncated to float32 there.
PRECISE_FLOAT = "float64" if BACKEND == "tensorflow" else "float32"


# --------------------------------------------------------------------------------------------------
# Autodiff: the only backend-specific code of the test suite.


def gradients(function, *args):
    """Gradients of the scalar `function(*args)` with respect to every argument, as numpy arrays.

    `args` are numpy arrays; `function` must be written with `keras.ops` (and may call
    `layer.stateless_call`, which makes gradients with respect to weights backend-independent too).
    """
    if BACKEND == "jax":
        import jax

        grads = jax.grad(function, argnums=tuple(range(len(args))))(
            *(jax.numpy.asarray(a) for a in args)
        )
        return [np.asarray(g) for g in grads]
    if BACKEND == "tensorflow":
        import tensorflow as tf

        tensors = [tf.constant(a) for a in args]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            loss = function(*tensors)
        return [np.asarray(g) for g in tape.gradient(loss, tensors)]
    raise NotImplementedError(f"No autodiff helper for backend {BACKEND}")


# --------------------------------------------------------------------------------------------------
# Oracles for keras_mtsa.ops


def loop_positional_mask(length, kinds, attend_to_self):
    """(heads, length, length) boolean masks built entry by entry from the
    definitions in docs/mtsa.md."""
    mask = np.zeros((len(kinds), length, length), dtype=bool)
    for head, kind in enumerate(kinds):
        for i in range(length):
            for j in range(length):
                if kind == "forward":
                    allowed = j < i or (attend_to_self and j == i)
                elif kind == "backward":
                    allowed = j > i or (attend_to_self and j == i)
                else:
                    allowed = j != i or attend_to_self
                mask[head, i, j] = allowed
    return mask


def numpy_masked_softmax(logits, mask, axis):
    """float64 softmax over the allowed entries along `axis`; masked entries and
    empty slices are 0."""
    logits = np.asarray(logits, np.float64)
    mask = np.broadcast_to(np.asarray(mask, bool), logits.shape)
    shifted = np.where(mask, logits, -np.inf)
    maximum = np.max(shifted, axis=axis, keepdims=True)
    maximum = np.where(np.isfinite(maximum), maximum, 0.0)
    weights = np.where(mask, np.exp(np.where(mask, logits - maximum, 0.0)), 0.0)
    total = np.sum(weights, axis=axis, keepdims=True)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)


def numpy_tensorized_attention(t, s, v, mask=None, t_dropout=None, s_dropout=None):
    """The explicit (batch, heads, query, key, head_dim) form in float64.

    p[b,h,i,j,k] = softmax over allowed keys j of t[b,h,i,j] + s[b,h,j,k]; out[b,h,i,k] = sum_j p v.
    Dropout (the authors' scheme) multiplies p[i,j,k] by t_dropout[i,j] * s_dropout[j,k] after the
    normalisation, so the weights are not renormalised.
    """
    t, s, v = (np.asarray(a, np.float64) for a in (t, s, v))
    scores = t[..., :, :, None] + s[..., None, :, :]  # (b, h, q, k, d)
    allowed = np.ones(scores.shape, bool) if mask is None else np.asarray(mask, bool)[..., None]
    weights = numpy_masked_softmax(scores, np.broadcast_to(allowed, scores.shape), axis=-2)
    if t_dropout is not None:
        weights = weights * np.asarray(t_dropout, np.float64)[..., None]
    if s_dropout is not None:
        weights = weights * np.asarray(s_dropout, np.float64)[..., None, :, :]
    return np.sum(weights * v[..., None, :, :], axis=-2)


# --------------------------------------------------------------------------------------------------
# Oracles for the layers, computed from the layers' own weights.

_NUMPY_ACTIVATIONS = {
    "linear": lambda x: x,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
}


def numpy_activation(activation):
    """A float64 numpy version of a Keras activation (a function or its serialized name)."""
    name = activation if isinstance(activation, str) else keras.activations.serialize(activation)
    return _NUMPY_ACTIVATIONS[name]


def weights_by_path(layer):
    """The layer's weights as float64 numpy arrays keyed by their path below the layer,
    e.g. "value/kernel"."""
    prefix = layer.name + "/"
    weights = {}
    for weight in layer.weights:
        path = weight.path
        weights[path[path.index(prefix) + len(prefix) :]] = np.asarray(weight.numpy(), np.float64)
    return weights


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_mtsa(layer, x, mask=None, attention_mask=None, t_dropout=None, s_dropout=None):
    """MTSA in float64 numpy from an MTSA layer's weights and configuration; see
    `numpy_mtsa_from`."""
    return numpy_mtsa_from(
        layer.get_config(), weights_by_path(layer), x, mask, attention_mask, t_dropout, s_dropout
    )


def numpy_mtsa_logits(config, w, x, mask=None, attention_mask=None):
    """The value, the token2token and source2token logits and the allowed (query, key) pairs
    of MTSA, in float64 numpy from a configuration and weights keyed like "value/kernel"
    (docs/mtsa.md, section 1).

    value = act(x W_v + b_v) per head; q, k = value W_q, value W_k per head (no bias); token2token
    t = <q_i, k_j> / sqrt(head_dim), or log(sigmoid(t)) for the sigmoid factor; source2token
    s = W_2 act_s(W_1 value + b_1) + b_2 per head; allowed: the positional masks, key padding and
    `attention_mask` (3D for every head, or 4D per head).

    Returns:
        (value (b, h, n, d), token2token (b, h, n, n), source2token (b, h, n, d),
        allowed (b or 1, h, n, n)).
    """
    head_dim = config["head_dim"]
    x = np.asarray(x, np.float64)
    length = x.shape[1]
    activation = numpy_activation(config["activation"])
    source2token_activation = numpy_activation(config["source2token_activation"])

    def bias(name):
        return w.get(name, 0.0)

    value = activation(np.einsum("bnc,chd->bhnd", x, w["value/kernel"]) + bias("value/bias"))
    query = np.einsum("bhnd,hde->bhne", value, w["query/kernel"])
    key = np.einsum("bhnd,hde->bhne", value, w["key/kernel"])
    token2token = np.einsum("bhqd,bhkd->bhqk", query, key) / math.sqrt(head_dim)
    if config["token2token_activation"] == "sigmoid":
        token2token = np.log(_sigmoid(token2token))
    hidden = source2token_activation(
        np.einsum("bhnd,hde->bhne", value, w["source2token_hidden/kernel"])
        + bias("source2token_hidden/bias")
    )
    source2token = np.einsum("bhnd,hde->bhne", hidden, w["source2token_output/kernel"]) + bias(
        "source2token_output/bias"
    )

    allowed = loop_positional_mask(length, config["head_masks"], config["attend_to_self"])[None]
    if mask is not None:
        allowed = allowed & np.asarray(mask, bool)[:, None, None, :]
    if attention_mask is not None:
        attention_mask = np.asarray(attention_mask, bool)
        allowed = allowed & (
            attention_mask[:, None] if attention_mask.ndim == 3 else attention_mask
        )
    return value, token2token, source2token, allowed


def numpy_mtsa_from(config, w, x, mask=None, attention_mask=None, t_dropout=None, s_dropout=None):
    """MTSA in float64 numpy: `numpy_mtsa_logits`, the explicit tensor softmax over allowed keys
    (with the authors' attention dropout masks, if given); the fusion gate per head,
    g_h = sigmoid([value_h; o_h] W_h + b_h), o_h <- g_h * value_h + (1 - g_h) * o_h (or, for
    fusion_gate="joint", one gate over the concatenated heads); heads concatenated; output
    projection; padded positions 0.
    """
    heads, head_dim = config["num_heads"], config["head_dim"]
    batch, length, _ = np.shape(x)

    def bias(name):
        return w.get(name, 0.0)

    value, token2token, source2token, full_mask = numpy_mtsa_logits(
        config, w, x, mask, attention_mask
    )
    attended = numpy_tensorized_attention(
        token2token, source2token, value, full_mask, t_dropout, s_dropout
    )

    def merge(a):
        return a.transpose(0, 2, 1, 3).reshape(batch, length, heads * head_dim)

    if config["use_fusion_gate"] and config.get("fusion_gate", "joint") == "per_head":
        gate = _sigmoid(
            np.einsum(
                "bhnc,hcd->bhnd", np.concatenate([value, attended], -1), w["fusion_gate/kernel"]
            )
            + bias("fusion_gate/bias")
        )
        attended = gate * value + (1.0 - gate) * attended
    value, output = merge(value), merge(attended)
    if config["use_fusion_gate"] and config.get("fusion_gate", "joint") == "joint":
        gate = _sigmoid(
            np.concatenate([value, output], -1) @ w["fusion_gate/kernel"] + bias("fusion_gate/bias")
        )
        output = gate * value + (1.0 - gate) * output
    if config["output_dim"] is not None:
        output = output @ w["output/kernel"] + bias("output/bias")
    if mask is not None:
        output = output * np.asarray(mask, np.float64)[..., None]
    return output


def numpy_source2token_pooling(layer, x, mask=None):
    """out_k = sum_j softmax_j(s_jk) x_jk with s = W_2 act(W_1 x + b_1) + b_2,
    over unmasked tokens."""
    w = weights_by_path(layer)
    activation = numpy_activation(layer.get_config()["activation"])
    x = np.asarray(x, np.float64)
    scores = activation(x @ w["hidden/kernel"] + w.get("hidden/bias", 0.0)) @ w[
        "score/kernel"
    ] + w.get("score/bias", 0.0)
    token_mask = np.ones(x.shape[:2], bool) if mask is None else np.asarray(mask, bool)
    weights = numpy_masked_softmax(
        scores, np.broadcast_to(token_mask[..., None], scores.shape), axis=1
    )
    return np.sum(weights * x, axis=1)


def numpy_layer_norm(x, gamma, beta, epsilon):
    mean = np.mean(x, axis=-1, keepdims=True)
    variance = np.var(x, axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


# --------------------------------------------------------------------------------------------------
# Small utilities


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def assert_close(actual, expected, tol, scale=None):
    """|actual - expected| <= tol * (|expected| + scale) elementwise; `scale` (default
    max |expected|, at least 1) keeps entries near zero from demanding more than the magnitude of
    the data allows."""
    actual = np.asarray(to_numpy(actual), np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if scale is None:
        scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale)


def copy_weights(source, target):
    """Gives `target` the weights of `source` (both built), cast to the target's variable dtypes."""
    target.set_weights([w.numpy() for w in source.weights])
