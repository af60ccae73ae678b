"""Readiness checker for exported SavedModels: will TF Serving load and serve this directory as it is?

    python -m keras_mtsa.serving check saved_models/<name>/<version> [--sample TEXT ...]

Every check runs in a clean subprocess that imports only `tensorflow` and `tensorflow_text` (and the
`tensorflow_serving` protos to parse the warm-up file), as a serving host would. It

1. finds the `serve` tag and the `serving_default` signature with its inputs and outputs, dtypes and shapes;
2. lists every op in the graph and its functions, and fails on an op that is not registered by TensorFlow
   core or tensorflow-text (the op set TF Serving links), or that needs a Python runtime (py_function);
3. parses `assets.extra/tf_serving_warmup_requests` if present;
4. loads the model and runs `serving_default` on sample strings (probabilities finite and summing to 1);
5. prints the REST request that would query it and a `models.config` entry.

Exit code 0 only if everything holds.
"""

import argparse
import json
import os
import subprocess
import sys

# Runs in the clean subprocess. Prints one JSON report on its last line.
_CHECK_SCRIPT = r"""
import json, os, sys
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

path, samples = sys.argv[1], json.loads(sys.argv[2])
report = {"errors": [], "warnings": [], "ops": {}, "signatures": {}}
PYTHON_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}

saved_model = saved_model_pb2.SavedModel()
with open(os.path.join(path, "saved_model.pb"), "rb") as f:
    saved_model.ParseFromString(f.read())
serve = [m for m in saved_model.meta_graphs if "serve" in m.meta_info_def.tags]
if not serve:
    report["errors"].append("no meta graph with the 'serve' tag")
else:
    meta = serve[0]
    def describe(infos):
        return {k: {"dtype": tf.dtypes.as_dtype(v.dtype).name,
                    "shape": None if v.tensor_shape.unknown_rank else [d.size for d in v.tensor_shape.dim]}
                for k, v in infos.items()}
    for name, sig in meta.signature_def.items():
        if name.startswith("__"):
            continue
        report["signatures"][name] = {"inputs": describe(sig.inputs), "outputs": describe(sig.outputs)}
    default = report["signatures"].get("serving_default")
    if default is None:
        report["errors"].append("no 'serving_default' signature (TF Serving's default); found: "
                                + ", ".join(sorted(report["signatures"])))
    else:
        inputs, outputs = default["inputs"], default["outputs"]
        if not inputs or any(s["dtype"] != "string" or s["shape"] != [-1] for s in inputs.values()):
            report["errors"].append(f"serving_default inputs must be tf.string [None]; found {inputs}")
        want = {"probabilities": "float32", "label_id": "int64", "label": "string"}
        for key, dtype in want.items():
            if key not in outputs:
                report["errors"].append(f"serving_default lacks output {key!r}")
            elif outputs[key]["dtype"] != dtype:
                report["errors"].append(f"output {key!r} is {outputs[key]['dtype']}, expected {dtype}")
    ops, xla = set(), False
    nodes = list(meta.graph_def.node)
    for function in meta.graph_def.library.function:
        nodes.extend(function.node_def)
        xla = xla or function.attr["_XlaMustCompile"].b
    ops = {node.op for node in nodes}
    ops -= {f.signature.name for f in meta.graph_def.library.function}  # calls of the graph's own functions
    core = {op for op in ops if op_def_registry.get(op) is not None}
    import tensorflow_text  # registers the tf-text ops
    text_ops = {op for op in ops - core if op_def_registry.get(op) is not None}
    unknown = ops - core - text_ops
    report["ops"] = {"tensorflow": sorted(core), "tensorflow_text": sorted(text_ops), "unknown": sorted(unknown)}
    if unknown:
        report["errors"].append("ops registered by neither TensorFlow nor tensorflow-text: " + ", ".join(sorted(unknown)))
    if ops & PYTHON_OPS:
        report["errors"].append("ops that need a Python runtime (py_function), which TF Serving has not: "
                                + ", ".join(sorted(ops & PYTHON_OPS)))
    if xla:
        report["warnings"].append("the graph has XLA must-compile functions: TF Serving on CPU needs "
                                  "--xla_cpu_compilation_enabled=true")

warmup = os.path.join(path, "assets.extra", "tf_serving_warmup_requests")
if os.path.exists(warmup):
    try:
        from tensorflow_serving.apis import prediction_log_pb2
        count = 0
        for record in tf.data.TFRecordDataset(warmup):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if not log.WhichOneof("log_type"):
                raise ValueError("empty PredictionLog")
            count += 1
        report["warmup_requests"] = count
        if count == 0:
            report["errors"].append("the warm-up file has no records")
    except ImportError:
        report["warnings"].append("tensorflow-serving-api is not installed: the warm-up file was not parsed")
    except Exception as error:
        report["errors"].append(f"the warm-up file does not parse: {error}")
else:
    report["warnings"].append("no warm-up file (assets.extra/tf_serving_warmup_requests)")

if not report["errors"]:
    try:
        loaded = tf.saved_model.load(path)
        function = loaded.signatures["serving_default"]
        names = sorted(report["signatures"]["serving_default"]["inputs"])
        result = function(**{name: tf.constant(samples) for name in names})
        probabilities = result["probabilities"].numpy()
        if not np.all(np.isfinite(probabilities)):
            report["errors"].append("serving_default returned non-finite probabilities")
        elif not np.allclose(probabilities.sum(-1), 1.0, atol=1e-4):
            report["errors"].append("serving_default probabilities do not sum to 1")
        report["sample_predictions"] = [
            {"input": s, "label": l.decode("utf-8", "replace"), "probability": float(p.max())}
            for s, l, p in zip(samples, result["label"].numpy(), probabilities)]
    except Exception as error:
        report["errors"].append(f"loading or running serving_default failed: {type(error).__name__}: {error}")
print(json.dumps(report))
"""

DEFAULT_SAMPLES = ("what is the capital of france ?", "", "a gripping , beautiful film")


def check(path, samples=DEFAULT_SAMPLES, timeout=300):
    """Runs the readiness checks on a SavedModel version directory in a clean subprocess.

    Returns:
        The report dict: `errors` (empty when ready), `warnings`, `signatures`, `ops`,
        `warmup_requests`, `sample_predictions`.
    """
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        return {"errors": [f"{path} has no saved_model.pb: pass a version directory (.../<name>/<version>)"]}
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environment["TF_CPP_MIN_LOG_LEVEL"] = "2"
    process = subprocess.run(
        [sys.executable, "-c", _CHECK_SCRIPT, path, json.dumps(list(samples))],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        cwd=os.path.dirname(path),  # away from any source checkout of keras_mtsa
    )
    try:
        return json.loads(process.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"errors": [f"the check process failed (exit {process.returncode}): {process.stderr[-2000:]}"]}


def rest_request(model_name, inputs, samples):
    """The TF Serving REST request (row format) that queries `serving_default`."""
    if inputs == ["text"]:
        instances = list(samples[:2])
    else:
        instances = [{name: sample for name in inputs} for sample in samples[:2]]
    body = json.dumps({"signature_name": "serving_default", "instances": instances}, ensure_ascii=False)
    return (
        f"curl -X POST http://localhost:8501/v1/models/{model_name}:predict \\\n"
        f"  -H 'Content-Type: application/json' -d '{body}'"
    )


def models_config_entry(model_name, base_path):
    return (
        "model_config_list {\n  config {\n"
        f'    name: "{model_name}"\n    base_path: "{base_path}"\n    model_platform: "tensorflow"\n'
        "  }\n}"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m keras_mtsa.serving", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help="check a SavedModel version directory")
    check_parser.add_argument("path", help="saved_models/<name>/<version>")
    check_parser.add_argument("--sample", action="append", help="sample input text (repeatable)")
    args = parser.parse_args(argv)

    path = os.path.abspath(args.path)
    report = check(path, args.sample or DEFAULT_SAMPLES)
    for name, signature in report.get("signatures", {}).items():
        print(f"signature {name}: inputs {signature['inputs']} outputs {signature['outputs']}")
    ops = report.get("ops", {})
    if ops:
        print(f"ops from TensorFlow core ({len(ops['tensorflow'])}): {', '.join(ops['tensorflow'])}")
        print(f"ops from tensorflow-text ({len(ops['tensorflow_text'])}): {', '.join(ops['tensorflow_text'])}")
    if "warmup_requests" in report:
        print(f"warm-up requests: {report['warmup_requests']}")
    for prediction in report.get("sample_predictions", []):
        print(f"sample {prediction['input']!r} -> {prediction['label']} ({prediction['probability']:.3f})")
    for warning in report.get("warnings", []):
        print(f"WARNING: {warning}")
    if report["errors"]:
        for error in report["errors"]:
            print(f"ERROR: {error}")
        print("NOT READY for TF Serving")
        return 1
    model_name = os.path.basename(os.path.dirname(path))
    inputs = sorted(report["signatures"]["serving_default"]["inputs"])
    print("\nREST request:\n" + rest_request(model_name, inputs, args.sample or DEFAULT_SAMPLES))
    print("\nmodels.config entry:\n" + models_config_entry(model_name, os.path.dirname(path)))
    print("\nREADY for TF Serving")
    return 0


if __name__ == "__main__":
    sys.exit(main())
