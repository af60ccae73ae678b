"""The example models of `keras_mtsa.models`: what goes in and out, masking,
training and `.keras` files.

Every model is tiny (embedding_dim 16, max_length 12) and is built and trained once per module.
"""

import keras
import numpy as np
import pytest

from keras_mtsa import models

# One worker of `pytest -n` for the module: its tests share the models trained once.
pytestmark = pytest.mark.xdist_group("models")

VOCABULARY_SIZE = 40
MAX_LENGTH = 12
NUM_CLASSES = 3
SIZES = dict(
    vocabulary_size=VOCABULARY_SIZE, max_length=MAX_LENGTH, embedding_dim=16, hidden_units=8
)

SENTENCE_CONFIGS = {
    "mtsa": dict(encoder="mtsa", num_heads=2, num_blocks=0),
    "mtsa_blocks": dict(encoder="mtsa", num_heads=2, num_blocks=2),
    "mha": dict(encoder="mha", num_heads=2),
    # Wider than the embeddings (as over 50-wide pretrained vectors): a projection feeds MHA.
    "mha_wide": dict(encoder="mha", num_heads=2, head_dim=12),
    "bilstm": dict(encoder="bilstm", num_heads=2, head_dim=12),
    "cnn": dict(encoder="cnn"),
    "mtsa_conv": dict(encoder="mtsa", num_heads=2, conv_window=3),
}


def _token_ids(rng, batch, min_length=2):
    """Padded id rows: real tokens (ids >= 1, some [UNK]) then zeros; lengths
    vary, one row is full."""
    lengths = rng.integers(min_length, MAX_LENGTH + 1, size=batch)
    lengths[0] = MAX_LENGTH
    ids = np.zeros((batch, MAX_LENGTH), dtype="int32")
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1, VOCABULARY_SIZE, size=length)
    return ids


def _train(model, inputs, labels, steps=6):
    """A few steps on one fixed batch; returns the loss before and after."""
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    before = float(model.evaluate(inputs, labels, verbose=0, batch_size=len(labels)))
    model.fit(inputs, labels, epochs=steps, batch_size=len(labels), verbose=0)
    after = float(model.evaluate(inputs, labels, verbose=0, batch_size=len(labels)))
    return before, after


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    ids = _token_ids(rng, 8)
    pair = {"premise": ids, "hypothesis": _token_ids(rng, 8)}
    labels = rng.integers(0, NUM_CLASSES, size=8).astype("int32")
    return ids, pair, labels


@pytest.fixture(scope="module")
def trained(batch):
    """Each model, built with dropout 0 and trained a few steps: {name: (model, inputs, losses)}."""
    ids, pair, labels = batch
    keras.utils.set_random_seed(1)
    result = {}
    for name, config in SENTENCE_CONFIGS.items():
        model = models.build_sentence_classifier(NUM_CLASSES, dropout=0.0, **SIZES, **config)
        result[name] = (model, ids, _train(model, ids, labels))
    model = models.build_pair_classifier(NUM_CLASSES, dropout=0.0, **SIZES)
    result["pair"] = (model, pair, _train(model, pair, labels))
    return result


MODEL_NAMES = [*SENTENCE_CONFIGS, "pair"]


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_inputs_and_outputs(trained, name):
    model, inputs, _ = trained[name]
    # Any padded length (length buckets), except the CNN's fixed one.
    length = MAX_LENGTH if name == "cnn" else None
    if name == "pair":
        assert sorted(model.input) == ["hypothesis", "premise"]
        for tensor in model.input.values():
            assert tuple(tensor.shape) == (None, length) and tensor.dtype == "int32"
    else:
        assert tuple(model.input.shape) == (None, length) and model.input.dtype == "int32"
    assert model.output_shape == (None, NUM_CLASSES)

    probabilities = model.predict(inputs, verbose=0)
    assert probabilities.shape == (8, NUM_CLASSES)
    assert probabilities.dtype == np.float32
    assert np.all(np.isfinite(probabilities)) and np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_few_training_steps_reduce_the_loss(trained, name):
    _, _, (before, after) = trained[name]
    assert np.isfinite(before) and np.isfinite(after)
    assert after < before, f"{name}: loss {before:.4f} -> {after:.4f} after 6 steps on one batch"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_padding_is_masked(trained, name):
    """Whatever the padding id's embedding row holds, predictions do not change: every layer after
    the embedding honours the padding mask (for the MHA baseline too: position embedding, attention,
    norm; the CNN and the convolution in front of MTSA see zero vectors there, as Kim's)."""
    model, inputs, _ = trained[name]
    assert np.any(_flat_ids(inputs) == 0), "the batch must contain padding"
    embedding = model.get_layer("sentence_encoder").get_layer("embedding")
    table = embedding.embeddings.numpy()
    expected = model.predict(inputs, verbose=0)
    try:
        garbage = table.copy()
        garbage[0] = np.random.default_rng(1).normal(scale=50.0, size=table.shape[1])
        embedding.embeddings.assign(garbage)
        np.testing.assert_allclose(model.predict(inputs, verbose=0), expected, atol=1e-5)
    finally:
        embedding.embeddings.assign(table)


@pytest.mark.parametrize("name", [name for name in MODEL_NAMES if name != "cnn"])
def test_a_sentence_gets_the_same_output_in_every_bucket_it_can_land_in(trained, name):
    """Padded to its own length, to every longer one and to max_length, a batch gets the
    same outputs (1e-5): length buckets change the cost of a batch, not its answers. The CNN
    is left out: its max-over-time pooling sees the windows in the padding, so it is always
    padded to max_length."""
    model, inputs, _ = trained[name]

    def cut(ids, length):
        return (
            {key: value[:, :length] for key, value in ids.items()}
            if isinstance(ids, dict)
            else ids[:, :length]
        )

    longest = 7
    rows = cut(
        inputs, longest
    )  # sentences of at most 7 tokens, some shorter, padded to max_length below
    rows = (
        {key: np.pad(value, [(0, 0), (0, MAX_LENGTH - longest)]) for key, value in rows.items()}
        if isinstance(rows, dict)
        else np.pad(rows, [(0, 0), (0, MAX_LENGTH - longest)])
    )
    assert np.any(_flat_ids(rows)[:, longest - 1] == 0) and np.all(
        _flat_ids(rows)[:, longest:] == 0
    )
    expected = model.predict(rows, verbose=0)
    for length in range(longest, MAX_LENGTH):
        np.testing.assert_allclose(
            model.predict(cut(rows, length), verbose=0), expected, atol=1e-5, err_msg=length
        )


def _flat_ids(inputs):
    return (
        np.concatenate([inputs["premise"], inputs["hypothesis"]])
        if isinstance(inputs, dict)
        else inputs
    )


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_keras_file_round_trip(trained, name, tmp_path):
    model, inputs, _ = trained[name]
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    expected = model.predict(inputs, verbose=0)
    np.testing.assert_allclose(restored.predict(inputs, verbose=0), expected, atol=1e-6)
    # The restored model is complete: it has the same weights under the same names (Keras 3.15
    # prefixes a Bidirectional layer's weight paths with its name only when it is built inside
    # a functional call, not when it is rebuilt on loading: those are compared by value).
    if name == "bilstm":
        assert len(restored.weights) == len(model.weights)
        for restored_weight, weight in zip(restored.weights, model.weights):
            np.testing.assert_array_equal(restored_weight.numpy(), weight.numpy())
    else:
        assert [w.path for w in restored.weights] == [w.path for w in model.weights]


@pytest.mark.parametrize(
    "config, width",
    [
        (dict(encoder="mtsa"), 16),  # embedding_dim by default
        (dict(encoder="mtsa", head_dim=12), 24),
        (dict(encoder="mha", head_dim=12), 24),
        (dict(encoder="mha", num_heads=4, head_dim=3), 12),
        (dict(encoder="bilstm"), 16),
        (dict(encoder="bilstm", head_dim=12), 24),
        (dict(encoder="mtsa", num_blocks=1, head_dim=12), 16),  # blocks keep the embeddings' width
        (dict(encoder="cnn"), 300),
    ],
)
def test_sentence_vectors_are_num_heads_times_head_dim_wide_whatever_the_embeddings(config, width):
    """Over narrow (e.g. 50-wide pretrained) embeddings, MTSA, MHA and the BiLSTM all give
    num_heads * head_dim features; only the encoder's own layers differ."""
    encoder = models.build_sentence_encoder(
        vocabulary_size=VOCABULARY_SIZE, max_length=MAX_LENGTH, embedding_dim=16, **config
    )
    assert encoder.output_shape == (None, width)
    has_projection = any(layer.name == "input_projection" for layer in encoder.layers)
    assert has_projection == (config["encoder"] == "mha" and width != 16)


def test_bilstm_encoder_is_a_masked_bidirectional_lstm_of_half_the_width_each_way():
    encoder = models.build_sentence_encoder(
        vocabulary_size=VOCABULARY_SIZE,
        max_length=MAX_LENGTH,
        embedding_dim=16,
        encoder="bilstm",
        head_dim=12,
    )
    bilstm = encoder.get_layer("bilstm")
    assert isinstance(bilstm, keras.layers.Bidirectional)
    assert bilstm.forward_layer.units == bilstm.backward_layer.units == 12
    assert bilstm.forward_layer.return_sequences and bilstm.backward_layer.go_backwards


def test_probabilities_stay_float32_under_mixed_precision(batch):
    ids, _, _ = batch
    keras.config.set_dtype_policy("mixed_bfloat16")  # reset by conftest's autouse fixture
    model = models.build_sentence_classifier(NUM_CLASSES, dropout=0.0, **SIZES)
    assert model.get_layer("sentence_encoder").get_layer("mtsa").compute_dtype == "bfloat16"
    probabilities = model.predict(ids, verbose=0)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(encoder="lstm"), "encoder"),
        (dict(embedding_dim=30, num_heads=4), "divisible by `num_heads`"),
        (dict(num_heads=0), "num_heads"),
        (dict(num_blocks=-1), "num_blocks"),
        (dict(max_length=0), "max_length"),
        (dict(vocabulary_size=0), "vocabulary_size"),
        (dict(head_dim=0), "head_dim"),
        (dict(embedding_scale=0), "embedding_scale"),
        (dict(encoder="mha", num_blocks=2), "num_blocks"),
        (dict(encoder="cnn", num_blocks=1), "num_blocks"),
        (dict(encoder="cnn", head_dim=8), "head_dim"),
        (dict(encoder="bilstm", num_heads=1, head_dim=7), "must be even for encoder='bilstm'"),
        (dict(num_heads=3, head_dim=4), "`num_heads` must be even for encoder='mtsa'"),
        (dict(encoder="cnn", max_length=4), "max_length"),
        (dict(conv_window=-1), "conv_window"),
        (dict(encoder="cnn", conv_window=3), "conv_window"),
        (dict(fusion_gate="joined"), "fusion_gate"),
        (dict(dropout_sites="everywhere"), "dropout_sites"),
        (dict(encoder="cnn", dropout_sites="authors"), "needs the single MTSA layer"),
        (dict(encoder="mha", dropout_sites="authors"), "needs the single MTSA layer"),
        (dict(num_blocks=1, dropout_sites="authors"), "needs the single MTSA layer"),
        (dict(conv_window=3, dropout_sites="authors"), "needs the single MTSA layer"),
    ],
)
@pytest.mark.parametrize("build", [models.build_sentence_classifier, models.build_pair_classifier])
def test_bad_encoder_arguments(build, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build(NUM_CLASSES, **{**SIZES, **kwargs})


@pytest.mark.parametrize("num_classes", [1, 0, -2, 2.5, True])
@pytest.mark.parametrize("build", [models.build_sentence_classifier, models.build_pair_classifier])
def test_bad_num_classes(build, num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        build(num_classes, **SIZES)


def test_head_dim_sets_the_sentence_vector_width_and_embedding_scale_the_initial_range():
    encoder = models.build_sentence_encoder(
        vocabulary_size=50,
        max_length=6,
        embedding_dim=8,
        num_heads=2,
        head_dim=5,
        embedding_scale=0.25,
    )
    assert encoder.output.shape == (None, 10)  # 2 heads x 5 features, not the embedding width
    table = keras.ops.convert_to_numpy(encoder.get_layer("embedding").embeddings)
    assert 0.2 < np.abs(table).max() <= 0.25


def test_token_dropout_replaces_real_tokens_by_unknown_only_while_training():
    ids = np.tile(np.array([[5, 6, 7, 8, 9, 0, 0, 0]], dtype="int32"), (500, 1))
    layer = models.TokenDropout(0.3, seed=3)
    np.testing.assert_array_equal(np.asarray(layer(ids, training=False)), ids)
    dropped = np.asarray(layer(ids, training=True))
    np.testing.assert_array_equal(dropped[:, 5:], 0)  # padding stays padding
    replaced = dropped[:, :5] != ids[:, :5]
    assert np.all(dropped[:, :5][replaced] == 1)  # only ever the unknown id
    assert 0.25 < replaced.mean() < 0.35
    assert models.TokenDropout.from_config(layer.get_config()).rate == 0.3
    with pytest.raises(ValueError, match="rate"):
        models.TokenDropout(1.5)


def _kernels(model):
    return [w for w in model.weights if w.path.endswith("kernel")]


@pytest.mark.parametrize("name", list(SENTENCE_CONFIGS))
def test_l2_reaches_every_kernel_of_every_encoder_and_nothing_else(name):
    l2 = 0.25
    model = models.build_sentence_classifier(NUM_CLASSES, l2=l2, **SIZES, **SENTENCE_CONFIGS[name])
    kernels = _kernels(model)
    assert len(model.losses) == len(
        kernels
    )  # no embedding, position embedding, bias or norm weight
    expected = sum(l2 * float(np.sum(np.square(keras.ops.convert_to_numpy(w)))) for w in kernels)
    np.testing.assert_allclose(sum(float(loss) for loss in model.losses), expected, rtol=1e-5)


def test_stacked_blocks_default_to_exp_token2token_and_take_the_one_given():
    def block_activation(**kwargs):
        encoder = models.build_sentence_encoder(
            vocabulary_size=VOCABULARY_SIZE,
            max_length=MAX_LENGTH,
            embedding_dim=16,
            num_blocks=1,
            **kwargs,
        )
        return encoder.get_layer("mtsa_block_0").token2token_activation

    assert block_activation() == "exp"
    assert block_activation(token2token_activation="sigmoid") == "sigmoid"
    single = models.build_sentence_encoder(
        vocabulary_size=VOCABULARY_SIZE, max_length=MAX_LENGTH, embedding_dim=16
    )
    assert single.get_layer("mtsa").token2token_activation == "sigmoid"
    assert single.get_layer("mtsa").fusion_gate == "per_head"


def test_the_authors_dropout_sites_drop_every_dense_input_and_not_the_embeddings():
    model = models.build_sentence_classifier(
        NUM_CLASSES, dropout=0.4, dropout_sites="authors", **SIZES
    )
    encoder = model.get_layer("sentence_encoder")
    names = {layer.name for layer in encoder.layers}
    assert "embedding_dropout" not in names
    assert encoder.get_layer("mtsa").projection_dropout == 0.4
    assert encoder.get_layer("pooling").dropout == 0.4
    assert model.get_layer("features_dropout").rate == model.get_layer("hidden_dropout").rate == 0.4
    plain = models.build_sentence_classifier(NUM_CLASSES, dropout=0.4, **SIZES)
    plain_encoder = plain.get_layer("sentence_encoder")
    assert plain_encoder.get_layer("embedding_dropout").rate == 0.4
    assert (
        plain_encoder.get_layer("mtsa").projection_dropout
        == plain_encoder.get_layer("pooling").dropout
        == 0
    )
    assert "features_dropout" not in {layer.name for layer in plain.layers}
    ids = _token_ids(np.random.default_rng(4), 4)
    plain.set_weights(model.get_weights())  # the dropout sites add no weights
    np.testing.assert_allclose(
        model.predict(ids, verbose=0), plain.predict(ids, verbose=0), atol=1e-6
    )


def test_highway_equals_its_formula_and_drops_only_while_training():
    x = np.random.default_rng(5).normal(size=(4, 6)).astype("float32")
    layer = models.Highway("elu", dropout=0.5, seed=1)
    output = keras.ops.convert_to_numpy(layer(x))
    w = {v.path.split("/", 1)[1]: keras.ops.convert_to_numpy(v) for v in layer.weights}
    gate = 1 / (1 + np.exp(-(x @ w["gate/kernel"] + w["gate/bias"])))
    pre = x @ w["transform/kernel"] + w["transform/bias"]
    transform = np.where(pre > 0, pre, np.expm1(pre))
    np.testing.assert_allclose(output, gate * transform + (1 - gate) * x, rtol=1e-5, atol=1e-6)
    assert not np.allclose(keras.ops.convert_to_numpy(layer(x, training=True)), output)
    assert models.Highway.from_config(layer.get_config()).get_config() == layer.get_config()


@pytest.mark.slow
def test_the_authors_pair_head_is_elu_then_highway_and_round_trips(batch, tmp_path):
    _, pair, labels = batch
    model = models.build_pair_classifier(
        NUM_CLASSES, head="highway", dropout_sites="authors", **SIZES
    )
    assert model.get_layer("hidden").get_config()["activation"] == "elu"
    assert model.get_layer("highway").dropout == 0.5
    before, after = _train(model, pair, labels)
    assert after < before
    path = tmp_path / "pair.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(
        restored.predict(pair, verbose=0), model.predict(pair, verbose=0), atol=1e-6
    )
    with pytest.raises(ValueError, match="`head`"):
        models.build_pair_classifier(NUM_CLASSES, head="maxout", **SIZES)
