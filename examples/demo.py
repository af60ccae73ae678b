"""The main job: train a small MTSA classifier on the bundled synthetic corpus, export it for TF
Serving, check the export on TF Serving's loading road, and query it on that road: TensorFlow's C
API (`TF_LoadSessionFromSavedModel`, as TF Serving's C++ loader) in a fresh process without
TensorFlow's Python runtime.

    make demo        # or: python examples/demo.py

It takes a few minutes on 2 CPU cores. The corpus (examples/demo_corpus.py) is generated
from templates whose labels depend on word order (negation, "but" clauses); see that file for
what it is and is not.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from demo_corpus import write_corpus  # noqa: E402
from keras_mtsa import serving  # noqa: E402
from keras_mtsa.training import main as train_main  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_DIR = os.path.join(ROOT, "runs", "demo")
EXPORT_DIR = os.path.join(ROOT, "saved_models")
MODEL_NAME = "demo_sentiment"
QUERIES = [
    "the acting is great",
    "the acting is not great",
    "the plot is dull , but the ending is wonderful",
    "although the cast is brilliant , the script is lazy",
    "",
    "🎬 the film is really charming !!!",
]


def main():
    train, dev, test = write_corpus(os.path.join(RUN_DIR, "data"))
    train_main(
        [
            "--train",
            train,
            "--dev",
            dev,
            "--test",
            test,
            "--format",
            "labeled-lines",
            "--class-names",
            "negative,positive",
            "--output-dir",
            RUN_DIR,
            "--export-dir",
            EXPORT_DIR,
            "--model-name",
            MODEL_NAME,
            "--epochs",
            "8",
            "--batch-size",
            "32",
            "--max-length",
            "24",
            "--embedding-dim",
            "64",
            "--num-heads",
            "2",
            "--dropout",
            "0.2",
            "--verbose",
            "2",
            # A small model on a small, easy corpus: Adam converges in a few epochs.
            "--optimizer",
            "adam",
            "--embedding-scale",
            "0.05",
            "--patience",
            "4",
            # No word dropout: the corpus has no unseen words, and dropping "not" would flip labels.
            "--token-dropout",
            "0",
            # Case-folded, so that the served model answers "The acting is GREAT" as
            # "the acting is great".
            "--no-keep-case",
        ]
    )
    with open(os.path.join(RUN_DIR, "metrics.json")) as file:
        metrics = json.load(file)
    export_path = metrics["export_path"]
    print(f"\nTest accuracy on the synthetic corpus: {metrics['test_accuracy']:.3f}")
    print(f"Exported to {export_path}\n\nReadiness check:")
    if serving.main(["check", export_path]) != 0:
        return 1
    print(
        "\nPredictions on TF Serving's road (the TF C API in a fresh process, no "
        "TensorFlow Python runtime):"
    )
    [answer] = serving.serve(export_path, [("serving_default", {"text": QUERIES})])
    for query, label, probabilities in zip(QUERIES, answer["label"], answer["probabilities"]):
        print(f"{label.decode():>8}  p={probabilities.max():.3f}  {query!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
