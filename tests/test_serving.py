"""The readiness checker (`keras_mtsa.serving`) on SavedModels of every kind, on TF Serving's road.

Each test builds the SavedModel it needs: a user's Keras model exported with `model.export`, plain
`tf.Module`s with one planted flaw each (an anonymous lookup table, a py_function, unnormalized or
non-finite probabilities, wrong dtypes, an op nobody registers), and keras-mtsa exports with XLA
kept. The checker must call the good ones READY and name the flaw of each bad one.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_mtsa import MTSA
from keras_mtsa import Source2TokenPooling
from keras_mtsa import serving
from keras_mtsa.data import TextPreprocessor
from keras_mtsa.data.tables import text_file_table
from keras_mtsa.export import export_for_serving
from keras_mtsa.serving.session_road import SessionRoadError

# Every test here starts the checker's processes (each imports TensorFlow).
pytestmark = pytest.mark.slow

LABELS = [
    "b-label",
    "a-label",
]  # not in sorted order: a label looked up by sorted position would show


def _check(path, capsys, *flags):
    """`keras-mtsa-serving check PATH FLAGS`: exit status and output (main runs in-process; the
    checks themselves run in clean subprocesses, as from the command line)."""
    status = serving.main(["check", str(path), *flags])
    return status, capsys.readouterr().out


def _graph_xla_functions(path):
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as file:
        saved_model.ParseFromString(file.read())
    return [f.signature.name for f in saved_model.meta_graphs[0].graph_def.library.function
            if f.attr["_XlaMustCompile"].b]  # fmt: skip


# A user's model: MTSA in a functional model on int token ids, exported with
# Keras's own model.export.


@pytest.fixture(scope="module")
def user_export(tmp_path_factory):
    keras.utils.set_random_seed(3)
    ids = keras.Input((12,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(50, 16, mask_zero=True)(ids)
    x = MTSA(num_heads=2, head_dim=8)(x)  # jit_compile=True, the layer's default
    outputs = keras.layers.Dense(3, activation="softmax")(Source2TokenPooling()(x))
    model = keras.Model(ids, outputs)
    token_ids = np.random.default_rng(0).integers(1, 50, size=(5, 12)).astype("int32")
    token_ids[:, 7:] = 0  # padding
    model.predict(token_ids, verbose=0)  # traced and XLA-compiled for predict first, as users do
    path = str(tmp_path_factory.mktemp("user") / "1")
    model.export(path, verbose=False)
    return model, token_ids, path


@pytest.mark.xdist_group("user_export")
def test_model_export_of_a_user_model_has_no_xla_marker_and_serves(user_export):
    model, token_ids, path = user_export
    assert _graph_xla_functions(path) == []
    [answer] = serving.serve(path, [("serving_default", {"token_ids": token_ids})])
    np.testing.assert_allclose(
        answer["output_0"], model.predict(token_ids, verbose=0), rtol=0, atol=1e-5
    )


@pytest.mark.xdist_group("user_export")
def test_checker_calls_a_user_model_ready_without_the_text_schema(user_export, capsys):
    _, _, path = user_export
    status, output = _check(path, capsys)
    assert status == 0, output
    assert "READY for TF Serving" in output and "ERROR:" not in output
    assert "session road: loaded with TF_LoadSessionFromSavedModel" in output
    assert "serving_default: generated inputs" in output and "serve: generated inputs" in output
    assert "concurrency: 8 threads x 25 requests on one session: 200 answered" in output
    # Asked to, it applies keras-mtsa's text schema, which a token-id model does not meet.
    status, output = _check(path, capsys, "--schema", "keras-mtsa")
    assert status != 0
    assert "serving_default inputs must be tf.string [None]" in output
    assert "serving_default lacks output 'probabilities'" in output


def test_a_text_vectorization_model_is_refused_by_export_for_serving_and_model_export_serves_it(
    tmp_path, capsys
):
    vectorize = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=8)
    vectorize.adapt(["a good film", "a bad film", "a great story", "a dull plot"])
    keras.utils.set_random_seed(5)
    ids = keras.Input((8,), dtype="int64")
    x = keras.layers.Embedding(20, 8, mask_zero=True)(ids)
    x = Source2TokenPooling()(MTSA(num_heads=2, head_dim=4)(x))
    classifier = keras.Model(ids, keras.layers.Dense(2, activation="softmax")(x))
    with pytest.raises(
        ValueError,
        match=r"^`preprocessor` must be a keras_mtsa\.data\.TextPreprocessor \(.*`model\.export"
        r"\(path\)`.*\)\. Received: preprocessor=<TextVectorization",
    ):
        export_for_serving(classifier, vectorize, str(tmp_path), model_name="tv", labels=LABELS)
    assert os.listdir(tmp_path) == []
    # What the message advises: the vectorization inside the model, and Keras's own export.
    text = keras.Input((), dtype="string", name="text")
    model = keras.Model(text, classifier(vectorize(text)))
    path = str(tmp_path / "tv" / "1")
    model.export(path, verbose=False)
    status, output = _check(path, capsys)
    assert status == 0, output
    assert "READY for TF Serving" in output and "ERROR:" not in output
    assert "serving_default: a batch of 1000" in output  # the hostile texts ran on the session road


def test_export_for_serving_keeps_xla_on_request_and_the_checker_flags_it(tmp_path, capsys):
    vocabulary = tmp_path / "vocabulary.txt"
    preprocessor = TextPreprocessor.from_texts(["a good film", "a bad film"], str(vocabulary), 8)
    text = keras.Input((8,), dtype="int32")
    x = keras.layers.Embedding(preprocessor.vocabulary_size, 8, mask_zero=True)(text)
    x = Source2TokenPooling()(MTSA(num_heads=2, head_dim=4, jit_compile=True)(x))
    model = keras.Model(text, keras.layers.Dense(2, activation="softmax")(x))
    path = export_for_serving(
        model, preprocessor, str(tmp_path), model_name="xla", labels=LABELS, jit_compile=True
    )
    assert _graph_xla_functions(path)
    status, output = _check(path, capsys)
    assert status != 0
    assert "marked _XlaMustCompile" in output and "--xla_cpu_compilation_enabled=true" in output
    status, output = _check(path, capsys, "--allow-xla")
    assert status == 0, output
    assert "WARNING" in output and "marked _XlaMustCompile" in output


# A text-classifier module, with one flaw planted at a time.


class _TextClassifier(tf.Module):
    """serving_default: text -> probabilities, label_id, label, through a vocabulary
    table over an Asset."""

    def __init__(self, vocabulary_file, flaw=None):
        super().__init__()
        self.flaw = flaw
        self.vocabulary = tf.saved_model.Asset(vocabulary_file)
        if flaw == "anonymous table":
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.TextFileInitializer(
                    self.vocabulary, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64,
                    tf.lookup.TextFileIndex.LINE_NUMBER,
                ),
                default_value=0,
                experimental_is_anonymous=True,
            )  # fmt: skip
        else:
            self.table = text_file_table(
                self.vocabulary, key_dtype=tf.string, key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
                value_dtype=tf.int64, value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
                default_value=0, kind="test",
            )  # fmt: skip
        self.labels = tf.constant(LABELS)
        dtype = tf.int32 if flaw == "int32 input" else tf.string
        self.serve = tf.function(self._serve, input_signature=[tf.TensorSpec([None], dtype)])

    def _serve(self, text):
        if self.flaw == "int32 input":
            text = tf.strings.as_string(text)
        ids = self.table.lookup(tf.strings.split(text).to_tensor(default_value=""))
        score = tf.reduce_sum(tf.cast(ids, tf.float32), axis=1, keepdims=True)
        if self.flaw == "py_function":
            score = tf.py_function(lambda s: s * 1.0, [score], tf.float32)
        score = tf.sigmoid(score - 1.5)
        probabilities = tf.concat([score, 1.0 - score], axis=1)
        if self.flaw == "unnormalized":
            probabilities = probabilities * 0.5
        if self.flaw == "non-finite":
            probabilities = probabilities / tf.reduce_min(probabilities * 0.0)
        label_id = tf.argmax(
            probabilities,
            axis=-1,
            output_type=tf.int32 if self.flaw == "int32 label_id" else tf.int64,
        )
        if self.flaw == "wrong label":
            label = tf.gather(self.labels, 1 - label_id)
        else:
            label = tf.gather(self.labels, label_id)
        return {"probabilities": probabilities, "label_id": label_id, "label": label}


def _save(tmp_path, flaw=None, signature="serving_default"):
    vocabulary = tmp_path / "vocabulary.txt"
    vocabulary.write_text("[PAD]\ngood\nbad\n", encoding="utf-8")
    module = _TextClassifier(str(vocabulary), flaw)
    path = str(tmp_path / "model" / "1")
    tf.saved_model.save(module, path, signatures={signature: module.serve})
    return path


def test_a_named_table_over_an_asset_is_ready(tmp_path, capsys):
    path = _save(tmp_path)
    status, output = _check(path, capsys, "--schema", "keras-mtsa")
    assert status == 0, output
    [answer] = serving.serve(path, [("serving_default", {"text": ["good bad", "nothing"]})])
    np.testing.assert_allclose(
        answer["probabilities"][:, 0], 1 / (1 + np.exp(-np.array([1.5, -1.5]))), atol=1e-6
    )


def test_an_anonymous_table_fails_on_the_session_road_and_the_checker_names_it(tmp_path, capsys):
    path = _save(tmp_path, "anonymous table")
    # tf.saved_model.load re-creates the table from the object graph, so Python's road serves it ...
    loaded = tf.saved_model.load(path).signatures["serving_default"]
    assert loaded(text=tf.constant(["good"]))["probabilities"].shape == (1, 2)
    # ... but TF Serving's road initializes one instance and reads another.
    with pytest.raises(
        SessionRoadError, match="(?s)Table not initialized.*anonymous lookup tables: 'hash_table'"
    ):
        serving.serve(path, [("serving_default", {"text": ["good"]})])
    status, output = _check(path, capsys)
    assert status != 0 and "NOT READY" in output
    assert "anonymous lookup tables (AnonymousHashTable): 'hash_table'" in output
    assert "experimental_is_anonymous=False" in output
    assert "failed on the session road" in output and "Table not initialized" in output


@pytest.mark.parametrize(
    "flaw, message",
    [
        (
            "py_function",
            "ops that need a Python runtime (py_function), which TF Serving has not: EagerPyFunc",
        ),
        ("unnormalized", "probabilities are not a distribution"),
        ("non-finite", "output 'probabilities' has non-finite values"),
        ("int32 label_id", "output 'label_id' is int32, expected int64"),
        ("int32 input", "serving_default inputs must be tf.string [None]"),
        ("wrong label", "label does not name label_id's class"),
    ],
)
def test_checker_names_the_flaw(tmp_path, capsys, flaw, message):
    path = _save(tmp_path, flaw)
    if flaw == "wrong label":  # label names are known only for keras-mtsa exports
        os.makedirs(os.path.join(path, "assets.extra"), exist_ok=True)
        with open(os.path.join(path, "assets.extra", "keras_mtsa.json"), "w") as file:
            file.write('{"labels": %s}' % str(LABELS).replace("'", '"'))
    status, output = _check(path, capsys, "--schema", "keras-mtsa")
    assert status != 0 and "NOT READY" in output
    assert message in output, output


def test_checker_rejects_an_op_nobody_registers(tmp_path, capsys):
    from tensorflow.core.protobuf import saved_model_pb2

    path = _save(tmp_path)
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as file:
        saved_model.ParseFromString(file.read())
    renamed = 0
    for function in saved_model.meta_graphs[0].graph_def.library.function:
        for node in function.node_def:
            if node.op == "Sigmoid":
                node.op, renamed = "KerasMtsaNoSuchOp", renamed + 1
    assert renamed
    with open(os.path.join(path, "saved_model.pb"), "wb") as file:
        file.write(saved_model.SerializeToString())
    status, output = _check(path, capsys)
    assert status != 0
    assert "ops registered by neither TensorFlow nor tensorflow-text: KerasMtsaNoSuchOp" in output


def test_without_serving_default_the_checker_warns_and_the_text_schema_fails(tmp_path, capsys):
    # TF Serving loads such a model; only requests that name the signature can use it.
    path = _save(tmp_path, signature="predict")
    status, output = _check(path, capsys)
    assert status == 0, output
    assert (
        "WARNING: no 'serving_default' signature" in output
        and "predict: generated inputs" in output
    )
    assert '"signature_name": "predict"' in output  # the REST request names it
    status, output = _check(path, capsys, "--schema", "keras-mtsa")
    assert status != 0
    assert "no 'serving_default' signature, which the keras-mtsa schema requires" in output


def test_checker_rejects_a_failing_warmup_request(tmp_path, capsys):
    from tensorflow_serving.apis import model_pb2
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.apis import prediction_log_pb2

    path = _save(tmp_path)
    os.makedirs(os.path.join(path, "assets.extra"))
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name="m", signature_name="serving_default")
    )
    request.inputs["text"].CopyFrom(
        tf.make_tensor_proto([[1.0]], dtype=tf.float32)
    )  # wrong dtype and rank
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )
    with tf.io.TFRecordWriter(
        os.path.join(path, "assets.extra", "tf_serving_warmup_requests")
    ) as writer:
        writer.write(log.SerializeToString())
    status, output = _check(path, capsys)
    assert status != 0
    assert "warm-up request 0" in output and "failed on the session road" in output


def test_checker_reads_the_meta_graph_tagged_exactly_serve(tmp_path, capsys):
    # TF Serving loads the MetaGraph whose tags are exactly {serve}; a {serve, gpu} one in front of
    # it, with fewer signatures, must not be the one inspected.
    from tensorflow.core.protobuf import meta_graph_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    vocabulary = tmp_path / "vocabulary.txt"
    vocabulary.write_text("[PAD]\ngood\nbad\n", encoding="utf-8")
    module = _TextClassifier(str(vocabulary))
    path = str(tmp_path / "model" / "1")
    tf.saved_model.save(
        module, path, signatures={"serving_default": module.serve, "extra": module.serve}
    )
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as file:
        saved_model.ParseFromString(file.read())
    serve = meta_graph_pb2.MetaGraphDef()
    serve.CopyFrom(saved_model.meta_graphs[0])
    gpu = saved_model.meta_graphs[0]
    gpu.meta_info_def.tags[:] = ["serve", "gpu"]
    del gpu.signature_def["extra"]
    saved_model.meta_graphs.add().CopyFrom(serve)
    with open(os.path.join(path, "saved_model.pb"), "wb") as file:
        file.write(saved_model.SerializeToString())
    status, output = _check(path, capsys, "--schema", "keras-mtsa")
    assert status == 0, output
    assert "extra: generated inputs" in output


class _MixedInputs(tf.Module):
    """Text and a numeric feature in, a float32 and a bfloat16 output: one batch
    size for all inputs."""

    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None, 2], tf.float32)]
    )
    def serve(self, text, feature):
        score = tf.cast(tf.strings.length(text), tf.float32)[:, None] + feature
        return {"score": score, "compact": tf.cast(score, tf.bfloat16)}


def test_checker_feeds_one_batch_to_mixed_inputs_and_skips_outputs_it_cannot_read(tmp_path, capsys):
    module = _MixedInputs()
    path = str(tmp_path / "1")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    status, output = _check(path, capsys)
    assert status == 0, output
    assert "outputs ['compact'] are of a dtype the checker does not read" in output
    [answer] = serving.serve(
        path,
        [("serving_default", {"text": ["ab\x00", "c"], "feature": np.zeros((2, 2), "float32")})],
    )
    np.testing.assert_array_equal(
        answer["score"], [[3.0, 3.0], [1.0, 1.0]]
    )  # the trailing NUL counts


def test_checker_rejects_a_saved_model_without_a_serve_meta_graph(tmp_path, capsys):
    from tensorflow.core.protobuf import saved_model_pb2

    path = _save(tmp_path)
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as file:
        saved_model.ParseFromString(file.read())
    saved_model.meta_graphs[0].meta_info_def.tags[:] = ["train"]
    with open(os.path.join(path, "saved_model.pb"), "wb") as file:
        file.write(saved_model.SerializeToString())
    status, output = _check(path, capsys)
    assert status != 0
    assert (
        "no meta graph tagged exactly {serve}, which TF Serving loads (tags: [['train']])" in output
    )
