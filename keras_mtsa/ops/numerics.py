"""Masked and guarded arithmetic shared by the attention cores: no inf, no NaN, exact
zeros where masked."""

import numpy as np
from keras import backend
from keras import ops


def masked_softmax(logits, mask, axis):
    """Softmax of `logits` along `axis` over entries where `mask` (same shape) is True.

    Masked entries get exactly 0, and a slice with no allowed entry is all 0 (not NaN).
    """
    weights = masked_exp(logits - masked_max(logits, mask, axis=axis), mask)
    return safe_divide(weights, ops.sum(weights, axis=axis, keepdims=True))


def masked_max(x, mask, axis):
    """Max of `x` over allowed entries along `axis` (kept), 0 where nothing is
    allowed; no gradient."""
    floor = float(np.finfo(np.float32).min)
    lowest = ops.cast(floor, x.dtype)
    # `initial`: an empty axis (length 0) gives `lowest` where torch and JAX would raise.
    maximum = ops.max(ops.where(mask, x, lowest), axis=axis, keepdims=True, initial=floor)
    # "Nothing allowed" is read off the result, not by reducing the mask (a
    # constant XLA would fold).
    return ops.stop_gradient(ops.where(maximum > lowest, maximum, ops.zeros_like(maximum)))


def masked_exp(x, mask):
    """exp(x) where allowed, exactly 0 elsewhere; the inner `where` keeps gradients finite."""
    return ops.where(mask, ops.exp(ops.where(mask, x, ops.zeros_like(x))), ops.zeros_like(x))


def safe_divide(numerator, denominator):
    """numerator / denominator, and 0 (with zero gradient) where the denominator is 0."""
    nonzero = denominator > 0
    safe = ops.where(nonzero, denominator, ops.ones_like(denominator))
    return ops.where(nonzero, numerator / safe, ops.zeros_like(numerator))


def safe_reciprocal(denominator):
    """1 / denominator, and 0 where the denominator counts as underflowed.

    A denominator of the efficient form can be tiny but nonzero (the limit described in
    `tensorized_attention`); below `tiny / eps` of the dtype (about 1e-31 = exp(-71) in float32) it
    counts as underflowed: output 0 and no gradient, as for an exact 0. Then 1 / D stays below ~1e31
    and its products with moderate gradients stay finite.
    """
    info = np.finfo(
        np.float64 if backend.standardize_dtype(denominator.dtype) == "float64" else np.float32
    )
    usable = denominator > ops.cast(info.tiny / info.eps, denominator.dtype)
    return ops.where(
        usable,
        1.0 / ops.where(usable, denominator, ops.ones_like(denominator)),
        ops.zeros_like(denominator),
    )
