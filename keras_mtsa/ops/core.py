"""MTSA's attention core from per-head projections: one entry, `self_attention`,
that picks the form.

- "full": `tensorized_attention` on (n, n) factors per head, with its written-out gradient.
- "blockwise": `blockwise_self_attention`, tiles with online rescaling, memory linear in n.
- "fused": one standard softmax attention per head group through `keras.ops.dot_product_attention`
  (flash attention on GPU, splash attention on TPU with JAX), over the values [E_s * v, E_s]: with P
  the softmax of the token2token logits over allowed keys, o = (P (E_s * v)) / (P E_s), as P's row
  normalizer cancels. Directional heads ride on the kernel's causal flag (see
  `fused_self_attention`).
- "auto": "fused" on the JAX backend with a GPU or TPU where the configuration allows it (exp
  token2token, no token2token dropout), else "full".
"""

import math

import keras
from keras import ops

from keras_mtsa.ops.blockwise import blockwise_self_attention
from keras_mtsa.ops.full import tensorized_attention
from keras_mtsa.ops.masks import combined_attention_mask
from keras_mtsa.ops.masks import head_groups
from keras_mtsa.ops.numerics import masked_exp
from keras_mtsa.ops.numerics import masked_max
from keras_mtsa.ops.numerics import safe_reciprocal

IMPLEMENTATIONS = ("auto", "full", "blockwise", "fused")


def scaled_dot_product(query, key):
    """token2token logits <q_i, k_j> / sqrt(d) for (b, h, n, d) queries and keys."""
    head_dim = query.shape[-1]
    return ops.einsum("bhqd,bhkd->bhqk", query, key) / ops.cast(math.sqrt(head_dim), query.dtype)


def sigmoid_as_logits(token2token):
    """log(sigmoid(t)): feeding this to `tensorized_attention` gives the factor sigmoid(t).

    The authors' single-layer models use sigmoid(t) instead of exp(t); as a logit it keeps the same
    stable code path (max-subtraction and all).
    """
    return ops.log_sigmoid(token2token)


def token2token_logits(query, key, token2token_activation):
    """Scaled dot products in float32; as log(sigmoid(t)) for the sigmoid variant."""
    logits = scaled_dot_product(ops.cast(query, "float32"), ops.cast(key, "float32"))
    if token2token_activation == "sigmoid":
        return sigmoid_as_logits(logits)
    return logits


def fused_unsupported_reason(token2token_activation="exp", token2token_dropout=False):
    """Why the fused core cannot compute this configuration, or None if it can."""
    if token2token_activation != "exp":
        return "the sigmoid token2token factor needs the logits, which a fused kernel never exposes"
    if token2token_dropout:
        return "attention dropout drops the token2token factor, which a fused kernel never exposes"
    return None


def fused_kernel_available():
    """Whether `keras.ops.dot_product_attention` has a fused kernel here: JAX on a GPU or TPU."""
    if keras.backend.backend() != "jax":
        return False
    import jax

    return jax.default_backend() in ("gpu", "tpu")


def resolve_implementation(implementation, token2token_activation="exp", token2token_dropout=False):
    """ "auto" resolved to "fused" or "full"; "fused" checked against the configuration."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"`implementation` must be one of {IMPLEMENTATIONS}. Received: "
            f"implementation={implementation!r}"
        )
    reason = fused_unsupported_reason(token2token_activation, token2token_dropout)
    if implementation == "auto":
        return "fused" if reason is None and fused_kernel_available() else "full"
    if implementation == "fused" and reason is not None:
        raise ValueError(
            f"`implementation='fused'` cannot run here: {reason}. Use implementation='full'."
        )
    return implementation


def self_attention(
    query,
    key,
    source2token,
    value,
    *,
    head_masks,
    attend_to_self=False,
    token2token_activation="exp",
    padding_mask=None,
    attention_mask=None,
    token2token_dropout=None,
    source2token_dropout=None,
    implementation="auto",
    block_size=None,
):
    """MTSA's masked attention core on (batch, heads, length, head_dim) tensors; pure,
    so XLA can compile it.

    Args:
        query, key: per-head projections; the token2token logits are <q_i, k_j> / sqrt(head_dim)
            (and log(sigmoid(.)) of that with `token2token_activation="sigmoid"`).
        source2token: source2token logits, one per key and feature.
        value: the values.
        head_masks: one positional mask kind per head ("forward", "backward", "none").
        attend_to_self: whether the diagonal is allowed.
        token2token_activation: "exp" or "sigmoid".
        padding_mask: optional boolean (batch, length), True for real tokens.
        attention_mask: optional boolean (batch, 1 or heads, length, length), ANDed with the rest.
        token2token_dropout, source2token_dropout: optional multiplicative keep masks of the
            numerator's factors, (batch, heads, length, length) and (batch, heads, length, head_dim)
            (the blockwise and fused forms take only the second).
        implementation: "auto", "full", "blockwise" (needs `block_size`) or "fused".
        block_size: the tile size of the blockwise form.

    Returns:
        (batch, heads, length, head_dim) in the dtype of `value`; rows with no allowed key are 0.
    """
    implementation = resolve_implementation(
        implementation, token2token_activation, token2token_dropout is not None
    )
    if implementation == "blockwise":
        if block_size is None or token2token_dropout is not None:
            raise ValueError(
                "implementation='blockwise' needs `block_size` and takes no token2token dropout. "
                f"Received: block_size={block_size!r}"
            )
        return blockwise_self_attention(
            query,
            key,
            source2token,
            value,
            block_size=block_size,
            head_masks=head_masks,
            attend_to_self=attend_to_self,
            token2token_activation=token2token_activation,
            padding_mask=padding_mask,
            attention_mask=attention_mask,
            source2token_dropout=source2token_dropout,
        )
    if implementation == "fused":
        return fused_self_attention(
            query,
            key,
            source2token,
            value,
            head_masks=head_masks,
            attend_to_self=attend_to_self,
            padding_mask=padding_mask,
            attention_mask=attention_mask,
            source2token_dropout=source2token_dropout,
        )
    mask = combined_attention_mask(
        ops.shape(query)[2], head_masks, attend_to_self, padding_mask, attention_mask
    )
    return tensorized_attention(
        token2token_logits(query, key, token2token_activation),
        source2token,
        value,
        mask,
        token2token_dropout=token2token_dropout,
        source2token_dropout=source2token_dropout,
    )


def fused_self_attention(
    query,
    key,
    source2token,
    value,
    *,
    head_masks,
    attend_to_self=False,
    padding_mask=None,
    attention_mask=None,
    source2token_dropout=None,
):
    """The exp-token2token core as standard softmax attention over the values [E_s * v, E_s].

    E_s = exp(s - max) with the maximum per feature over the keys some query may attend to. Padded
    keys get zero values, so they change neither half of the output whatever weight the softmax
    gives them. Directional heads with the diagonal excluded (the paper's) use the kernel's causal
    mask: forward heads see keys shifted one step right behind a dummy key of zero key and zero
    values, so "key <= query" over the shifted keys is "key < query" over the real ones; backward
    heads run on the reversed sequence. Heads of kind "none" without the diagonal, and a caller's
    `attention_mask`, need an explicit mask, which the kernel takes as well (on GPUs a fused kernel
    may then fall back to the plain one).

    Limits, beyond the full form's: the dummy key's logit is 0 and padded keys keep theirs, and they
    share the softmax with the real keys. Where every allowed key of a query lies about 80 or more
    below the largest of those, the real keys' weights underflow in float32 and that output is 0 (as
    a fully masked row). With logits of standard deviation up to 10 the tests see no such case.
    """
    out_dtype = keras.backend.standardize_dtype(value.dtype)
    q, k, s, v = (ops.cast(x, "float32") for x in (query, key, source2token, value))
    batch, heads, length, head_dim = ops.shape(v)[0], v.shape[1], ops.shape(v)[2], v.shape[3]
    real = (
        ops.ones((batch, length), dtype="bool")
        if padding_mask is None
        else ops.cast(padding_mask, "bool")
    )

    explicit = attention_mask is not None or (
        not attend_to_self and any(kind == "none" for kind in head_masks)
    )
    if explicit:
        mask = combined_attention_mask(length, head_masks, attend_to_self, real, attention_mask)
        usable = ops.any(mask, axis=-2)  # (b, h, k): keys some query may attend to
    else:
        usable = ops.stack(
            [_usable_keys(kind, real, attend_to_self) for kind in head_masks], axis=1
        )
    usable = ops.expand_dims(usable, -1)  # (b, h, k, 1)
    column_max = masked_max(s, usable, axis=-2)
    s_factor = masked_exp(s - column_max, usable)
    numerator_factor = s_factor if source2token_dropout is None else s_factor * source2token_dropout
    # Zero padding of q and k to the values' width 2d: fused kernels want one head
    # width for q, k and v.
    values = ops.concatenate([numerator_factor * v, s_factor], axis=-1)  # (b, h, k, 2d)
    q = ops.concatenate([q, ops.zeros_like(q)], axis=-1)
    k = ops.concatenate([k, ops.zeros_like(k)], axis=-1)
    scale = 1.0 / math.sqrt(head_dim)

    if explicit:
        # The kernel spreads a row with no allowed key uniformly over all keys:
        # such rows are zeroed.
        has_key = ops.expand_dims(ops.any(mask, axis=-1), -1)
        both = ops.where(has_key, _attention(q, k, values, scale, mask=mask), 0.0)
    else:
        outputs = [None] * heads
        for kind, group in head_groups(head_masks):
            taken = [ops.take(x, group, axis=1) for x in (q, k, values)]
            result = _directional_attention(kind, *taken, scale, attend_to_self)
            for position, head in enumerate(group):
                outputs[head] = result[:, position : position + 1]
        both = ops.concatenate(outputs, axis=1)
        # Padded queries attend to nothing, as in the full form.
        both = both * ops.cast(real, both.dtype)[:, None, :, None]
    numerator, denominator = ops.split(both, 2, axis=-1)
    return ops.cast(numerator * safe_reciprocal(denominator), out_dtype)


def _usable_keys(kind, real, attend_to_self):
    """(b, k) keys that some real query may attend to under a directional mask
    kind, or every key."""
    if attend_to_self or kind == "none":  # ("none" without the diagonal takes the explicit path)
        return real
    length = ops.shape(real)[1]
    index = ops.arange(length)[None, :]
    # `initial`: the fillers of the padded positions, so that an empty axis (length 0, or batch 0
    # on torch) gives them instead of raising.
    if kind == "forward":  # j is seen by some real i > j
        last = ops.max(ops.where(real, index, -1), axis=1, keepdims=True, initial=-1)
        return ops.logical_and(real, index < last)
    first = ops.min(ops.where(real, index, length), axis=1, keepdims=True, initial=length)
    return ops.logical_and(real, index > first)  # backward: seen by some real i < j


def _attention(q, k, v, scale, mask=None, is_causal=False):
    """keras.ops.dot_product_attention on (b, h, n, d) tensors (it takes (b, n, h, d))."""

    def layout(x):
        return ops.transpose(x, (0, 2, 1, 3))

    output = ops.dot_product_attention(
        layout(q), layout(k), layout(v), mask=mask, scale=scale, is_causal=is_causal
    )
    return layout(output)


def _directional_attention(kind, q, k, values, scale, attend_to_self):
    """One head group's attention over `values` with only the kernel's causal mask (or none)."""
    if kind == "none":  # only with attend_to_self: every key
        return _attention(q, k, values, scale)
    if kind == "backward":
        q, k, values = (ops.flip(x, axis=2) for x in (q, k, values))
    if not attend_to_self:
        # Keys and values one step right, behind a dummy key whose values are 0: causal over
        # the shifted keys (j' <= i) is strict over the real ones (j < i), and the dummy adds
        # nothing to either half.
        k = ops.concatenate([ops.zeros_like(k[:, :, :1]), k[:, :, :-1]], axis=2)
        values = ops.concatenate([ops.zeros_like(values[:, :, :1]), values[:, :, :-1]], axis=2)
    output = _attention(q, k, values, scale, is_causal=True)
    return ops.flip(output, axis=2) if kind == "backward" else output
