"""Spec tests of keras_mtsa.ops: the efficient tensorized attention against an independent float64
oracle, its gradients, numerics at the limits, the positional masks and the softmax helpers."""

import itertools

import keras
import numpy as np
import pytest
from keras import ops

from helpers import PRECISE_FLOAT
from helpers import assert_close
from helpers import gradients
from helpers import loop_positional_mask
from helpers import numpy_masked_softmax
from helpers import numpy_tensorized_attention
from helpers import to_numpy
from keras_mtsa import ops as mtsa_ops

# Backend numerics: run again on JAX by `make test-jax` (`-m backends`).
pytestmark = pytest.mark.backends

# Tolerances, relative to max(|expected|, value scale) (outputs are averages of the values).
# TensorFlow runs float64 end to end: the differences are float64 round-off (worst seen ~5e-16), far
# inside the requested 1e-5, and 1e-12 is asserted. JAX keeps x64 off, so its inputs are float32:
# the worst difference seen over these cases (logit spreads up to 30 included) is ~3e-7 for outputs
# and ~2e-7 for gradients, so 1e-6 (about 8 float32 ulps) is the tightest bound asserted there.
ORACLE_TOL = 1e-12 if PRECISE_FLOAT == "float64" else 1e-6
GRADIENT_TOL = ORACLE_TOL

# (token2token std, source2token std): both over {0.1, 1, 10}, and token2token alone up to 30.
LOGIT_SPREADS = [*itertools.product((0.1, 1.0, 10.0), repeat=2), (30.0, 0.1), (30.0, 1.0)]


# (batch, heads, length, head_dim) of the random cases: drawn from a small pool, so that
# backends that compile per shape (JAX, even eagerly) reuse their compilations; the pool covers
# singleton dims and odd sizes.
SHAPES = [(1, 1, 2, 1), (2, 3, 5, 2), (3, 2, 7, 4)]


def random_case(
    rng,
    kind,
    attend_to_self,
    t_std=1.0,
    s_std=1.0,
    dtype=PRECISE_FLOAT,
    random_mask=True,
    shape=None,
):
    """A random shape (unless given) and logits with the given head mask kind, random key padding
    and (optionally) a random boolean mask on top. Returns (t, s, v, mask) as numpy arrays."""
    batch, heads, length, head_dim = shape or SHAPES[rng.integers(len(SHAPES))]
    t = rng.normal(0.0, t_std, (batch, heads, length, length)).astype(dtype)
    s = rng.normal(0.0, s_std, (batch, heads, length, head_dim)).astype(dtype)
    v = rng.normal(0.0, 1.0, (batch, heads, length, head_dim)).astype(dtype)
    lengths = rng.integers(1, length + 1, size=batch)
    key_padding = np.arange(length)[None, :] < lengths[:, None]
    mask = (
        loop_positional_mask(length, [kind] * heads, attend_to_self)[None]
        & key_padding[:, None, None, :]
    )
    if random_mask:
        mask = mask & (rng.random(mask.shape) < 0.7)
    return t, s, v, mask


@pytest.mark.parametrize("attend_to_self", [False, True], ids=["no_diagonal", "diagonal"])
@pytest.mark.parametrize("kind", mtsa_ops.MASK_KINDS)
def test_tensorized_attention_equals_explicit_softmax_oracle_and_reference(kind, attend_to_self):
    rng = np.random.default_rng([mtsa_ops.MASK_KINDS.index(kind), attend_to_self])
    for (t_std, s_std), random_mask in itertools.product(LOGIT_SPREADS, (False, True)):
        t, s, v, mask = random_case(
            rng, kind, attend_to_self, t_std, s_std, random_mask=random_mask
        )
        expected = numpy_tensorized_attention(t, s, v, mask)
        context = f"t_std={t_std} s_std={s_std} random_mask={random_mask} shape={v.shape}"
        # Backend tensors, as a model passes them (numpy arrays would hide dtype handling).
        t, s, v = (ops.convert_to_tensor(a) for a in (t, s, v))
        output = mtsa_ops.tensorized_attention(t, s, v, mask)
        assert keras.backend.standardize_dtype(output.dtype) == PRECISE_FLOAT
        np.testing.assert_allclose(
            to_numpy(output),
            expected,
            rtol=ORACLE_TOL,
            atol=ORACLE_TOL * np.abs(v).max(),
            err_msg=context,
        )
        reference = mtsa_ops.reference_tensorized_attention(t, s, v, mask)
        np.testing.assert_allclose(
            to_numpy(reference),
            expected,
            rtol=ORACLE_TOL,
            atol=ORACLE_TOL * np.abs(v).max(),
            err_msg=context,
        )


def test_no_mask_means_every_key_is_allowed():
    rng = np.random.default_rng(1)
    t, s, v, _ = random_case(rng, "none", True)
    assert_close(
        mtsa_ops.tensorized_attention(t, s, v), numpy_tensorized_attention(t, s, v), ORACLE_TOL
    )
    assert_close(
        mtsa_ops.reference_tensorized_attention(t, s, v),
        numpy_tensorized_attention(t, s, v),
        ORACLE_TOL,
    )


def test_masked_entries_have_no_influence_whatever_their_values():
    # Disallowed token2token logits and everything about keys that no query may use
    # (padding) are ignored, even when huge: they must not take part in the maxima subtracted
    # for stability either.
    rng = np.random.default_rng(11)
    t, s, v, mask = random_case(rng, "backward", True, dtype="float32", shape=SHAPES[-1])
    mask[:, :, :, -2:] = False  # the last two keys are padding
    assert mask.any(-1).sum() > mask.shape[0] * mask.shape[1]  # plenty of queries still see keys
    expected = to_numpy(mtsa_ops.tensorized_attention(t, s, v, mask))
    t_garbage = np.where(mask, t, rng.choice([-1e4, 1e4], t.shape)).astype("float32")
    s_garbage, v_garbage = s.copy(), v.copy()
    s_garbage[..., -2:, :] = 1e4
    v_garbage[..., -2:, :] = 1e6
    output = to_numpy(mtsa_ops.tensorized_attention(t_garbage, s_garbage, v_garbage, mask))
    assert_close(output, expected, 1e-6)


@pytest.mark.parametrize("t_std, s_std", [(1.0, 1.0), (10.0, 10.0)])
def test_gradients_match_the_explicit_reference(t_std, s_std):
    rng = np.random.default_rng(2)
    for kind in mtsa_ops.MASK_KINDS:
        t, s, v, mask = random_case(rng, kind, False, t_std, s_std)
        cotangent = rng.normal(size=v.shape).astype(PRECISE_FLOAT)

        def loss(attention):
            return lambda t, s, v: ops.sum(attention(t, s, v, mask) * cotangent)

        fast = gradients(loss(mtsa_ops.tensorized_attention), t, s, v)
        slow = gradients(loss(mtsa_ops.reference_tensorized_attention), t, s, v)
        # Every gradient is a sum of p * cotangent * (v or v - output) terms with 0 <= p <= 1:
        # that sets the absolute scale (a tensor whose entries all cancel to ~1e-9 carries no
        # relative precision).
        scale = np.abs(cotangent).max() * max(1.0, np.abs(v).max())
        for name, got, want in zip(("token2token", "source2token", "value"), fast, slow):
            np.testing.assert_allclose(
                got, want, rtol=GRADIENT_TOL, atol=GRADIENT_TOL * scale, err_msg=f"{kind} d/d{name}"
            )


def test_gradients_match_central_finite_differences_in_float64(tensorflow_only):
    rng = np.random.default_rng(3)
    length, head_dim = 3, 2
    t = rng.normal(size=(1, 2, length, length))
    s = rng.normal(size=(1, 2, length, head_dim))
    v = rng.normal(size=(1, 2, length, head_dim))
    mask = loop_positional_mask(length, ["forward", "none"], True)[None]
    mask[..., -1] = False  # the last key is padding
    cotangent = rng.normal(size=v.shape)

    def loss(t, s, v):
        return ops.sum(mtsa_ops.tensorized_attention(t, s, v, mask) * cotangent)

    analytic = gradients(loss, t, s, v)
    step = 1e-6
    args = [t, s, v]
    for index, grad in enumerate(analytic):
        numeric = np.zeros_like(grad)
        for position in np.ndindex(grad.shape):
            plus = [a.copy() for a in args]
            minus = [a.copy() for a in args]
            plus[index][position] += step
            minus[index][position] -= step
            numeric[position] = (float(loss(*plus)) - float(loss(*minus))) / (2 * step)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
    # Masked token2token entries and the padded key's source2token logits have no influence.
    assert np.all(analytic[0][~np.broadcast_to(mask, t.shape)] == 0)
    assert np.all(analytic[1][..., -1, :] == 0)


def test_rows_without_an_allowed_key_are_exactly_zero():
    rng = np.random.default_rng(4)
    length = 5
    for scale in (1.0, 1e3):
        t = rng.normal(0, scale, (2, 2, length, length)).astype("float32")
        s = rng.normal(0, scale, (2, 2, length, 3)).astype("float32")
        v = rng.normal(0, scale, (2, 2, length, 3)).astype("float32")
        # Head 0 forward (its first query sees nothing), head 1 backward (its last query sees
        # nothing), plus one query row masked out entirely by hand.
        mask = np.broadcast_to(
            loop_positional_mask(length, ["forward", "backward"], False), t.shape
        ).copy()
        mask[1, :, 2, :] = False
        empty = ~mask.any(-1)
        assert (
            empty.sum() == 2 * 2 + 2
        )  # first/last row of each head and example, plus the hand-masked ones
        output = to_numpy(mtsa_ops.tensorized_attention(t, s, v, mask))
        assert np.all(output[empty] == 0.0)
        if scale == 1.0:  # (at 1e3 some rows underflow to 0 as well: the documented limit)
            assert np.all(output[~empty] != 0.0)


@pytest.mark.parametrize("scale", [30.0, 1e3])
def test_large_inputs_give_finite_outputs_and_gradients(scale):
    # float32: the dtype where the exponent range runs out. Scaled-up logits make some
    # denominators of the efficient form tiny, which used to give inf/NaN gradients (1/D^2 in the
    # division's gradient).
    rng = np.random.default_rng(5)
    for _ in range(10):
        t, s, v, mask = random_case(rng, "forward", False, scale, scale, dtype="float32")
        v = v * np.float32(scale)
        mask[:, :, -1, :] = False  # a fully masked query row besides the forward head's first
        cotangent = rng.normal(size=v.shape).astype("float32")

        def loss(t, s, v):
            return ops.sum(mtsa_ops.tensorized_attention(t, s, v, mask) * cotangent)

        output = to_numpy(mtsa_ops.tensorized_attention(t, s, v, mask))
        assert np.all(np.isfinite(output))
        assert np.all(output[~mask.any(-1)] == 0.0)
        for grad in gradients(loss, t, s, v):
            assert np.all(np.isfinite(grad))


def test_denominator_underflow_gives_zero_not_nan():
    # A documented limit of the efficient form: the maxima subtracted before exp are taken
    # separately (token2token per query row, source2token per feature over all usable keys), so when
    # every allowed key of a (query, feature) lies far below both maxima combined, the float32
    # denominator underflows and the output there is 0 although the true attention output is not.
    # The blockwise mode (`keras_mtsa.ops.blockwise`, `MTSA(block_size=...)`: maxima per tile with
    # online rescaling, docs/mtsa.md section 3) is the remedy; here we pin the full form's
    # behaviour: 0, finite, with finite (zero) gradients, never NaN.
    def case(spread):
        # Query 0 may see keys 0 and 1; key 2 is only visible to query 2 but still sets the
        # source2token maximum. For query 0, key 0 is `spread` below in source2token and key 1 is
        # `spread / 2` below in each of token2token and source2token.
        t = np.zeros((1, 1, 3, 3), "float32")
        t[0, 0, 0, 1] = -spread / 2
        s = np.zeros((1, 1, 3, 2), "float32")
        s[0, 0, 0, :] = -spread
        s[0, 0, 1, :] = -spread / 2
        v = np.arange(6, dtype="float32").reshape(1, 1, 3, 2) + 1.0
        mask = np.zeros((1, 1, 3, 3), bool)
        mask[0, 0, 0, :2] = True
        mask[0, 0, 2, 2] = True
        return t, s, v, mask

    # Within the range the efficient form is exact: query 0 averages keys 0 and
    # 1 with equal weights.
    t, s, v, mask = case(60.0)
    expected = numpy_tensorized_attention(t, s, v, mask)
    assert_close(expected[0, 0, 0], (v[0, 0, 0] + v[0, 0, 1]) / 2, 1e-12)
    assert_close(mtsa_ops.tensorized_attention(t, s, v, mask), expected, 1e-5)

    # Beyond it (every allowed key 120 below the combined maxima) query 0 underflows to exactly 0.
    t, s, v, mask = case(120.0)
    assert_close(
        mtsa_ops.reference_tensorized_attention(t, s, v, mask)[0, 0, 0],
        (v[0, 0, 0] + v[0, 0, 1]) / 2,
        1e-6,
    )
    output = to_numpy(mtsa_ops.tensorized_attention(t, s, v, mask))
    assert np.all(np.isfinite(output))
    assert np.all(output[0, 0, 0] == 0.0)
    assert_close(output[0, 0, 2], v[0, 0, 2], 1e-6)  # the other query is unaffected
    grads = gradients(
        lambda t, s, v: ops.sum(mtsa_ops.tensorized_attention(t, s, v, mask)), t, s, v
    )
    for grad in grads:
        assert np.all(np.isfinite(grad))
    assert np.all(grads[2][0, 0, :2] == 0.0)


@pytest.mark.parametrize("attend_to_self", [False, True], ids=["no_diagonal", "diagonal"])
def test_positional_mask_equals_loop_built_mask(attend_to_self):
    kinds = ["forward", "backward", "none", "backward", "forward"]
    for length in (1, 2, 6):
        mask = to_numpy(mtsa_ops.positional_mask(length, kinds, attend_to_self))
        assert mask.dtype == bool
        np.testing.assert_array_equal(mask, loop_positional_mask(length, kinds, attend_to_self))


@pytest.mark.parametrize(
    "head_masks",
    [["forward", "sideways"], ["Forward"], "forward", [None], 3],
    ids=["unknown_kind", "wrong_case", "bare_string", "none_entry", "not_a_list"],
)
def test_positional_mask_rejects_bad_kinds_naming_head_masks(head_masks):
    with pytest.raises(ValueError, match="head_masks"):
        mtsa_ops.positional_mask(4, head_masks)


def test_head_mask_validation_checks_count_and_default_layout_needs_even_heads():
    with pytest.raises(ValueError, match="head_masks"):
        mtsa_ops.validate_head_masks(["forward"], num_heads=2)
    with pytest.raises(ValueError, match="num_heads"):
        mtsa_ops.default_head_masks(3)
    assert mtsa_ops.default_head_masks(4) == ("forward", "forward", "backward", "backward")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_inputs_keep_their_dtype_and_match_float32(dtype):
    rng = np.random.default_rng(6)
    t, s, v, mask = random_case(rng, "forward", True, 3.0, 3.0, dtype="float32")
    low = [ops.cast(a, dtype) for a in (t, s, v)]
    # The float32 answer on the same (rounded) inputs: only the final rounding to `dtype` differs.
    rounded = [ops.cast(a, "float32") for a in low]
    expected = to_numpy(mtsa_ops.tensorized_attention(*rounded, mask))
    output = mtsa_ops.tensorized_attention(*low, mask)
    assert keras.backend.standardize_dtype(output.dtype) == dtype
    eps = {"float16": 2.0**-10, "bfloat16": 2.0**-7}[dtype]
    assert_close(np.asarray(to_numpy(output), np.float32), expected, eps)
    reference = mtsa_ops.reference_tensorized_attention(*low, mask)
    assert keras.backend.standardize_dtype(reference.dtype) == dtype
    assert_close(np.asarray(to_numpy(reference), np.float32), expected, eps)


def test_dropout_masks_of_ones_give_the_no_dropout_result():
    rng = np.random.default_rng(7)
    t, s, v, mask = random_case(rng, "backward", False)
    plain = mtsa_ops.tensorized_attention(t, s, v, mask)
    ones_t = np.ones(t.shape, PRECISE_FLOAT)
    ones_s = np.ones(s.shape, PRECISE_FLOAT)
    for t_dropout, s_dropout in ((ones_t, None), (None, ones_s), (ones_t, ones_s)):
        dropped = mtsa_ops.tensorized_attention(t, s, v, mask, t_dropout, s_dropout)
        assert_close(dropped, to_numpy(plain), ORACLE_TOL)


def test_dropout_masks_scale_the_normalized_weights_without_renormalizing():
    # The authors' attention dropout: the token2token and source2token factors of the numerator are
    # dropped after the denominator is computed.
    rng = np.random.default_rng(8)
    t, s, v, mask = random_case(rng, "none", False)
    t_dropout = (rng.random(t.shape) < 0.7) / 0.7
    s_dropout = (rng.random(s.shape) < 0.7) / 0.7
    expected = numpy_tensorized_attention(t, s, v, mask, t_dropout, s_dropout)
    t_dropout, s_dropout = t_dropout.astype(PRECISE_FLOAT), s_dropout.astype(PRECISE_FLOAT)
    output = mtsa_ops.tensorized_attention(t, s, v, mask, t_dropout, s_dropout)
    assert_close(output, expected, ORACLE_TOL, scale=np.abs(expected).max())


def dropout_reference(t, s, v, mask, t_dropout, s_dropout):
    """The dropout formula written out with plain ops, for autodiff: moderate logits
    need no max shift."""
    t_factor = ops.where(mask, ops.exp(t), ops.zeros_like(t))
    usable = ops.expand_dims(ops.any(ops.broadcast_to(mask, t.shape), axis=-2), -1)
    s_factor = ops.where(usable, ops.exp(s), ops.zeros_like(s))
    numerator = ops.einsum("bhqk,bhkd->bhqd", t_factor * t_dropout, s_factor * s_dropout * v)
    denominator = ops.einsum("bhqk,bhkd->bhqd", t_factor, s_factor)
    return numerator / denominator


@pytest.mark.parametrize("dropped", ["token2token", "source2token", "both"])
def test_gradients_with_dropout_masks_match_autodiff_of_the_formula(dropped):
    rng = np.random.default_rng(12)
    # Forward masks with the diagonal: every query has an allowed key, so the
    # plain formula is defined.
    t, s, v, mask = random_case(rng, "forward", True, random_mask=False, shape=(2, 3, 6, 4))
    mask[:] = loop_positional_mask(6, ["forward"] * 3, True)[None]
    t_dropout = ((rng.random(t.shape) < 0.7) / 0.7).astype(PRECISE_FLOAT)
    s_dropout = ((rng.random(s.shape) < 0.7) / 0.7).astype(PRECISE_FLOAT)
    if dropped == "token2token":
        s_dropout = None
    if dropped == "source2token":
        t_dropout = None
    cotangent = rng.normal(size=v.shape).astype(PRECISE_FLOAT)

    def fast(t, s, v):
        return ops.sum(
            mtsa_ops.tensorized_attention(t, s, v, mask, t_dropout, s_dropout) * cotangent
        )

    def slow(t, s, v):
        ones_t, ones_s = np.ones(t.shape, PRECISE_FLOAT), np.ones(s.shape, PRECISE_FLOAT)
        t_keep = ones_t if t_dropout is None else t_dropout
        s_keep = ones_s if s_dropout is None else s_dropout
        return ops.sum(dropout_reference(t, s, v, mask, t_keep, s_keep) * cotangent)

    scale = np.abs(cotangent).max() * max(1.0, np.abs(v).max()) / 0.7
    for name, got, want in zip(
        ("token2token", "source2token", "value"), gradients(fast, t, s, v), gradients(slow, t, s, v)
    ):
        np.testing.assert_allclose(
            got, want, rtol=GRADIENT_TOL, atol=GRADIENT_TOL * scale, err_msg=f"d/d{name}"
        )


def test_masked_softmax_sums_to_one_over_allowed_entries_and_empty_slices_are_zero():
    rng = np.random.default_rng(9)
    logits = rng.normal(0, 30, (3, 4, 5)).astype("float32")
    mask = rng.random(logits.shape) < 0.5
    mask[0, 1, :] = False
    mask[1, :, 2] = False
    for axis in (-1, 1):
        weights = to_numpy(mtsa_ops.masked_softmax(logits, mask, axis=axis))
        assert np.all(np.isfinite(weights))
        assert np.all(weights[~mask] == 0.0)
        allowed_any = mask.any(axis=axis)
        sums = weights.sum(axis=axis)
        np.testing.assert_allclose(sums[allowed_any], 1.0, rtol=1e-6)
        assert np.all(sums[~allowed_any] == 0.0)
        assert_close(weights, numpy_masked_softmax(logits, mask, axis), 1e-6)


def test_attention_weights_are_normalized_and_reproduce_the_attention_output():
    rng = np.random.default_rng(10)
    t, s, v, mask = random_case(rng, "forward", False)
    t_weights, s_weights = (
        to_numpy(w).astype(np.float64) for w in mtsa_ops.attention_weights(t, s, mask)
    )
    assert t_weights.shape == t.shape and s_weights.shape == s.shape
    # token2token: softmax over the allowed keys of each query; empty rows 0.
    assert np.all(t_weights[~mask] == 0.0)
    row_has_key = mask.any(-1)
    np.testing.assert_allclose(t_weights.sum(-1)[row_has_key], 1.0, rtol=1e-6)
    assert np.all(t_weights.sum(-1)[~row_has_key] == 0.0)
    # source2token: softmax over the keys any query may use, per feature; unusable keys 0.
    usable = np.broadcast_to(mask.any(-2)[..., None], s.shape)
    assert np.all(s_weights[~usable] == 0.0)
    any_usable = usable.any(-2)
    np.testing.assert_allclose(s_weights.sum(-2)[any_usable], 1.0, rtol=1e-6)
    assert np.all(s_weights.sum(-2)[~any_usable] == 0.0)
    # The tensor attention is their renormalized product: p_ijk proportional to a_ij * b_jk.
    product = t_weights[..., None] * s_weights[..., None, :, :]
    total = product.sum(-2, keepdims=True)
    p = np.divide(product, total, out=np.zeros_like(product), where=total > 0)
    assert_close(
        (p * v[..., None, :, :].astype(np.float64)).sum(-2),
        numpy_tensorized_attention(t, s, v, mask),
        1e-5,
    )
