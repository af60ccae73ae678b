"""SavedModel export for TF Serving (`keras_mtsa.export`) and the readiness checker
(`keras_mtsa.serving`).

One small sentence classifier is trained a few steps and exported once per module. The export is
reloaded in a fresh process without Keras or keras_mtsa, queried with hostile inputs, and checked
with `python -m keras_mtsa.serving check`, next to SavedModels the checker must reject.
"""

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_mtsa import models
from keras_mtsa import serving
from keras_mtsa.data import TextClassificationData
from keras_mtsa.data import TextPreprocessor
from keras_mtsa.data import make_classification_dataset
from keras_mtsa.data.preprocessing import read_vocabulary
from keras_mtsa.data.preprocessing import write_vocabulary
from keras_mtsa.export import DESCRIPTION_FILE
from keras_mtsa.export import WARMUP_FILE
from keras_mtsa.export import WARMUP_TEXTS
from keras_mtsa.export import export_for_serving

# One worker of `pytest -n` for the module: its tests share the trained model and its export.
pytestmark = pytest.mark.xdist_group("export")

LABELS = ["positive", "negative"]  # not in sorted order: a sorted lookup would show
MAX_LENGTH = 16
BUCKETS = (4, 8)
TRAIN_TEXTS = [
    "the film is great", "the plot is dull", "a moving and beautiful story",
    "boring , predictable and flat", "the acting is not bad at all", "the ending is awful",
    "what a charming , clever script", "the pacing is weak",
]  # fmt: skip
# Compared between the in-memory Keras model and the reloaded SavedModel: plain, unknown words,
# empty, long, invalid UTF-8, mixed scripts and emoji.
PROBE_TEXTS = [
    b"the film is great",
    b"the plot is dull , but the ending is wonderful",
    b"zzz qqq unseen words",
    b"",
    b"   \t\n  ",
    ("great " * 5000).encode(),
    b"\xff\xfe\xfd abc",
    "😀 the film текст 文本 مرحبا is great 👍🏽!!!".encode(),
]


def _environment():
    """A child's environment: this checkout first on its path (never an installed,
    possibly stale copy)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return {**os.environ, "PYTHONPATH": repo, "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model, preprocessor) after a few training steps."""
    directory = tmp_path_factory.mktemp("vocabulary")
    # Requests are padded to length buckets: every comparison with Keras below pads
    # to MAX_LENGTH instead.
    preprocessor = TextPreprocessor.from_texts(
        TRAIN_TEXTS, str(directory / "vocabulary.txt"), MAX_LENGTH, bucket_boundaries=BUCKETS
    )
    data = TextClassificationData(TRAIN_TEXTS * 4, [1, 0, 1, 0, 1, 0, 1, 0] * 4, LABELS)
    keras.utils.set_random_seed(2)
    model = models.build_sentence_classifier(
        len(LABELS), vocabulary_size=preprocessor.vocabulary_size, max_length=MAX_LENGTH,
        embedding_dim=16, hidden_units=16, dropout=0.1,
    )  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(
        make_classification_dataset(data, preprocessor, batch_size=8, shuffle=True, seed=2),
        verbose=0,
    )
    return model, preprocessor


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("saved_models")


@pytest.fixture(scope="module")
def exported(trained, export_dir):
    model, preprocessor = trained
    return export_for_serving(
        model, preprocessor, str(export_dir), model_name="reviews", labels=LABELS
    )


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported)


def _keras_probabilities(trained, texts):
    """The Keras model's answer on `texts` padded to max_length (the export pads
    to length buckets)."""
    model, preprocessor = trained
    to_max_length = TextPreprocessor(**{**preprocessor.config(), "bucket_boundaries": None})
    ids = to_max_length(tf.constant(texts, tf.string))
    assert ids.shape[1] == MAX_LENGTH
    return model(ids, training=False).numpy()


def _assert_valid(outputs, count):
    """A valid serving_default answer (tensors from tf.saved_model.load or arrays from
    the session road)."""
    probabilities = np.asarray(outputs["probabilities"])
    label_id = np.asarray(outputs["label_id"])
    label = [value.decode("utf-8") for value in np.asarray(outputs["label"])]
    assert probabilities.shape == (count, len(LABELS)) and probabilities.dtype == np.float32
    assert label_id.shape == (count,) and label_id.dtype == np.int64
    assert len(label) == count
    assert np.all(np.isfinite(probabilities)) and np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(label_id, probabilities.argmax(-1))
    assert label == [LABELS[i] for i in label_id]


# TF Serving's road: the TF C API's session loader in a clean process (no TensorFlow Python
# runtime), as the checker drives it. Every request of the module goes in one process, awaited once.

LARGE_BATCH = [f"{TRAIN_TEXTS[i % len(TRAIN_TEXTS)]} {i}" for i in range(1000)]
HOSTILE = {
    "empty": [b""],
    "whitespace": [" \t\n\r\u3000 ".encode()],
    "100k characters": [("the film is great " * 6000)[:100_000].encode()],
    "invalid UTF-8": [b"\xff\xfe\xfd abc", b"abc \xc3"],  # invalid bytes; a cut 2-byte character
    "emoji and mixed scripts": [
        "😀 the film текст 文本 مرحبا é́ 👍🏽 great!!!".encode(),
        "🎬🎬🎬".encode(),
    ],
    "batch of 1": [b"the film is great"],
    "batch of 1000": [text.encode() for text in LARGE_BATCH],
    "row 123 of the batch of 1000": [LARGE_BATCH[123].encode()],
    "batch of 0": [],
}


@pytest.fixture(scope="module")
def on_session_road(trained, exported):
    """{case: serving_default's answer} on the session road, plus the token_ids
    answer for PROBE_TEXTS.

    Meanwhile the vocabulary file the preprocessor was built from is moved away: the SavedModel must
    read its own copy in assets/.
    """
    _, preprocessor = trained
    cases = {"probes": PROBE_TEXTS, **HOSTILE}
    requests = [("serving_default", {"text": texts}) for texts in cases.values()]
    requests.append(("token_ids", {"token_ids": preprocessor(tf.constant(PROBE_TEXTS)).numpy()}))
    vocabulary = preprocessor.config()["vocabulary_file"]
    os.rename(vocabulary, vocabulary + ".moved")
    try:
        answers = serving.serve(exported, requests)
    finally:
        os.rename(vocabulary + ".moved", vocabulary)
    return {**dict(zip(cases, answers[:-1], strict=True)), "token_ids": answers[-1]}


@pytest.fixture(scope="module")
def readiness_check(exported):
    """`python -m keras_mtsa.serving check` on the export, from the command line in a
    clean environment."""
    process = subprocess.run(
        [sys.executable, "-m", "keras_mtsa.serving", "check", exported],
        cwd=os.path.dirname(exported), env=_environment(), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    return process.returncode, process.stdout + process.stderr


@pytest.mark.slow
def test_session_road_gives_the_keras_probabilities(trained, on_session_road):
    answer = on_session_road["probes"]
    expected = _keras_probabilities(trained, PROBE_TEXTS)
    assert answer["probabilities"].shape == expected.shape
    np.testing.assert_allclose(answer["probabilities"], expected, rtol=0, atol=1e-5)
    assert [label.decode() for label in answer["label"]] == [LABELS[i] for i in expected.argmax(-1)]
    _assert_valid(answer, len(PROBE_TEXTS))


def test_session_road_token_ids_signature_matches_serving_default(on_session_road):
    from_text, from_ids = on_session_road["probes"], on_session_road["token_ids"]
    np.testing.assert_allclose(from_ids["probabilities"], from_text["probabilities"], atol=1e-6)
    np.testing.assert_array_equal(from_ids["label"], from_text["label"])
    np.testing.assert_array_equal(from_ids["label_id"], from_text["label_id"])


@pytest.mark.slow
@pytest.mark.parametrize("case", list(HOSTILE))
def test_session_road_answers_hostile_requests_as_keras_does(trained, on_session_road, case):
    answer = on_session_road[case]
    _assert_valid(answer, len(HOSTILE[case]))
    if HOSTILE[case]:
        np.testing.assert_allclose(
            answer["probabilities"], _keras_probabilities(trained, HOSTILE[case]), rtol=0, atol=1e-5
        )


def test_session_road_rows_are_independent_of_their_batch(on_session_road):
    # Each row is computed on its own: a text gives the same answer alone as in a batch of 1000.
    large, single = (
        on_session_road["batch of 1000"],
        on_session_road["row 123 of the batch of 1000"],
    )
    np.testing.assert_allclose(
        large["probabilities"][123:124], single["probabilities"], rtol=0, atol=1e-6
    )
    np.testing.assert_array_equal(large["label"][123:124], single["label"])


@pytest.mark.slow
def test_requests_are_timed_on_the_session_road(exported, on_session_road):
    answers, seconds = serving.time_requests(
        exported, [("serving_default", {"text": PROBE_TEXTS})], repeats=3
    )
    np.testing.assert_array_equal(
        answers[0]["probabilities"], on_session_road["probes"]["probabilities"]
    )
    assert (
        len(seconds) == 1 and len(seconds[0]) == 3 and all(0 < value < 60 for value in seconds[0])
    )
    with pytest.raises(ValueError, match="`repeats` must be a positive int. Received: repeats=0"):
        serving.time_requests(exported, [], repeats=0)


@pytest.mark.slow
def test_readiness_check_passes_on_the_export(readiness_check):
    returncode, output = readiness_check
    assert returncode == 0, output[-3000:]
    assert "READY for TF Serving" in output
    assert "ERROR:" not in output  # the checker's error lines (TF's own logs may say "ERROR (303)")
    assert "session road: loaded with TF_LoadSessionFromSavedModel" in output
    assert "TensorFlow Python runtime imported: False" in output
    assert "warm-up requests: 2 (replayed on the session road)" in output
    assert "warm-up request 1" in output  # replayed as a request of its own
    assert "concurrency: 8 threads x 25 requests on one session: 200 answered" in output
    assert "largest difference from the request run alone: 0.0" in output
    assert "v1/models/reviews:predict" in output  # the REST request to try
    # The preprocessing's tf-text ops are reported as such (TF Serving must link them).
    assert "ops from tensorflow-text" in output and "NormalizeUTF8" in output


# The export's layout.


def test_layout_assets_and_signatures(trained, exported, export_dir, loaded):
    _, preprocessor = trained
    assert exported == os.path.join(str(export_dir), "reviews", "1")
    assert os.path.isfile(os.path.join(exported, "saved_model.pb"))
    assets = os.path.join(exported, "assets")
    with open(os.path.join(assets, "vocabulary.txt"), encoding="utf-8") as file:
        with open(preprocessor.config()["vocabulary_file"], encoding="utf-8") as original:
            assert file.read() == original.read()
    with open(os.path.join(assets, "labels.txt"), encoding="utf-8") as file:
        assert file.read().splitlines() == LABELS

    default = loaded.signatures["serving_default"]
    assert default.structured_input_signature[1] == {
        "text": tf.TensorSpec([None], tf.string, name="text")
    }
    assert set(default.structured_outputs) == {"probabilities", "label_id", "label"}
    ids = loaded.signatures["token_ids"]
    with open(os.path.join(exported, "assets.extra", "keras_mtsa.json"), encoding="utf-8") as file:
        description = json.load(file)
    # No XLA in the graph: requests are padded to their longest text.
    assert description["max_length"] == MAX_LENGTH
    assert description["padding"] == {
        "requests": "longest",
        "bucket_boundaries": list(range(1, MAX_LENGTH + 1)),
    }
    # Ids of any padded length (cut to max_length): the models ignore padding.
    assert ids.structured_input_signature[1] == {
        "token_ids": tf.TensorSpec([None, None], tf.int32, name="token_ids")
    }


@pytest.mark.slow
def test_an_xla_export_pads_requests_to_length_buckets_and_answers_as_max_length_padding(
    trained, tmp_path
):
    model, preprocessor = trained
    path = export_for_serving(
        model,
        preprocessor,
        str(tmp_path),
        model_name="xla",
        labels=LABELS,
        warmup_texts=(),
        jit_compile=True,
    )
    with open(os.path.join(path, "assets.extra", "keras_mtsa.json"), encoding="utf-8") as file:
        assert json.load(file)["padding"] == {
            "requests": "buckets",
            "bucket_boundaries": [*BUCKETS, MAX_LENGTH],
        }
    signature = tf.saved_model.load(path).signatures["serving_default"]
    # Batches whose longest text lands in each bucket (4, 8, 16) and beyond max_length.
    for texts in (
        ["the film"],
        ["the film is great", "dull"],
        ["the acting is not bad at all"],
        PROBE_TEXTS,
    ):
        answer = signature(text=tf.constant(texts, tf.string))["probabilities"].numpy()
        np.testing.assert_allclose(answer, _keras_probabilities(trained, texts), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_requests_padded_to_max_length_answer_as_those_padded_to_their_longest_text(
    trained, tmp_path, loaded
):
    model, preprocessor = trained
    path = export_for_serving(
        model, preprocessor, str(tmp_path), model_name="fixed", labels=LABELS, warmup_texts=(),
        request_padding="max_length",
    )  # fmt: skip
    with open(os.path.join(path, "assets.extra", "keras_mtsa.json"), encoding="utf-8") as file:
        assert json.load(file)["padding"] == {
            "requests": "max_length",
            "bucket_boundaries": [MAX_LENGTH],
        }
    fixed = tf.saved_model.load(path).signatures["serving_default"]
    texts = tf.constant(["the film", "the plot is dull , but the ending is wonderful"], tf.string)
    np.testing.assert_allclose(
        fixed(text=texts)["probabilities"].numpy(),
        loaded.signatures["serving_default"](text=texts)["probabilities"].numpy(),
        rtol=0,
        atol=1e-5,
    )


def test_a_model_whose_positions_end_before_max_length_is_not_exported(trained, tmp_path):
    _, preprocessor = trained
    mha = models.build_sentence_classifier(
        len(LABELS), vocabulary_size=preprocessor.vocabulary_size, max_length=MAX_LENGTH // 2,
        encoder="mha", embedding_dim=8, hidden_units=4,
    )  # fmt: skip
    with pytest.raises(
        ValueError,
        match=r"embeds positions up to 8 only: .*Received: a preprocessor with max_length=16",
    ):
        export_for_serving(mha, preprocessor, str(tmp_path), model_name="mha", labels=LABELS)


def test_a_model_of_one_input_length_is_not_exported_with_length_buckets(trained, tmp_path):
    _, preprocessor = trained
    cnn = models.build_sentence_classifier(
        len(LABELS), vocabulary_size=preprocessor.vocabulary_size, max_length=MAX_LENGTH,
        encoder="cnn", embedding_dim=8, hidden_units=4,
    )  # fmt: skip
    with pytest.raises(
        ValueError, match=r"takes ids of length 16 only: `preprocessor` must pad to it"
    ):
        export_for_serving(cnn, preprocessor, str(tmp_path), model_name="cnn", labels=LABELS)


def test_warmup_requests_parse_and_serve(exported, loaded):
    from tensorflow_serving.apis import prediction_log_pb2

    records = [
        prediction_log_pb2.PredictionLog.FromString(record.numpy())
        for record in tf.data.TFRecordDataset(os.path.join(exported, WARMUP_FILE))
    ]
    assert [log.WhichOneof("log_type") for log in records] == ["predict_log", "predict_log"]
    batches = []
    for log in records:
        request = log.predict_log.request
        assert request.model_spec.name == "reviews"
        assert request.model_spec.signature_name == "serving_default"
        assert list(request.inputs) == ["text"]
        texts = tf.make_ndarray(request.inputs["text"])
        batches.append([text.decode("utf-8") for text in texts])
        _assert_valid(loaded.signatures["serving_default"](text=tf.constant(texts)), len(texts))
    assert batches == [list(WARMUP_TEXTS[:1]), list(WARMUP_TEXTS)]


@pytest.mark.slow
def test_versions_auto_increment(trained, tmp_path):
    model, preprocessor = trained
    base = tmp_path / "versions" / "reviews"
    for version in ("1", "3", "not-a-version"):  # a gap, and a directory that is not a version
        (base / version).mkdir(parents=True)
    path = export_for_serving(model, preprocessor, str(tmp_path / "versions"), model_name="reviews",
                              labels=LABELS, warmup_texts=())  # fmt: skip
    assert path == str(base / "4")
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    assert not os.path.exists(os.path.join(path, WARMUP_FILE))  # no warm-up texts, no warm-up file
    with pytest.raises(ValueError, match="already exists"):
        export_for_serving(model, preprocessor, str(tmp_path / "versions"), model_name="reviews",
                           labels=LABELS, version=3)  # fmt: skip


# Exports are atomic: a version directory appears whole (TF Serving serves the highest one it sees)
# or not at all.


def test_an_export_without_tensorflow_serving_api_fails_before_any_work(
    trained, tmp_path, monkeypatch
):
    model, preprocessor = trained
    for name in [m for m in sys.modules if m.startswith("tensorflow_serving.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)  # as if never installed

    def work(*args, **kwargs):
        raise AssertionError("the export began before its dependencies were checked")

    monkeypatch.setattr("keras_mtsa.export.text_file_table", work)  # its first step
    with pytest.raises(ImportError, match="pip install 'tensorflow-serving-api"):
        export_for_serving(model, preprocessor, str(tmp_path), model_name="m", labels=LABELS)
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_an_export_failing_midway_leaves_no_version_and_the_next_takes_its_number(
    trained, tmp_path, monkeypatch
):
    model, preprocessor = trained

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr("keras_mtsa.export.write_warmup_requests", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        export_for_serving(model, preprocessor, str(tmp_path), model_name="m", labels=LABELS)
    assert os.listdir(tmp_path) == []  # neither the version, nor a temporary directory
    monkeypatch.undo()
    path = export_for_serving(model, preprocessor, str(tmp_path), model_name="m", labels=LABELS)
    assert path == str(tmp_path / "m" / "1") and os.listdir(tmp_path / "m") == ["1"]
    for name in ("saved_model.pb", "variables", "assets", WARMUP_FILE, DESCRIPTION_FILE):
        assert os.path.exists(os.path.join(path, name)), name


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(labels=["only one"]), "must name each of the model's 2 classes"),
        (dict(labels=["a", ""]), "non-empty single-line"),
        (dict(labels=["a", "b\nc"]), "non-empty single-line"),
        (dict(model_name="../escape"), "model_name"),
        (dict(version=0), "version"),
        (dict(request_padding="shortest"), "`request_padding` must be one of"),
    ],
)
def test_bad_export_arguments(trained, tmp_path, kwargs, message):
    model, preprocessor = trained
    arguments = {"model_name": "reviews", "labels": LABELS, **kwargs}
    with pytest.raises(ValueError, match=message):
        export_for_serving(model, preprocessor, str(tmp_path), **arguments)
    assert not os.path.exists(tmp_path / "reviews")


@pytest.mark.slow
def test_pair_model_export_takes_premise_and_hypothesis(trained, tmp_path):
    _, preprocessor = trained
    model = models.build_pair_classifier(
        3, vocabulary_size=preprocessor.vocabulary_size, max_length=MAX_LENGTH, embedding_dim=16,
        hidden_units=16,
    )  # fmt: skip
    labels = ["entailment", "neutral", "contradiction"]
    path = export_for_serving(
        model, preprocessor, str(tmp_path), model_name="nli", labels=labels, pair=True
    )
    served = tf.saved_model.load(path)
    default = served.signatures["serving_default"]
    assert default.structured_input_signature[1] == {
        "premise": tf.TensorSpec([None], tf.string, name="premise"),
        "hypothesis": tf.TensorSpec([None], tf.string, name="hypothesis"),
    }
    token_ids = served.signatures["token_ids"].structured_input_signature[1]
    assert set(token_ids) == {"premise_ids", "hypothesis_ids"}
    premises = ["a man is playing a guitar", "", "\xff"]
    hypotheses = ["a person plays music", "nobody is here", "😀"]
    ids = {
        "premise": preprocessor(tf.constant(premises)),
        "hypothesis": preprocessor(tf.constant(hypotheses)),
    }
    expected = model(ids, training=False).numpy()
    text_answer, ids_answer = serving.serve(path, [
        ("serving_default", {"premise": premises, "hypothesis": hypotheses}),
        ("token_ids", {"premise_ids": ids["premise"].numpy(),
                       "hypothesis_ids": ids["hypothesis"].numpy()}),
    ])  # fmt: skip
    for answer in (text_answer, ids_answer):  # on TF Serving's road
        np.testing.assert_allclose(answer["probabilities"], expected, rtol=0, atol=1e-5)
        assert [label.decode() for label in answer["label"]] == [
            labels[i] for i in expected.argmax(-1)
        ]
    log = next(iter(tf.data.TFRecordDataset(os.path.join(path, WARMUP_FILE))))
    from tensorflow_serving.apis import prediction_log_pb2

    request = prediction_log_pb2.PredictionLog.FromString(log.numpy()).predict_log.request
    assert sorted(request.inputs) == ["hypothesis", "premise"]


# The readiness checker on the export's directory layout (the checker's own
# rejections: test_serving.py).


def _check_exit(path, capsys):
    status = serving.main(["check", str(path)])
    return status, capsys.readouterr().out


def test_checker_rejects_a_directory_without_saved_model_pb(tmp_path, exported, capsys):
    shutil.copytree(exported, tmp_path / "1")
    os.remove(tmp_path / "1" / "saved_model.pb")
    for path in (tmp_path / "1", tmp_path, tmp_path / "missing"):
        status, output = _check_exit(path, capsys)
        assert status != 0
        assert "has no saved_model.pb" in output and "NOT READY" in output


def test_checker_refuses_a_directory_not_named_by_a_version(tmp_path, exported, capsys):
    # TF Serving serves base_path/<model>/<integer version>/ and ignores any other name.
    shutil.copytree(exported, tmp_path / "my_export")
    status, output = _check_exit(tmp_path / "my_export", capsys)
    assert status != 0 and "NOT READY" in output
    assert "ERROR: " in output and "'my_export' is not a version number" in output
    assert "models.config" not in output


@pytest.mark.slow
def test_checker_refuses_an_export_whose_warmup_file_is_missing(tmp_path, exported, capsys):
    shutil.copytree(exported, tmp_path / "reviews" / "1")
    os.remove(tmp_path / "reviews" / "1" / WARMUP_FILE)
    status, output = _check_exit(tmp_path / "reviews" / "1", capsys)
    assert status != 0 and "NOT READY" in output
    assert "keras_mtsa.json lists 2 warm-up requests, but" in output


# Tables: named, so TF Serving's loader initializes what the signatures read; never
# another's vocabulary.


@pytest.mark.slow
def test_two_vocabularies_in_one_process_each_export_answers_with_its_own(trained, tmp_path):
    import gc

    model, fitted = trained
    tokens = read_vocabulary(fitted.config()["vocabulary_file"])
    texts = [
        "the film is great",
        "the plot is dull , but the ending is wonderful",
        "boring and flat",
    ]
    # The same path for both, rewritten in between, and the first preprocessor freed before
    # the second exists: neither a path nor a reused memory address may lead the second to
    # the first one's table.
    path = str(tmp_path / "vocabulary.txt")
    write_vocabulary(tokens, path)
    first = TextPreprocessor(path, MAX_LENGTH)
    first_ids = first(tf.constant(texts)).numpy()
    first_export = export_for_serving(
        model, first, str(tmp_path / "first"), model_name="m", labels=LABELS
    )
    del first
    gc.collect()
    write_vocabulary(tokens[:2] + tokens[2:][::-1], path)  # the same words, other ids
    second = TextPreprocessor(path, MAX_LENGTH)
    second_ids = second(tf.constant(texts)).numpy()
    assert not np.array_equal(first_ids, second_ids)
    second_export = export_for_serving(
        model, second, str(tmp_path / "second"), model_name="m", labels=LABELS
    )
    for export, ids in ((first_export, first_ids), (second_export, second_ids)):
        expected = model(ids, training=False).numpy()
        [answer] = serving.serve(export, [("serving_default", {"text": texts})])
        np.testing.assert_allclose(
            answer["probabilities"], expected, rtol=0, atol=1e-5
        )  # TF Serving's road
        # Loaded in this process too, next to the live preprocessor and the other export.
        loaded = tf.saved_model.load(export).signatures["serving_default"](text=tf.constant(texts))
        np.testing.assert_allclose(loaded["probabilities"].numpy(), expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(second(tf.constant(texts)).numpy(), second_ids)


@pytest.mark.slow
def test_a_subword_export_serves_on_the_session_road(tmp_path):
    texts = TRAIN_TEXTS * 3
    preprocessor = TextPreprocessor.from_texts(
        texts, str(tmp_path / "wordpiece.txt"), MAX_LENGTH, subwords=True, max_size=60, min_count=1
    )
    keras.utils.set_random_seed(4)
    model = models.build_sentence_classifier(
        len(LABELS), vocabulary_size=preprocessor.vocabulary_size, max_length=MAX_LENGTH,
        embedding_dim=8, hidden_units=8,
    )  # fmt: skip
    path = export_for_serving(
        model, preprocessor, str(tmp_path), model_name="subwords", labels=LABELS
    )
    probes = [b"the films are greatest", b"unseenword", b""]
    [answer] = serving.serve(path, [("serving_default", {"text": probes})])
    np.testing.assert_allclose(
        answer["probabilities"], _keras_probabilities((model, preprocessor), probes), atol=1e-5
    )
    assert (
        "WordpieceTokenizeWithOffsets" in serving.check(path, threads=0)["ops"]["tensorflow_text"]
    )
