"""Spec tests of MTSAEncoderBlock: the residual/layer-norm composition around MTSA and a
feed-forward layer, stacking with masks, serialization, training and argument checks."""

import keras
import numpy as np
import pytest

from helpers import assert_close
from helpers import numpy_activation
from helpers import numpy_layer_norm
from helpers import numpy_mtsa_from
from helpers import to_numpy
from helpers import weights_by_path
from keras_mtsa import MTSAEncoderBlock
from keras_mtsa import Source2TokenPooling
from keras_mtsa import ops as mtsa_ops

# Backend numerics: run again on JAX by `make test-jax` (`-m backends`).
pytestmark = pytest.mark.backends

BATCH, LENGTH, WIDTH, HEADS = 2, 5, 6, 2
IDS = np.array([[3, 1, 4, 1, 5], [2, 7, 1, 0, 0]], "int32")


def make_block(**kwargs):
    defaults = dict(
        num_heads=HEADS, intermediate_dim=8, bias_initializer="random_normal", jit_compile=False
    )
    return MTSAEncoderBlock(**{**defaults, **kwargs})


def random_inputs(seed=0, shape=(BATCH, LENGTH, WIDTH)):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def padding_mask(lengths, length=LENGTH):
    return np.arange(length)[None, :] < np.asarray(lengths)[:, None]


def numpy_block(block, x, mask=None):
    """The block in float64 numpy from its weights: MTSA (projected back to the width) and a
    two-layer feed-forward sublayer, each with a residual connection and a layer norm, after
    (post-norm) or before (pre-norm) the sublayer."""
    config = block.get_config()
    weights = weights_by_path(block)
    width = x.shape[-1]
    head_dim = config["head_dim"] or width // config["num_heads"]
    attention_config = dict(
        num_heads=config["num_heads"],
        head_dim=head_dim,
        head_masks=config["head_masks"] or mtsa_ops.default_head_masks(config["num_heads"]),
        attend_to_self=config["attend_to_self"],
        token2token_activation=config["token2token_activation"],
        activation=config["activation"],
        source2token_activation=config["activation"],
        use_fusion_gate=config["use_fusion_gate"],
        output_dim=width,
    )
    attention_weights = {
        k[len("attention/") :]: v for k, v in weights.items() if k.startswith("attention/")
    }
    activation = numpy_activation(config["activation"])
    epsilon = config["layer_norm_epsilon"]

    def norm(name, h):
        return numpy_layer_norm(h, weights[f"{name}/gamma"], weights[f"{name}/beta"], epsilon)

    def attention(h):
        return numpy_mtsa_from(attention_config, attention_weights, h, mask)

    def feedforward(h):
        hidden = activation(h @ weights["intermediate/kernel"] + weights["intermediate/bias"])
        return hidden @ weights["feedforward_output/kernel"] + weights["feedforward_output/bias"]

    x = np.asarray(x, np.float64)
    if config["normalize_first"]:
        h = x + attention(norm("attention_norm", x))
        return h + feedforward(norm("feedforward_norm", h))
    h = norm("attention_norm", x + attention(x))
    return norm("feedforward_norm", h + feedforward(h))


@pytest.mark.parametrize("normalize_first", [False, True], ids=["post_norm", "pre_norm"])
def test_block_equals_numpy_composition(normalize_first):
    block = make_block(normalize_first=normalize_first)
    x = random_inputs()
    mask = padding_mask([LENGTH, 3])
    block.build(x.shape)
    # Non-trivial layer-norm parameters, so that their use is checked too.
    rng = np.random.default_rng(1)
    block.set_weights(
        [
            w.numpy() + (rng.normal(0, 0.3, w.shape).astype("float32") if "norm" in w.path else 0)
            for w in block.weights
        ]
    )
    assert_close(block(x, mask=mask), numpy_block(block, x, mask), 1e-5)


def test_two_blocks_stack_in_functional_model_with_mask():
    tokens = keras.Input((None,), dtype="int32")
    embedding = keras.layers.Embedding(10, WIDTH, mask_zero=True)
    first, second = make_block(), make_block(normalize_first=True)
    h = second(first(embedding(tokens)))
    assert tuple(h.shape) == (None, None, WIDTH)
    assert h._keras_mask is not None
    model = keras.Model(tokens, [h, h._keras_mask])
    output, mask = (to_numpy(a) for a in model(IDS))
    assert output.shape == (BATCH, LENGTH, WIDTH)
    np.testing.assert_array_equal(mask, IDS != 0)
    # The implicit mask reaches both blocks: same as passing it explicitly.
    vectors = to_numpy(embedding(IDS))
    explicit = second(first(vectors, mask=IDS != 0), mask=IDS != 0)
    assert_close(output, to_numpy(explicit), 1e-6)
    assert first.compute_output_shape((None, None, WIDTH)) == (None, None, WIDTH)


def test_padded_positions_do_not_change_real_positions():
    block = make_block()
    x = random_inputs(2)
    mask = padding_mask([LENGTH, 3])
    garbage = x.copy()
    garbage[1, 3:] = 1e2 * random_inputs(3)[1, 3:]
    output = to_numpy(block(garbage, mask=mask))
    assert_close(output[mask], to_numpy(block(x, mask=mask))[mask], 1e-6)
    assert_close(output[1, :3], to_numpy(block(x[1:, :3]))[0], 1e-5)


def test_serialization_round_trip(tmp_path):
    block = MTSAEncoderBlock(
        num_heads=4,
        head_dim=3,
        intermediate_dim=16,
        head_masks=["forward", "none", "backward", "none"],
        attend_to_self=True,
        token2token_activation="sigmoid",
        use_fusion_gate=True,
        activation="relu",
        dropout=0.2,
        attention_dropout=0.1,
        layer_norm_epsilon=1e-5,
        normalize_first=True,
        kernel_initializer="he_normal",
        seed=5,
        jit_compile=False,
        name="custom_block",
    )
    config = block.get_config()
    assert MTSAEncoderBlock.from_config(config).get_config() == config

    tokens = keras.Input((None,), dtype="int32")
    h = make_block(dropout=0.1, seed=1)(keras.layers.Embedding(10, WIDTH, mask_zero=True)(tokens))
    model = keras.Model(tokens, h)
    expected = to_numpy(model(IDS))
    path = tmp_path / "block.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(to_numpy(loaded(IDS)), expected)


@pytest.mark.slow
def test_training_step_is_finite_and_updates_weights_and_dropout_is_training_only():
    tokens = keras.Input((None,), dtype="int32")
    block = make_block(dropout=0.2, attention_dropout=0.2, seed=3)
    h = block(keras.layers.Embedding(10, WIDTH, mask_zero=True)(tokens))
    model = keras.Model(tokens, keras.layers.Dense(3)(Source2TokenPooling()(h)))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    x = random_inputs(4)
    inference = to_numpy(block(x))
    np.testing.assert_array_equal(to_numpy(block(x, training=False)), inference)
    assert not np.allclose(to_numpy(block(x, training=True)), inference)

    before = [w.numpy().copy() for w in block.trainable_weights]
    loss = model.train_on_batch(IDS, np.array([0, 2]))
    assert np.isfinite(loss)
    for weight, old in zip(block.trainable_weights, before):
        assert not np.allclose(weight.numpy(), old), weight.path


def test_seeded_sublayer_dropouts_draw_different_masks():
    # A seed makes the block reproducible; it must not make its two residual dropouts
    # drop the same units.
    block = make_block(dropout=0.5, seed=4)
    block.build((BATCH, LENGTH, WIDTH))
    ones = np.ones((BATCH, LENGTH, WIDTH), "float32")
    attention_kept = to_numpy(block._attention_dropout(ones, training=True)) != 0
    feedforward_kept = to_numpy(block._feedforward_dropout(ones, training=True)) != 0
    assert not np.array_equal(attention_kept, feedforward_kept)


def test_head_dim_defaults_to_width_over_heads():
    block = make_block(num_heads=3, head_masks=["forward", "backward", "none"])
    block.build((None, None, WIDTH))
    assert weights_by_path(block)["attention/value/kernel"].shape == (WIDTH, 3, WIDTH // 3)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(num_heads=0), "num_heads"),
        (dict(num_heads=2.5), "num_heads"),
        (dict(head_dim=-1), "head_dim"),
        (dict(intermediate_dim=0), "intermediate_dim"),
        (dict(dropout=1.0), "dropout"),
        (dict(attention_dropout=-0.1), "attention_dropout"),
        (dict(head_masks=["forward", "diagonal"]), "head_masks"),
        (dict(head_masks=["forward"]), "head_masks"),
        (dict(num_heads=3), "num_heads"),
        (dict(token2token_activation="tanh"), "token2token_activation"),
        (dict(activation="no_such_activation"), "activation"),
        (dict(normalize_first="yes"), "normalize_first"),
        (dict(fusion_gate="joined"), "fusion_gate"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        MTSAEncoderBlock(**{"num_heads": 2, **kwargs})


def test_kernel_regularizer_reaches_every_kernel_of_the_block():
    block = make_block(kernel_regularizer=keras.regularizers.L2(0.5), use_fusion_gate=True)
    x = random_inputs(5)
    block(x)
    kernels = [w for w in block.weights if w.path.endswith("kernel")]
    # MTSA's value, query, key, source2token (2), gate and output maps, the feed-forward's two.
    assert len(kernels) == 9
    expected = sum(0.5 * float(np.sum(np.square(to_numpy(w)))) for w in kernels)
    assert_close(sum(float(to_numpy(loss)) for loss in block.losses), expected, 1e-5)


def test_bad_input_shapes_raise_value_error():
    with pytest.raises(ValueError, match="`head_dim`"):
        make_block(num_heads=8)(random_inputs())  # width 6 // 8 heads = 0 features per head
    with pytest.raises(ValueError, match="`inputs` of rank 3"):
        make_block()(np.zeros((BATCH, WIDTH), "float32"))
    with pytest.raises(ValueError, match="last dimension of `inputs`"):
        make_block()(keras.Input((None, None)))
