"""SavedModel export for TF Serving: raw strings in, probabilities and label names out.

Layout written by `export_for_serving`: `<export_dir>/<model_name>/<version>/` with

- `serving_default`: `text` (tf.string [None]) or, for pair models, `premise` and `hypothesis`;
  outputs `probabilities` (float32 [None, classes]), `label_id` (int64 [None]) and
  `label` (tf.string [None]);
- `token_ids`: the same outputs from padded int32 token ids (`token_ids`, or `premise_ids` and
  `hypothesis_ids`; any padded length, cut to max_length), for clients that tokenize themselves;
- requests padded to their longest text (with `jit_compile`: to the smallest of the preprocessor's
  `bucket_boundaries` that holds it, so that XLA compiles one program per bucket; see
  `request_padding`), so a short request costs what its words cost; the answers are the same as
  padded to max_length (the models ignore padding);
- the vocabulary and the label names as SavedModel assets (they move with the directory);
- `assets.extra/tf_serving_warmup_requests`, TF Serving warm-up requests, so the first real request
  does not pay for graph building;
- `assets.extra/keras_mtsa.json`, what the export is (signatures, labels, max_length, warm-up
  requests): the readiness checker holds such exports to the text-classifier schema.

The version appears whole or not at all: it is written into a hidden directory beside it (a name
that TF Serving, which serves only integer-named versions, ignores) and renamed into place when
complete; a failure at any step removes it.

The lookup tables are named (`keras_mtsa.data.tables`), so that TF Serving's session loader
initializes the instance the signatures read.

The SavedModel needs only `tensorflow` and `tensorflow_text` to load: no keras_mtsa, no Keras.
"""

import contextlib
import json
import os
import secrets
import shutil
import tempfile

from keras_mtsa._xla import xla_in_saved_models
from keras_mtsa.data.tables import text_file_table
from keras_mtsa.serving.inspect_saved_model import DESCRIPTION_FILE
from keras_mtsa.serving.inspect_saved_model import WARMUP_FILE

REQUEST_PADDINGS = ("auto", "longest", "buckets", "max_length")
WARMUP_TEXTS = (
    "what is the capital of france ?",
    "",
    "a moving , beautifully acted film",
    "😀 mixed scripts: текст 文本 text",
)


def export_for_serving(
    model,
    preprocessor,
    export_dir,
    *,
    model_name,
    labels,
    version=None,
    pair=False,
    warmup_texts=WARMUP_TEXTS,
    jit_compile=False,
    request_padding="auto",
):
    """Exports `model` with its text preprocessing as a TF Serving SavedModel.

    Args:
        model: a Keras model from token ids to class probabilities (a dict of `premise` and
            `hypothesis` ids for pair models).
        preprocessor: the `keras_mtsa.data.TextPreprocessor` the model was trained with. A model
            with its preprocessing inside (e.g. `keras.layers.TextVectorization`) exports with
            Keras's `model.export(path)` instead.
        export_dir: the model base path (TF Serving's `--model_base_path` parent).
        model_name: the model's name; the SavedModel goes to `<export_dir>/<model_name>/<version>`.
        labels: class names, in class-id order.
        version: integer version; default one more than the largest existing version (or 1).
        pair: whether the model takes sentence pairs.
        warmup_texts: sample inputs written as warm-up requests (empty: no warm-up file); they
            need tensorflow-serving-api.
        jit_compile: keep MTSA's XLA-compiled core in the exported graph, and pad requests to the
            preprocessor's length buckets (one compiled program each) instead of their longest text.
            Off by default: TF Serving runs XLA:CPU only with `--xla_cpu_compilation_enabled`, and
            the graph is fast without it.
        request_padding: what a request's token ids are padded to: `"longest"`, its longest text;
            `"buckets"`, the smallest of the preprocessor's `bucket_boundaries` that holds it (one
            XLA program per bucket); `"max_length"`, always max_length (one shape for every
            request); `"auto"`: "buckets" with `jit_compile` or for models of one input length (the
            CNN), else "longest". The answers are the same (the models ignore padding); the cost
            grows with the padded length.

    Returns:
        The path of the written version directory.

    Raises:
        ValueError: a bad argument, a preprocessor that is not a `TextPreprocessor`, or an
            existing version directory.
        ImportError: warm-up texts without tensorflow-serving-api (before any work).

    Example:

    ```python
    path = export_for_serving(model, preprocessor, "saved_models", model_name="trec",
                              labels=class_names)  # saved_models/trec/1, then 2, ...
    ```
    """
    import keras

    from keras_mtsa.data import TextPreprocessor
    from keras_mtsa.models import PositionEmbedding

    if not isinstance(preprocessor, TextPreprocessor):
        raise ValueError(
            "`preprocessor` must be a keras_mtsa.data.TextPreprocessor (a model with its "
            "preprocessing inside, such as keras.layers.TextVectorization, exports with Keras's "
            f"`model.export(path)`). Received: preprocessor={preprocessor!r}"
        )
    model_name = _check_model_name(model_name)
    if request_padding not in REQUEST_PADDINGS:
        raise ValueError(
            f"`request_padding` must be one of {REQUEST_PADDINGS}. Received: "
            f"request_padding={request_padding!r}"
        )
    labels = [str(label) for label in labels]
    num_classes = model.output_shape[-1]
    if len(labels) != num_classes:
        raise ValueError(
            f"`labels` must name each of the model's {num_classes} classes. Received "
            f"{len(labels)}: {labels}"
        )
    if any("\n" in label or not label for label in labels):
        raise ValueError(f"`labels` must be non-empty single-line strings. Received: {labels}")
    # Models that take any padded length (all but the CNN) get requests padded to their bucket by
    # the preprocessor, and token ids of any length (cut to max_length, as texts are).
    length = keras.tree.flatten(model.inputs)[0].shape[1]
    if length is not None and preprocessor.bucket_boundaries != (length,):
        raise ValueError(
            f"The model takes ids of length {length} only: `preprocessor` must pad to it "
            f"(bucket_boundaries=None, max_length={length}). Received: bucket_boundaries="
            f"{preprocessor.bucket_boundaries}"
        )
    too_short = [
        layer.max_length
        for layer in _layers(model)
        if isinstance(layer, PositionEmbedding) and layer.max_length < preprocessor.max_length
    ]
    if too_short:
        raise ValueError(
            f"The model embeds positions up to {min(too_short)} only: `preprocessor` must cut "
            f"texts there. Received: a preprocessor with max_length={preprocessor.max_length}"
        )
    if request_padding == "auto":
        # Without XLA no shape is compiled ahead, so a request is padded to its longest text only.
        request_padding = "buckets" if jit_compile or length is not None else "longest"
    if length is not None and request_padding == "longest":
        raise ValueError(
            f"The model takes ids of length {length} only: `request_padding` must not be "
            f"'longest'. Received: request_padding={request_padding!r}"
        )
    if warmup_texts:
        _serving_apis()  # now, not after the model is written
    base = os.path.join(export_dir, model_name)
    version = _next_version(base) if version is None else _check_version(version)
    path = os.path.join(base, str(version))
    if os.path.exists(path):
        raise ValueError(f"{path} already exists: pass another `version` or remove it.")

    created = _missing_directories(base)
    os.makedirs(base, exist_ok=True)
    # Beside the version (a rename within one file system is atomic), under a name that is no
    # version; os.mkdir, unlike tempfile.mkdtemp, gives it the umask's permissions, which the
    # version keeps.
    partial = os.path.join(base, f".{version}.partial-{os.getpid()}-{secrets.token_hex(4)}")
    os.mkdir(partial)
    try:
        _write_version(
            partial,
            model,
            preprocessor,
            model_name=model_name,
            labels=labels,
            pair=pair,
            warmup_texts=warmup_texts,
            jit_compile=jit_compile,
            request_padding=request_padding,
            ids_length=length,
        )
        if os.path.exists(path):
            raise ValueError(f"{path} appeared during the export: pass another `version`.")
        os.rename(partial, path)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        for directory in created:  # deepest first; a directory someone filled meanwhile stays
            try:
                os.rmdir(directory)
            except OSError:
                break
        raise
    return path


def _write_version(
    path,
    model,
    preprocessor,
    *,
    model_name,
    labels,
    pair,
    warmup_texts,
    jit_compile,
    request_padding,
    ids_length,
):
    """Writes the whole version into `path`: the SavedModel, the warm-up requests and
    `keras_mtsa.json` (the arguments are checked)."""
    import keras
    import tensorflow as tf

    from keras_mtsa.data import TextPreprocessor

    with tempfile.TemporaryDirectory() as scratch:
        labels_file = os.path.join(scratch, "labels.txt")
        with open(labels_file, "w", encoding="utf-8") as file:
            file.write("\n".join(labels) + "\n")
        label_table = text_file_table(
            labels_file,
            key_dtype=tf.int64,
            key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
            value_dtype=tf.string,
            value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
            default_value="",
            kind="labels",
        )
        boundaries = {
            "longest": range(1, preprocessor.max_length + 1),
            "buckets": preprocessor.bucket_boundaries,
            "max_length": None,
        }[request_padding]
        preprocessor = TextPreprocessor(
            **{**preprocessor.config(), "bucket_boundaries": boundaries}
        )
        ids_spec = tf.TensorSpec([None, ids_length], tf.int32)
        text_spec = tf.TensorSpec([None], tf.string)

        def cut(ids):
            return ids[:, : preprocessor.max_length]

        def outputs(probabilities):
            probabilities = tf.cast(probabilities, tf.float32)
            label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
            return {
                "probabilities": probabilities,
                "label_id": label_id,
                "label": label_table.lookup(label_id),
            }

        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.track(preprocessor)
        archive.track(label_table)
        with xla_in_saved_models() if jit_compile else contextlib.nullcontext():
            if pair:

                def serve_text(premise, hypothesis):
                    ids = {"premise": preprocessor(premise), "hypothesis": preprocessor(hypothesis)}
                    return outputs(model(ids, training=False))

                def serve_ids(premise_ids, hypothesis_ids):
                    ids = {"premise": cut(premise_ids), "hypothesis": cut(hypothesis_ids)}
                    return outputs(model(ids, training=False))

                archive.add_endpoint("serving_default", serve_text, [text_spec, text_spec])
                archive.add_endpoint("token_ids", serve_ids, [ids_spec, ids_spec])
            else:

                def serve_text(text):
                    return outputs(model(preprocessor(text), training=False))

                def serve_ids(token_ids):
                    return outputs(model(cut(token_ids), training=False))

                archive.add_endpoint("serving_default", serve_text, [text_spec])
                archive.add_endpoint("token_ids", serve_ids, [ids_spec])
            archive.write_out(path, verbose=False)
    warmup_requests = 0
    if warmup_texts:
        warmup_requests = write_warmup_requests(path, model_name, list(warmup_texts), pair=pair)
    _write_description(
        path,
        labels=labels,
        pair=pair,
        max_length=preprocessor.max_length,
        padding={
            "requests": request_padding,
            "bucket_boundaries": list(preprocessor.bucket_boundaries),
        },
        warmup_requests=warmup_requests,
    )


def _missing_directories(path):
    """The directories that `os.makedirs(path)` would create, deepest first."""
    missing = []
    path = os.path.abspath(path)
    while not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def _layers(layer):
    """Every layer inside `layer`, nested models included."""
    for sublayer in getattr(layer, "layers", []):
        yield sublayer
        yield from _layers(sublayer)


def _write_description(path, *, labels, pair, max_length, padding, warmup_requests):
    """`assets.extra/keras_mtsa.json`: marks the directory as a keras-mtsa text
    classifier for the checker, and says how many warm-up requests it holds."""
    import keras_mtsa

    description = {
        "schema": "keras-mtsa text classifier",
        "keras_mtsa_version": keras_mtsa.__version__,
        "inputs": ["premise", "hypothesis"] if pair else ["text"],
        "labels": labels,
        "max_length": max_length,
        "padding": padding,
        "warmup_requests": warmup_requests,
    }
    os.makedirs(os.path.join(path, "assets.extra"), exist_ok=True)
    with open(os.path.join(path, DESCRIPTION_FILE), "w", encoding="utf-8") as file:
        json.dump(description, file, indent=2, ensure_ascii=False)


def write_warmup_requests(path, model_name, texts, pair=False):
    """Writes TF Serving warm-up requests (a TFRecord of PredictionLog protos) for
    `serving_default`: a batch of the first text, then one of all.

    Returns:
        The number of requests written (2).

    Raises:
        ImportError: tensorflow-serving-api is not installed.
    """
    import tensorflow as tf

    model_pb2, predict_pb2, prediction_log_pb2 = _serving_apis()
    batches = (texts[:1], texts)
    os.makedirs(os.path.join(path, "assets.extra"), exist_ok=True)
    names = ("premise", "hypothesis") if pair else ("text",)
    with tf.io.TFRecordWriter(os.path.join(path, WARMUP_FILE)) as writer:
        for batch in batches:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name="serving_default")
            )
            for name in names:
                request.inputs[name].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return len(batches)


def _serving_apis():
    """tensorflow-serving-api's protos for warm-up requests: `model_pb2`, `predict_pb2` and
    `prediction_log_pb2`.

    Raises:
        ImportError: tensorflow-serving-api is not installed (an optional dependency).
    """
    try:
        from tensorflow_serving.apis import model_pb2
        from tensorflow_serving.apis import predict_pb2
        from tensorflow_serving.apis import prediction_log_pb2
    except ImportError as error:
        # The pip line and the error type are the training job's, which checks the same
        # dependency before training.
        from keras_mtsa.training.environment import SERVING_API_PIP
        from keras_mtsa.training.environment import OptionalDependencyError

        raise OptionalDependencyError(
            "`warmup_texts` are written as TF Serving warm-up requests, which need "
            f"tensorflow-serving-api: {SERVING_API_PIP} (or pass warmup_texts=() for an export "
            "without them)"
        ) from error
    return model_pb2, predict_pb2, prediction_log_pb2


def _next_version(base):
    versions = (
        [int(name) for name in os.listdir(base) if name.isdigit()] if os.path.isdir(base) else []
    )
    return max(versions, default=0) + 1


def _check_version(version):
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"`version` must be a positive integer. Received: version={version!r}")
    return version


def _check_model_name(name):
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(
            "`model_name` must be letters, digits, '-' and '_' (it is a directory and a URL "
            f"part). Received: model_name={name!r}"
        )
    return name
