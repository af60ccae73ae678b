"""Spec tests of the MTSA layer: the math against a numpy re-implementation from the layer's
own weights, masking, directionality, serialization, compilation, dropout, mixed precision
and argument checks.

Shapes are shared by most tests (BATCH x LENGTH x FEATURES, HEADS x HEAD_DIM) so that backends
compiling per shape (JAX eagerly, TensorFlow's inner XLA core) reuse their compilations. Layers use
jit_compile=False unless XLA is what the test is about.
"""

import inspect
import logging

import keras
import numpy as np
import pytest
from keras import ops

from helpers import assert_close
from helpers import copy_weights
from helpers import gradients
from helpers import numpy_masked_softmax
from helpers import numpy_mtsa
from helpers import numpy_mtsa_logits
from helpers import to_numpy
from helpers import weights_by_path
from keras_mtsa import MTSA
from keras_mtsa import Source2TokenPooling
from keras_mtsa import ops as mtsa_ops

# Backend numerics: run again on JAX by `make test-jax` (`-m backends`).
pytestmark = pytest.mark.backends

BATCH, LENGTH, FEATURES = 2, 5, 6
HEADS, HEAD_DIM = 2, 3
# float32 layer against the float64 numpy re-implementation, relative to the output scale.
LAYER_TOL = 1e-5


def make_mtsa(**kwargs):
    """An MTSA layer with the test shapes, nonzero biases (so that they are checked too)
    and no inner XLA."""
    kwargs = {
        "num_heads": HEADS,
        "head_dim": HEAD_DIM,
        "bias_initializer": "random_normal",
        "jit_compile": False,
        **kwargs,
    }
    return MTSA(**kwargs)


def random_inputs(seed=0, shape=(BATCH, LENGTH, FEATURES)):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def padding_mask(lengths, length=LENGTH):
    return np.arange(length)[None, :] < np.asarray(lengths)[:, None]


@pytest.mark.parametrize(
    "options",
    [
        dict(token2token_activation="exp"),
        dict(
            token2token_activation="exp",
            use_fusion_gate=False,
            output_dim=4,
            head_masks=["none", "forward"],
            attend_to_self=True,
            activation="relu",
            source2token_activation="tanh",
        ),
        dict(token2token_activation="sigmoid", output_dim=4),
        dict(
            token2token_activation="sigmoid", use_fusion_gate=False, head_masks=["backward", "none"]
        ),
        # The same layer math through the tiled core (keras_mtsa.ops.blockwise), blocks not
        # dividing the length.
        dict(token2token_activation="exp", block_size=2),
        dict(token2token_activation="sigmoid", fusion_gate="joint", output_dim=4),
    ],
    ids=[
        "exp-gate",
        "exp-nogate-output_dim-self",
        "sigmoid-gate-output_dim",
        "sigmoid-nogate",
        "exp-gate-blockwise",
        "sigmoid-joint_gate-output_dim",
    ],
)
def test_layer_equals_numpy_reimplementation_from_its_weights(options):
    layer = make_mtsa(**options)
    x = random_inputs()
    mask = padding_mask([LENGTH, 3])
    output = layer(x, mask=mask)
    assert_close(output, numpy_mtsa(layer, x, mask), LAYER_TOL)
    assert_close(layer(x), numpy_mtsa(layer, x), LAYER_TOL)


def test_use_bias_false_creates_no_bias_and_matches_numpy():
    layer = make_mtsa(use_bias=False, output_dim=4)
    x = random_inputs()
    output = layer(x)
    assert not [w.path for w in layer.weights if w.path.endswith("bias")]
    assert_close(output, numpy_mtsa(layer, x), LAYER_TOL)


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_directional_heads_ignore_tokens_on_the_other_side(direction):
    # All heads forward: output i depends on tokens <= i only; all backward: on tokens >= i only.
    layer = make_mtsa(head_masks=[direction] * HEADS, output_dim=4)
    x = random_inputs(1)
    output = to_numpy(layer(x))
    for i in range(LENGTH):
        changed = x.copy()
        later = slice(i + 1, None) if direction == "forward" else slice(None, i)
        if not changed[:, later].size:
            continue
        changed[:, later] = random_inputs(10 + i)[:, later]
        new_output = to_numpy(layer(changed))
        kept = slice(None, i + 1) if direction == "forward" else slice(i, None)
        assert_close(new_output[:, kept], output[:, kept], 1e-6)
        assert not np.allclose(new_output[:, later], output[:, later])


def test_padding_does_not_change_real_positions_and_padded_outputs_are_zero():
    layer = make_mtsa(output_dim=4)
    x = random_inputs(2)
    # Example 0 keeps its 5 tokens; example 1 has 3 real tokens followed by 2 padded positions
    # holding large garbage features.
    padded = x.copy()
    padded[1, 3:] = 50.0 * random_inputs(3)[1, 3:]
    mask = padding_mask([LENGTH, 3])
    output = to_numpy(layer(padded, mask=mask))
    assert_close(output[0], to_numpy(layer(x))[0], 1e-6)
    assert_close(output[1, :3], to_numpy(layer(x[1:, :3]))[0], 1e-6)
    assert np.all(output[1, 3:] == 0.0)


def test_embedding_mask_equals_explicit_key_attention_mask():
    ids = np.array([[3, 1, 4, 1, 5], [2, 7, 1, 0, 0]], "int32")
    tokens = keras.Input((None,), dtype="int32")
    embedding = keras.layers.Embedding(10, FEATURES, mask_zero=True)
    layer = make_mtsa(output_dim=4)
    model = keras.Model(tokens, layer(embedding(tokens)))
    implicit = to_numpy(model(ids))

    real = ids != 0
    vectors = to_numpy(embedding(ids))  # a plain array: no Keras mask attached
    attention_mask = np.broadcast_to(real[:, None, :], (BATCH, LENGTH, LENGTH))
    explicit = to_numpy(layer(vectors, attention_mask=attention_mask))
    assert_close(implicit[real], explicit[real], 1e-6)
    assert np.all(implicit[~real] == 0.0)
    assert_close(implicit, numpy_mtsa(layer, vectors, real), LAYER_TOL)


def test_per_head_attention_mask_matches_numpy_and_3d_mask_applies_to_every_head():
    layer = make_mtsa(head_masks=["none", "none"], attend_to_self=True)
    x = random_inputs(4)
    rng = np.random.default_rng(4)
    per_head = rng.random((BATCH, HEADS, LENGTH, LENGTH)) < 0.6
    assert_close(
        layer(x, attention_mask=per_head), numpy_mtsa(layer, x, attention_mask=per_head), LAYER_TOL
    )
    shared = rng.random((BATCH, LENGTH, LENGTH)) < 0.6
    repeated = np.repeat(shared[:, None], HEADS, axis=1)
    assert_close(layer(x, attention_mask=shared), to_numpy(layer(x, attention_mask=repeated)), 1e-7)


def test_output_mask_propagates():
    tokens = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(10, FEATURES, mask_zero=True)(tokens)
    layer = make_mtsa()
    output = layer(embedded)
    assert output._keras_mask is not None
    assert tuple(output._keras_mask.shape) == (None, None)
    mask_model = keras.Model(tokens, output._keras_mask)
    ids = np.array([[3, 1, 0, 0, 0], [2, 7, 1, 4, 0]], "int32")
    np.testing.assert_array_equal(to_numpy(mask_model(ids)), ids != 0)
    mask = padding_mask([2, 4])
    np.testing.assert_array_equal(to_numpy(layer.compute_mask(random_inputs(), mask)), mask)
    assert layer.compute_mask(random_inputs(), None) is None


def test_return_attention_scores_shapes_and_normalisation():
    layer = make_mtsa()  # default heads: forward, backward
    x = random_inputs(5)
    lengths = [LENGTH, 3]
    mask = padding_mask(lengths)
    output, token2token, source2token = (
        to_numpy(a) for a in layer(x, mask=mask, return_attention_scores=True)
    )
    assert output.shape == (BATCH, LENGTH, HEADS * HEAD_DIM)
    assert token2token.shape == (BATCH, HEADS, LENGTH, LENGTH)
    assert source2token.shape == (BATCH, HEADS, LENGTH, HEAD_DIM)
    assert_close(output, to_numpy(layer(x, mask=mask)), 1e-6)
    # Padded keys (example 1 has 3 real tokens) get no weight.
    assert np.all(token2token[1, :, :, 3:] == 0.0)
    assert np.all(source2token[1, :, 3:] == 0.0)
    # Direction: the forward head (0) sees only earlier keys, the backward head (1) only later ones.
    assert np.all(np.triu(token2token[:, 0]) == 0.0)
    assert np.all(np.tril(token2token[:, 1]) == 0.0)
    # Rows with an allowed key sum to 1; the others (the first token of the forward head, the last
    # real token of the backward head, and every padded query) are 0.
    for example, length in enumerate(lengths):
        expected = np.ones((HEADS, LENGTH))
        expected[0, 0] = 0.0
        expected[1, length - 1 :] = 0.0
        expected[:, length:] = 0.0
        assert_close(token2token[example].sum(-1), expected, 1e-6)
    assert_close(source2token.sum(-2), np.ones((BATCH, HEADS, HEAD_DIM)), 1e-6)


@pytest.mark.parametrize("activation", ["exp", "sigmoid"])
@pytest.mark.parametrize("mask_kind", ["padding", "padding and a 4D attention mask"])
def test_attention_scores_are_masked_softmaxes_of_the_oracles_logits(activation, mask_kind):
    layer = make_mtsa(token2token_activation=activation, head_masks=["forward", "none"])
    x = random_inputs(11)
    mask = padding_mask([LENGTH, 3])
    attention_mask = None
    if mask_kind != "padding":
        attention_mask = np.random.default_rng(11).random((BATCH, HEADS, LENGTH, LENGTH)) > 0.3
    _, token2token, source2token = (
        to_numpy(a)
        for a in layer(x, mask=mask, attention_mask=attention_mask, return_attention_scores=True)
    )
    _, t_logits, s_logits, allowed = numpy_mtsa_logits(
        layer.get_config(), weights_by_path(layer), x, mask, attention_mask
    )
    allowed = np.broadcast_to(
        allowed & mask[:, None, :, None], t_logits.shape
    )  # padded queries: no row
    usable_keys = np.broadcast_to(
        allowed.any(axis=-2)[..., None], s_logits.shape
    )  # seen by some query
    # Normalized weights in [0, 1], compared absolutely; measured errors are below 1e-7.
    assert_close(token2token, numpy_masked_softmax(t_logits, allowed, axis=-1), 1e-6, scale=1.0)
    assert_close(
        source2token, numpy_masked_softmax(s_logits, usable_keys, axis=-2), 1e-6, scale=1.0
    )


class _RecordedDropout:
    """Wraps a layer's `_dropout_masks` and keeps the masks of its last call."""

    def __init__(self, layer):
        self.masks = None
        self._draw = layer._dropout_masks
        layer._dropout_masks = self

    def __call__(self, value, training):
        self.masks = self._draw(value, training)
        return self.masks


def _kept(mask):
    """The fraction of entries kept, and the distinct values of the kept entries."""
    mask = np.asarray(to_numpy(mask), np.float64)
    return float(np.mean(mask != 0)), np.unique(mask[mask != 0])


@pytest.mark.parametrize("rate", [0.3, 0.5])
def test_dropout_keeps_each_factor_with_probability_sqrt_1_minus_rate_and_equals_the_oracle(rate):
    # The authors' scheme: the token2token and source2token factors of the numerator are dropped
    # independently, each kept with probability sqrt(1 - rate) and scaled by its inverse, so that
    # their product is kept with probability 1 - rate; the weights are not renormalized.
    layer = make_mtsa(dropout=rate, seed=4)
    x = random_inputs(12, shape=(8, 16, FEATURES))
    mask = np.arange(16)[None, :] < np.array([16, 9, 16, 12, 16, 16, 5, 16])[:, None]
    recorded = _RecordedDropout(layer)
    output = to_numpy(layer(x, mask=mask, training=True))
    t_dropout, s_dropout = recorded.masks
    keep = (1.0 - rate) ** 0.5
    for name, dropout in (("token2token", t_dropout), ("source2token", s_dropout)):
        fraction, values = _kept(dropout)
        # 4,096 and 768 draws: 0.05 is more than 3 standard errors of the kept fraction.
        assert abs(fraction - keep) < 0.05, (
            f"{name} factor kept with probability {fraction:.3f}, not {keep:.3f}"
        )
        assert np.allclose(values, 1.0 / keep, rtol=1e-6), (
            f"{name} factor's kept entries are {values}, not 1 / {keep:.3f}"
        )
    expected = numpy_mtsa(
        layer, x, mask, t_dropout=to_numpy(t_dropout), s_dropout=to_numpy(s_dropout)
    )
    assert_close(output, expected, LAYER_TOL, scale=np.abs(expected).max())
    assert not np.allclose(output, to_numpy(layer(x, mask=mask, training=False)), atol=1e-3)


def test_blockwise_dropout_drops_the_source2token_factor_at_rate_and_equals_the_oracle():
    # The blockwise mode never holds the token2token factor as a whole: only the source2token factor
    # of the numerator is dropped, kept with probability 1 - rate and scaled by its inverse.
    layer = make_mtsa(dropout=0.5, seed=5, block_size=4)
    x = random_inputs(13, shape=(8, 16, FEATURES))
    mask = np.arange(16)[None, :] < np.array([16, 9, 16, 12, 16, 16, 5, 16])[:, None]
    recorded = _RecordedDropout(layer)
    output = to_numpy(layer(x, mask=mask, training=True))
    t_dropout, s_dropout = recorded.masks
    assert t_dropout is None
    fraction, values = _kept(s_dropout)
    assert abs(fraction - 0.5) < 0.06 and np.allclose(
        values, 2.0, rtol=1e-6
    )  # 768 draws: 3 standard errors
    expected = numpy_mtsa(layer, x, mask, s_dropout=to_numpy(s_dropout))
    assert_close(output, expected, LAYER_TOL, scale=np.abs(expected).max())
    assert not np.allclose(output, to_numpy(layer(x, mask=mask, training=False)), atol=1e-3)


def test_symbolic_call_with_attention_scores_returns_three_tensors():
    inputs = keras.Input((LENGTH, FEATURES))
    output, token2token, source2token = make_mtsa(output_dim=4)(
        inputs, return_attention_scores=True
    )
    assert tuple(output.shape) == (None, LENGTH, 4)
    assert tuple(token2token.shape) == (None, HEADS, LENGTH, LENGTH)
    assert tuple(source2token.shape) == (None, HEADS, LENGTH, HEAD_DIM)


@pytest.mark.parametrize("output_dim", [None, 4])
def test_symbolic_and_eager_calls_agree_with_compute_output_shape(output_dim):
    layer = make_mtsa(output_dim=output_dim)
    width = output_dim or HEADS * HEAD_DIM
    assert layer.compute_output_shape((None, None, FEATURES)) == (None, None, width)
    assert layer.compute_output_shape((BATCH, LENGTH, FEATURES)) == (BATCH, LENGTH, width)
    inputs = keras.Input((None, FEATURES))
    symbolic = layer(inputs)
    assert tuple(symbolic.shape) == (None, None, width)
    model = keras.Model(inputs, symbolic)
    x = random_inputs(6)
    eager = to_numpy(layer(x))
    assert eager.shape == (BATCH, LENGTH, width)
    assert_close(model(x), eager, 1e-6)


def test_get_config_from_config_round_trip():
    layer = MTSA(
        num_heads=3,
        head_dim=5,
        head_masks=["forward", "none", "backward"],
        attend_to_self=True,
        token2token_activation="sigmoid",
        activation="relu",
        source2token_activation="tanh",
        use_fusion_gate=False,
        fusion_gate="joint",
        output_dim=7,
        projection_dropout=0.1,
        dropout=0.25,
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=keras.regularizers.L2(1e-4),
        bias_constraint="non_neg",
        seed=11,
        jit_compile=False,
        name="custom_mtsa",
    )
    config = layer.get_config()
    restored = MTSA.from_config(config)
    assert restored.get_config() == config
    assert restored.head_masks == ("forward", "none", "backward")
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(revived, MTSA) and revived.get_config() == config


def test_the_per_head_fusion_gate_has_the_authors_shapes_and_parameter_count():
    # MTSA(2, 150) on 300 features: the authors' layer has 361,200 parameters, a joint gate 451,200.
    per_head, joint = MTSA(2, 150), MTSA(2, 150, fusion_gate="joint")
    for layer in (per_head, joint):
        layer.build((None, None, 300))
    weights = weights_by_path(per_head)
    assert weights["fusion_gate/kernel"].shape == (2, 300, 150)  # (heads, [v_h; o_h], head_dim)
    assert weights_by_path(joint)["fusion_gate/kernel"].shape == (
        600,
        300,
    )  # ([v; o] of all heads, heads * head_dim)
    assert (per_head.count_params(), joint.count_params()) == (361_200, 451_200)


def test_a_config_saved_before_the_per_head_gate_loads_with_the_joint_gates_weights():
    old = MTSA(HEADS, HEAD_DIM, fusion_gate="joint", jit_compile=False)
    x = random_inputs(12)
    expected = to_numpy(old(x))
    config = old.get_config()
    del config["fusion_gate"]  # as written by the package before the per-head gate
    restored = MTSA.from_config(config)
    restored.build(x.shape)
    restored.set_weights(old.get_weights())
    assert restored.fusion_gate == "joint"
    assert_close(to_numpy(restored(x)), expected, 1e-6)


def test_projection_dropout_drops_the_input_with_a_separate_mask_per_head():
    # Values that are the input itself (identity kernels, linear activation) and a gate stuck at 1
    # make the output the dropped value of each head: x * mask_h / keep.
    features, heads, rate = 8, 2, 0.5
    layer = MTSA(
        heads, features, activation="linear", projection_dropout=rate, seed=5, jit_compile=False
    )
    x = random_inputs(13, shape=(64, 6, features))
    layer.build(x.shape)
    layer._value_dense.kernel.assign(np.stack([np.eye(features)] * heads, axis=1).astype("float32"))
    layer._fusion_gate.bias.assign(np.full(layer._fusion_gate.bias.shape, 50.0, "float32"))
    layer._fusion_gate.kernel.assign(np.zeros(layer._fusion_gate.kernel.shape, "float32"))
    output = to_numpy(layer(x, training=True)).reshape(*x.shape[:2], heads, features)
    kept = output != 0
    np.testing.assert_allclose(
        output[kept], np.broadcast_to(x[:, :, None], output.shape)[kept] / (1 - rate)
    )
    assert 0.45 < kept.mean() < 0.55
    assert (
        0.45 < np.mean(kept[:, :, 0] != kept[:, :, 1]) < 0.55
    )  # independent masks: P(differ) = 1/2
    assert_close(to_numpy(layer(x)), np.concatenate([x, x], -1), 1e-6)  # off in inference


def test_projection_dropout_is_off_in_inference_and_keeps_the_weights_of_the_layer_without_it():
    x = random_inputs(14)
    mask = padding_mask([LENGTH, 3])
    dropped, plain = (
        make_mtsa(projection_dropout=0.4, seed=2, output_dim=4),
        make_mtsa(output_dim=4),
    )
    for layer in (dropped, plain):
        layer.build(x.shape)
    plain.set_weights(dropped.get_weights())  # the same variables: the per-head tiling adds none
    assert_close(to_numpy(dropped(x, mask=mask)), to_numpy(plain(x, mask=mask)), 1e-6)
    assert_close(to_numpy(dropped(x, mask=mask)), numpy_mtsa(plain, x, mask), LAYER_TOL)
    trained = to_numpy(dropped(x, mask=mask, training=True))
    assert not np.allclose(trained, to_numpy(plain(x, mask=mask)))
    assert np.all(trained[~mask] == 0.0)


class ExplicitMTSA(MTSA):
    """The explicit (b, h, n, n, d) form through the `_compute_attention` hook."""

    def _compute_attention(
        self, query, key, source2token, value, padding_mask=None, attention_mask=None, training=None
    ):
        mask = mtsa_ops.combined_attention_mask(
            query.shape[2], self.head_masks, self.attend_to_self, padding_mask, attention_mask
        )
        token2token = mtsa_ops.token2token_logits(query, key, self.token2token_activation)
        return mtsa_ops.reference_tensorized_attention(token2token, source2token, value, mask)


class ZeroAttention(MTSA):
    def _compute_attention(self, query, key, source2token, value, **kwargs):
        return ops.zeros_like(value)


def test_a_subclass_overriding_compute_attention_replaces_only_the_core():
    x = random_inputs(15)
    mask = padding_mask([LENGTH, 3])
    attention_mask = np.random.default_rng(1).random((BATCH, HEADS, LENGTH, LENGTH)) < 0.7
    layer = make_mtsa(output_dim=4)
    layer.build(x.shape)
    for subclass in (ExplicitMTSA, ZeroAttention):
        other = subclass.from_config(layer.get_config())
        other.build(x.shape)
        other.set_weights(layer.get_weights())
        if subclass is ExplicitMTSA:  # the same layer, its core computed another way
            assert_close(
                to_numpy(other(x, mask=mask, attention_mask=attention_mask)),
                to_numpy(layer(x, mask=mask, attention_mask=attention_mask)),
                1e-5,
            )
            continue
        # A core that returns 0: what is left is the layer's own gate, projection and output mask.
        w = weights_by_path(layer)
        x64 = x.astype(np.float64)
        value = np.einsum("bnc,chd->bhnd", x64, w["value/kernel"]) + w["value/bias"]
        value = np.where(value > 0, value, np.expm1(value))  # elu
        gate = 1 / (1 + np.exp(-(np.einsum("bhnc,hcd->bhnd", np.concatenate([value, 0 * value], -1),
                                            w["fusion_gate/kernel"])
                                 + w["fusion_gate/bias"])))  # fmt: skip
        merged = (gate * value).transpose(0, 2, 1, 3).reshape(BATCH, LENGTH, HEADS * HEAD_DIM)
        expected = (merged @ w["output/kernel"] + w["output/bias"]) * mask[..., None]
        assert_close(to_numpy(other(x, mask=mask)), expected, LAYER_TOL)


def test_keras_file_round_trip_in_functional_model(tmp_path):
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(20, FEATURES, mask_zero=True)(tokens)
    x = MTSA(
        HEADS,
        HEAD_DIM,
        token2token_activation="sigmoid",
        dropout=0.1,
        seed=1,
        bias_initializer="random_normal",
    )(x)
    x = Source2TokenPooling(bias_initializer="random_normal")(x)
    model = keras.Model(tokens, keras.layers.Dense(3)(x))
    ids = np.array([[3, 1, 4, 1, 5], [2, 7, 1, 0, 0]], "int32")
    expected = to_numpy(model(ids))
    path = tmp_path / "mtsa.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(to_numpy(loaded(ids)), expected)
    assert [type(layer).__name__ for layer in loaded.layers] == [
        type(layer).__name__ for layer in model.layers
    ]
    assert loaded.layers[2].get_config() == model.layers[2].get_config()


@pytest.mark.slow
def test_training_step_with_compiled_model_is_finite_and_updates_weights():
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(20, FEATURES, mask_zero=True)(tokens)
    layer = MTSA(HEADS, HEAD_DIM, dropout=0.1, seed=2, bias_initializer="random_normal")
    x = Source2TokenPooling()(layer(x))
    model = keras.Model(tokens, keras.layers.Dense(3)(x))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    ids = np.array([[3, 1, 4, 1, 5], [2, 7, 1, 0, 0]], "int32")
    labels = np.array([0, 2])
    before = [w.numpy().copy() for w in layer.trainable_weights]
    loss = model.train_on_batch(ids, labels)
    assert np.isfinite(loss)
    for weight, old in zip(layer.trainable_weights, before):
        assert not np.allclose(weight.numpy(), old), weight.path


def test_inner_xla_core_matches_uncompiled_core_in_outputs_and_gradients(tensorflow_only):
    import tensorflow as tf

    compiled = MTSA(
        HEADS, HEAD_DIM, output_dim=4, bias_initializer="random_normal", jit_compile=True
    )
    plain = MTSA(HEADS, HEAD_DIM, output_dim=4, jit_compile=False)
    x = random_inputs(7)
    mask = padding_mask([LENGTH, 3])
    compiled.build(x.shape)
    plain.build(x.shape)
    copy_weights(compiled, plain)
    # In tf.functions: eager calls run the core op by op either way.
    traced = tf.function(lambda x: compiled(x, mask=mask))
    assert_close(traced(x), to_numpy(plain(x, mask=mask)), 1e-5)

    cotangent = np.random.default_rng(7).normal(size=(BATCH, LENGTH, 4)).astype("float32")
    weights = [w.numpy() for w in compiled.trainable_weights]

    def loss(layer):
        def function(x, *weights):
            output, _ = layer.stateless_call(list(weights), [], x, mask=mask)
            return ops.sum(output * cotangent)

        return function

    for got, want in zip(
        gradients(tf.function(loss(compiled)), x, *weights), gradients(loss(plain), x, *weights)
    ):
        assert_close(got, want, 1e-5, scale=max(1.0, np.abs(want).max()))


def test_core_is_xla_compiled(tensorflow_only):
    import tensorflow as tf

    from keras_mtsa._xla import xla_compiled

    # Only a traced call is compiled; an eager one runs op by op (no compile for every new shape).
    assert xla_compiled(mtsa_ops.self_attention) is mtsa_ops.self_attention
    with tf.Graph().as_default():
        core = xla_compiled(mtsa_ops.self_attention)
    assert core is not mtsa_ops.self_attention
    assert core._jit_compile is True
    # The jit_compile=True layer goes through it in a tf.function: a shape it has not seen yet
    # traces it once more; a jit_compile=False layer, or an eager call, never does.
    x = random_inputs(8, (1, 4, FEATURES))
    count = core.experimental_get_tracing_count()
    tf.function(MTSA(HEADS, HEAD_DIM, jit_compile=False))(x)
    layer = MTSA(HEADS, HEAD_DIM, jit_compile=True)
    layer(x)
    assert core.experimental_get_tracing_count() == count
    tf.function(layer)(x)
    assert core.experimental_get_tracing_count() == count + 1
    # The traced function must be compiled by XLA, and XLA accepts it.
    query = ops.ones((1, HEADS, 4, HEAD_DIM))
    arguments = (query, query, query, query)
    # Every keyword given: TensorFlow's compiler IR binds none of the function's defaults.
    options = {
        name: parameter.default
        for name, parameter in inspect.signature(mtsa_ops.self_attention).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    options.update(head_masks=layer.head_masks, implementation="full")
    concrete = core.get_concrete_function(*arguments, **options)
    assert concrete.function_def.attr["_XlaMustCompile"].b
    assert "HloModule" in core.experimental_get_compiler_ir(*arguments, **options)(stage="hlo")


def test_eager_calls_over_many_lengths_do_not_retrace_the_xla_core(tensorflow_only):
    import tensorflow as tf

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    tf.get_logger().addHandler(handler)
    try:
        layer = MTSA(HEADS, HEAD_DIM)  # jit_compile=True, the default
        for length in range(2, 10):
            layer(random_inputs(length, (1, length, FEATURES)))
    finally:
        tf.get_logger().removeHandler(handler)
    assert not [r.getMessage() for r in records if "retracing" in r.getMessage()]


def test_dropout_is_active_in_training_seed_reproducible_and_off_in_inference():
    x = random_inputs(9)
    first, second = make_mtsa(dropout=0.5, seed=3), make_mtsa(dropout=0.5, seed=3)
    no_dropout = make_mtsa()
    for layer in (first, second, no_dropout):
        layer.build(x.shape)
    copy_weights(first, second)  # weights and seed generator state
    no_dropout.set_weights([w.numpy() for w in first.trainable_weights])
    trained = to_numpy(first(x, training=True))
    np.testing.assert_array_equal(to_numpy(second(x, training=True)), trained)
    inference = to_numpy(first(x, training=False))
    np.testing.assert_array_equal(to_numpy(first(x)), inference)
    assert_close(inference, to_numpy(no_dropout(x)), 1e-6)
    assert not np.allclose(trained, inference)
    assert not np.allclose(to_numpy(first(x, training=True)), trained)  # a new draw on every call


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_is_finite_close_to_float32_with_float32_weights(policy):
    x = random_inputs(10)
    mask = padding_mask([LENGTH, 3])
    reference = make_mtsa(output_dim=4)
    reference.build(x.shape)
    keras.config.set_dtype_policy(policy)  # (conftest restores float32 after the test)
    layer = make_mtsa(output_dim=4)
    layer.build(x.shape)
    assert layer.dtype_policy.name == policy
    copy_weights(reference, layer)
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in layer.weights)
    output = layer(x, mask=mask)
    compute_dtype = policy.split("_")[1]
    assert keras.backend.standardize_dtype(output.dtype) == compute_dtype
    output = np.asarray(to_numpy(output), np.float32)
    assert np.all(np.isfinite(output))
    # Measured largest relative errors (TensorFlow, JAX): float16 6.9e-4, 6.9e-4;
    # bfloat16 9.9e-3, 4.3e-3.
    tol = {"float16": 3e-3, "bfloat16": 4e-2}[compute_dtype]
    assert_close(output, to_numpy(reference(x, mask=mask)), tol)
    assert np.all(output[~mask] == 0.0)


EMPTY_SHAPES = {"empty batch": (0, LENGTH, FEATURES), "empty length": (BATCH, 0, FEATURES)}
# Dropout of both kinds (the fused core takes no attention dropout), so that training draws masks of
# the empty shapes too.
CORES = {
    "full": {"dropout": 0.2},
    "blockwise": {"block_size": 3, "dropout": 0.2},
    "fused": {"implementation": "fused"},
}


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("shape", list(EMPTY_SHAPES.values()), ids=list(EMPTY_SHAPES))
@pytest.mark.parametrize("core", list(CORES))
def test_empty_batch_or_length_gives_an_empty_output_of_the_right_shape(
    core, shape, masked, training
):
    layer = make_mtsa(projection_dropout=0.1, seed=1, **CORES[core])
    mask = np.ones(shape[:2], bool) if masked else None
    output = to_numpy(layer(np.zeros(shape, "float32"), mask=mask, training=training))
    assert output.shape == (*shape[:2], HEADS * HEAD_DIM)


@pytest.mark.parametrize("core", list(CORES))
def test_gradient_of_an_empty_batch_is_zero_for_every_weight(core):
    layer = make_mtsa(output_dim=4, **CORES[core])
    x = np.zeros(EMPTY_SHAPES["empty batch"], "float32")
    layer.build(x.shape)
    weights = [w.numpy() for w in layer.trainable_weights]
    state = [v.numpy() for v in layer.non_trainable_variables]  # the dropout's seed

    def loss(x, *weights):
        mask = np.ones(x.shape[:2], bool)
        output, _ = layer.stateless_call(list(weights), state, x, mask=mask, training=True)
        return ops.sum(output)

    x_gradient, *weight_gradients = gradients(loss, x, *weights)
    assert x_gradient.shape == x.shape
    for gradient, weight in zip(weight_gradients, weights):
        np.testing.assert_array_equal(gradient, np.zeros_like(weight))


def _argument_id(case):
    return (
        ",".join(f"{key}={value!r}" for key, value in case.items())
        if isinstance(case, dict)
        else None
    )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        *[(dict(num_heads=value), "num_heads") for value in (0, -1, 2.5, "2", True)],
        *[(dict(head_dim=value), "head_dim") for value in (0, -1, 2.5, "2", True)],
        (dict(head_masks=["forward", "upward"]), "head_masks"),
        (dict(head_masks=["forward"]), "head_masks"),
        (dict(num_heads=3), "num_heads"),
        (dict(token2token_activation="softmax"), "token2token_activation"),
        (dict(activation="no_such_activation"), "activation"),
        (dict(source2token_activation="no_such_activation"), "source2token_activation"),
        (dict(dropout=-0.1), "dropout"),
        (dict(dropout=1.0), "dropout"),
        (dict(output_dim=0), "output_dim"),
        (dict(attend_to_self="yes"), "attend_to_self"),
        (dict(fusion_gate="both"), "fusion_gate"),
        (dict(projection_dropout=1.0), "projection_dropout"),
        (dict(projection_dropout=-0.5), "projection_dropout"),
    ],
    ids=_argument_id,
)
def test_bad_arguments_raise_value_error_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        MTSA(**{"num_heads": 2, "head_dim": 4, **kwargs})


@pytest.mark.parametrize(
    "shape", [(BATCH, FEATURES), (BATCH, 1, LENGTH, FEATURES)], ids=["rank2", "rank4"]
)
def test_inputs_of_rank_other_than_3_raise_value_error(shape):
    with pytest.raises(ValueError, match="`inputs` of rank 3"):
        make_mtsa()(np.zeros(shape, "float32"))


def test_unknown_feature_dimension_raises_value_error():
    with pytest.raises(ValueError, match="last dimension of `inputs`"):
        make_mtsa()(keras.Input((None, None)))


@pytest.mark.parametrize(
    "shape",
    [
        (BATCH, LENGTH, LENGTH + 1),
        (BATCH, HEADS + 1, LENGTH, LENGTH),
        (BATCH, LENGTH),
        (BATCH, 1, 1, LENGTH, LENGTH),
    ],
    ids=["key_length", "heads", "rank2", "rank5"],
)
def test_attention_mask_of_wrong_shape_raises_value_error(shape):
    layer = make_mtsa()
    with pytest.raises(ValueError, match="`attention_mask`"):
        layer(random_inputs(), attention_mask=np.ones(shape, bool))
