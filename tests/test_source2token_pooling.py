"""Spec tests of Source2TokenPooling: multi-dim source2token pooling of a
sequence into one vector."""

import keras
import numpy as np
import pytest

from helpers import assert_close
from helpers import copy_weights
from helpers import numpy_source2token_pooling
from helpers import to_numpy
from keras_mtsa import Source2TokenPooling

# Backend numerics: run again on JAX by `make test-jax` (`-m backends`).
pytestmark = pytest.mark.backends

BATCH, LENGTH, FEATURES = 2, 5, 6


def random_inputs(seed=0, shape=(BATCH, LENGTH, FEATURES)):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def padding_mask(lengths, length=LENGTH):
    return np.arange(length)[None, :] < np.asarray(lengths)[:, None]


@pytest.mark.parametrize(
    "options",
    [dict(bias_initializer="random_normal"), dict(activation="tanh", use_bias=False)],
    ids=["elu-bias", "tanh-nobias"],
)
def test_pooling_equals_numpy_from_its_weights(options):
    layer = Source2TokenPooling(**options)
    x = random_inputs()
    mask = padding_mask([LENGTH, 2])
    assert_close(layer(x, mask=mask), numpy_source2token_pooling(layer, x, mask), 1e-5)
    assert_close(layer(x), numpy_source2token_pooling(layer, x), 1e-5)
    assert len(layer.weights) == (4 if options.get("use_bias", True) else 2)


def test_masked_tokens_get_no_weight():
    layer = Source2TokenPooling(bias_initializer="random_normal")
    x = random_inputs(1)
    mask = padding_mask([LENGTH, 2])
    output = to_numpy(layer(x, mask=mask))
    garbage = x.copy()
    garbage[1, 2:] = 1e3 * random_inputs(2)[1, 2:]
    assert_close(layer(garbage, mask=mask), output, 1e-6)
    assert_close(output[1], to_numpy(layer(x[1:, :2]))[0], 1e-6)


def test_all_masked_sequence_pools_to_zero():
    layer = Source2TokenPooling()
    x = random_inputs(3)
    mask = padding_mask([0, 3])
    output = to_numpy(layer(x, mask=mask))
    assert np.all(output[0] == 0.0)
    assert_close(output[1], numpy_source2token_pooling(layer, x[1:], mask[1:])[0], 1e-5)


def test_implicit_embedding_mask_is_honoured_and_not_propagated():
    tokens = keras.Input((None,), dtype="int32")
    embedding = keras.layers.Embedding(10, FEATURES, mask_zero=True)
    layer = Source2TokenPooling()
    pooled = layer(embedding(tokens))
    assert getattr(pooled, "_keras_mask", None) is None
    assert layer.compute_mask(random_inputs(), padding_mask([1, 2])) is None
    model = keras.Model(tokens, pooled)
    ids = np.array([[3, 1, 4, 0, 0], [2, 7, 1, 8, 9]], "int32")
    vectors = to_numpy(embedding(ids))
    assert_close(model(ids), numpy_source2token_pooling(layer, vectors, ids != 0), 1e-5)


def test_compute_output_shape_and_symbolic_call():
    layer = Source2TokenPooling()
    assert layer.compute_output_shape((None, None, FEATURES)) == (None, FEATURES)
    assert tuple(layer(keras.Input((None, FEATURES))).shape) == (None, FEATURES)
    assert to_numpy(layer(random_inputs())).shape == (BATCH, FEATURES)


def test_serialization_round_trip(tmp_path):
    layer = Source2TokenPooling(
        activation="tanh",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer="l2",
        name="pool",
    )
    config = layer.get_config()
    assert Source2TokenPooling.from_config(config).get_config() == config

    inputs = keras.Input((None, FEATURES))
    model = keras.Model(inputs, Source2TokenPooling(bias_initializer="random_normal")(inputs))
    x = random_inputs(4)
    path = tmp_path / "pooling.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))


def test_mixed_float16_pools_in_float16_close_to_float32():
    x = random_inputs(5)
    mask = padding_mask([LENGTH, 2])
    reference = Source2TokenPooling()
    reference.build(x.shape)
    layer = Source2TokenPooling(dtype="mixed_float16")
    layer.build(x.shape)
    copy_weights(reference, layer)
    output = layer(x, mask=mask)
    assert keras.backend.standardize_dtype(output.dtype) == "float16"
    # Measured largest relative error 3.3e-4 (TensorFlow and JAX): about 4x.
    assert_close(
        np.asarray(to_numpy(output), np.float32), to_numpy(reference(x, mask=mask)), 1.5e-3
    )


@pytest.mark.parametrize(
    "shape",
    [(BATCH, FEATURES), (BATCH, 1, LENGTH, FEATURES), (None, None, None)],
    ids=["rank2", "rank4", "unknown_features"],
)
def test_bad_input_shape_raises_value_error(shape):
    layer = Source2TokenPooling()
    inputs = keras.Input(shape[1:]) if shape[0] is None else np.zeros(shape, "float32")
    with pytest.raises(ValueError, match="`inputs`"):
        layer(inputs)


def test_dropout_reaches_the_scores_only_and_is_off_in_inference():
    x = random_inputs(3)
    mask = padding_mask([LENGTH, 2])
    dropped, plain = Source2TokenPooling(dropout=0.5, seed=4), Source2TokenPooling()
    for layer in (dropped, plain):
        layer.build(x.shape)
    plain.set_weights(dropped.get_weights())
    assert_close(dropped(x, mask=mask), numpy_source2token_pooling(plain, x, mask), 1e-5)
    trained = to_numpy(dropped(x, mask=mask, training=True))
    assert not np.allclose(trained, to_numpy(plain(x, mask=mask)))
    # Still a weighted mean of the undropped tokens: a sequence of one repeated token
    # pools to that token.
    repeated = np.broadcast_to(x[:, :1], x.shape)
    assert_close(dropped(repeated, mask=mask, training=True), x[:, 0], 1e-5)
    assert (
        Source2TokenPooling.from_config(dropped.get_config()).get_config() == dropped.get_config()
    )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(activation="no_such_activation"), "activation"),
        (dict(use_bias="yes"), "use_bias"),
        (dict(dropout=1.0), "dropout"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        Source2TokenPooling(**kwargs)
