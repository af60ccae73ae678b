"""The full form of MTSA's attention core: (n, n) factors per head, a written-out gradient.

Written with `keras.ops` only. Shapes use these letters: b batch, h heads, q query tokens, k key
tokens, d head features.

The efficient form rests on one identity. With t the token2token logits (b, h, q, k), s the
source2token logits (b, h, k, d) and M the positional mask,

    exp(t_qk + s_kd + M_qk) = [exp(t_qk) * 1{M_qk allowed}] * exp(s_kd),

so the softmax over keys of the (q, k, d) tensor splits into two matmuls of an (q, k) factor with
(k, d) factors, and the n x n x d tensor never exists.
"""

from keras import backend
from keras import ops

from keras_mtsa.ops._gradients import custom_gradient_call
from keras_mtsa.ops.numerics import masked_exp
from keras_mtsa.ops.numerics import masked_max
from keras_mtsa.ops.numerics import masked_softmax
from keras_mtsa.ops.numerics import safe_reciprocal


def tensorized_attention(
    token2token,
    source2token,
    value,
    mask=None,
    token2token_dropout=None,
    source2token_dropout=None,
):
    """Multi-dim tensorized attention without the n x n x d tensor.

    Computes out[b,h,i,k] = sum_j softmax_j(t[b,h,i,j] + s[b,h,j,k] over allowed j) * v[b,h,j,k].

    Numerics: the computation runs in float32 (float64 stays float64) whatever the input dtype
    and is cast back at the end. The row maximum of the allowed token2token logits and the
    column maximum of the source2token logits over the usable keys are subtracted before `exp`,
    so finite inputs never give inf or NaN, in the output or its gradients. Limit: if, for one
    (query, feature), every allowed key lies more than about 71 (float32; the denominator is then
    below tiny / eps, see `safe_reciprocal`) below those two maxima combined, the denominator
    counts as underflowed and that output is 0; the blockwise mode keeps maxima per block and
    avoids most of this.

    Args:
        token2token: logits of shape (batch, heads, query, key).
        source2token: logits of shape (batch, heads, key, head_dim).
        value: values of shape (batch, heads, key, head_dim).
        mask: optional boolean tensor broadcastable to (batch, heads, query, key), True = allowed.
        token2token_dropout: optional multiplicative mask broadcastable to
            (batch, heads, query, key) applied to the token2token factor of the numerator only (the
            authors' attention dropout).
        source2token_dropout: optional multiplicative mask broadcastable to
            (batch, heads, key, head_dim) applied to the source2token factor of the numerator only.

    Returns:
        Tensor of shape (batch, heads, query, head_dim) in the dtype of `value`. Rows with no
        allowed key are exactly 0.
    """
    # standardize_dtype: str() of a TensorFlow dtype is "<dtype: 'float64'>", not "float64".
    out_dtype = backend.standardize_dtype(value.dtype)
    compute_dtype = "float64" if out_dtype == "float64" else "float32"
    t = ops.cast(token2token, compute_dtype)
    s = ops.cast(source2token, compute_dtype)
    v = ops.cast(value, compute_dtype)

    # The mask stays in its broadcastable shape: reducing a broadcast constant (a positional mask)
    # sends XLA's constant folding into minutes of compile time at lengths of a few hundred.
    mask = ops.ones((1, 1, 1, 1), dtype="bool") if mask is None else ops.cast(mask, "bool")

    if token2token_dropout is not None:
        token2token_dropout = ops.cast(token2token_dropout, compute_dtype)
    if source2token_dropout is not None:
        source2token_dropout = ops.cast(source2token_dropout, compute_dtype)

    # The backward pass is written out (`_attention_gradients`): it keeps only E_t, E_s and
    # (q, d)-sized tensors and costs two fused matmuls, where autodiff keeps several (q, k)
    # intermediates of the masking and the division (measured on a CPU: the layer's training step
    # needs 10% less memory at n=256, 14% less at n=512).
    # The masks are arguments, not closed over (see `custom_gradient_call`).
    def attend(t, s, v, mask, token2token_dropout, source2token_dropout):
        t_factor, s_factor = _attention_factors(t, s, mask)
        numerator, denominator = _numerator_and_denominator(
            t_factor, s_factor, v, token2token_dropout, source2token_dropout
        )
        reciprocal = safe_reciprocal(denominator)
        output = numerator * reciprocal

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return _attention_gradients(
                ops.cast(upstream, compute_dtype),
                t_factor,
                s_factor,
                v,
                output,
                reciprocal,
                token2token_dropout,
                source2token_dropout,
            )

        return output, grad

    output = custom_gradient_call(
        attend, (t, s, v), (mask, token2token_dropout, source2token_dropout)
    )
    return ops.cast(output, out_dtype)


def _attention_factors(t, s, mask):
    """The max-shifted, masked factors exp(t) (b, h, q, k) and exp(s) (b, h, k, d)
    of the attention."""
    # Maxima cancel between numerator and denominator, so they need no gradient.
    row_max = masked_max(t, mask, axis=-1)  # (b, h, q, 1)
    t_factor = masked_exp(t - row_max, mask)  # (b, h, q, k), 0 where not allowed

    # Keys some query may attend to, read off the data rather than the mask (see above). A key whose
    # factor underflowed for every query adds nothing anyway.
    usable_key = ops.expand_dims(ops.any(t_factor > 0, axis=-2), -1)  # (b, h, k, 1)
    col_max = masked_max(s, usable_key, axis=-2)  # (b, h, 1, d)
    s_factor = masked_exp(s - col_max, usable_key)  # (b, h, k, d)
    return t_factor, s_factor


def _numerator_and_denominator(
    t_factor, s_factor, value, token2token_dropout, source2token_dropout
):
    """N = (E_t * drop_t) @ (E_s * drop_s * v) and D = E_t @ E_s; the dropout masks may be None."""
    if token2token_dropout is None and source2token_dropout is None:
        # One matmul for numerator and denominator: E_t @ [E_s * v, E_s].
        both = ops.einsum(
            "bhqk,bhkd->bhqd", t_factor, ops.concatenate([s_factor * value, s_factor], -1)
        )
        numerator, denominator = ops.split(both, 2, axis=-1)
        return numerator, denominator
    denominator = ops.einsum("bhqk,bhkd->bhqd", t_factor, s_factor)
    numerator = ops.einsum(
        "bhqk,bhkd->bhqd",
        _maybe_scale(t_factor, token2token_dropout),
        _maybe_scale(s_factor, source2token_dropout) * value,
    )
    return numerator, denominator


def _attention_gradients(
    upstream,
    t_factor,
    s_factor,
    value,
    output,
    reciprocal,
    token2token_dropout,
    source2token_dropout,
):
    """Gradients of out = N / D with respect to the logits t, s and the value v.

    With A = g / D and B = -g * out / D (both (b, h, q, d), 0 where D underflowed): dN = A and
    dD = B, so dE_t = drop_t * (A @ (E_s drop_s v)^T) + B @ E_s^T,
    dE_s = drop_s * v * (E_t drop_t)^T A + E_t^T B, dv = E_s drop_s * (E_t drop_t)^T A, and since
    the factors are exp of the (max-shifted) logits, dt = dE_t * E_t and ds = dE_s * E_s. Without
    dropout each pair is one matmul over [A, B]. Only E_t, E_s and (b, h, q, d) tensors are kept
    from the forward pass, where autodiff would keep several (b, h, q, k) intermediates of the
    masking and of the division.
    """
    a = upstream * reciprocal
    b = -upstream * output * reciprocal
    if token2token_dropout is None and source2token_dropout is None:
        ab = ops.concatenate([a, b], axis=-1)
        d_t_factor = ops.einsum(
            "bhqd,bhkd->bhqk", ab, ops.concatenate([s_factor * value, s_factor], -1)
        )
        through_a, through_b = ops.split(ops.einsum("bhqk,bhqd->bhkd", t_factor, ab), 2, axis=-1)
        d_value = s_factor * through_a
        d_s_factor = value * through_a + through_b
    else:
        dropped_t = _maybe_scale(t_factor, token2token_dropout)
        dropped_s = _maybe_scale(s_factor, source2token_dropout)
        d_t_factor = _maybe_scale(
            ops.einsum("bhqd,bhkd->bhqk", a, dropped_s * value), token2token_dropout
        ) + ops.einsum("bhqd,bhkd->bhqk", b, s_factor)
        through_a = ops.einsum("bhqk,bhqd->bhkd", dropped_t, a)
        d_value = dropped_s * through_a
        d_s_factor = _maybe_scale(value * through_a, source2token_dropout) + ops.einsum(
            "bhqk,bhqd->bhkd", t_factor, b
        )
    return d_t_factor * t_factor, d_s_factor * s_factor, d_value


def _maybe_scale(x, scale):
    return x if scale is None else x * scale


def attention_weights(token2token, source2token, mask=None):
    """Normalized token2token and source2token weights, for inspection and plots.

    Args:
        token2token: logits (batch, heads, query, key).
        source2token: logits (batch, heads, key, head_dim).
        mask: optional boolean mask broadcastable to (batch, heads, query, key).

    Returns:
        (token2token_weights, source2token_weights): softmax over allowed keys of the token2token
        logits, shape (batch, heads, query, key), and softmax over usable keys of the source2token
        logits per feature, shape (batch, heads, key, head_dim). Fully masked rows/columns are 0.
    """
    t = ops.cast(token2token, "float32")
    s = ops.cast(source2token, "float32")
    if mask is None:
        mask = ops.ones_like(t, dtype="bool")
    else:
        mask = ops.broadcast_to(ops.cast(mask, "bool"), ops.shape(t))
    usable_key = ops.broadcast_to(ops.expand_dims(ops.any(mask, axis=-2), -1), ops.shape(s))
    return masked_softmax(t, mask, axis=-1), masked_softmax(s, usable_key, axis=-2)


def reference_tensorized_attention(token2token, source2token, value, mask=None):
    """The literal explicit form: builds the (batch, heads, query, key, head_dim) score tensor.

    Used as the oracle in tests and as the baseline in benchmarks. Memory is O(n^2 d) per head.
    Same arguments and result as `tensorized_attention` (no dropout).
    """
    out_dtype = backend.standardize_dtype(value.dtype)
    compute_dtype = "float64" if out_dtype == "float64" else "float32"
    t = ops.cast(token2token, compute_dtype)
    s = ops.cast(source2token, compute_dtype)
    v = ops.cast(value, compute_dtype)
    scores = ops.expand_dims(t, -1) + ops.expand_dims(s, 2)  # (b, h, q, k, d)
    if mask is None:
        allowed = ops.ones_like(scores, dtype="bool")
    else:
        allowed = ops.broadcast_to(ops.expand_dims(ops.cast(mask, "bool"), -1), ops.shape(scores))
    weights = masked_softmax(scores, allowed, axis=3)  # over keys
    output = ops.sum(weights * ops.expand_dims(v, 2), axis=3)
    return ops.cast(output, out_dtype)
