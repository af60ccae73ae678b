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


def reseeded_each_epoch(seed):
    """A callback that starts the random draws of every epoch (dropout, word dropout) from a state
    that depends only on `seed` and the epoch's number.

    Each `keras.random.SeedGenerator` of the model advances with every step, and its state is no
    weight, so a `BackupAndRestore` backup does not hold it: without this, a resumed run would draw
    its dropout masks from the start of the generators' sequence again. Reset at each epoch's start,
    a draw depends only on (seed, epoch, step, generator), as the batches do, and a run resumed
    after an epoch draws what the uninterrupted run drew.

    Args:
        seed: the run's seed.
    """
    import keras
    import numpy as np

    class ReseedEachEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            states = [
                variable
                for variable in self.model.variables
                if variable.name == "seed_generator_state"
            ]
            for index, state in enumerate(states):
                entropy = [abs(seed), int(seed < 0), epoch, index]
                [value] = np.random.SeedSequence(entropy).generate_state(1) >> 1  # an int32
                state.assign(np.array([value, 0], dtype=state.dtype))

    return ReseedEachEpoch()
