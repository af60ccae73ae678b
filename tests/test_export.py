"""SavedModel export for TF Serving (`keras_mtsa.export`) and the readiness checker (`keras_mtsa.serving`).

One small sentence classifier is trained a few steps and exported once per module. The export is
reloaded in a fresh process without Keras or keras_mtsa, queried with hostile inputs, and checked with
`python -m keras_mtsa.serving check`, next to SavedModels the checker must reject.
"""

import base64
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import keras
import tensorflow as tf

from keras_mtsa import models
from keras_mtsa import serving
from keras_mtsa.data import TextClassificationData
from keras_mtsa.data import TextPreprocessor
from keras_mtsa.data import make_classification_dataset
from keras_mtsa.export import WARMUP_FILE
from keras_mtsa.export import WARMUP_TEXTS
from keras_mtsa.export import export_for_serving

LABELS = ["negative", "positive"]
MAX_LENGTH = 16
TRAIN_TEXTS = [
    "the film is great", "the plot is dull", "a moving and beautiful story", "boring , predictable and flat",
    "the acting is not bad at all", "the ending is awful", "what a charming , clever script",
    "the pacing is weak",
]  # fmt: skip
# Compared between the in-memory Keras model and the reloaded SavedModel: plain, unknown words, empty,
# long, invalid UTF-8, mixed scripts and emoji.
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

# Runs in a fresh process: Keras and keras_mtsa cannot be imported there (their sys.modules entries are
# None). `import tensorflow_text` itself subclasses tf.keras.layers.Layer, so its op libraries are loaded
# directly, as a serving binary links them. Prints nothing useful; writes the outputs to an .npz file.
RELOAD_SCRIPT = r"""
import base64, glob, importlib.util, json, os, sys
BLOCKED = ("keras", "keras_mtsa", "tf_keras")
for name in BLOCKED:
    sys.modules[name] = None
import numpy as np
import tensorflow as tf
text_ops = importlib.util.find_spec("tensorflow_text").submodule_search_locations[0]
for library in sorted(glob.glob(os.path.join(text_ops, "python", "ops", "*.so"))):
    tf.load_op_library(library)
path, texts_file, output_file = sys.argv[1:4]
with open(texts_file) as file:
    texts = [base64.b64decode(text) for text in json.load(file)]
served = tf.saved_model.load(path).signatures["serving_default"]
result = served(text=tf.constant(texts, tf.string))
loaded = sorted(name for name, module in sys.modules.items()
                if module is not None and name.split(".")[0] in BLOCKED)
np.savez(output_file, probabilities=result["probabilities"].numpy(), label=result["label"].numpy(),
         label_id=result["label_id"].numpy(), loaded=np.array(loaded, dtype=object))
"""


def _environment():
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environment["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return environment


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model, preprocessor) after a few training steps."""
    directory = tmp_path_factory.mktemp("vocabulary")
    preprocessor = TextPreprocessor.from_texts(TRAIN_TEXTS, str(directory / "vocabulary.txt"), MAX_LENGTH)
    data = TextClassificationData(TRAIN_TEXTS * 4, [1, 0, 1, 0, 1, 0, 1, 0] * 4, LABELS)
    keras.utils.set_random_seed(2)
    model = models.build_sentence_classifier(
        len(LABELS), vocabulary_size=preprocessor.vocabulary_size, max_length=MAX_LENGTH,
        embedding_dim=16, hidden_units=16, dropout=0.1,
    )  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(make_classification_dataset(data, preprocessor, batch_size=8, shuffle=True, seed=2), verbose=0)
    return model, preprocessor


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("saved_models")


@pytest.fixture(scope="module")
def exported(trained, export_dir):
    model, preprocessor = trained
    return export_for_serving(model, preprocessor, str(export_dir), model_name="reviews", labels=LABELS)


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported)


def _keras_probabilities(trained, texts):
    model, preprocessor = trained
    return model(preprocessor(tf.constant(texts, tf.string)), training=False).numpy()


def _assert_valid(outputs, count):
    probabilities = outputs["probabilities"].numpy()
    label_id = outputs["label_id"].numpy()
    label = [value.decode("utf-8") for value in outputs["label"].numpy()]
    assert probabilities.shape == (count, len(LABELS)) and probabilities.dtype == np.float32
    assert label_id.shape == (count,) and label_id.dtype == np.int64
    assert len(label) == count
    assert np.all(np.isfinite(probabilities)) and np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(label_id, probabilities.argmax(-1))
    assert label == [LABELS[i] for i in label_id]


# Clean processes, started together and awaited once: the reload without Keras, and the readiness check.


@pytest.fixture(scope="module")
def fresh_processes(trained, exported, tmp_path_factory):
    """Runs the reload script and `python -m keras_mtsa.serving check` on the export, concurrently.

    Meanwhile the vocabulary file the preprocessor was built from is moved away: the SavedModel must
    read its own copy in assets/.
    """
    _, preprocessor = trained
    directory = tmp_path_factory.mktemp("fresh")
    texts_file, output_file = directory / "texts.json", directory / "outputs.npz"
    texts_file.write_text(json.dumps([base64.b64encode(text).decode() for text in PROBE_TEXTS]))
    vocabulary = preprocessor.config()["vocabulary_file"]
    os.rename(vocabulary, vocabulary + ".moved")
    try:
        reload = subprocess.Popen(
            [sys.executable, "-c", RELOAD_SCRIPT, exported, str(texts_file), str(output_file)],
            cwd=directory, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        check = subprocess.Popen(
            [sys.executable, "-m", "keras_mtsa.serving", "check", exported],
            cwd=directory, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        reload_output, _ = reload.communicate(timeout=300)
        check_output, _ = check.communicate(timeout=300)
    finally:
        os.rename(vocabulary + ".moved", vocabulary)
    outputs = dict(np.load(output_file, allow_pickle=True)) if reload.returncode == 0 else None
    return {
        "reload": (reload.returncode, reload_output, outputs),
        "check": (check.returncode, check_output),
    }


def test_reloaded_without_keras_gives_the_keras_probabilities(trained, fresh_processes):
    returncode, output, outputs = fresh_processes["reload"]
    assert returncode == 0, output[-3000:]
    assert list(outputs["loaded"]) == [], "keras or keras_mtsa was imported to load or serve the model"
    expected = _keras_probabilities(trained, PROBE_TEXTS)
    assert outputs["probabilities"].shape == expected.shape
    np.testing.assert_allclose(outputs["probabilities"], expected, rtol=0, atol=1e-5)
    assert [label.decode() for label in outputs["label"]] == [LABELS[i] for i in expected.argmax(-1)]


def test_readiness_check_passes_on_the_export(fresh_processes):
    returncode, output = fresh_processes["check"]
    assert returncode == 0, output[-3000:]
    assert "READY for TF Serving" in output
    assert "ERROR" not in output
    assert "warm-up requests: 2" in output
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
    assert default.structured_input_signature[1] == {"text": tf.TensorSpec([None], tf.string, name="text")}
    assert set(default.structured_outputs) == {"probabilities", "label_id", "label"}
    ids = loaded.signatures["token_ids"]
    assert ids.structured_input_signature[1] == {
        "token_ids": tf.TensorSpec([None, MAX_LENGTH], tf.int32, name="token_ids")
    }


def test_token_ids_signature_matches_serving_default(trained, loaded):
    _, preprocessor = trained
    texts = tf.constant(PROBE_TEXTS, tf.string)
    from_text = loaded.signatures["serving_default"](text=texts)
    from_ids = loaded.signatures["token_ids"](token_ids=preprocessor(texts))
    np.testing.assert_allclose(from_ids["probabilities"].numpy(), from_text["probabilities"].numpy(), atol=1e-6)
    np.testing.assert_array_equal(from_ids["label"].numpy(), from_text["label"].numpy())
    np.testing.assert_array_equal(from_ids["label_id"].numpy(), from_text["label_id"].numpy())


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


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(labels=["only one"]), "must name each of the model's 2 classes"),
        (dict(labels=["a", ""]), "non-empty single-line"),
        (dict(labels=["a", "b\nc"]), "non-empty single-line"),
        (dict(model_name="../escape"), "model_name"),
        (dict(version=0), "version"),
    ],
)
def test_bad_export_arguments(trained, tmp_path, kwargs, message):
    model, preprocessor = trained
    arguments = {"model_name": "reviews", "labels": LABELS, **kwargs}
    with pytest.raises(ValueError, match=message):
        export_for_serving(model, preprocessor, str(tmp_path), **arguments)
    assert not os.path.exists(tmp_path / "reviews")


def test_pair_model_export_takes_premise_and_hypothesis(trained, tmp_path):
    _, preprocessor = trained
    model = models.build_pair_classifier(
        3, vocabulary_size=preprocessor.vocabulary_size, max_length=MAX_LENGTH, embedding_dim=16,
        hidden_units=16,
    )  # fmt: skip
    labels = ["entailment", "neutral", "contradiction"]
    path = export_for_serving(model, preprocessor, str(tmp_path), model_name="nli", labels=labels, pair=True)
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
    outputs = default(premise=tf.constant(premises), hypothesis=tf.constant(hypotheses))
    ids = {
        "premise": preprocessor(tf.constant(premises)),
        "hypothesis": preprocessor(tf.constant(hypotheses)),
    }
    np.testing.assert_allclose(
        outputs["probabilities"].numpy(), model(ids, training=False).numpy(), rtol=0, atol=1e-5
    )
    assert [label.decode() for label in outputs["label"].numpy()] == [
        labels[i] for i in outputs["label_id"].numpy()
    ]
    log = next(iter(tf.data.TFRecordDataset(os.path.join(path, WARMUP_FILE))))
    from tensorflow_serving.apis import prediction_log_pb2

    request = prediction_log_pb2.PredictionLog.FromString(log.numpy()).predict_log.request
    assert sorted(request.inputs) == ["hypothesis", "premise"]


# Bad input at serving time, on the reloaded SavedModel.


def _serve(loaded, texts):
    return loaded.signatures["serving_default"](text=tf.constant(texts, tf.string))


def test_empty_string(loaded):
    _assert_valid(_serve(loaded, [""]), 1)


def test_whitespace_only(loaded):
    _assert_valid(_serve(loaded, [" \t\n\r\u3000 "]), 1)


def test_a_100000_character_string(loaded):
    text = ("the film is great " * 6000)[:100_000]
    assert len(text) == 100_000
    _assert_valid(_serve(loaded, [text]), 1)


def test_invalid_utf8(loaded):
    outputs = _serve(loaded, [b"\xff\xfe\xfd abc", b"abc \xc3"])  # invalid bytes; a cut 2-byte character
    _assert_valid(outputs, 2)


def test_mixed_scripts_and_emoji(loaded):
    texts = ["😀 the film текст 文本 مرحبا é́ 👍🏽 great!!!", "🎬🎬🎬"]
    _assert_valid(_serve(loaded, texts), 2)


def test_a_batch_of_one(loaded, trained):
    outputs = _serve(loaded, ["the film is great"])
    _assert_valid(outputs, 1)
    np.testing.assert_allclose(
        outputs["probabilities"].numpy(), _keras_probabilities(trained, ["the film is great"]), atol=1e-5
    )


def test_a_batch_of_1000(loaded):
    texts = [f"{TRAIN_TEXTS[i % len(TRAIN_TEXTS)]} {i}" for i in range(1000)]
    outputs = _serve(loaded, texts)
    _assert_valid(outputs, 1000)
    # Each row is computed on its own: the same text gives the same probabilities wherever it sits.
    single = _serve(loaded, texts[123:124])["probabilities"].numpy()
    np.testing.assert_allclose(outputs["probabilities"].numpy()[123:124], single, atol=1e-6)


def test_a_batch_of_zero_strings(loaded):
    outputs = _serve(loaded, tf.constant([], tf.string))
    assert outputs["probabilities"].shape == (0, len(LABELS))
    assert outputs["label_id"].shape == (0,)
    assert outputs["label"].shape == (0,)
    _assert_valid(outputs, 0)


# The readiness checker rejects what TF Serving could not serve.


class _StringModel(tf.Module):
    """Has serving_default's inputs and outputs; `python_op` puts a tf.py_function in the graph."""

    def __init__(self, python_op):
        super().__init__()
        self.python_op = python_op
        self.labels = tf.constant(["a", "b"])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(self, text):
        if self.python_op:
            lengths = tf.py_function(lambda t: tf.cast(tf.strings.length(t), tf.float32), [text], tf.float32)
        else:
            lengths = tf.cast(tf.strings.length(text), tf.float32)
        score = tf.sigmoid(tf.reshape(lengths, [-1, 1]))
        probabilities = tf.concat([score, 1.0 - score], axis=1)
        label_id = tf.argmax(probabilities, axis=-1)
        label = tf.gather(self.labels, label_id)
        return {"probabilities": probabilities, "label_id": label_id, "label": label}


def _check_exit(path, capsys):
    """`python -m keras_mtsa.serving check PATH`'s exit status and output (main runs in-process; the
    checks themselves run in a clean subprocess, as from the command line)."""
    status = serving.main(["check", str(path)])
    return status, capsys.readouterr().out


def test_checker_rejects_a_py_function(tmp_path, capsys):
    module = _StringModel(python_op=True)
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    status, output = _check_exit(tmp_path, capsys)
    assert status != 0
    assert "NOT READY" in output
    assert "py_function" in output and "EagerPyFunc" in output


def test_checker_rejects_a_saved_model_without_serving_default(tmp_path, capsys):
    module = _StringModel(python_op=False)
    tf.saved_model.save(module, str(tmp_path), signatures={"predict": module.serve})
    status, output = _check_exit(tmp_path, capsys)
    assert status != 0
    assert "no 'serving_default' signature" in output and "predict" in output


def test_checker_rejects_a_directory_without_saved_model_pb(tmp_path, exported, capsys):
    shutil.copytree(exported, tmp_path / "1")
    os.remove(tmp_path / "1" / "saved_model.pb")
    for path in (tmp_path / "1", tmp_path, tmp_path / "missing"):
        status, output = _check_exit(path, capsys)
        assert status != 0
        assert "has no saved_model.pb" in output and "NOT READY" in output
