"""Callbacks of the training job."""


def resumable_early_stopping(patience, scores):
    """Early stopping on dev accuracy that, on a resume, goes on counting from the
    run before the crash.

    Keras's `EarlyStopping` starts from scratch in every `fit`, so a run resumed by
    `BackupAndRestore` would otherwise get `patience` more epochs than an uninterrupted one.

    Args:
        patience: epochs without a strictly better dev accuracy before stopping.
        scores: dev accuracies of the epochs already run, in order (empty for a fresh run).
    """
    import keras

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if scores:
                best_epoch = scores.index(max(scores))  # the first maximum: ties are no improvement
                self.best, self.best_epoch = scores[best_epoch], best_epoch
                self.wait = len(scores) - 1 - best_epoch

    return ResumableEarlyStopping(monitor="val_accuracy", mode="max", patience=patience)
