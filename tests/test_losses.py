"""Spec tests of keras_mtsa.losses."""

import keras
import numpy as np
import pytest

from keras_mtsa.losses import SparseCategoricalCrossentropyWithSmoothing

# Backend numerics: run again on JAX by `make test-jax` (`-m backends`).
pytestmark = pytest.mark.backends

PROBABILITIES = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.25, 0.5, 0.25]], "float32")
LABELS = np.array([0, 2, 1])


def test_matches_the_smoothed_one_hot_cross_entropy():
    loss = SparseCategoricalCrossentropyWithSmoothing(3, label_smoothing=0.3)
    targets = np.eye(3)[LABELS] * 0.7 + 0.1  # 1 - 0.3 + 0.3 / 3 on the label, 0.3 / 3 elsewhere
    expected = -(targets * np.log(PROBABILITIES)).sum(-1).mean()
    np.testing.assert_allclose(float(loss(LABELS, PROBABILITIES)), expected, rtol=1e-5)


def test_without_smoothing_it_is_the_sparse_cross_entropy_and_accepts_column_labels():
    loss = SparseCategoricalCrossentropyWithSmoothing(3)
    expected = keras.losses.SparseCategoricalCrossentropy()(LABELS, PROBABILITIES)
    np.testing.assert_allclose(
        float(loss(LABELS[:, None], PROBABILITIES)), float(expected), rtol=1e-6
    )


def test_config_round_trip():
    loss = SparseCategoricalCrossentropyWithSmoothing(4, label_smoothing=0.2, name="ce")
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert (restored.num_classes, restored.label_smoothing, restored.name) == (4, 0.2, "ce")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": 3, "label_smoothing": 1.0}, "label_smoothing"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SparseCategoricalCrossentropyWithSmoothing(**kwargs)
