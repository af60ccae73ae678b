"""`examples/evaluate_by_class.py`: per-class accuracy and confusions of a saved
run, against numpy."""

import json
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_mtsa import models
from keras_mtsa.data import TextPreprocessor

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
)

from evaluate_by_class import main  # noqa: E402

TEXTS = [
    "good film",
    "bad film",
    "a good plot",
    "bad acting",
    "fine",
    "so bad",
    "good good",
    "plot",
]
LABELS = [1, 0, 1, 0, 2, 0, 1, 2]


@pytest.fixture
def run_dir(tmp_path):
    """A saved run as training leaves it: model.keras, preprocessor.json, metrics.json."""
    preprocessor = TextPreprocessor.from_texts(TEXTS, str(tmp_path / "vocabulary.txt"), 8)
    keras.utils.set_random_seed(3)
    model = models.build_sentence_classifier(
        3,
        vocabulary_size=preprocessor.vocabulary_size,
        max_length=8,
        embedding_dim=8,
        hidden_units=4,
    )
    model.save(tmp_path / "model.keras")
    with open(tmp_path / "preprocessor.json", "w") as file:
        json.dump(preprocessor.config(), file)
    with open(tmp_path / "metrics.json", "w") as file:
        json.dump({"label_names": ["0", "1", "2"]}, file)
    test = tmp_path / "test.txt"
    test.write_text("".join(f"{label} {text}\n" for label, text in zip(LABELS, TEXTS)))
    predicted = np.argmax(model.predict(preprocessor(tf.constant(TEXTS)), verbose=0), axis=-1)
    return tmp_path, str(test), predicted


@pytest.mark.slow
def test_accuracy_of_each_class_and_the_confusions_equal_the_models_predictions(run_dir, capsys):
    directory, test, predicted = run_dir
    output = str(directory / "by_class.json")
    assert (
        main(
            [
                "--run-dir",
                str(directory),
                "--test",
                test,
                "--format",
                "labeled-lines",
                "--json",
                output,
            ]
        )
        == 0
    )
    result = json.load(open(output))
    labels = np.asarray(LABELS)
    for label, name in enumerate(["0", "1", "2"]):
        count, accuracy = result["by_class"][name]
        assert count == np.sum(labels == label)
        assert accuracy == pytest.approx(np.mean(predicted[labels == label] == label))
    expected = np.zeros((3, 3), int)
    np.add.at(expected, (labels, predicted), 1)
    np.testing.assert_array_equal(result["confusion"], expected)
    assert f"all  {len(TEXTS):>8}  {np.mean(predicted == labels):>8.3f}" in capsys.readouterr().out


def test_a_directory_without_a_finished_run_exits_with_a_message(tmp_path):
    with pytest.raises(SystemExit, match="--run-dir must hold a finished run: no .*model.keras"):
        main(["--run-dir", str(tmp_path), "--test", "t.txt", "--format", "trec"])
