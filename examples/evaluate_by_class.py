"""Accuracy of a trained run on each class of a test file, and the confusions between classes.

    python examples/evaluate_by_class.py --run-dir runs/trec \
        --test ../shared/data/trec/TREC_10.label --format trec

A mean accuracy hides a class that a model gets wrong: this prints, for each true class, how
many test examples it has and which share of them the model predicts right (its recall), then
the confusion matrix (rows: true class, columns: predicted). `--run-dir` is a training output
directory (model.keras, preprocessor.json, metrics.json); `--json PATH` also writes the numbers.
Sentence classifiers only.
"""

import argparse
import json
import os

import numpy as np
import tensorflow as tf

import keras_mtsa  # noqa: F401  (registers the layers for loading)
from keras_mtsa.data import TextPreprocessor
from keras_mtsa.data import read_dataset


def accuracy_by_class(model, preprocessor, data, batch_size=256):
    """Returns ({class name: (examples, accuracy)}, confusion matrix (true x predicted))."""
    predicted = []
    for start in range(0, len(data), batch_size):
        ids = preprocessor(tf.constant(data.texts[start : start + batch_size]))
        predicted.append(np.argmax(model.predict_on_batch(ids), axis=-1))
    predicted = np.concatenate(predicted)
    labels = np.asarray(data.labels)
    classes = len(data.label_names)
    confusion = np.zeros((classes, classes), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    by_class = {
        name: (
            int(confusion[i].sum()),
            float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None,
        )
        for i, name in enumerate(data.label_names)
    }
    return by_class, confusion


def main(argv=None):
    import keras

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", required=True, help="a training output directory")
    parser.add_argument("--test", required=True, help="the test file")
    parser.add_argument("--format", required=True, help="its format, as for training")
    parser.add_argument("--trec-labels", default="coarse", choices=("coarse", "fine"))
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args(argv)
    paths = {
        name: os.path.join(args.run_dir, name)
        for name in ("model.keras", "preprocessor.json", "metrics.json")
    }
    missing = [path for path in paths.values() if not os.path.isfile(path)]
    if missing:
        raise SystemExit(f"--run-dir must hold a finished run: no {', '.join(missing)}")
    with open(paths["metrics.json"]) as file:
        label_names = json.load(file)["label_names"]
    with open(paths["preprocessor.json"]) as file:
        preprocessor = TextPreprocessor(**json.load(file))
    try:
        data = read_dataset(
            args.test, args.format, label_names=label_names, trec_labels=args.trec_labels
        )
    except (OSError, ValueError) as error:
        raise SystemExit(f"--test {args.test}: {error}") from None
    if not hasattr(data, "texts"):
        raise SystemExit(
            f"--format {args.format} holds sentence pairs: this script evaluates "
            "sentence classifiers"
        )
    model = keras.saving.load_model(paths["model.keras"])
    by_class, confusion = accuracy_by_class(model, preprocessor, data)
    width = max(len(name) for name in label_names)
    print(f"{'class':<{width}}  examples  accuracy")
    for name, (count, accuracy) in by_class.items():
        print(f"{name:<{width}}  {count:>8}  {'-' if accuracy is None else f'{accuracy:.3f}':>8}")
    print(f"{'all':<{width}}  {len(data):>8}  {np.trace(confusion) / len(data):>8.3f}")
    print("confusion (rows: true, columns: predicted):", *label_names)
    for name, row in zip(label_names, confusion):
        print(f"{name:<{width}}", *(f"{count:>4}" for count in row))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(
                {"by_class": by_class, "confusion": confusion.tolist(), "label_names": label_names},
                file,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
