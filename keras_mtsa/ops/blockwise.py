"""Blockwise MTSA: tensorized attention in (query block x key block) tiles, memory linear in length.

The full form keeps an (n, n) token2token factor per head. Here the keys are visited one
block at a time, as memory-efficient attention does, with three running (query, feature)
statistics per query block:

    M  the running log-offset, max over visited blocks of
       (block row max of t) + (block column max of s),
    N  the numerator    sum_j exp(t_ij + s_jk - M_ik) v_jk,
    D  the denominator  sum_j exp(t_ij + s_jk - M_ik),

rescaled online when M grows. Every tile uses its own row maxima of t and column maxima of s, so
the denominator only underflows when all keys of the best tile lie ~87 below that tile's maxima
(the full form uses global maxima). Tiles that a head's positional mask rules out entirely are
never visited: a forward head only visits key blocks up to its query block, so directional heads do
about half the work.

The backward pass is a custom gradient that recomputes each tile from the saved output and
per-(query, feature) log-normalizer (lse = M + log D), so training also needs O(n) memory. With
p_ijk = A_ij B_jk exp(c_ik - lse_ik), where A, B are a tile's factors and c its offset, and
G = g * exp(c - lse):

    dv = B * (A^T G)            ds = B * (v * (A^T G) - A^T (G * o))
    dt = A * (G (B * v)^T - (G * o) B^T)

Only keras.ops are used (loops are `ops.fori_loop`), so this runs on TensorFlow
(inside XLA) and JAX.
"""

import copy
import math

from keras import ops

from keras_mtsa.ops import _checks as check
from keras_mtsa.ops._gradients import custom_gradient_call
from keras_mtsa.ops.masks import allowed_keys
from keras_mtsa.ops.masks import head_groups
from keras_mtsa.ops.numerics import masked_exp
from keras_mtsa.ops.numerics import masked_max

# A finite "minus infinity": offsets start here, so exp(LOW - LOW) = 1 and never NaN.
_LOW = -1e30
# exp() arguments are capped here in the backward pass so a pathological tile
# cannot overflow float32.
_MAX_EXPONENT = 80.0


def blockwise_self_attention(
    query,
    key,
    source2token,
    value,
    *,
    block_size,
    head_masks,
    attend_to_self=False,
    token2token_activation="exp",
    padding_mask=None,
    attention_mask=None,
    source2token_dropout=None,
):
    """MTSA from queries and keys, in tiles, never holding an (n, n) tensor.

    Args:
        query, key: (batch, heads, length, head_dim); token2token logits are
            <q_i, k_j> / sqrt(head_dim) (log(sigmoid(.)) of that for
            `token2token_activation="sigmoid"`), computed per tile.
        source2token, value: (batch, heads, length, head_dim).
        block_size: tile size (queries and keys); the length is padded to a multiple of it.
        head_masks: one positional mask kind per head ("forward", "backward", "none").
        attend_to_self: whether the diagonal is allowed.
        token2token_activation: "exp" or "sigmoid".
        padding_mask: optional boolean (batch, length), True for real tokens. Padded keys are never
            attended and padded queries attend to nothing (their output is 0).
        attention_mask: optional boolean (batch, 1 or heads, length, length), ANDed in per tile.
        source2token_dropout: optional multiplicative (batch, heads, length, head_dim) mask for the
            source2token factor of the numerator (the blockwise mode's attention dropout: the
            token2token factor is never materialized, so only this linear-memory factor is dropped).

    Returns:
        (batch, heads, length, head_dim), in the dtype of `value`.
    """
    block_size = check.positive_int("block_size", block_size)
    out_dtype = value.dtype
    tensors = [ops.cast(x, "float32") for x in (query, key, source2token, value)]
    scale = 1.0 / math.sqrt(query.shape[-1])
    length = ops.shape(value)[2]
    num_blocks = (length + block_size - 1) // block_size
    if isinstance(num_blocks, int):
        # A known length of 0 still gets one (all padding) block: JAX traces a loop's body even
        # for no iterations, and it cannot take a block from an empty axis.
        num_blocks = max(num_blocks, 1)
    padded = num_blocks * block_size
    pad = padded - length

    def pad_length(x, axes):
        widths = [[0, 0] for _ in range(len(x.shape))]
        for axis in axes:
            widths[axis] = [0, pad]
        return ops.pad(x, widths)

    tensors = [pad_length(x, [2]) for x in tensors]
    if padding_mask is None:
        padding_mask = ops.ones((ops.shape(value)[0], length), dtype="bool")
    key_valid = pad_length(ops.cast(padding_mask, "bool"), [1])  # padded keys never attended
    dropout = (
        None
        if source2token_dropout is None
        else pad_length(ops.cast(source2token_dropout, "float32"), [2])
    )
    attention_mask = (
        None if attention_mask is None else pad_length(ops.cast(attention_mask, "bool"), [2, 3])
    )

    outputs = []
    for kind, heads in head_groups(head_masks):
        group = [ops.take(x, heads, axis=1) for x in tensors]
        group_dropout = None if dropout is None else ops.take(dropout, heads, axis=1)
        group_mask = attention_mask
        if attention_mask is not None and attention_mask.shape[1] != 1:
            group_mask = ops.take(attention_mask, heads, axis=1)
        tiles = _Tiles(
            kind,
            attend_to_self,
            token2token_activation,
            scale,
            block_size,
            num_blocks,
            key_valid,
            group_mask,
            group_dropout,
        )
        outputs.append((heads, tiles.attend(*group)))
    order = [head for heads, _ in outputs for head in heads]
    output = ops.concatenate([out for _, out in outputs], axis=1)
    if order != sorted(order):
        output = ops.take(output, [order.index(head) for head in range(len(order))], axis=1)
    return ops.cast(output[:, :, :length, :], out_dtype)


def _blocks(x, block_size):
    """(b, h, n, d) -> (n / block, b, h, block, d): the block index first, for `ops.take`."""
    b, h, n, d = ops.shape(x)
    x = ops.reshape(x, (b, h, n // block_size, block_size, d))
    return ops.transpose(x, (2, 0, 1, 3, 4))


def _unblocks(x):
    nb, b, h, block, d = ops.shape(x)
    return ops.reshape(ops.transpose(x, (1, 2, 0, 3, 4)), (b, h, nb * block, d))


def _add_block(buffer, index, update):
    """buffer[index] += update, for a (blocks, ...) buffer."""
    current = ops.take(buffer, index, axis=0)
    start = [index] + [0] * (len(buffer.shape) - 1)
    return ops.slice_update(buffer, start, ops.expand_dims(current + update, 0))


def _set_block(buffer, index, update):
    start = [index] + [0] * (len(buffer.shape) - 1)
    return ops.slice_update(buffer, start, ops.expand_dims(update, 0))


class _Tiles:
    """The tile loops of one group of heads sharing a positional mask kind."""

    def __init__(
        self,
        kind,
        attend_to_self,
        activation,
        scale,
        block_size,
        num_blocks,
        key_valid,
        attention_mask,
        dropout,
    ):
        self.kind = kind
        self.attend_to_self = attend_to_self
        self.activation = activation
        self.scale = scale
        self.block_size = block_size
        self.num_blocks = num_blocks
        self.key_valid = key_valid  # (b, padded): real tokens
        self.attention_mask = attention_mask  # (b, 1 or heads, padded, padded) or None
        self.dropout = dropout  # (b, heads, padded, d) or None

    # -- which tiles exist ------------------------------------------------------------------------
    def key_range(self, query_block):
        if self.kind == "forward":
            return 0, query_block + 1
        if self.kind == "backward":
            return query_block, self.num_blocks
        return 0, self.num_blocks

    def query_range(self, key_block):
        if self.kind == "forward":
            return key_block, self.num_blocks
        if self.kind == "backward":
            return 0, key_block + 1
        return 0, self.num_blocks

    # -- one tile ---------------------------------------------------------------------------------
    def tile_mask(self, query_block, key_block):
        """(b or 1, 1 or h, block, block) boolean mask of one tile."""
        offsets = ops.arange(self.block_size, dtype="int32")
        allowed = allowed_keys(
            self.kind,
            query_block * self.block_size + offsets,
            key_block * self.block_size + offsets,
            self.attend_to_self,
        )

        def valid(block):
            return ops.slice(
                self.key_valid,
                [0, block * self.block_size],
                [ops.shape(self.key_valid)[0], self.block_size],
            )

        # Padding masks keys and queries, as in the full form: a padded query attends to nothing.
        mask = ops.logical_and(allowed[None, None], valid(key_block)[:, None, None, :])
        mask = ops.logical_and(mask, valid(query_block)[:, None, :, None])
        if self.attention_mask is not None:
            shape = ops.shape(self.attention_mask)
            tile = ops.slice(
                self.attention_mask,
                [0, 0, query_block * self.block_size, key_block * self.block_size],
                [shape[0], shape[1], self.block_size, self.block_size],
            )
            mask = ops.logical_and(mask, tile)
        return mask

    def tile_factors(self, q, k, s, query_block, key_block):
        """The tile's factors A (b,h,Bq,Bk), B (b,h,Bk,d), offset c (b,h,Bq,d), and what the
        backward pass needs: the raw scores and the masks."""
        raw = ops.einsum("bhqd,bhkd->bhqk", q, k) * self.scale
        logits = ops.log_sigmoid(raw) if self.activation == "sigmoid" else raw
        mask = ops.broadcast_to(self.tile_mask(query_block, key_block), ops.shape(logits))
        row_max = masked_max(logits, mask, axis=-1)  # (b, h, Bq, 1)
        a = masked_exp(logits - row_max, mask)
        usable = ops.expand_dims(ops.any(mask, axis=-2), -1)  # (b, h, Bk, 1)
        usable = ops.broadcast_to(usable, ops.shape(s))
        column_max = masked_max(s, usable, axis=-2)  # (b, h, 1, d)
        b = masked_exp(s - column_max, usable)
        row_any = ops.any(mask, axis=-1, keepdims=True)
        offset = ops.where(row_any, row_max + column_max, _LOW)  # (b, h, Bq, d)
        return raw, a, b, offset

    def key_dropout(self, key_block):
        if self.dropout is None:
            return None
        shape = ops.shape(self.dropout)
        return ops.slice(
            self.dropout,
            [0, 0, key_block * self.block_size, 0],
            [shape[0], shape[1], self.block_size, shape[3]],
        )

    # -- forward and backward ---------------------------------------------------------------------
    def with_tensors(self, key_valid, attention_mask, dropout):
        """These loops over other mask tensors (the custom gradient's arguments)."""
        tiles = copy.copy(self)
        tiles.key_valid, tiles.attention_mask, tiles.dropout = key_valid, attention_mask, dropout
        return tiles

    def attend(self, query, key, source2token, value):
        """(b, h, padded, d) inputs -> (b, h, padded, d), differentiable w.r.t. all four."""

        def forward(tiles, qb, kb, sb, vb):
            out = ops.zeros_like(vb)
            lse = ops.zeros_like(vb) + _LOW

            def per_query_block(i, carry):
                out, lse = carry
                q = ops.take(qb, i, axis=0)
                zeros = ops.zeros_like(q[..., :1] * ops.take(vb, i, axis=0))

                def per_key_block(j, state):
                    running_max, numerator, denominator = state
                    s, v = ops.take(sb, j, axis=0), ops.take(vb, j, axis=0)
                    _, a, b, offset = tiles.tile_factors(q, ops.take(kb, j, axis=0), s, i, j)
                    drop = tiles.key_dropout(j)
                    weighted = b * v if drop is None else b * drop * v
                    both = ops.einsum("bhqk,bhkd->bhqd", a, ops.concatenate([weighted, b], -1))
                    tile_numerator, tile_denominator = ops.split(both, 2, axis=-1)
                    new_max = ops.maximum(running_max, offset)
                    keep, add = ops.exp(running_max - new_max), ops.exp(offset - new_max)
                    return (
                        new_max,
                        numerator * keep + tile_numerator * add,
                        denominator * keep + tile_denominator * add,
                    )

                low, high = tiles.key_range(i)
                running_max, numerator, denominator = ops.fori_loop(
                    low, high, per_key_block, (zeros + _LOW, zeros, zeros)
                )
                nonzero = denominator > 0
                safe = ops.where(nonzero, denominator, ops.ones_like(denominator))
                block_out = ops.where(nonzero, numerator / safe, zeros)
                block_lse = ops.where(nonzero, ops.log(safe) + running_max, zeros + _LOW)
                return _set_block(out, i, block_out), _set_block(lse, i, block_lse)

            return ops.fori_loop(0, tiles.num_blocks, per_query_block, (out, lse))

        def backward(tiles, qb, kb, sb, vb, out, lse, upstream):
            gb = _blocks(upstream, tiles.block_size)
            dq = ops.zeros_like(qb)
            dk, ds, dv = ops.zeros_like(kb), ops.zeros_like(sb), ops.zeros_like(vb)

            def per_key_block(j, carry):
                dq, dk, ds, dv = carry
                k, s, v = (ops.take(x, j, axis=0) for x in (kb, sb, vb))
                drop = tiles.key_dropout(j)
                dropped_b_scale = ops.ones_like(s) if drop is None else drop
                zeros = ops.zeros_like(s)

                def per_query_block(i, state):
                    dq, dk_j, ds_j, dv_j = state
                    q = ops.take(qb, i, axis=0)
                    raw, a, b, offset = tiles.tile_factors(q, k, s, i, j)
                    o, g, block_lse = (ops.take(x, i, axis=0) for x in (out, gb, lse))
                    live = block_lse > _LOW / 2
                    exponent = ops.minimum(
                        offset - ops.where(live, block_lse, offset), _MAX_EXPONENT
                    )
                    grad = ops.where(live, g * ops.exp(exponent), ops.zeros_like(g))
                    grad_out = grad * o
                    a_t_grad = ops.einsum("bhqk,bhqd->bhkd", a, grad)
                    a_t_grad_out = ops.einsum("bhqk,bhqd->bhkd", a, grad_out)
                    dv_j = dv_j + b * dropped_b_scale * a_t_grad
                    ds_j = ds_j + b * (dropped_b_scale * v * a_t_grad - a_t_grad_out)
                    d_logits = a * (
                        ops.einsum("bhqd,bhkd->bhqk", grad, b * dropped_b_scale * v)
                        - ops.einsum("bhqd,bhkd->bhqk", grad_out, b)
                    )
                    if tiles.activation == "sigmoid":
                        d_logits = d_logits * ops.sigmoid(-raw)  # d log(sigmoid(x)) / dx
                    d_logits = d_logits * tiles.scale
                    dq = _add_block(dq, i, ops.einsum("bhqk,bhkd->bhqd", d_logits, k))
                    dk_j = dk_j + ops.einsum("bhqk,bhqd->bhkd", d_logits, q)
                    return dq, dk_j, ds_j, dv_j

                low, high = tiles.query_range(j)
                dq, dk_j, ds_j, dv_j = ops.fori_loop(
                    low, high, per_query_block, (dq, zeros, zeros, zeros)
                )
                return dq, _set_block(dk, j, dk_j), _set_block(ds, j, ds_j), _set_block(dv, j, dv_j)

            dq, dk, ds, dv = ops.fori_loop(0, tiles.num_blocks, per_key_block, (dq, dk, ds, dv))
            return tuple(_unblocks(x) for x in (dq, dk, ds, dv))

        # The masks are arguments, not closed over (see `custom_gradient_call`).
        def attention(query, key, source2token, value, key_valid, attention_mask, dropout):
            tiles = self.with_tensors(key_valid, attention_mask, dropout)
            blocks = [_blocks(x, tiles.block_size) for x in (query, key, source2token, value)]
            out, lse = forward(tiles, *blocks)

            def grad(*args, upstream=None):
                if upstream is None:
                    (upstream,) = args
                return backward(tiles, *blocks, out, lse, ops.cast(upstream, "float32"))

            return _unblocks(out), grad

        return custom_gradient_call(
            attention,
            (query, key, source2token, value),
            (self.key_valid, self.attention_mask, self.dropout),
        )
