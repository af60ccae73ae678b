"""The main job: train a small MTSA classifier on the bundled synthetic corpus, export it for TF Serving,
check the export, and query it from a fresh process that imports only tensorflow and tensorflow_text.

    make demo        # or: python examples/demo.py

It takes a few minutes on 2 CPU cores. The corpus (examples/demo_corpus.py) is generated from templates
whose labels depend on word order (negation, "but" clauses); see that file for what it is and is not.
"""

import json
import os
import subprocess
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

# Runs in a process that has never imported keras or keras_mtsa.
QUERY_SCRIPT = """
import json, sys
import tensorflow as tf
import tensorflow_text  # the tf-text ops used by the exported preprocessing
served = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
result = served(text=tf.constant(json.loads(sys.argv[2])))
for text, label, p in zip(json.loads(sys.argv[2]), result["label"].numpy(), result["probabilities"].numpy()):
    print(f"{label.decode():>8}  p={p.max():.3f}  {text!r}")
"""


def main():
    train, dev, test = write_corpus(os.path.join(RUN_DIR, "data"))
    train_main(
        [
            "--train", train, "--dev", dev, "--test", test, "--format", "labeled-lines",
            "--class-names", "negative,positive",
            "--output-dir", RUN_DIR, "--export-dir", EXPORT_DIR, "--model-name", MODEL_NAME,
            "--epochs", "8", "--batch-size", "32", "--max-length", "24", "--embedding-dim", "64",
            "--num-heads", "2", "--dropout", "0.2", "--verbose", "2",
            # A small model on a small, easy corpus: Adam converges in a few epochs.
            "--optimizer", "adam", "--embedding-scale", "0.05", "--patience", "4",
            # No word dropout: the corpus has no unseen words, and dropping "not" would flip labels.
            "--token-dropout", "0",
            # Case-folded, so that the served model answers "The acting is GREAT" as "the acting is great".
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
    print("\nPredictions from the SavedModel in a fresh process (tensorflow + tensorflow_text only):")
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run(
        [sys.executable, "-c", QUERY_SCRIPT, export_path, json.dumps(QUERIES)],
        check=True, env=environment, cwd=RUN_DIR,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
