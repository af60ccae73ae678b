"""Spec tests of PretrainedEmbedding: a trainable embedding table followed by a frozen one."""

import keras
import numpy as np
import pytest

from helpers import to_numpy
from keras_mtsa.layers import PretrainedEmbedding

# Backend numerics: run again on JAX by `make test-jax` (`-m backends`).
pytestmark = pytest.mark.backends

TRAINABLE, FROZEN, DIM = 5, 3, 4
IDS = np.array([[0, 1, 4, 5, 7], [7, 6, 2, 0, 0]], "int32")


def make_layer(**options):
    layer = PretrainedEmbedding(TRAINABLE, FROZEN, DIM, **options)
    frozen = np.random.default_rng(0).normal(size=(FROZEN, DIM)).astype("float32")
    layer.frozen_embeddings.assign(frozen)
    return layer


def numpy_lookup(layer, ids):
    """The layer's output from its tables: the rows of the two tables stacked, indexed by id."""
    table = np.concatenate([layer.embeddings.numpy(), layer.frozen_embeddings.numpy()])
    return table[ids]


def test_ids_read_the_trainable_rows_then_the_frozen_rows():
    layer = make_layer(embeddings_initializer="random_normal")

    output = to_numpy(layer(IDS))

    assert output.shape == (2, 5, DIM) and output.dtype == np.float32
    np.testing.assert_array_equal(output, numpy_lookup(layer, IDS))
    np.testing.assert_array_equal(output[0, 3], layer.frozen_embeddings.numpy()[0])
    assert layer.input_dim == TRAINABLE + FROZEN


def test_the_frozen_table_starts_as_zeros_and_no_frozen_rows_is_a_plain_embedding():
    assert not PretrainedEmbedding(2, 3, DIM).frozen_embeddings.numpy().any()
    layer = PretrainedEmbedding(TRAINABLE, 0, DIM)

    assert layer.frozen_embeddings.shape == (0, DIM)
    np.testing.assert_array_equal(
        to_numpy(layer(IDS % TRAINABLE)), numpy_lookup(layer, IDS % TRAINABLE)
    )


def test_only_the_embeddings_table_is_trainable():
    layer = make_layer()

    assert [w.path for w in layer.trainable_weights] == [layer.embeddings.path]
    assert [w.path for w in layer.non_trainable_weights] == [layer.frozen_embeddings.path]
    assert layer.embeddings.shape == (TRAINABLE, DIM)
    assert layer.frozen_embeddings.shape == (FROZEN, DIM)


def test_a_training_step_changes_the_used_trainable_rows_and_never_the_frozen_table():
    ids = keras.Input((None,), dtype="int32")
    embedding = make_layer()
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(embedding(ids)))
    model = keras.Model(ids, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    trainable, frozen = embedding.embeddings.numpy(), embedding.frozen_embeddings.numpy()

    model.train_on_batch(np.array([[1, 2, 5, 7]]), np.array([[10.0]]))

    changed = np.any(embedding.embeddings.numpy() != trainable, axis=1)
    np.testing.assert_array_equal(changed, [False, True, True, False, False])
    np.testing.assert_array_equal(embedding.frozen_embeddings.numpy(), frozen)


def test_gradients_reach_the_trainable_table_as_sparse_slices_of_the_ids_used(tensorflow_only):
    import tensorflow as tf

    layer = make_layer()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(IDS) ** 2)
    gradient = tape.gradient(loss, layer.trainable_weights)[0]

    assert isinstance(gradient, tf.IndexedSlices)
    dense = tf.convert_to_tensor(gradient).numpy()
    expected = np.zeros((TRAINABLE, DIM), "float32")
    for trainable_id in IDS[IDS < TRAINABLE]:
        expected[trainable_id] += 2 * layer.embeddings.numpy()[trainable_id]
    np.testing.assert_allclose(dense, expected, rtol=1e-6)


def test_trainable_false_freezes_both_tables():
    layer = make_layer()
    layer.trainable = False

    assert layer.trainable_weights == []
    assert len(layer.non_trainable_weights) == 2


def test_mask_zero_masks_the_padding_id_and_is_off_by_default():
    masked = make_layer(mask_zero=True)

    np.testing.assert_array_equal(to_numpy(masked.compute_mask(IDS)), IDS != 0)
    assert make_layer().compute_mask(IDS) is None
    tokens = keras.Input((None,), dtype="int32")
    assert masked(tokens)._keras_mask is not None


def test_get_config_round_trips():
    layer = PretrainedEmbedding(
        7,
        2,
        3,
        embeddings_initializer=keras.initializers.RandomUniform(-0.25, 0.25),
        mask_zero=True,
    )

    config = layer.get_config()
    restored = PretrainedEmbedding.from_config(config)

    assert (config["trainable_rows"], config["frozen_rows"], config["output_dim"]) == (7, 2, 3)
    assert config["mask_zero"] is True
    assert restored.get_config() == config
    assert isinstance(restored.embeddings_initializer, keras.initializers.RandomUniform)
    assert restored.embeddings_initializer.maxval == 0.25


def test_a_saved_model_keeps_both_tables(tmp_path):
    ids = keras.Input((None,), dtype="int32")
    embedding = make_layer(embeddings_initializer="random_normal", mask_zero=True, name="embedding")
    model = keras.Model(ids, embedding(ids))
    path = tmp_path / "model.keras"

    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)

    restored = loaded.get_layer("embedding")
    assert isinstance(restored, PretrainedEmbedding)
    np.testing.assert_array_equal(restored.embeddings.numpy(), embedding.embeddings.numpy())
    np.testing.assert_array_equal(
        restored.frozen_embeddings.numpy(), embedding.frozen_embeddings.numpy()
    )
    assert not restored.frozen_embeddings.trainable
    np.testing.assert_array_equal(to_numpy(loaded(IDS)), to_numpy(model(IDS)))


def test_under_mixed_precision_the_output_is_float16_and_the_tables_float32():
    layer = make_layer(dtype="mixed_float16")

    output = layer(IDS)

    assert keras.backend.standardize_dtype(output.dtype) == "float16"
    assert layer.embeddings.dtype == "float32" and layer.frozen_embeddings.dtype == "float32"
    np.testing.assert_allclose(
        to_numpy(output).astype("float32"), numpy_lookup(layer, IDS), rtol=1e-3, atol=1e-3
    )


@pytest.mark.parametrize(
    "options, argument",
    [
        (dict(trainable_rows=0), "trainable_rows"),
        (dict(trainable_rows=True), "trainable_rows"),
        (dict(trainable_rows=2.0), "trainable_rows"),
        (dict(frozen_rows=-1), "frozen_rows"),
        (dict(frozen_rows=None), "frozen_rows"),
        (dict(output_dim=0), "output_dim"),
        (dict(mask_zero=1), "mask_zero"),
        (dict(embeddings_initializer="no_such_initializer"), "embeddings_initializer"),
    ],
)
def test_invalid_arguments_raise_naming_the_argument(options, argument):
    arguments = dict(trainable_rows=TRAINABLE, frozen_rows=FROZEN, output_dim=DIM) | options

    with pytest.raises(ValueError, match=f"`{argument}` must be .*Received: {argument}="):
        PretrainedEmbedding(**arguments)


def test_the_padding_mask_reaches_the_layers_that_follow():
    from keras_mtsa import Source2TokenPooling

    tokens = keras.Input((None,), dtype="int32")
    embedding = make_layer(mask_zero=True)
    pooling = Source2TokenPooling()
    model = keras.Model(tokens, pooling(embedding(tokens)))

    expected = pooling(embedding(IDS), mask=IDS != 0)

    np.testing.assert_allclose(to_numpy(model(IDS)), to_numpy(expected), rtol=1e-6, atol=1e-6)
