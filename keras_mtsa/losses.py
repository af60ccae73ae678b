"""Training losses for the example models."""

import keras
from keras import ops

from keras_mtsa.ops import _checks as check


@keras.saving.register_keras_serializable(package="keras_mtsa")
class SparseCategoricalCrossentropyWithSmoothing(keras.losses.Loss):
    """Cross-entropy on integer labels with label smoothing.

    Keras's `SparseCategoricalCrossentropy` has no `label_smoothing`; this one-hot encodes
    the integer labels and uses `categorical_crossentropy`, so the datasets keep their
    (batch,) int labels.

    Args:
        num_classes: number of classes (the width of the predicted probabilities).
        label_smoothing: in [0, 1): the target puts 1 - label_smoothing + label_smoothing /
            num_classes on the true class and label_smoothing / num_classes on each other class.
        **kwargs: base `keras.losses.Loss` arguments (`name`, `reduction`, `dtype`).
    """

    def __init__(self, num_classes, label_smoothing=0.0, name="smoothed_crossentropy", **kwargs):
        self.num_classes = check.positive_int("num_classes", num_classes)
        self.label_smoothing = check.rate("label_smoothing", label_smoothing)
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        targets = ops.one_hot(labels, self.num_classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            targets, y_pred, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, label_smoothing=self.label_smoothing)
        return config
