"""Spec of the blockwise mode: the full form's results in tiles, with memory linear in length."""

import keras
import numpy as np
import pytest

from keras_mtsa import MTSA
from keras_mtsa.ops import self_attention
from keras_mtsa.ops.blockwise import _Tiles
from keras_mtsa.ops.blockwise import blockwise_self_attention

# Backend numerics: run again on JAX by `make test-jax` (`-m backends`).
pytestmark = pytest.mark.backends

KINDS = ("forward", "backward", "none", "forward")


def _inputs(seed, batch=2, heads=4, length=13, head_dim=5, scale=1.0):
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(size=(batch, heads, length, head_dim)) * scale).astype("float32")
        for _ in range(4)
    ]


def _full(q, k, s, v, padding=None, attention_mask=None, **options):
    return self_attention(
        q,
        k,
        s,
        v,
        padding_mask=padding,
        attention_mask=attention_mask,
        implementation="full",
        **options,
    )


def _gradients(function, tensors, weights):
    """Gradients of sum(function(*tensors) * weights) w.r.t. every tensor, on the active backend."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tensors = [tf.constant(t) for t in tensors]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            loss = tf.reduce_sum(function(*tensors) * weights)
        return [np.asarray(g) for g in tape.gradient(loss, tensors)]
    import jax
    import jax.numpy as jnp

    loss = lambda *args: jnp.sum(function(*args) * weights)  # noqa: E731
    return [
        np.asarray(g) for g in jax.jit(jax.grad(loss, argnums=tuple(range(len(tensors)))))(*tensors)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["exp", "sigmoid"])
@pytest.mark.parametrize("attend_to_self", [False, True])
@pytest.mark.parametrize("block_size", [1, 4, 16])
def test_equals_full_form_for_every_mask_kind_with_padding(activation, attend_to_self, block_size):
    q, k, s, v = _inputs(0, scale=2.0)
    padding = np.ones((2, 13), bool)
    padding[1, 9:] = False
    options = dict(
        head_masks=KINDS, attend_to_self=attend_to_self, token2token_activation=activation
    )
    full = _full(q, k, s, v, padding, **options)
    blockwise = blockwise_self_attention(
        q, k, s, v, block_size=block_size, padding_mask=padding, **options
    )
    np.testing.assert_allclose(np.asarray(blockwise), np.asarray(full), rtol=1e-5, atol=1e-5)


def test_equals_full_form_with_a_per_head_attention_mask():
    q, k, s, v = _inputs(1)
    attention_mask = np.random.default_rng(1).random((2, 4, 13, 13)) > 0.3
    options = dict(head_masks=KINDS, attend_to_self=False, token2token_activation="exp")
    full = _full(q, k, s, v, None, attention_mask, **options)
    blockwise = blockwise_self_attention(
        q, k, s, v, block_size=5, attention_mask=attention_mask, **options
    )
    np.testing.assert_allclose(np.asarray(blockwise), np.asarray(full), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", ["exp", "sigmoid"])
def test_gradients_equal_the_full_forms(activation):
    tensors = _inputs(2)
    padding = np.ones((2, 13), bool)
    padding[0, 10:] = False
    weights = np.random.default_rng(3).normal(size=tensors[0].shape).astype("float32")
    options = dict(head_masks=KINDS, attend_to_self=False, token2token_activation=activation)
    full = _gradients(lambda *t: _full(*t, padding, **options), tensors, weights)
    blockwise = _gradients(
        lambda *t: blockwise_self_attention(*t, block_size=4, padding_mask=padding, **options),
        tensors,
        weights,
    )
    for name, got, want in zip("qksv", blockwise, full):
        np.testing.assert_allclose(
            got, want, rtol=1e-4, atol=1e-5, err_msg=f"gradient w.r.t. {name}"
        )


def test_computes_what_underflows_in_the_full_form():
    # Forward head, query 1 sees only key 0. Key 6's source2token score of 200 (key 6 is seen by
    # query 7) sets the full form's column maximum, so exp(0 - 200) underflows query 1's denominator
    # and the full form returns 0 there. Query 1's tiles (size 2) never include key 6 and keep
    # the right answer: v[0].
    q, k, s, v = _inputs(4, batch=1, heads=1, length=8, head_dim=3)
    s[0, 0, :, :] = 0.0
    s[0, 0, 6, :] = 200.0
    options = dict(head_masks=("forward",), attend_to_self=False, token2token_activation="exp")
    full = np.asarray(_full(q, k, s, v, **options))
    blockwise = np.asarray(blockwise_self_attention(q, k, s, v, block_size=2, **options))
    np.testing.assert_array_equal(full[0, 0, 1], 0.0)  # the full form's documented limit
    np.testing.assert_allclose(blockwise[0, 0, 1], v[0, 0, 0], rtol=1e-6)
    assert np.all(np.isfinite(blockwise))


def test_directional_heads_visit_about_half_of_the_tiles():
    def visited(kind, blocks=8):
        tiles = _Tiles(kind, False, "exp", 1.0, 4, blocks, None, None, None)
        return sum(high - low for low, high in (tiles.key_range(i) for i in range(blocks)))

    assert visited("none") == 64
    assert visited("forward") == visited("backward") == 36  # 8 * 9 / 2
    # The backward pass walks the same tiles by key block.
    tiles = _Tiles("forward", False, "exp", 1.0, 4, 8, None, None, None)
    assert sum(high - low for low, high in (tiles.query_range(j) for j in range(8))) == 36


def test_dropout_mask_of_ones_changes_nothing_and_a_random_one_stays_finite():
    q, k, s, v = _inputs(5)
    options = dict(head_masks=KINDS, block_size=4)
    plain = np.asarray(blockwise_self_attention(q, k, s, v, **options))
    ones = np.asarray(
        blockwise_self_attention(q, k, s, v, source2token_dropout=np.ones_like(s), **options)
    )
    np.testing.assert_allclose(ones, plain, rtol=1e-6, atol=1e-6)
    keep = (np.random.default_rng(5).random(s.shape) < 0.8).astype("float32") / 0.8
    dropped = np.asarray(blockwise_self_attention(q, k, s, v, source2token_dropout=keep, **options))
    assert np.all(np.isfinite(dropped)) and not np.allclose(dropped, plain)


@pytest.mark.parametrize("activation", ["exp", "sigmoid"])
def test_dropout_forward_and_gradients_equal_the_full_forms_with_the_same_mask(activation):
    # The full form's dropout is checked against autodiff of the written-out formula (test_ops): the
    # source2token factor of the numerator only, kept entries scaled, the denominator untouched.
    tensors = _inputs(8)
    padding = np.ones((2, 13), bool)
    padding[1, 8:] = False
    keep = ((np.random.default_rng(8).random(tensors[2].shape) < 0.6) / 0.6).astype("float32")
    weights = np.random.default_rng(9).normal(size=tensors[0].shape).astype("float32")
    options = dict(head_masks=KINDS, attend_to_self=False, token2token_activation=activation)

    def full(q, k, s, v):
        return self_attention(
            q,
            k,
            s,
            v,
            padding_mask=padding,
            source2token_dropout=keep,
            implementation="full",
            **options,
        )

    def blockwise(q, k, s, v):
        return blockwise_self_attention(
            q, k, s, v, block_size=4, padding_mask=padding, source2token_dropout=keep, **options
        )

    np.testing.assert_allclose(
        np.asarray(blockwise(*tensors)), np.asarray(full(*tensors)), rtol=1e-5, atol=1e-5
    )
    for name, got, want in zip(
        "qksv", _gradients(blockwise, tensors, weights), _gradients(full, tensors, weights)
    ):
        np.testing.assert_allclose(
            got, want, rtol=1e-4, atol=1e-5, err_msg=f"gradient w.r.t. {name}"
        )


def test_large_inputs_give_finite_outputs_and_gradients():
    tensors = _inputs(6, scale=30.0)
    weights = np.ones_like(tensors[0])
    out = blockwise_self_attention(*tensors, block_size=4, head_masks=KINDS)
    grads = _gradients(
        lambda *t: blockwise_self_attention(*t, block_size=4, head_masks=KINDS), tensors, weights
    )
    assert np.all(np.isfinite(np.asarray(out)))
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_bad_block_size_names_the_argument():
    q, k, s, v = _inputs(7)
    with pytest.raises(ValueError, match="block_size"):
        blockwise_self_attention(q, k, s, v, block_size=0, head_masks=KINDS)


@pytest.mark.slow
@pytest.mark.usefixtures("tensorflow_only")
def test_compiles_with_xla_on_tensorflow():
    import tensorflow as tf

    q, k, s, v = _inputs(8)
    options = dict(head_masks=KINDS, attend_to_self=False, token2token_activation="exp")
    compiled = tf.function(
        lambda *t: blockwise_self_attention(*t, block_size=4, **options), jit_compile=True
    )
    np.testing.assert_allclose(
        np.asarray(compiled(q, k, s, v)),
        np.asarray(_full(q, k, s, v, **options)),
        rtol=1e-5,
        atol=1e-5,
    )


def test_layer_with_block_size_equals_the_full_layer_and_serializes():
    x = np.random.default_rng(9).normal(size=(2, 11, 16)).astype("float32")
    mask = np.ones((2, 11), bool)
    mask[0, 7:] = False
    full = MTSA(num_heads=2, head_dim=8, seed=1)
    blockwise = MTSA(num_heads=2, head_dim=8, block_size=4, seed=1)
    full.build(x.shape)
    blockwise.build(x.shape)
    blockwise.set_weights(full.get_weights())
    np.testing.assert_allclose(
        np.asarray(blockwise(x, mask=mask)), np.asarray(full(x, mask=mask)), rtol=1e-5, atol=1e-5
    )
    config = blockwise.get_config()
    assert config["block_size"] == 4
    assert MTSA.from_config(config).block_size == 4
    with pytest.raises(ValueError, match="block_size"):
        MTSA(num_heads=2, head_dim=8, block_size=-1)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_layer_with_block_size_under_mixed_precision_is_close_to_float32(policy):
    x = np.random.default_rng(10).normal(size=(2, 9, 16)).astype("float32")
    reference = MTSA(num_heads=2, head_dim=8, block_size=4)
    reference.build(x.shape)
    keras.config.set_dtype_policy(policy)
    mixed = MTSA(num_heads=2, head_dim=8, block_size=4)
    mixed.build(x.shape)
    mixed.set_weights(reference.get_weights())
    output = mixed(x)
    assert keras.backend.standardize_dtype(output.dtype) == policy.split("_")[1]
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in mixed.weights)
    output = np.asarray(keras.ops.cast(output, "float32"))
    assert np.all(np.isfinite(output))
    # Measured largest errors (TensorFlow, JAX): float16 0.0020, 0.0009; bfloat16
    # 0.013, 0.008; about 4x.
    atol = {"mixed_float16": 8e-3, "mixed_bfloat16": 5e-2}[policy]
    np.testing.assert_allclose(output, np.asarray(reference(x)), atol=atol)
