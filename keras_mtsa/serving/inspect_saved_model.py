"""The static half of the readiness check: what a SavedModel declares, read from its files.

    python inspect_saved_model.py SAVED_MODEL_DIR REPORT.json

Reads `saved_model.pb` and `assets.extra/` with TensorFlow's protos (nothing is loaded or run), and
writes one JSON report: the `serve` MetaGraph's signatures with their tensor names, every op of the
graph and its functions (registered by TensorFlow core, by tensorflow-text, or by neither), ops that
need a Python runtime, anonymous lookup tables, functions marked for XLA, the decoded warm-up
requests, and the keras-mtsa export description if there is one. The session road
(`session_road.py`) then runs what this found. Started by the checker by path in a clean process, so
it imports nothing of keras_mtsa.
"""

import base64
import json
import os
import sys

PYTHON_OPS = ("PyFunc", "PyFuncStateless", "EagerPyFunc")
# Ops that create a new, anonymous resource each time they run: a Session-based loader's init op
# fills one instance and the signatures read another.
ANONYMOUS_TABLE_OPS = (
    "AnonymousHashTable",
    "AnonymousMutableHashTable",
    "AnonymousMutableHashTableOfTensors",
    "AnonymousMutableDenseHashTable",
)
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
DESCRIPTION_FILE = os.path.join("assets.extra", "keras_mtsa.json")


def _encode(array):
    if array.dtype.kind in "OSU":
        return {
            "dtype": "string",
            "shape": list(array.shape),
            "values": [base64.b64encode(bytes(v)).decode("ascii") for v in array.reshape(-1)],
        }
    return {
        "dtype": array.dtype.name,
        "shape": list(array.shape),
        "values": array.reshape(-1).tolist(),
    }


def _describe(infos, tf):
    described = {}
    for key, info in infos.items():
        shape = None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim]
        described[key] = {
            "dtype": tf.dtypes.as_dtype(info.dtype).name,
            "shape": shape,
            "name": info.name,
        }
    return described


def _audit_graph(meta, report, tf):
    from tensorflow.python.framework import op_def_registry

    functions = {f.signature.name for f in meta.graph_def.library.function}
    located = [(node, None) for node in meta.graph_def.node]
    for function in meta.graph_def.library.function:
        located.extend((node, function.signature.name) for node in function.node_def)
        if function.attr["_XlaMustCompile"].b:
            report["xla_functions"].append(function.signature.name)
    ops = {node.op for node, _ in located} - functions  # calls of the graph's own functions
    core = {op for op in ops if op_def_registry.get(op) is not None}
    import tensorflow_text  # noqa: F401  (registers the tf-text ops)

    text_ops = {op for op in ops - core if op_def_registry.get(op) is not None}
    report["ops"] = {
        "tensorflow": sorted(core),
        "tensorflow_text": sorted(text_ops),
        "unknown": sorted(ops - core - text_ops),
    }
    report["python_ops"] = sorted(ops & set(PYTHON_OPS))
    report["anonymous_tables"] = [
        {"node": node.name, "op": node.op, "function": function}
        for node, function in located
        if node.op in ANONYMOUS_TABLE_OPS
    ]


def _read_warmup(path, report, tf):
    warmup = os.path.join(path, WARMUP_FILE)
    if not os.path.exists(warmup):
        return
    report["warmup"] = {"records": []}
    try:
        from tensorflow_serving.apis import prediction_log_pb2
    except ImportError:
        report["warmup"]["unparsed"] = (
            "tensorflow-serving-api is not installed: the warm-up file was not replayed"
        )
        return
    try:
        for record in tf.data.TFRecordDataset(warmup):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            kind = log.WhichOneof("log_type")
            entry = {"kind": kind}
            if kind == "predict_log":
                request = log.predict_log.request
                entry["signature"] = request.model_spec.signature_name or "serving_default"
                entry["inputs"] = {
                    name: _encode(tf.make_ndarray(t)) for name, t in request.inputs.items()
                }
            report["warmup"]["records"].append(entry)
    except Exception as error:  # a corrupt file: TF Serving would fail the load on it
        report["warmup"]["error"] = (
            f"the warm-up file does not parse: {type(error).__name__}: {error}"
        )


def inspect(path):
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    report = {
        "signatures": {},
        "xla_functions": [],
        "anonymous_tables": [],
        "warmup": None,
        "description": None,
    }
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as file:
        saved_model.ParseFromString(file.read())
    report["tags"] = [sorted(meta.meta_info_def.tags) for meta in saved_model.meta_graphs]
    # TF Serving (its default --saved_model_tags) and the C API load the MetaGraph
    # tagged exactly {serve}.
    serve = [meta for meta in saved_model.meta_graphs if set(meta.meta_info_def.tags) == {"serve"}]
    if serve:
        meta = serve[0]
        for name, signature in meta.signature_def.items():
            if not name.startswith("__"):
                report["signatures"][name] = {
                    "method": signature.method_name,
                    "inputs": _describe(signature.inputs, tf),
                    "outputs": _describe(signature.outputs, tf),
                }
        _audit_graph(meta, report, tf)
    _read_warmup(path, report, tf)
    description = os.path.join(path, DESCRIPTION_FILE)
    if os.path.exists(description):
        try:
            with open(description, encoding="utf-8") as file:
                report["description"] = json.load(file)
        except (OSError, ValueError) as error:
            report["description"] = {"error": f"{DESCRIPTION_FILE} does not parse: {error}"}
    return report


def main(argv):
    if len(argv) != 2:
        print("usage: python inspect_saved_model.py SAVED_MODEL_DIR REPORT.json", file=sys.stderr)
        return 2
    report = inspect(argv[0])
    with open(argv[1], "w", encoding="utf-8") as file:
        json.dump(report, file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
