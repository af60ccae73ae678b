"""The fused core (`keras_mtsa.ops.self_attention(implementation="fused")`): standard softmax
attention over the values [E_s * v, E_s], checked against the full core and the float64 explicit
oracle, on both backends."""

import keras
import numpy as np
import pytest
from keras import ops

from helpers import assert_close
from helpers import gradients
from helpers import loop_positional_mask
from helpers import numpy_tensorized_attention
from helpers import to_numpy
from keras_mtsa import MTSA
from keras_mtsa import ops as mtsa_ops

# Backend numerics: run again on JAX by `make test-jax` (`-m backends`).
pytestmark = pytest.mark.backends

BATCH, HEADS, LENGTH, HEAD_DIM = 3, 2, 7, 4
TOL = 1e-5
HEAD_MASKS = [
    ("forward", "backward"),
    ("backward", "forward"),
    ("none", "forward"),
    ("none", "none"),
]


def projections(seed, std):
    """query, key (token2token logits of about `std`), source2token logits of `std`, values."""
    rng = np.random.default_rng(seed)
    scale = np.sqrt(std) * HEAD_DIM**0.25
    query, key = (rng.normal(size=(BATCH, HEADS, LENGTH, HEAD_DIM)) * scale for _ in range(2))
    source2token = rng.normal(size=(BATCH, HEADS, LENGTH, HEAD_DIM)) * std
    value = rng.normal(size=(BATCH, HEADS, LENGTH, HEAD_DIM))
    return [x.astype("float32") for x in (query, key, source2token, value)]


def padding():
    mask = np.ones((BATCH, LENGTH), bool)
    mask[1, 4:] = False
    mask[2, 1:] = False  # one real token: a directional head sees nothing
    return mask


def core(
    implementation, head_masks, attend_to_self, padding_mask=None, attention_mask=None, **kwargs
):
    def run(query, key, source2token, value):
        return mtsa_ops.self_attention(
            query,
            key,
            source2token,
            value,
            head_masks=head_masks,
            attend_to_self=attend_to_self,
            padding_mask=padding_mask,
            attention_mask=attention_mask,
            implementation=implementation,
            **kwargs,
        )

    return run


def oracle(tensors, head_masks, attend_to_self, padding_mask, attention_mask=None):
    query, key, source2token, value = (np.asarray(x, np.float64) for x in tensors)
    token2token = np.einsum("bhqd,bhkd->bhqk", query, key) / np.sqrt(HEAD_DIM)
    allowed = loop_positional_mask(LENGTH, head_masks, attend_to_self)[None]
    allowed = allowed & padding_mask[:, None, None, :] & padding_mask[:, None, :, None]
    if attention_mask is not None:
        allowed = allowed & attention_mask
    return numpy_tensorized_attention(token2token, source2token, value, allowed)


@pytest.mark.parametrize("std", [0.1, 1.0, 10.0])
@pytest.mark.parametrize("attend_to_self", [False, True])
@pytest.mark.parametrize("head_masks", HEAD_MASKS, ids="-".join)
def test_fused_equals_the_full_core_and_the_oracle_for_every_mask_kind(
    head_masks, attend_to_self, std
):
    tensors = projections(1, std)
    mask = padding()
    fused = to_numpy(core("fused", head_masks, attend_to_self, mask)(*tensors))
    full = to_numpy(core("full", head_masks, attend_to_self, mask)(*tensors))
    assert_close(fused, full, TOL)
    assert_close(fused, oracle(tensors, head_masks, attend_to_self, mask), TOL)
    assert np.all(fused[~mask[:, None, :, None].repeat(HEADS, 1).repeat(HEAD_DIM, 3)] == 0)


@pytest.mark.parametrize("per_head", [False, True])
def test_fused_takes_a_callers_attention_mask(per_head):
    tensors = projections(2, 1.0)
    mask = padding()
    rng = np.random.default_rng(3)
    attention_mask = rng.random((BATCH, HEADS if per_head else 1, LENGTH, LENGTH)) < 0.6
    head_masks = ("forward", "backward")
    fused = to_numpy(core("fused", head_masks, False, mask, attention_mask)(*tensors))
    full = to_numpy(core("full", head_masks, False, mask, attention_mask)(*tensors))
    assert_close(fused, full, TOL)
    assert_close(fused, oracle(tensors, head_masks, False, mask, attention_mask), TOL)


@pytest.mark.parametrize("head_masks", [("forward", "backward"), ("none", "forward")], ids="-".join)
def test_fused_gradients_equal_the_full_cores(head_masks):
    tensors = projections(4, 1.0)
    mask = padding()
    weights = np.random.default_rng(5).normal(size=tensors[3].shape).astype("float32")

    def loss(function):
        return lambda *x: ops.sum(function(*x) * weights)

    fused = gradients(loss(core("fused", head_masks, False, mask)), *tensors)
    full = gradients(loss(core("full", head_masks, False, mask)), *tensors)
    for got, want in zip(fused, full):
        assert np.all(np.isfinite(got))
        assert_close(got, want, TOL, scale=max(1.0, np.abs(want).max()))


def test_fused_source2token_dropout_equals_the_full_cores():
    tensors = projections(6, 1.0)
    keep = ((np.random.default_rng(7).random(tensors[2].shape) < 0.7) / 0.7).astype("float32")
    head_masks = ("forward", "backward")
    fused = core("fused", head_masks, False, padding(), source2token_dropout=keep)(*tensors)
    full = core("full", head_masks, False, padding(), source2token_dropout=keep)(*tensors)
    assert_close(to_numpy(fused), to_numpy(full), TOL)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(token2token_activation="sigmoid"), "sigmoid token2token factor needs the logits"),
        (
            dict(token2token_dropout=np.ones((BATCH, HEADS, LENGTH, LENGTH), "float32")),
            "drops the token2token",
        ),
    ],
)
def test_fused_refuses_what_a_fused_kernel_cannot_compute(kwargs, message):
    with pytest.raises(ValueError, match=f"`implementation='fused'` cannot run here: .*{message}"):
        core("fused", ("forward", "backward"), False, **kwargs)(*projections(8, 1.0))


def test_auto_takes_the_full_core_where_no_fused_kernel_exists():
    # On CPUs keras.ops.dot_product_attention has no fused kernel: "auto" keeps the full core.
    expected = "fused" if mtsa_ops.core.fused_kernel_available() else "full"
    assert mtsa_ops.core.resolve_implementation("auto") == expected
    assert mtsa_ops.core.resolve_implementation("auto", token2token_activation="sigmoid") == "full"
    with pytest.raises(ValueError, match="`implementation` must be one of"):
        mtsa_ops.core.resolve_implementation("flash")


# The layer.


def layer_pair(**kwargs):
    full = MTSA(HEADS, HEAD_DIM, implementation="full", bias_initializer="random_normal", **kwargs)
    fused = MTSA.from_config({**full.get_config(), "implementation": "fused"})
    x = np.random.default_rng(9).normal(size=(BATCH, LENGTH, 6)).astype("float32")
    full.build(x.shape)
    fused.build(x.shape)
    fused.set_weights(full.get_weights())
    return full, fused, x


@pytest.mark.parametrize("jit_compile", [False, True])
def test_the_layer_with_the_fused_core_equals_the_full_core(jit_compile):
    full, fused, x = layer_pair(output_dim=5, jit_compile=jit_compile)
    mask = padding()
    assert_close(to_numpy(fused(x, mask=mask)), to_numpy(full(x, mask=mask)), TOL)
    assert fused.get_config()["implementation"] == "fused"
    assert MTSA.from_config(fused.get_config()).get_config() == fused.get_config()


def test_the_fused_layer_under_mixed_precision_stays_close_to_float32():
    full, _, x = layer_pair()
    keras.config.set_dtype_policy("mixed_bfloat16")  # (conftest restores float32 after the test)
    fused = MTSA.from_config(
        {**full.get_config(), "implementation": "fused", "dtype": "mixed_bfloat16"}
    )
    fused.build(x.shape)
    fused.set_weights(full.get_weights())
    output = np.asarray(to_numpy(fused(x, mask=padding())), np.float32)
    assert np.all(np.isfinite(output))
    assert_close(output, to_numpy(full(x, mask=padding())), 4e-2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(implementation="flash"), "`implementation` must be one of"),
        (
            dict(implementation="fused", token2token_activation="sigmoid"),
            "`implementation='fused'` cannot",
        ),
        (dict(implementation="fused", dropout=0.1), "`implementation='fused'` cannot"),
        (dict(implementation="fused", block_size=4), "`block_size` selects the blockwise form"),
    ],
)
def test_bad_implementation_arguments_raise_a_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MTSA(HEADS, HEAD_DIM, **kwargs)
