"""Will TF Serving load and serve this SavedModel directory as it is? Checked on
TF Serving's own road.

Two clean processes, each started by the path of its script, so that no installed copy of keras_mtsa
is involved:

1. `inspect_saved_model.py` (with TensorFlow's protos) reads the directory: the `serve`
   MetaGraph, every signature's inputs and outputs, every op of the graph and its functions,
   the warm-up requests.
2. `session_road.py` (ctypes and numpy only, no TensorFlow Python runtime) loads the directory
   with `TF_LoadSessionFromSavedModel`, as TF Serving's C++ `LoadSavedModel` does, with the
   tensorflow-text kernels loaded by `TF_LoadLibrary`, and runs by tensor name: every signature,
   every warm-up request, hostile strings for string inputs, and the same request from
   many threads at once.

The directory must be a version as TF Serving lays them out, `<base_path>/<model>/<integer
version>/` (TF Serving ignores any other name). Any SavedModel is judged for servability: inputs
are generated from each signature's dtypes and shapes (sample texts for string inputs).
keras-mtsa's own exports (recognized by `assets.extra/keras_mtsa.json`) or any model with
`schema="keras-mtsa"` are also held to the text-classifier schema: `serving_default` takes
tf.string [None] texts and returns `probabilities` (float32, rows summing to 1), `label_id` (int64,
their argmax) and `label` (string, the label of that id); an export must also hold the warm-up file
its `keras_mtsa.json` announces.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

from keras_mtsa.serving import session_road
from keras_mtsa.serving.inspect_saved_model import DESCRIPTION_FILE
from keras_mtsa.serving.inspect_saved_model import WARMUP_FILE

DEFAULT_SAMPLES = ("what is the capital of france ?", "", "a gripping , beautiful film")
# Requests a public endpoint receives sooner or later; each must give finite, normalized answers.
HOSTILE_TEXTS = {
    "the empty string": b"",
    "whitespace only": " \t\n\r\u3000 ".encode(),
    "100,000 characters": ("the film is great " * 6000)[:100_000].encode(),
    "invalid UTF-8": b"\xff\xfe\xfd abc \xc3",
    "emoji and mixed scripts": "😀 the film текст 文本 مرحبا é́ 👍🏽 great!!!".encode(),
}
LARGE_BATCH = 1000
SCHEMAS = ("auto", "keras-mtsa", "none")
_CLASSIFIER_OUTPUTS = {"probabilities": "float32", "label_id": "int64", "label": "string"}
_SCRIPTS = os.path.dirname(os.path.abspath(__file__))


def check(
    path, samples=None, *, schema="auto", allow_xla=False, threads=8, repeats=25, timeout=900
):
    """Checks a SavedModel version directory on TF Serving's loading and serving road.

    Args:
        path: the version directory (`.../<name>/<version>`, holding `saved_model.pb`), named
            by an integer as TF Serving requires.
        samples: texts for string inputs; default `DEFAULT_SAMPLES`.
        schema: "auto" (the keras-mtsa schema for keras-mtsa exports), "keras-mtsa" or "none".
        allow_xla: accept functions marked `_XlaMustCompile` (TF Serving on GPU, or on CPU when
            started with `--xla_cpu_compilation_enabled=true`); by default they are an error.
        threads: concurrent clients of the concurrency check (0: no concurrency check).
        repeats: requests each concurrent client sends.
        timeout: seconds for each of the two processes.

    Returns:
        The report dict: `errors` (empty when ready), `warnings`, `signatures`, `ops`,
        `session_road` (load time, TensorFlow version, requests run), `warmup_requests`,
        `sample_predictions`, `concurrency`.
    """
    if schema not in SCHEMAS:
        raise ValueError(f"`schema` must be one of {SCHEMAS}. Received: schema={schema!r}")
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        return {
            "errors": [
                f"{path} has no saved_model.pb: pass a version directory (.../<name>/<version>)"
            ]
        }
    name = os.path.basename(path)
    if not re.fullmatch("[0-9]+", name):
        # TF Serving's file system source serves only children of the base path named by an int.
        return {
            "errors": [
                f"{path}: {name!r} is not a version number; TF Serving serves only "
                "<base_path>/<model>/<integer version>/ (move it to e.g. "
                f"saved_models/{name}/1)"
            ]
        }
    samples = [
        s.encode("utf-8") if isinstance(s, str) else bytes(s) for s in (samples or DEFAULT_SAMPLES)
    ]
    with tempfile.TemporaryDirectory() as scratch:
        static = _run_script("inspect_saved_model.py", path, scratch, timeout)
        if "errors" in static:
            return static
        report = {
            "errors": [],
            "warnings": [],
            "signatures": static["signatures"],
            "ops": static.get("ops", {}),
        }
        if not _judge_graph(static, report, allow_xla):
            # the session road could not load it: TensorFlow would say less than the errors do
            return report
        description = static.get("description") or {}
        text_schema = schema == "keras-mtsa" or (schema == "auto" and bool(description))
        if "error" in description:
            report["errors"].append(description["error"])
        announced = description.get("warmup_requests")
        if announced and static.get("warmup") is None:
            report["errors"].append(
                f"{DESCRIPTION_FILE} lists {announced} warm-up requests, but {WARMUP_FILE} is "
                "missing (a half-written export?): export the model again"
            )
        if text_schema:
            _judge_text_schema(report)
        plan = _Plan(path, static, samples, threads, repeats)
        report["errors"].extend(plan.errors)
        report["warnings"].extend(plan.warnings)
        served = _run_session_road(plan.as_json(), scratch, timeout)
    if "errors" in served:
        report["errors"].extend(served["errors"])
        return report
    if "error" in served:
        report["errors"].append(_explain(served["error"], static))
        return report
    report["session_road"] = {
        "loader": "TF_LoadSessionFromSavedModel (TensorFlow C API, libtensorflow_cc.so.2)",
        "tensorflow_version": served.get("tensorflow_version"),
        "tensorflow_python_imported": served.get("tensorflow_imported"),
        "load_seconds": served.get("load_seconds"),
        "requests": [label for label, *_ in plan.entries],
    }
    labels = description.get("labels") if text_schema else None
    outputs = plan.judge(served["responses"], report, static, text_schema, labels)
    report["sample_predictions"] = outputs
    concurrency = served.get("concurrency")
    if concurrency:
        report["concurrency"] = concurrency
        if concurrency["error_count"]:
            report["errors"].append(
                f"{concurrency['error_count']} of {concurrency['requests']} "
                "concurrent requests failed: " + "; ".join(concurrency["errors"][:2])
            )
        elif concurrency["max_difference"] is None or concurrency["max_difference"] > 1e-5:
            report["errors"].append(
                "concurrent requests disagree with the same request run alone (largest difference "
                f"{concurrency['max_difference']})"
            )
    if static.get("warmup") is not None:
        report["warmup_requests"] = len(static["warmup"]["records"])
    return report


def serve(path, requests, *, timeout=600):
    """Runs requests on TF Serving's road (the TF C API, in a clean process) and
    returns the answers.

    Args:
        path: a SavedModel version directory.
        requests: a list of `(signature_name, {input name: array-like})`; string inputs as lists or
            arrays of `str` or `bytes`.
        timeout: seconds for each of the two processes.

    Returns:
        One `{output name: numpy array}` per request (strings as object arrays of `bytes`).

    Raises:
        ValueError: a signature or input name the SavedModel lacks.
        session_road.SessionRoadError: the SavedModel did not load, or a request failed
            (TensorFlow's message, e.g. "Table not initialized").
    """
    answers, _ = _serve(path, requests, timeout=timeout, repeats=0)
    return answers


def time_requests(path, requests, *, repeats=30, timeout=600):
    """Times requests on TF Serving's road: each runs once, then `repeats` more
    times, one after another.

    Args:
        path: see `serve`.
        requests: see `serve`.
        repeats: timed runs of each request (positive int), after its first, untimed one.
        timeout: see `serve`.

    Returns:
        `(answers, seconds)`: the answers as `serve` returns them, and each request's timed runs, in
        seconds (`Session::Run` only: no process start, load or encoding).
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"`repeats` must be a positive int. Received: repeats={repeats!r}")
    return _serve(path, requests, timeout=timeout, repeats=repeats)


def _serve(path, requests, *, timeout, repeats):
    path = os.path.abspath(path)
    with tempfile.TemporaryDirectory() as scratch:
        static = _run_script("inspect_saved_model.py", path, scratch, timeout)
        if "errors" in static:
            raise session_road.SessionRoadError("; ".join(static["errors"]))
        planned, keys = [], []
        for name, inputs in requests:
            signature = static["signatures"].get(name)
            if signature is None:
                raise ValueError(
                    f"`requests` must name signatures of {path}: {sorted(static['signatures'])}. "
                    f"Received: signature {name!r}"
                )
            if set(inputs) != set(signature["inputs"]):
                raise ValueError(
                    f"`requests` must feed {name!r} its inputs {sorted(signature['inputs'])}. "
                    f"Received: {sorted(inputs)}"
                )
            arrays = {
                key: _as_array(value, signature["inputs"][key]["dtype"])
                for key, value in inputs.items()
            }
            request, output_keys = _request(signature, arrays)
            planned.append(request)
            keys.append(output_keys)
        plan = {"path": path, "tags": ["serve"], "requests": planned, "timed_repeats": repeats}
        served = _run_session_road(plan, scratch, timeout)
    if "errors" in served or "error" in served:
        raise session_road.SessionRoadError(
            _explain(served.get("error") or "; ".join(served["errors"]), static)
        )
    answers = []
    for output_keys, response in zip(keys, served["responses"], strict=True):
        if "error" in response:
            raise session_road.SessionRoadError(_explain(response["error"], static))
        answers.append(
            dict(
                zip(output_keys, map(session_road.decode_tensor, response["outputs"]), strict=True)
            )
        )
    return answers, [response.get("timed_seconds", []) for response in served["responses"]]


def _as_array(value, dtype):
    """An input for a signature input of `dtype` as a numpy array; texts as an object
    array of bytes (numpy's own str arrays drop trailing NUL characters, and an empty list
    would become float64)."""
    if dtype != "string":
        return np.asarray(value)
    array = np.asarray(value, dtype=object)
    flat = np.empty(array.size, dtype=object)
    flat[:] = [v.encode("utf-8") if isinstance(v, str) else v for v in array.reshape(-1)]
    return flat.reshape(array.shape)


def _request(signature, inputs):
    """The session road's request for `inputs` (by input name) to `signature`, and its output names
    (those of a dtype the session road reads)."""
    feeds = {
        signature["inputs"][key]["name"]: session_road.encode_tensor(value)
        for key, value in inputs.items()
    }
    keys = sorted(
        key for key, info in signature["outputs"].items() if info["dtype"] in session_road.DTYPES
    )
    return {"feeds": feeds, "fetches": [signature["outputs"][key]["name"] for key in keys]}, keys


def _run_session_road(plan, scratch, timeout):
    """Runs `plan` (see `session_road`) in a clean process; returns its result."""
    plan_file = os.path.join(scratch, "plan.json")
    with open(plan_file, "w", encoding="utf-8") as file:
        json.dump(plan, file)
    return _run_script("session_road.py", plan_file, scratch, timeout)


def _run_script(script, argument, scratch, timeout):
    """Runs one of this package's scripts by path in a clean process; returns its JSON report."""
    output = os.path.join(scratch, script + ".json")
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environment["TF_CPP_MIN_LOG_LEVEL"] = "2"
    try:
        process = subprocess.run(
            [sys.executable, os.path.join(_SCRIPTS, script), argument, output],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environment,
            cwd=scratch,  # away from any source checkout of keras_mtsa
        )
    except subprocess.TimeoutExpired:
        return {"errors": [f"{script} did not finish within {timeout} s"]}
    try:
        with open(output, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError):
        stderr = process.stderr.strip()[-2000:]
        return {"errors": [f"{script} failed (exit {process.returncode}): {stderr}"]}


def _judge_graph(static, report, allow_xla):
    """Adds the static errors and warnings; returns whether the session road can load
    the model at all."""
    if ["serve"] not in static["tags"]:
        report["errors"].append(
            f"no meta graph tagged exactly {{serve}}, which TF Serving loads "
            f"(tags: {static['tags']})"
        )
        return False
    loadable = True
    if not static["signatures"]:
        report["errors"].append(
            "the serve meta graph has no signatures: TF Serving would have nothing to run"
        )
        loadable = False
    elif "serving_default" not in static["signatures"]:
        # TF Serving loads it; only requests that name another signature can use it.
        report["warnings"].append(
            "no 'serving_default' signature (requests that name no signature fail); found: "
            + ", ".join(sorted(static["signatures"]))
        )
    unknown = static["ops"].get("unknown", [])
    if unknown:
        report["errors"].append(
            "ops registered by neither TensorFlow nor tensorflow-text: " + ", ".join(unknown)
        )
        loadable = False
    if static.get("python_ops"):
        report["errors"].append(
            "ops that need a Python runtime (py_function), which TF Serving has not: "
            + ", ".join(static["python_ops"])
        )
        loadable = False
    tables = static.get("anonymous_tables", [])
    if tables:
        names = ", ".join(
            repr(t["node"]) + (f" in {t['function']}" if t["function"] else " in the graph")
            for t in tables
        )
        report["errors"].append(
            f"anonymous lookup tables ({tables[0]['op']}): {names}. TF Serving's session loader "
            "initializes one instance in __saved_model_init_op and every request reads a new, "
            "empty one ('Table not initialized'); create tables with "
            "experimental_is_anonymous=False"
        )
    if static.get("xla_functions"):
        message = (
            f"{len(static['xla_functions'])} function(s) marked _XlaMustCompile (e.g. "
            f"{static['xla_functions'][0]}): TF Serving on CPU refuses to run them unless started "
            "with --xla_cpu_compilation_enabled=true"
        )
        if allow_xla:
            report["warnings"].append(message)
        else:
            report["errors"].append(message + " (--allow-xla accepts them)")
    warmup = static.get("warmup")
    if warmup is None:
        report["warnings"].append("no warm-up file (assets.extra/tf_serving_warmup_requests)")
    elif "error" in warmup:
        report["errors"].append(warmup["error"])
    elif "unparsed" in warmup:
        report["warnings"].append(warmup["unparsed"])
    elif not warmup["records"]:
        report["errors"].append("the warm-up file has no records")
    return loadable


def _judge_text_schema(report):
    default = report["signatures"].get("serving_default")
    if default is None:
        report["errors"].append(
            "no 'serving_default' signature, which the keras-mtsa schema requires"
        )
        return
    inputs, outputs = default["inputs"], default["outputs"]
    if not inputs or any(s["dtype"] != "string" or s["shape"] != [-1] for s in inputs.values()):
        report["errors"].append(
            f"serving_default inputs must be tf.string [None]; found {_specs(inputs)}"
        )
    for key, dtype in _CLASSIFIER_OUTPUTS.items():
        if key not in outputs:
            report["errors"].append(f"serving_default lacks output {key!r}")
        elif outputs[key]["dtype"] != dtype:
            report["errors"].append(f"output {key!r} is {outputs[key]['dtype']}, expected {dtype}")


def _specs(infos):
    return {key: {"dtype": info["dtype"], "shape": info["shape"]} for key, info in infos.items()}


def _explain(error, static):
    """TensorFlow's message, with the cause spelled out where the graph shows it."""
    if "Table not initialized" in error and static.get("anonymous_tables"):
        names = ", ".join(
            dict.fromkeys(repr(table["node"]) for table in static["anonymous_tables"])
        )
        return f"{error} (anonymous lookup tables: {names})"
    return error


class _Plan:
    """The requests the session road runs, and how their answers are judged."""

    def __init__(self, path, static, samples, threads, repeats):
        self.path, self.errors, self.warnings, self.requests, self.entries = path, [], [], [], []
        self._skipped_outputs = set()
        self._samples = samples
        signatures = static["signatures"]
        for name in sorted(signatures, key=lambda n: (n != "serving_default", n)):
            self._add(
                f"{name}: generated inputs",
                name,
                signatures[name],
                self._generated(signatures[name]),
            )
            if self._takes_text(signatures[name]):
                for case, text in HOSTILE_TEXTS.items():
                    self._add(
                        f"{name}: {case}",
                        name,
                        signatures[name],
                        self._texts(signatures[name], [text]),
                    )
                hostile = list(HOSTILE_TEXTS.values())
                self._add(f"{name}: all hostile texts at once", name, signatures[name],
                          self._texts(signatures[name], hostile))  # fmt: skip
                self._add(
                    f"{name}: a batch of 0",
                    name,
                    signatures[name],
                    self._texts(signatures[name], []),
                )
                many = [samples[i % len(samples)] + b" %d" % i for i in range(LARGE_BATCH)]
                self._add(f"{name}: a batch of {LARGE_BATCH}", name, signatures[name],
                          self._texts(signatures[name], many))  # fmt: skip
        for index, record in enumerate((static.get("warmup") or {}).get("records", [])):
            if record["kind"] != "predict_log":
                self.warnings.append(
                    f"warm-up record {index} is a {record['kind']}: not "
                    "replayed here (predict only)"
                )
                continue
            signature = signatures.get(record["signature"])
            if signature is None:
                self.errors.append(
                    f"warm-up record {index} asks for signature "
                    f"{record['signature']!r}, which is absent"
                )
                continue
            if set(record["inputs"]) != set(signature["inputs"]):
                self.errors.append(
                    f"warm-up record {index} feeds {sorted(record['inputs'])}, but "
                    f"{record['signature']} takes {sorted(signature['inputs'])}"
                )
                continue
            inputs = {
                key: session_road.decode_tensor(tensor) for key, tensor in record["inputs"].items()
            }
            self._add(f"warm-up request {index}", record["signature"], signature, inputs)
        self._concurrency = (
            {"request": 0, "threads": threads, "repeats": repeats} if threads and repeats else None
        )

    @staticmethod
    def _takes_text(signature):
        inputs = signature["inputs"].values()
        return bool(inputs) and all(
            i["dtype"] == "string" and i["shape"] in ([-1], None) for i in inputs
        )

    def _texts(self, signature, texts):
        return {key: _as_array(texts, "string") for key in signature["inputs"]}

    def _generated(self, signature):
        """Inputs of each input's dtype and shape, or None where they cannot be made up.

        The batch is the number of samples for every input; other unknown sizes are 8. An
        input of unknown rank gets a batch vector if it takes strings; a numeric one of unknown
        rank cannot be guessed.
        """
        inputs = {}
        batch = len(self._samples)
        rng = np.random.default_rng(0)
        for key, info in sorted(signature["inputs"].items()):
            if info["shape"] is None and info["dtype"] != "string":
                return None
            shape = [-1] if info["shape"] is None else info["shape"]
            shape = [
                (batch if axis == 0 else 8) if size == -1 else size
                for axis, size in enumerate(shape)
            ]
            if info["dtype"] == "string":
                values = np.empty(int(np.prod(shape)), dtype=object)
                values[:] = [self._samples[i % len(self._samples)] for i in range(values.size)]
                inputs[key] = values.reshape(shape)
            elif info["dtype"].startswith(("int", "uint")):
                # A short "sentence" of id 1 then padding 0: valid for any
                # embedding of 2 or more rows.
                values = np.zeros(shape, dtype=info["dtype"])
                if values.ndim:
                    values[..., : max(1, shape[-1] // 2)] = 1
                inputs[key] = values
            elif info["dtype"] == "bool":
                inputs[key] = np.ones(shape, dtype=bool)
            else:
                inputs[key] = rng.standard_normal(shape).astype(info["dtype"])
        return inputs

    def _add(self, label, name, signature, inputs):
        unsupported = sorted(
            k for k, info in signature["inputs"].items() if info["dtype"] not in session_road.DTYPES
        )
        if unsupported or inputs is None:
            why = (
                f"inputs of a dtype it cannot make ({unsupported})"
                if unsupported
                else "a numeric input of unknown rank"
            )
            self.warnings.append(
                f"{label}: not run, the checker has {why}; check this signature yourself"
            )
            return
        skipped = sorted(
            k
            for k, info in signature["outputs"].items()
            if info["dtype"] not in session_road.DTYPES
        )
        if skipped and name not in self._skipped_outputs:
            self._skipped_outputs.add(name)
            self.warnings.append(
                f"{name}: outputs {skipped} are of a dtype the checker does not read; not checked"
            )
        request, keys = _request(signature, inputs)
        first = next(iter(inputs.values()), None)
        batch = first.shape[0] if first is not None and first.ndim else None
        self.requests.append(request)
        self.entries.append((label, name, keys, batch, inputs))

    def as_json(self):
        return {
            "path": self.path,
            "tags": ["serve"],
            "requests": self.requests,
            "concurrency": self._concurrency,
        }

    def judge(self, responses, report, static, text_schema, labels):
        """Checks every answer; returns the sample predictions of the first
        serving_default request."""
        samples, failures = [], {}
        for (label, name, keys, batch, inputs), response in zip(
            self.entries, responses, strict=True
        ):
            if "error" in response:
                failures.setdefault(_explain(response["error"], static), []).append(label)
                continue
            outputs = dict(
                zip(keys, (session_road.decode_tensor(t) for t in response["outputs"]), strict=True)
            )
            errors = _judge_outputs(outputs, static["signatures"][name]["outputs"], batch)
            if (
                text_schema
                and name == "serving_default"
                and not errors
                and set(_CLASSIFIER_OUTPUTS) <= set(outputs)
            ):
                errors = _judge_classification(outputs, batch, labels)
            report["errors"].extend(f"{label}: {error}" for error in errors)
            if not samples and name == "serving_default" and label.endswith("generated inputs"):
                samples = _describe_predictions(inputs, outputs)
        for message, labels_failed in failures.items():
            report["errors"].append(
                f"{len(labels_failed)} of {len(self.entries)} requests failed on the session road "
                f"({', '.join(labels_failed[:3])}{', ...' if len(labels_failed) > 3 else ''}): "
                f"{message}"
            )
        return samples


def _judge_outputs(outputs, specs, batch):
    errors = []
    for key, value in outputs.items():
        spec = specs[key]
        dtype = "string" if value.dtype == object else value.dtype.name
        if dtype != spec["dtype"]:
            errors.append(f"output {key!r} is {dtype}, the signature says {spec['dtype']}")
        if spec["shape"] is not None:
            expected = [batch if (axis == 0 and size == -1 and batch is not None) else size
                        for axis, size in enumerate(spec["shape"])]  # fmt: skip
            if len(expected) != value.ndim or any(
                e not in (-1, a) for e, a in zip(expected, value.shape)
            ):
                errors.append(f"output {key!r} has shape {list(value.shape)}, expected {expected}")
        if value.dtype.kind in "fc" and not np.all(np.isfinite(value)):
            errors.append(f"output {key!r} has non-finite values")
    return errors


def _judge_classification(outputs, batch, labels):
    probabilities, label_id, label = outputs["probabilities"], outputs["label_id"], outputs["label"]
    errors = []
    if probabilities.ndim != 2 or probabilities.shape[0] != batch:
        return [
            f"probabilities have shape {list(probabilities.shape)}, expected [{batch}, classes]"
        ]
    if np.any(probabilities < 0) or not np.allclose(probabilities.sum(-1), 1.0, atol=1e-4):
        errors.append("probabilities are not a distribution (negative, or rows not summing to 1)")
    if batch and not np.array_equal(label_id, probabilities.argmax(-1)):
        errors.append("label_id is not the argmax of probabilities")
    if labels is not None and batch:
        names = [labels[i].encode("utf-8") if 0 <= i < len(labels) else None for i in label_id]
        if list(label) != names:
            errors.append(f"label does not name label_id's class of {labels}")
    return errors


def _describe_predictions(inputs, outputs):
    texts = next((value for value in inputs.values() if value.dtype == object), None)
    rows = []
    if texts is not None and "probabilities" in outputs and "label" in outputs:
        for text, label, probability in zip(texts, outputs["label"], outputs["probabilities"]):
            rows.append({"input": text.decode("utf-8", "replace"),
                         "label": label.decode("utf-8", "replace"),
                         "probability": float(probability.max())})  # fmt: skip
    else:
        rows.append({"outputs": {key: list(value.shape) for key, value in outputs.items()}})
    return rows
