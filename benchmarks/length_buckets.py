"""Length buckets against padding to max_length: epoch time, XLA compilations, serving latency.

Usage (from the repository root, with the package installed or on PYTHONPATH; reads ../shared/data):

    python benchmarks/length_buckets.py  # TREC, SST-2 and SUBJ; about 15 min on 2 cores
    python benchmarks/length_buckets.py --datasets trec --epochs 2

Each (dataset, padding) pair trains in a fresh subprocess with the training CLI's own code path
(`keras_mtsa.training.trainer.Trainer`: its preprocessor, seeded batches, model and optimizer, CLI
defaults, --seed 1), so the two sides of a ratio differ only in `--buckets auto` against
`--buckets none`. They run one after the other in one invocation, on the same machine. Reported per
side: the wall time of each epoch (the first one includes XLA compilation), the XLA compilations
during training (counted from TensorFlow's `device_compiler` log lines, one per compiled program)
and the distinct batch shapes. For SUBJ, the bucketed run's model is also exported three times, its
requests padded to max_length (the export before length buckets), to their bucket and to their
longest text (`export_for_serving(request_padding=...)`), and `serving_default` is timed on TF
Serving's road (`keras_mtsa.serving.time_requests`: the TF C API's session in a clean process;
median of --requests runs of `Session::Run`, then the median over 3 rounds that alternate between
the exports) for 1-word, 10-word and max-length requests at batch 1 and 32; the exports' answers are
compared. `--serving-only` skips the training and times the exports of an untrained SUBJ model (the
latency does not depend on the weights).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

DATA = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data"
)
DATASETS = {
    "trec": [
        "--train",
        "trec/train_5500.label",
        "--test",
        "trec/TREC_10.label",
        "--format",
        "trec",
    ],
    "sst2": [
        "--train",
        "sst2/stsa.binary.train",
        "--dev",
        "sst2/stsa.binary.dev",
        "--test",
        "sst2/stsa.binary.test",
        "--format",
        "labeled-lines",
    ],  # fmt: skip
    "subj": ["--train", "subj/subj.all", "--test", "subj/subj.all", "--format", "labeled-lines"],
}
COMPILED = re.compile(r"Compilation of XLA executable time")
PADDINGS = (
    "max_length",
    "buckets",
    "longest",
)  # export_for_serving's request_padding; max_length: as before buckets
ROUNDS = 3


def _config(dataset, buckets, output_dir):
    from keras_mtsa.training import config_from_argv

    paths = [os.path.join(DATA, value) if "/" in value else value for value in DATASETS[dataset]]
    return config_from_argv(
        [*paths, "--buckets", buckets, "--output-dir", output_dir, "--seed", "1"]
    ).resolve()


def worker(dataset, buckets, epochs, serving, requests):
    """One side: trains `epochs` epochs and prints a JSON line of its measurements."""
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_mtsa.training import environment
    from keras_mtsa.training import job
    from keras_mtsa.training.trainer import Trainer

    with tempfile.TemporaryDirectory() as scratch:
        config = _config(dataset, buckets, scratch)
        keras.utils.set_random_seed(config.run.seed)
        environment.set_op_determinism(config.run.deterministic)
        trainer = Trainer(config, False, tf.distribute.get_strategy())
        train_data, _, _ = job.read_splits(config.data, False, config.run.seed)
        preprocessor = trainer.preprocessor(train_data, scratch)
        model = trainer.model(len(train_data.label_names), preprocessor, len(train_data))
        dataset_ = trainer.training_dataset(
            train_data, preprocessor, os.path.join(scratch, "backup")
        )
        steps = trainer.steps_per_epoch(len(train_data))
        shapes = set()
        for ids, _ in dataset_.take(steps):
            shapes.add(tuple(ids.shape))

        class EpochTimes(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.started = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.model.epoch_seconds.append(time.perf_counter() - self.started)

        model.epoch_seconds = []
        if epochs:
            model.fit(
                dataset_, epochs=epochs, steps_per_epoch=steps, callbacks=[EpochTimes()], verbose=0
            )
        sys.stderr.flush()
        result = {
            "dataset": dataset,
            "buckets": list(preprocessor.bucket_boundaries),
            "examples": len(train_data),
            "steps_per_epoch": steps,
            "epoch_seconds": [round(seconds, 2) for seconds in model.epoch_seconds],
            "batch_shapes": len(shapes),
            "tokens_per_example": round(
                float(np.mean([np.prod(shape) for shape in shapes])) if shapes else 0.0, 1
            ),
        }
        if serving:
            result["serving"] = _serving_latency(model, preprocessor, scratch, requests)
    print("RESULT " + json.dumps(result), flush=True)


def _serving_latency(model, preprocessor, scratch, requests):
    """serving_default of two exports of `model` (bucketed / padded to max_length), on
    TF Serving's road."""
    import numpy as np

    from keras_mtsa import serving
    from keras_mtsa.export import export_for_serving

    labels = [str(i) for i in range(model.output_shape[-1])]
    words = "the film is a smart , funny and moving story about".split()
    texts = {
        "1 word": "film",
        "10 words": " ".join(words[:10]),
        "max-length": " ".join((words * 40)[: preprocessor.max_length]),
    }
    cases = [(text_name, batch) for text_name in texts for batch in (1, 32)]
    calls = [
        ("serving_default", {"text": [texts[text_name]] * batch}) for text_name, batch in cases
    ]
    paths = {
        padding: export_for_serving(
            model,
            preprocessor,
            os.path.join(scratch, "export"),
            model_name=padding.replace("_", "-"),
            labels=labels,
            request_padding=padding,
        )  # fmt: skip
        for padding in PADDINGS
    }
    # Rounds alternate between the exports, so that a slow spell of the shared
    # machine hits all of them.
    medians = {padding: [[] for _ in cases] for padding in PADDINGS}
    answers = {}
    for _ in range(ROUNDS):
        for padding, path in paths.items():
            answers[padding], seconds = serving.time_requests(path, calls, repeats=requests)
            for index, runs in enumerate(seconds):
                medians[padding][index].append(statistics.median(runs))
    rows = []
    for index, (text_name, batch) in enumerate(cases):
        milliseconds = {
            padding: 1000 * statistics.median(medians[padding][index]) for padding in PADDINGS
        }
        difference = max(
            float(
                np.max(
                    np.abs(
                        answers[padding][index]["probabilities"]
                        - answers["max_length"][index]["probabilities"]
                    )
                )
            )
            for padding in PADDINGS
        )
        rows.append({
            "request": text_name, "batch": batch,
            "milliseconds": {k: round(v, 3) for k, v in milliseconds.items()},
            "max_difference": difference,
        })  # fmt: skip
    return rows


def _run_side(dataset, buckets, epochs, serving, requests):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "TF_CPP_VMODULE": "device_compiler=1"}
    command = [
        sys.executable, os.path.abspath(__file__), "--worker", dataset, "--buckets", buckets,
        "--epochs", str(epochs), "--requests", str(requests), *(["--serving"] if serving else []),
    ]  # fmt: skip
    process = subprocess.run(command, capture_output=True, text=True, env=environment)
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    if process.returncode or not lines:
        raise SystemExit(
            f"{dataset} --buckets {buckets} failed "
            f"({process.returncode}):\n{process.stderr[-3000:]}"
        )
    result = json.loads(lines[-1][len("RESULT ") :])
    # Compilations before the serving part: fit's are the training step's (the
    # worker evaluates nothing).
    training_log = process.stderr.split("RESULT")[0]
    result["xla_compilations"] = len(COMPILED.findall(training_log))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="trec,sst2,subj")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per side (at least 1)")
    parser.add_argument("--requests", type=int, default=30, help="timed calls per serving request")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--buckets", help=argparse.SUPPRESS)
    parser.add_argument("--serving", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serving-only", action="store_true", help="only the SUBJ serving latency")
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.buckets, args.epochs, args.serving, args.requests)
    if args.epochs < 1:
        raise SystemExit(f"--epochs must be at least 1, got {args.epochs}")
    if args.serving_only:
        side = _run_side("subj", "auto", 0, True, args.requests)
        return _print_serving(side["serving"])
    for dataset in args.datasets.split(","):
        if dataset not in DATASETS:
            raise SystemExit(f"--datasets: unknown {dataset!r}; known: {', '.join(DATASETS)}")
    print(
        "| dataset | padding | boundaries | batch shapes | XLA compilations "
        "| epoch 1 s | last epoch s |"
    )
    print("|---|---|---|---|---|---|---|")
    summary = []
    for dataset in args.datasets.split(","):
        sides = {}
        for buckets in ("none", "auto"):
            side = _run_side(
                dataset,
                buckets,
                args.epochs,
                dataset == "subj" and buckets == "auto",
                args.requests,
            )
            sides[buckets] = side
            print(
                f"| {dataset} | {buckets} | {side['buckets']} | {side['batch_shapes']} | "
                f"{side['xla_compilations']} | {side['epoch_seconds'][0]} | "
                f"{side['epoch_seconds'][-1]} |",
                flush=True,
            )
        ratio = sides["none"]["epoch_seconds"][-1] / sides["auto"]["epoch_seconds"][-1]
        summary.append(f"{dataset}: last-epoch time, max_length padding / buckets = {ratio:.2f}x")
        if "serving" in sides["auto"]:
            serving_rows = sides["auto"]["serving"]
    print()
    print("\n".join(summary))
    if args.datasets.count("subj"):
        _print_serving(serving_rows)


def _print_serving(rows):
    print()
    print("| SUBJ request | batch | max_length ms | buckets ms | longest ms | "
          "max_length / buckets | max_length / longest | max abs difference |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        ms = row["milliseconds"]
        print(
            f"| {row['request']} | {row['batch']} | {ms['max_length']} | {ms['buckets']} | "
            f"{ms['longest']} | {ms['max_length'] / ms['buckets']:.2f}x | "
            f"{ms['max_length'] / ms['longest']:.2f}x | {row['max_difference']:.1e} |"
        )


if __name__ == "__main__":
    main()
