"""`keras-mtsa-serving check DIR`: the readiness checker's command line (see `checker`)."""

import argparse
import json
import os
import sys

from keras_mtsa.serving.checker import DEFAULT_SAMPLES
from keras_mtsa.serving.checker import SCHEMAS
from keras_mtsa.serving.checker import check


def rest_request(model_name, instances, signature="serving_default"):
    """The TF Serving REST request (row format) that queries `signature`."""
    body = json.dumps({"signature_name": signature, "instances": instances}, ensure_ascii=False)
    return (
        f"curl -X POST http://localhost:8501/v1/models/{model_name}:predict \\\n"
        f"  -H 'Content-Type: application/json' -d '{body}'"
    )


def models_config_entry(model_name, base_path):
    return (
        "model_config_list {\n  config {\n"
        f'    name: "{model_name}"\n    base_path: "{base_path}"\n    '
        'model_platform: "tensorflow"\n'
        "  }\n}"
    )


def _instances(inputs, samples):
    """Two REST instances for a signature's inputs (texts for strings, zeros otherwise)."""
    texts = list(samples[:2])
    if all(info["dtype"] == "string" for info in inputs.values()):
        if len(inputs) == 1:
            return texts
        return [{name: text for name in sorted(inputs)} for text in texts]

    def zeros(info):
        shape = [8 if size == -1 else size for size in (info["shape"] or [-1])[1:]]
        value = 0
        for size in reversed(shape):
            value = [value] * size
        return value

    return [{name: zeros(info) for name, info in sorted(inputs.items())} for _ in range(2)]


def _print_report(report, path, samples):
    for name, signature in report.get("signatures", {}).items():
        inputs = {k: (v["dtype"], v["shape"]) for k, v in signature["inputs"].items()}
        outputs = {k: (v["dtype"], v["shape"]) for k, v in signature["outputs"].items()}
        print(f"signature {name}: inputs {inputs} outputs {outputs}")
    ops = report.get("ops", {})
    if ops:
        print(
            f"ops from TensorFlow core ({len(ops['tensorflow'])}): {', '.join(ops['tensorflow'])}"
        )
        print(
            f"ops from tensorflow-text ({len(ops['tensorflow_text'])}): "
            f"{', '.join(ops['tensorflow_text'])}"
        )
    road = report.get("session_road")
    if road:
        print(
            f"session road: loaded with {road['loader']} in {road['load_seconds']:.2f} s, "
            f"TensorFlow {road['tensorflow_version']}, TensorFlow Python runtime imported: "
            f"{road['tensorflow_python_imported']}; {len(road['requests'])} requests run: "
            f"{'; '.join(road['requests'])}"
        )
    if "warmup_requests" in report:
        print(f"warm-up requests: {report['warmup_requests']} (replayed on the session road)")
    concurrency = report.get("concurrency")
    if concurrency:
        print(
            f"concurrency: {concurrency['threads']} threads x "
            f"{concurrency['requests'] // concurrency['threads']} requests on one session: "
            f"{concurrency['requests'] - concurrency['error_count']} answered in "
            f"{concurrency['seconds']:.2f} s ({concurrency['requests_per_second']:.0f} "
            "requests/s), largest difference from the request run alone: "
            f"{concurrency['max_difference']}"
        )
    for prediction in report.get("sample_predictions", []):
        if "label" in prediction:
            print(
                f"sample {prediction['input']!r} -> {prediction['label']} "
                f"({prediction['probability']:.3f})"
            )
        else:
            print(f"sample outputs (shapes): {prediction['outputs']}")
    for warning in report.get("warnings", []):
        print(f"WARNING: {warning}")
    if report["errors"]:
        for error in report["errors"]:
            print(f"ERROR: {error}")
        print("NOT READY for TF Serving")
        return 1
    model_name = os.path.basename(os.path.dirname(path))
    signatures = report["signatures"]
    signature = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
    print(
        "\nREST request:\n"
        + rest_request(model_name, _instances(signatures[signature]["inputs"], samples), signature)
    )
    print("\nmodels.config entry:\n" + models_config_entry(model_name, os.path.dirname(path)))
    print("\nREADY for TF Serving")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="keras-mtsa-serving", description="Checks SavedModels on TF Serving's loading road."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help="check a SavedModel version directory")
    check_parser.add_argument("path", help="saved_models/<name>/<version>")
    check_parser.add_argument(
        "--sample", action="append", help="sample text for string inputs (repeatable)"
    )
    check_parser.add_argument(
        "--schema", choices=SCHEMAS, default="auto",
        help="hold serving_default to the keras-mtsa text-classifier schema: auto (keras-mtsa "
             "exports), always, never",
    )  # fmt: skip
    check_parser.add_argument(
        "--allow-xla", action="store_true",
        help="accept XLA must-compile functions (a GPU server, or "
             "--xla_cpu_compilation_enabled=true)",
    )  # fmt: skip
    check_parser.add_argument(
        "--threads", type=int, default=8, help="concurrent clients (0: no concurrency check)"
    )
    check_parser.add_argument(
        "--repeats", type=int, default=25, help="requests per concurrent client"
    )
    args = parser.parse_args(argv)
    for flag in ("threads", "repeats"):
        if getattr(args, flag) < 0:
            parser.error(f"--{flag} must be >= 0. Received: {getattr(args, flag)}")

    path = os.path.abspath(args.path)
    samples = args.sample or list(DEFAULT_SAMPLES)
    report = check(
        path,
        samples,
        schema=args.schema,
        allow_xla=args.allow_xla,
        threads=args.threads,
        repeats=args.repeats,
    )
    return _print_report(report, path, samples)


if __name__ == "__main__":
    sys.exit(main())
