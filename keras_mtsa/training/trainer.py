"""One job's preprocessing, datasets and model, and the two fits: dev-selected, then
the optional refit."""

import os
import time

import numpy as np

from keras_mtsa.training.callbacks import reseeded_each_epoch
from keras_mtsa.training.callbacks import resumable_early_stopping
from keras_mtsa.training.config import ConfigError
from keras_mtsa.training.config import comma_separated
from keras_mtsa.training.config import parse_buckets
from keras_mtsa.training.run_directory import read_history
from keras_mtsa.training.run_directory import resumed_epoch


class Trainer:
    """Builds the preprocessing, datasets and model of one job, and fits them.

    The config is never changed. What the first preprocessor fits to the training texts
    (`max_length`, the length buckets) is kept here, so that a refit pads as the selection did.

    Args:
        config: a resolved `TrainingConfig` (`config.resolve(pair)`).
        pair: whether it is the sentence-pair job.
        strategy: the `tf.distribute` strategy to build the model under.
        callbacks: more Keras callbacks for every fit, after the job's own (backup, checkpoint,
            early stopping, history, TensorBoard).
        tensorboard: whether to write TensorBoard logs.
        word_vectors: a `keras_mtsa.data.WordVectors` that starts the embeddings, or None.
    """

    def __init__(self, config, pair, strategy, callbacks=(), tensorboard=True, word_vectors=None):
        from keras_mtsa.distribute import is_tpu

        self.config = config
        self.pair = pair
        self.strategy = strategy
        self.callbacks = list(callbacks)
        self.tensorboard = tensorboard
        self.word_vectors = word_vectors
        self.drop_remainder = is_tpu(strategy)  # TPUs need static batch shapes
        self.max_length = config.text.max_length
        self.buckets = "none" if config.model.encoder == "cnn" else config.text.buckets
        self.embedding_summary = None  # with word vectors: what the last preprocessor found in them

    def fitted(self, max_length, buckets):
        """Takes the lengths an earlier process fitted (a refit resumed after a crash)."""
        self.max_length = max_length
        self.buckets = parse_buckets(buckets)

    def preprocessor(self, data, directory):
        """Learns the vocabulary of `data`'s texts into `directory` and returns the preprocessor.

        With word vectors, the words of the vectors file that the training texts lack are
        appended to the vocabulary (their embeddings stay frozen), so that a test word unseen
        in training has one.
        """
        from keras_mtsa.data import TextPreprocessor
        from keras_mtsa.data import write_vocabulary

        text = self.config.text
        texts = data.premises + data.hypotheses if self.pair else data.texts
        explicit = isinstance(self.buckets, tuple)
        vocabulary_file = os.path.join(directory, "vocabulary.txt")
        preprocessor = TextPreprocessor.from_texts(
            texts,
            vocabulary_file,
            self.max_length,
            max_size=text.vocabulary_size,
            min_count=text.min_count,
            subwords=text.subwords,
            lower_case=not text.keep_case,
            case_fallback=text.case_fallback,
            # Explicit buckets are checked against max_length once it is fitted, below.
            bucket_boundaries=None if self.buckets == "none" or explicit else "auto",
        )
        if explicit and self.buckets[-1] > preprocessor.max_length:
            raise ConfigError(
                f"`buckets` {comma_separated(self.buckets)} must not exceed the fitted "
                f"`max_length` {preprocessor.max_length} (the longest training text's length "
                "rounded up to a multiple of 8): give a larger `max_length` or smaller buckets"
            )
        options = preprocessor.config()
        if explicit:
            options["bucket_boundaries"] = self.buckets
        if self.word_vectors is not None:
            from keras_mtsa.data import embedding_rows
            from keras_mtsa.data import read_vocabulary

            tokens = read_vocabulary(vocabulary_file)
            rows = embedding_rows(tokens, self.word_vectors)
            write_vocabulary(tokens + list(rows.extra_tokens), vocabulary_file)
            self.embedding_summary = {
                "trainable_rows": len(tokens),
                "rows": rows,
            }
        if explicit or self.word_vectors is not None:
            preprocessor = TextPreprocessor(**options)
        # Fitted once, to the training texts of the first run: a refit keeps the same lengths.
        if self.max_length is None:
            self.max_length = preprocessor.max_length
            print(f"max_length {self.max_length} (fitted to the longest training text)")
        if self.buckets == "auto":
            self.buckets = tuple(preprocessor.bucket_boundaries)
            print(f"buckets {comma_separated(self.buckets)} (chosen from the training lengths)")
        return preprocessor

    @property
    def fitted_settings(self):
        """`max_length` and `buckets` as fitted, in the flat settings' spelling."""
        return {"max_length": self.max_length, "buckets": comma_separated(self.buckets)}

    def dataset(self, data, preprocessor, drop_remainder=False):
        """Batches of `data` for evaluation, grouped by length (the order does not matter there).

        The batches are the same every pass, so they are tokenized once and kept (`cache`): each
        pass over a dataset makes a new iterator, and instantiating the tokenizing map for it costs
        about a second on 2 cores (tf-text's ragged script tokenizer), every epoch's dev pass.
        """
        return self._make_dataset(
            data, preprocessor, drop_remainder=drop_remainder, group_by_length=True
        ).cache()

    def training_dataset(self, data, preprocessor, backup_dir):
        """Endless seeded batches, epoch after epoch, from the epoch the backup in
        `backup_dir` resumes.

        Each epoch's batches depend only on the seed and the epoch's number, so a
        resumed run trains on the batches the uninterrupted run would have (fit runs
        `steps_per_epoch` of them per epoch).
        """
        return self._make_dataset(
            data,
            preprocessor,
            shuffle=True,
            seed=self.config.run.seed,
            drop_remainder=self.drop_remainder,
            repeat=True,
            first_epoch=resumed_epoch(backup_dir),
            batches_per_epoch=self.steps_per_epoch(len(data)),
        )

    def steps_per_epoch(self, num_examples):
        """The batches of an epoch, at most `steps_per_epoch`."""
        batch_size = self.config.optimizer.batch_size
        if self.drop_remainder:
            batches = max(1, num_examples // batch_size)
        else:
            batches = max(1, -(-num_examples // batch_size))
        return min(batches, self.config.optimizer.steps_per_epoch or batches)

    def _make_dataset(self, data, preprocessor, **options):
        from keras_mtsa.data import make_classification_dataset
        from keras_mtsa.data import make_pair_dataset

        make_dataset = make_pair_dataset if self.pair else make_classification_dataset
        return make_dataset(
            data, preprocessor, batch_size=self.config.optimizer.batch_size, **options
        )

    def model(self, num_classes, preprocessor, num_examples):
        """A freshly initialized, compiled model (the same initial weights for the same seed)."""
        import keras

        from keras_mtsa import models

        model_config = self.config.model
        keras.utils.set_random_seed(self.config.run.seed)
        build = models.build_pair_classifier if self.pair else models.build_sentence_classifier
        head = dict(head=model_config.head) if self.pair else {}
        summary = self.embedding_summary
        vocabulary_size = summary["trainable_rows"] if summary else preprocessor.vocabulary_size
        with self.strategy.scope():
            model = build(
                num_classes,
                vocabulary_size=vocabulary_size,
                frozen_rows=preprocessor.vocabulary_size - vocabulary_size,
                max_length=self.max_length,
                embedding_dim=model_config.embedding_dim,
                embedding_scale=model_config.embedding_scale,
                encoder=model_config.encoder,
                num_heads=model_config.num_heads,
                head_dim=model_config.head_dim,
                num_blocks=model_config.num_blocks,
                conv_window=model_config.conv_window,
                token2token_activation=model_config.token2token,
                fusion_gate=model_config.fusion_gate,
                activation=model_config.activation,
                dropout=model_config.dropout,
                dropout_sites=model_config.dropout_sites,
                attention_dropout=model_config.attention_dropout,
                token_dropout=model_config.token_dropout,
                l2=model_config.l2,
                **head,
            )
            if summary:
                self._set_pretrained_embeddings(model.get_layer("sentence_encoder"), summary)
            model.compile(
                optimizer=self._optimizer(self.steps_per_epoch(num_examples)),
                loss=self._loss(num_classes),
                metrics=["accuracy"],
            )
        return model

    def _set_pretrained_embeddings(self, encoder, summary):
        """Copies the word vectors into the embedding layer (random rows stay for
        words they lack)."""
        embedding = encoder.get_layer("embedding")
        rows = summary["rows"]
        initial = np.asarray(embedding.embeddings.numpy())
        found = ~np.isnan(rows.initial).any(axis=1)
        initial[found] = rows.initial[found]
        embedding.embeddings.assign(initial)
        if len(rows.extra_tokens):
            embedding.frozen_embeddings.assign(rows.extra)
        if self.config.model.freeze_embeddings:
            embedding.trainable = False

    def _optimizer(self, steps_per_epoch):
        import keras

        optimizer = self.config.optimizer
        options = {}
        if optimizer.ema:
            # Overwriting once per epoch makes the validation (and so the best checkpoint) see the
            # averaged weights.
            options = dict(
                use_ema=True,
                ema_momentum=optimizer.ema,
                ema_overwrite_frequency=optimizer.steps_per_epoch or steps_per_epoch,
            )
        learning_rate, epsilon = optimizer.resolved_learning_rate, optimizer.resolved_epsilon
        if optimizer.optimizer == "adadelta":
            return keras.optimizers.Adadelta(learning_rate, rho=0.95, epsilon=epsilon, **options)
        return keras.optimizers.Adam(learning_rate, epsilon=epsilon, **options)

    def _loss(self, num_classes):
        label_smoothing = self.config.optimizer.label_smoothing
        if not label_smoothing:
            return "sparse_categorical_crossentropy"
        from keras_mtsa.losses import SparseCategoricalCrossentropyWithSmoothing

        return SparseCategoricalCrossentropyWithSmoothing(
            num_classes, label_smoothing=label_smoothing
        )

    def _tensorboard(self, log_dir):
        """The TensorBoard callback as a list: empty where tensorboard is not installed."""
        import keras

        return [keras.callbacks.TensorBoard(log_dir)] if self.tensorboard else []

    def fit_selecting_on_dev(self, train_data, dev_data, run_directory):
        """Trains on `train_data` and keeps the epoch with the best dev accuracy;
        resumes after a crash.

        Returns:
            `(model, preprocessor, history, seconds)`: the model holds the best epoch's weights.
        """
        import keras

        stage = run_directory.selection
        run_directory.start(stage)
        preprocessor = self.preprocessor(train_data, stage.directory)
        model = self.model(len(train_data.label_names), preprocessor, len(train_data))
        # Dev accuracies of the epochs before a crash (none for a fresh run): they carry early
        # stopping on. On a resume, the checkpoint to beat is the best of them: a fresh
        # ModelCheckpoint would overwrite best.weights.h5 with the first resumed epoch, however bad.
        scores_before = [
            row["val_accuracy"] for row in read_history(stage.history) if "val_accuracy" in row
        ]
        previous_best = (
            max(scores_before, default=None) if os.path.exists(stage.best_weights) else None
        )
        callbacks = [
            # Survives a crash or preemption: rerunning the same job resumes from the last epoch.
            # Kept after the last epoch (RunDirectory.finish removes it when the job is done), so
            # that a crash after training resumes with nothing left to train.
            keras.callbacks.BackupAndRestore(stage.backup, delete_checkpoint=False),
            keras.callbacks.ModelCheckpoint(
                stage.best_weights,
                monitor="val_accuracy",
                save_best_only=True,
                save_weights_only=True,
                initial_value_threshold=previous_best,
            ),
            resumable_early_stopping(self.config.optimizer.patience, scores_before),
            reseeded_each_epoch(self.config.run.seed),
            keras.callbacks.CSVLogger(stage.history, append=True),
            *self._tensorboard(stage.logs),
            *self.callbacks,
        ]
        _say_where_it_resumes(stage, self.config.optimizer.epochs, run_directory.root)
        started = time.time()
        model.fit(
            self.training_dataset(train_data, preprocessor, stage.backup),
            validation_data=self.dataset(
                dev_data, preprocessor, drop_remainder=self.drop_remainder
            ),
            epochs=self.config.optimizer.epochs,
            steps_per_epoch=self.steps_per_epoch(len(train_data)),
            shuffle=False,  # the tf.data pipeline shuffles (Keras would only warn that it cannot)
            callbacks=callbacks,
            verbose=self.config.run.verbose,
        )
        seconds = time.time() - started
        if os.path.exists(stage.best_weights):
            model.load_weights(stage.best_weights)  # the epoch with the best dev accuracy
        return model, preprocessor, read_history(stage.history), seconds

    def refit(self, data, epochs, run_directory):
        """Trains a fresh model on `data` (train and dev) for the dev-selected number of epochs.

        The vocabulary is learned again, from all of `data`. A crash resumes from the backup.

        Returns:
            `(model, preprocessor, seconds)`.
        """
        import keras

        stage = run_directory.refit_stage
        run_directory.start(stage)
        preprocessor = self.preprocessor(data, stage.directory)
        model = self.model(len(data.label_names), preprocessor, len(data))
        _say_where_it_resumes(stage, epochs, run_directory.root, what="Resuming the refit")
        started = time.time()
        model.fit(
            self.training_dataset(data, preprocessor, stage.backup),
            epochs=epochs,
            steps_per_epoch=self.steps_per_epoch(len(data)),
            shuffle=False,
            callbacks=[
                keras.callbacks.BackupAndRestore(stage.backup, delete_checkpoint=False),
                reseeded_each_epoch(self.config.run.seed),
                keras.callbacks.CSVLogger(stage.history, append=True),
                *self._tensorboard(stage.logs),
                *self.callbacks,
            ],
            verbose=self.config.run.verbose,
        )
        return model, preprocessor, round(time.time() - started, 1)


def _say_where_it_resumes(stage, epochs, root, what="Resuming"):
    """Prints where a fit resumes from its backup (nothing for a fresh fit)."""
    done = resumed_epoch(stage.backup)
    if done:
        print(f"{what} after epoch {done} of {epochs} from {root}")
