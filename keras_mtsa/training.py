"""The training job behind `examples/train_classifier.py` and `examples/train_pair_classifier.py`.

One function, `train(args)`, reads a dataset, learns a vocabulary, builds the tf-text preprocessing and a
functional model under a `tf.distribute` strategy, trains with dev-based model selection (optionally
followed by a refit on train + dev for the chosen number of epochs), resumes from a backup after a crash,
evaluates on the test file, writes `metrics.json`, TensorBoard logs and a learning curve plot, and
optionally exports a SavedModel for TF Serving.
"""

import argparse
import csv
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import time

from keras_mtsa.distribute import STRATEGIES
from keras_mtsa.layers.mtsa import FUSION_GATES
from keras_mtsa.models import CNN_WINDOWS
from keras_mtsa.models import DROPOUT_SITES
from keras_mtsa.models import ENCODERS
from keras_mtsa.models import PAIR_HEADS
from keras_mtsa.models import default_token2token_activation

CLASSIFICATION_FORMATS = ("labeled-lines", "trec", "tsv", "csv")
PAIR_FORMATS = ("sick", "snli")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
OPTIMIZERS = ("adam", "adadelta")
DEFAULT_LEARNING_RATES = {"adam": 1e-3, "adadelta": 1.0}


# Names of the files and folders in --output-dir that carry a run across a crash.
_BACKUP_DIR = "backup"  # BackupAndRestore of the dev-selected run
_REFIT_BACKUP_DIR = "refit_backup"  # BackupAndRestore of the --refit run
_SELECTION_DIR = "selection"  # with --refit: the dev-selected run
_SELECTION_FILE = "selection.json"  # with --refit: marks a finished selection


def build_argument_parser(pair=False):
    """Command-line arguments of the training scripts (`pair=True` for the sentence-pair model)."""
    kind = "sentence-pair" if pair else "sentence"
    parser = argparse.ArgumentParser(description=f"Train an MTSA {kind} classifier.")
    parser.add_argument("--train", required=True, help="training file")
    parser.add_argument("--test", required=True, help="test file (used once, after training)")
    parser.add_argument(
        "--dev", help="dev file for model selection; default: 10%% carved from --train"
    )
    formats = PAIR_FORMATS if pair else CLASSIFICATION_FORMATS
    parser.add_argument("--format", required=True, choices=formats, help="file format")
    parser.add_argument("--trec-labels", default="coarse", choices=("coarse", "fine"))
    parser.add_argument("--text-column", default="text", help="tsv/csv: text column")
    parser.add_argument("--label-column", default="label", help="tsv/csv: label column")
    parser.add_argument(
        "--class-names",
        help="comma-separated display names of the classes, in the order of the labels as sorted in the "
        "data (e.g. 'negative,positive' for 0/1 labels); they are what the exported model returns",
    )
    parser.add_argument(
        "--skip-malformed", action="store_true", help="skip malformed lines (counted)"
    )
    parser.add_argument("--output-dir", default="runs/" + ("pair" if pair else "classifier"))
    parser.add_argument("--export-dir", help="export a SavedModel here for TF Serving")
    parser.add_argument(
        "--model-name", help="model name in the export layout (default: from --train)"
    )
    # Defaults of both models: Adadelta with Kim's (2014) random-embedding range, batch 50 and 25 epochs
    # (measured best on TREC, and on SICK: 0.754 against 0.721 with Adam 1e-3, batch 32, 12 epochs).
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=50, help="global batch size")
    parser.add_argument(
        "--max-length",
        type=int,
        help="the most tokens per sentence (longer ones are cut); default: the longest training text's, "
        "rounded up to a multiple of 8, at most 256",
    )
    parser.add_argument(
        "--buckets",
        default="auto",
        help="the padded lengths of batches, e.g. 16,32,64 (--max-length is always the last): each batch is "
        "made of sentences of one bucket and padded to it, so a step costs about its real tokens; 'auto' "
        "chooses up to 5 multiples of 8 from the training lengths, 'none' pads every batch to --max-length "
        "(--encoder cnn always does: its max-over-time pooling sees the padding)",
    )
    parser.add_argument("--vocabulary-size", type=int, default=30000)
    parser.add_argument(
        "--min-count",
        type=int,
        default=2,
        help="rarer training words map to [UNK], which so learns rare words",
    )
    parser.add_argument(
        "--keep-case",
        action=argparse.BooleanOptionalAction,
        default=not pair,
        help="case-sensitive vocabulary, model and export (as Kim (2014) for TREC, where capitals mark names); "
        "--no-keep-case folds case. Default: kept for sentences, folded for pairs",
    )
    parser.add_argument(
        "--case-fallback",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="with --keep-case: a word missing from the vocabulary is looked up again case-folded "
        '("Denver" seen once and "denver" once become "denver")',
    )
    parser.add_argument(
        "--subwords",
        action="store_true",
        help="WordPiece subwords learned from the training text (tensorflow-text's learner) instead of words: "
        "--vocabulary-size is its target size and --min-count the lowest count of a word or piece",
    )
    parser.add_argument("--embedding-dim", type=int, default=300)
    parser.add_argument(
        "--embedding-scale",
        type=float,
        default=0.25,
        help="embeddings start uniform in [-scale, scale]",
    )
    parser.add_argument("--num-heads", type=int, default=2)
    parser.add_argument(
        "--head-dim", type=int, help="features per head; default: --embedding-dim / --num-heads"
    )
    parser.add_argument(
        "--num-blocks", type=int, default=0, help="0: single MTSA layer; N: stacked blocks"
    )
    parser.add_argument(
        "--conv-window",
        type=int,
        default=0,
        help="0: the paper's setup; N: a ReLU convolution over N tokens in front of MTSA (a hybrid, not the paper's)",
    )
    parser.add_argument(
        "--encoder",
        default="mtsa",
        choices=ENCODERS,
        help="mtsa, or a baseline: mha (MultiHeadAttention, same width) or cnn (Kim's 2014 CNN)",
    )
    parser.add_argument(
        "--token2token",
        choices=("exp", "sigmoid"),
        help="MTSA's token2token factor; default: sigmoid for the single layer (the authors' sentence models), "
        "exp with --num-blocks (their deep models)",
    )
    parser.add_argument(
        "--fusion-gate",
        default="per_head",
        choices=FUSION_GATES,
        help="the MTSA layer's fusion gate: per_head (the authors': one (2d x d) map per head) or joint (one "
        "map over all heads, the package's gate before 0.2)",
    )
    parser.add_argument("--activation", default="relu" if not pair else "elu")
    if pair:
        parser.add_argument(
            "--head",
            default="relu",
            choices=PAIR_HEADS,
            help="the classifier over [u; v; u - v; u * v]: relu (Dense(300, relu)) or highway (the authors' SNLI "
            "head: Dense(300, elu), then a highway layer)",
        )
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument(
        "--dropout-sites",
        default="embedding",
        choices=DROPOUT_SITES,
        help="where --dropout applies: embedding (the embeddings and the classifier's input) or authors (as the "
        "authors' code: the input of every dense map, per head inside MTSA, in the pooling and in the head; "
        "needs the single MTSA layer)",
    )
    parser.add_argument(
        "--attention-dropout",
        type=float,
        default=0.0,
        help="attention dropout of MTSA (its token2token and source2token factors, as the authors' code) "
        "or of MultiHeadAttention",
    )
    parser.add_argument(
        "--token-dropout",
        type=float,
        default=0.0 if pair else 0.2,
        help="word dropout: the probability that a training token becomes [UNK], which so learns to stand "
        "for unseen words. Default: 0.2 for sentences (TREC 0.896 against 0.888 without, 3 seeds), 0 for pairs",
    )
    parser.add_argument(
        "--optimizer",
        default="adadelta",
        choices=OPTIMIZERS,
        help="adam, or adadelta (rho 0.95, epsilon 1e-6, as Kim (2014) and the MTSA authors' TREC runs)",
    )
    parser.add_argument(
        "--learning-rate", type=float, help="default: 1.0 for adadelta, 1e-3 for adam"
    )
    parser.add_argument(
        "--epsilon",
        type=float,
        help="the optimizer's epsilon; default: 1e-6 for adadelta (Kim's), 1e-7 for adam",
    )
    parser.add_argument(
        "--l2",
        type=float,
        default=0.0,
        help="L2 on every kernel (not embeddings or biases), as Keras's L2(l2): the authors' weight decay wd "
        "(wd * tf.nn.l2_loss(W)) is --l2 wd/2",
    )
    parser.add_argument(
        "--label-smoothing", type=float, default=0.0, help="label smoothing in [0, 1)"
    )
    parser.add_argument(
        "--ema",
        type=float,
        default=0.0,
        help="if > 0: keep an exponential moving average of the weights with this momentum (e.g. 0.99) and "
        "copy it into the model at the end of every epoch, so dev selection and export use the average",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=25,
        help="early stopping on dev accuracy (by default all 25 epochs run: on TREC the dev accuracy still "
        "rose after 9 flat epochs)",
    )
    parser.add_argument(
        "--refit",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="after the dev split has chosen the number of epochs, train a fresh model on train + dev for "
        "that many epochs and keep it (about twice the training time); the selection run stays in "
        "<output-dir>/selection/",
    )
    parser.add_argument("--strategy", default="auto", choices=STRATEGIES)
    parser.add_argument("--tpu", help="TPU name or address for --strategy tpu")
    parser.add_argument("--mixed-precision", default=None, choices=PRECISIONS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="TensorFlow's deterministic kernels, so that the same command and --seed give the same numbers "
        "(on TREC with this CPU about 5%% slower per epoch; without them two runs of one seed part within the "
        "first epochs and end up to 0.006 apart in test accuracy)",
    )
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        help="at most this many steps per epoch (the first of its batches)",
    )
    parser.add_argument(
        "--verbose", type=int, default=1, choices=(0, 1, 2), help="Keras fit verbosity"
    )
    return parser


def train(args, pair=False):
    """Runs the whole job; returns the metrics dict also written to `<output_dir>/metrics.json`."""
    import keras

    from keras_mtsa.data import DataFormatError
    from keras_mtsa.data import join_splits
    from keras_mtsa.distribute import get_strategy
    from keras_mtsa.distribute import is_tpu
    from keras_mtsa.distribute import worker_role

    if args.learning_rate is None:
        args.learning_rate = DEFAULT_LEARNING_RATES[args.optimizer]
    if args.token2token is None:
        args.token2token = default_token2token_activation(args.num_blocks)
    _validate(args)
    optional = _optional_features(args)
    os.makedirs(args.output_dir, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    _set_op_determinism(args.deterministic)
    strategy = get_strategy(args.strategy, args.tpu)
    role = worker_role(strategy)
    if role is not None:
        # Only the chief writes to --output-dir (and exports); each other worker keeps its checkpoints, backup
        # and logs in a folder of its own below it, so that no two processes write the same file.
        args.output_dir = os.path.join(args.output_dir, role)
        os.makedirs(args.output_dir, exist_ok=True)
    precision = args.mixed_precision or ("mixed_bfloat16" if is_tpu(strategy) else "float32")
    keras.config.set_dtype_policy(precision)
    job = _Job(args, pair, strategy, tensorboard=optional["tensorboard"])

    try:
        train_data, dev_data, test_data = _read_splits(args, pair)
    except DataFormatError as error:
        raise SystemExit(f"{error} (--format {args.format}: is that the file's format?)") from None
    if job.drop_remainder and len(train_data) < args.batch_size:
        raise SystemExit(
            f"--batch-size must be at most the {len(train_data)} training examples on a TPU (every batch is full "
            f"there), got {args.batch_size}"
        )
    class_names = _class_names(args, train_data.label_names)
    # With --refit, the dev-selected run lives in selection/ and the refit model in --output-dir.
    selection_dir = os.path.join(args.output_dir, _SELECTION_DIR) if args.refit else args.output_dir
    selection_file = os.path.join(selection_dir, _SELECTION_FILE)
    # What a run that stopped before its end leaves behind, with or without --refit.
    unfinished = [
        os.path.join(args.output_dir, *parts)
        for parts in (
            (_BACKUP_DIR,),
            (_SELECTION_DIR, _BACKUP_DIR),
            (_SELECTION_DIR, _SELECTION_FILE),
            (_REFIT_BACKUP_DIR,),
        )
    ]
    _claim_output_dir(args, unfinished)
    if args.refit and os.path.exists(selection_file):
        # A rerun after a crash during the refit: the selection finished before it.
        with open(selection_file) as file:
            selection = json.load(file)
        args.max_length = selection[
            "max_length"
        ]  # as fitted to the training texts before the crash
        args.buckets = selection.get(
            "buckets", "none"
        )  # a selection from before buckets padded to max_length
        selection_seconds = 0.0
        print(
            f"Resuming the refit: the selection run already chose {selection['best_epoch']} epochs."
        )
    else:
        model, preprocessor, history, selection_seconds = job.fit_selecting_on_dev(
            train_data, dev_data, selection_dir
        )
        dev_dataset = job.dataset(dev_data, preprocessor, drop_remainder=job.drop_remainder)
        _, dev_accuracy = model.evaluate(dev_dataset, verbose=0)
        selection = {
            "dev_accuracy": float(dev_accuracy),
            "best_epoch": _best_epoch(history),
            "epochs_run": len(history),
            "max_length": args.max_length,
            "buckets": args.buckets,
        }
        if optional["plot"]:
            plot_learning_curves(history, os.path.join(args.output_dir, "learning_curves.png"))
        if args.refit:
            _, test_accuracy = model.evaluate(job.dataset(test_data, preprocessor), verbose=0)
            selection["test_accuracy_before_refit"] = float(test_accuracy)
            _write_json(selection_file, selection)
    refit = None
    if args.refit:
        all_data = join_splits(train_data, dev_data)
        model, preprocessor, refit_seconds = job.refit(
            all_data, selection["best_epoch"], args.output_dir
        )
        refit = {
            "epochs": selection["best_epoch"],
            "examples": len(all_data),
            "train_seconds": refit_seconds,
        }

    # The final model and its preprocessing settings, e.g. for examples/plot_attention.py.
    model.save(os.path.join(args.output_dir, "model.keras"))
    _write_json(os.path.join(args.output_dir, "preprocessor.json"), preprocessor.config())
    test_loss, test_accuracy = model.evaluate(job.dataset(test_data, preprocessor), verbose=0)
    metrics = {
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        # Of the dev-selected model: a refit model has trained on dev, so its own dev accuracy says nothing.
        "dev_accuracy": selection["dev_accuracy"],
        "best_epoch": selection["best_epoch"],
        "epochs_run": selection["epochs_run"],
        # Fitting time of this process (selection and refit): a resumed run counts only what it trained.
        "train_seconds_this_run": round(
            selection_seconds + (refit["train_seconds"] if refit else 0.0), 1
        ),
        "examples": {"train": len(train_data), "dev": len(dev_data), "test": len(test_data)},
        "skipped_malformed": {
            "train": train_data.skipped,
            "dev": dev_data.skipped,
            "test": test_data.skipped,
        },
        "label_names": list(train_data.label_names),
        "class_names": class_names,
        "vocabulary_size": preprocessor.vocabulary_size,
        "parameters": int(model.count_params()),
        "strategy": type(strategy).__name__,
        "replicas": int(strategy.num_replicas_in_sync),
        "worker": role or "chief",
        "dtype_policy": precision,
        "versions": _versions(),
        "settings": vars(args),
    }
    if refit:
        refit["test_accuracy_before_refit"] = selection["test_accuracy_before_refit"]
        metrics["refit"] = refit

    metrics_file = os.path.join(args.output_dir, "metrics.json")
    _write_json(metrics_file, metrics)  # before the export, so a failed export loses no results

    if args.export_dir and role is None:
        from keras_mtsa.export import export_for_serving

        name = args.model_name or _default_model_name(args.train)
        metrics["export_path"] = export_for_serving(
            model, preprocessor, args.export_dir, model_name=name, labels=class_names, pair=pair
        )
        _write_json(metrics_file, metrics)
    # The job is done: running the command again starts a new one. Until here a crash (in the evaluation,
    # the save or the export) resumes after the last trained epoch instead of training again.
    for path in unfinished:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    return metrics


class _Job:
    """Builds the preprocessing, datasets and model of one run of the job, and fits them."""

    def __init__(self, args, pair, strategy, tensorboard=True):
        from keras_mtsa.distribute import is_tpu

        self.args = args
        self.pair = pair
        self.strategy = strategy
        self.tensorboard = tensorboard  # whether to write TensorBoard logs
        self.drop_remainder = is_tpu(strategy)  # TPUs need static batch shapes

    def preprocessor(self, data, directory):
        """Learns the vocabulary of `data`'s texts into `directory` and returns the preprocessor."""
        from keras_mtsa.data import TextPreprocessor

        args = self.args
        texts = data.premises + data.hypotheses if self.pair else data.texts
        boundaries = _parse_buckets(args)
        preprocessor = TextPreprocessor.from_texts(
            texts,
            os.path.join(directory, "vocabulary.txt"),
            args.max_length,
            max_size=args.vocabulary_size,
            min_count=args.min_count,
            subwords=args.subwords,
            lower_case=not args.keep_case,
            case_fallback=args.case_fallback,
            # Explicit buckets are checked against max_length once it is fitted, below.
            bucket_boundaries=boundaries if boundaries in (None, "auto") else None,
        )
        if boundaries not in (None, "auto"):
            if boundaries[-1] > preprocessor.max_length:
                raise SystemExit(
                    f"--buckets {args.buckets} must not exceed the fitted --max-length {preprocessor.max_length} "
                    "(the longest training text's length rounded up to a multiple of 8): give a larger "
                    "--max-length or smaller buckets"
                )
            preprocessor = TextPreprocessor(
                **{**preprocessor.config(), "bucket_boundaries": boundaries}
            )
        # Fitted once, to the training texts of the first run: a refit keeps the same lengths.
        if args.max_length is None:
            args.max_length = preprocessor.max_length
            print(f"--max-length {args.max_length} (fitted to the longest training text)")
        if args.encoder == "cnn":
            args.buckets = "none"  # its pooling sees the padding: always max_length
        elif args.buckets == "auto":
            args.buckets = ",".join(str(boundary) for boundary in preprocessor.bucket_boundaries)
            print(f"--buckets {args.buckets} (chosen from the training lengths)")
        return preprocessor

    def dataset(self, data, preprocessor, drop_remainder=False):
        """Batches of `data` for evaluation, grouped by length (the order does not matter there)."""
        return self._make_dataset(
            data, preprocessor, drop_remainder=drop_remainder, group_by_length=True
        )

    def training_dataset(self, data, preprocessor, backup_dir):
        """Endless seeded batches, epoch after epoch, starting at the epoch the backup in `backup_dir` resumes.

        Each epoch's batches depend only on --seed and the epoch's number, so a resumed run trains on the
        batches the uninterrupted run would have (fit runs `steps_per_epoch` of them per epoch).
        """
        return self._make_dataset(
            data,
            preprocessor,
            shuffle=True,
            seed=self.args.seed,
            drop_remainder=self.drop_remainder,
            repeat=True,
            first_epoch=_resumed_epoch(backup_dir),
            batches_per_epoch=self.steps_per_epoch(len(data)),
        )

    def _tensorboard(self, log_dir):
        """The TensorBoard callback as a list: empty where tensorboard is not installed."""
        import keras

        return [keras.callbacks.TensorBoard(log_dir)] if self.tensorboard else []

    def steps_per_epoch(self, num_examples):
        """The batches of an epoch, at most --steps-per-epoch."""
        batches = _steps(num_examples, self.args.batch_size, self.drop_remainder)
        return min(batches, self.args.steps_per_epoch or batches)

    def _make_dataset(self, data, preprocessor, **options):
        from keras_mtsa.data import make_classification_dataset
        from keras_mtsa.data import make_pair_dataset

        make_dataset = make_pair_dataset if self.pair else make_classification_dataset
        return make_dataset(data, preprocessor, batch_size=self.args.batch_size, **options)

    def model(self, num_classes, preprocessor, num_examples):
        """A freshly initialized, compiled model (the same initial weights for the same --seed)."""
        import keras

        from keras_mtsa import models

        args = self.args
        keras.utils.set_random_seed(args.seed)
        build = models.build_pair_classifier if self.pair else models.build_sentence_classifier
        head = dict(head=args.head) if self.pair else {}
        with self.strategy.scope():
            model = build(
                num_classes,
                vocabulary_size=preprocessor.vocabulary_size,
                max_length=args.max_length,
                embedding_dim=args.embedding_dim,
                embedding_scale=args.embedding_scale,
                encoder=args.encoder,
                num_heads=args.num_heads,
                head_dim=args.head_dim,
                num_blocks=args.num_blocks,
                conv_window=args.conv_window,
                token2token_activation=args.token2token,
                fusion_gate=args.fusion_gate,
                activation=args.activation,
                dropout=args.dropout,
                dropout_sites=args.dropout_sites,
                attention_dropout=args.attention_dropout,
                token_dropout=args.token_dropout,
                l2=args.l2,
                **head,
            )
            model.compile(
                optimizer=_optimizer(args, steps_per_epoch=self.steps_per_epoch(num_examples)),
                loss=_loss(args, num_classes),
                metrics=["accuracy"],
            )
        return model

    def fit_selecting_on_dev(self, train_data, dev_data, directory):
        """Trains on `train_data` and keeps the epoch with the best dev accuracy; resumes after a crash.

        Returns:
            `(model, preprocessor, history, seconds)`: the model holds the best epoch's weights.
        """
        import keras

        args = self.args
        os.makedirs(directory, exist_ok=True)
        preprocessor = self.preprocessor(train_data, directory)
        model = self.model(len(train_data.label_names), preprocessor, len(train_data))
        best_weights = os.path.join(directory, "best.weights.h5")
        history_file = os.path.join(directory, "history.csv")
        backup_dir = os.path.join(directory, _BACKUP_DIR)
        if not os.path.exists(
            backup_dir
        ):  # a fresh run, not a resume: forget an older run's results
            for stale in (best_weights, history_file):
                if os.path.exists(stale):
                    os.remove(stale)
        # On a resume, the checkpoint to beat is the best dev accuracy before the crash: a fresh
        # ModelCheckpoint would overwrite best.weights.h5 with the first resumed epoch, however bad.
        # Dev accuracies of the epochs before a crash (none for a fresh run): they also carry early stopping on.
        scores_before = [
            row["val_accuracy"] for row in _read_history(history_file) if "val_accuracy" in row
        ]
        previous_best = max(scores_before, default=None) if os.path.exists(best_weights) else None
        callbacks = [
            # Survives a crash or preemption: rerunning the same command resumes from the last epoch.
            # Kept after the last epoch (train() removes it when the job is done), so that a crash after
            # training resumes with nothing left to train.
            keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False),
            keras.callbacks.ModelCheckpoint(
                best_weights,
                monitor="val_accuracy",
                save_best_only=True,
                save_weights_only=True,
                initial_value_threshold=previous_best,
            ),
            resumable_early_stopping(args.patience, scores_before),
            keras.callbacks.CSVLogger(history_file, append=True),
            *self._tensorboard(os.path.join(directory, "logs")),
        ]
        started = time.time()
        model.fit(
            self.training_dataset(train_data, preprocessor, backup_dir),
            validation_data=self.dataset(
                dev_data, preprocessor, drop_remainder=self.drop_remainder
            ),
            epochs=args.epochs,
            steps_per_epoch=self.steps_per_epoch(len(train_data)),
            shuffle=False,  # the tf.data pipeline shuffles (Keras would only warn that it cannot)
            callbacks=callbacks,
            verbose=args.verbose,
        )
        seconds = time.time() - started
        if os.path.exists(best_weights):
            model.load_weights(best_weights)  # the epoch with the best dev accuracy
        return model, preprocessor, _read_history(history_file), seconds

    def refit(self, data, epochs, directory):
        """Trains a fresh model on `data` (train and dev) for the dev-selected number of epochs.

        The vocabulary is learned again, from all of `data`. A crash resumes from the backup.

        Returns:
            `(model, preprocessor, seconds)`.
        """
        import keras

        args = self.args
        preprocessor = self.preprocessor(data, directory)
        model = self.model(len(data.label_names), preprocessor, len(data))
        history_file = os.path.join(directory, "refit_history.csv")
        backup_dir = os.path.join(directory, _REFIT_BACKUP_DIR)
        if not os.path.exists(backup_dir) and os.path.exists(history_file):
            os.remove(history_file)
        started = time.time()
        model.fit(
            self.training_dataset(data, preprocessor, backup_dir),
            epochs=epochs,
            steps_per_epoch=self.steps_per_epoch(len(data)),
            shuffle=False,
            callbacks=[
                keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False),
                keras.callbacks.CSVLogger(history_file, append=True),
                *self._tensorboard(os.path.join(directory, "logs", "refit")),
            ],
            verbose=args.verbose,
        )
        return model, preprocessor, round(time.time() - started, 1)


# Options that say where and how a run executes, not what it computes: a crashed run may resume with others.
_RESUMABLE_WITH_OTHER = frozenset(
    {"output_dir", "export_dir", "model_name", "strategy", "tpu", "verbose", "deterministic"}
)
_RUN_SETTINGS_FILE = "run_settings.json"
_DATA_DIGESTS = "data_sha256"  # in the run settings file: the SHA-256 of the training data files


def _data_digests(args):
    """The SHA-256 of the files a backup learned from (--train, --dev if given), by flag; missing ones left out.

    Not --test: it is read once, after training, so a resumed run may evaluate on a newer file.
    """
    digests = {}
    for flag in ("train", "dev"):
        path = getattr(args, flag, None)
        if path and os.path.isfile(path):
            digest = hashlib.sha256()
            with open(path, "rb") as file:
                for block in iter(lambda: file.read(1 << 20), b""):
                    digest.update(block)
            digests[flag] = digest.hexdigest()
    return digests


def _claim_output_dir(args, unfinished):
    """Records this run's settings in --output-dir; refuses to resume an unfinished run made with others.

    Args:
        args: the parsed command line, before train() fits --max-length.
        unfinished: paths whose existence means an earlier run stopped before its end (backups, markers).

    Raises:
        SystemExit: `unfinished` state exists and was made with other settings, which it would silently mix
            with this command's (restoring another model's weights, or skipping the selection), or from a
            --train or --dev file whose content has changed since.
    """
    settings = {key: value for key, value in vars(args).items() if key not in _RESUMABLE_WITH_OTHER}
    digests = _data_digests(args)
    path = os.path.join(args.output_dir, _RUN_SETTINGS_FILE)
    if any(os.path.exists(item) for item in unfinished) and os.path.exists(path):
        with open(path) as file:
            before = json.load(file)
        digests_before = before.pop(_DATA_DIGESTS, {})
        before.setdefault(
            "buckets", "none"
        )  # a run from before length buckets padded every batch to max_length
        # Runs from before these options: the joint gate, dropout on the embeddings, the default epsilon.
        before.setdefault("fusion_gate", "joint")
        before.setdefault("dropout_sites", "embedding")
        before.setdefault("epsilon", None)
        if "head" in settings:
            before.setdefault("head", "relu")
        changed = sorted(
            key for key in settings.keys() | before.keys() if settings.get(key) != before.get(key)
        )
        if changed:
            differences = ", ".join(
                f"--{key.replace('_', '-')} {before.get(key)!r} there, {settings.get(key)!r} now"
                for key in changed
            )
            raise SystemExit(
                f"--output-dir {args.output_dir} holds an unfinished run with other settings ({differences}): "
                "rerun that command to resume it, or give another --output-dir (or delete this one) to start anew"
            )
        # The same paths, but a file rewritten since: the backup learned from other examples or labels.
        rewritten = [
            flag
            for flag in digests
            if flag in digests_before and digests[flag] != digests_before[flag]
        ]
        if rewritten:
            files = ", ".join(f"--{flag} {getattr(args, flag)}" for flag in rewritten)
            raise SystemExit(
                f"--output-dir {args.output_dir} holds an unfinished run made from other data ({files} changed "
                "since): restore the file to resume it, or give another --output-dir (or delete this one) to "
                "start anew"
            )
    _write_json(path, {**settings, _DATA_DIGESTS: digests})


def _set_op_determinism(enabled):
    """Turns TensorFlow's deterministic kernels on or off (a process-wide setting)."""
    import tensorflow as tf

    if enabled:
        tf.config.experimental.enable_op_determinism()
    else:
        # Off explicitly: an earlier run in this process may have turned it on. No public alias exists.
        from tensorflow.python.framework import config

        config.disable_op_determinism()


def _write_json(path, value):
    """Writes `value` as JSON to `path` atomically, so a crash never leaves a half-written file behind."""
    partial = path + ".partial"
    with open(partial, "w") as file:
        json.dump(value, file, indent=2)
    os.replace(partial, path)


def resumable_early_stopping(patience, scores):
    """Early stopping on dev accuracy that, on a resume, goes on counting from the run before the crash.

    Keras's `EarlyStopping` starts from scratch in every `fit`, so a run resumed by `BackupAndRestore` would
    otherwise get `patience` more epochs than an uninterrupted one.

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


def _optimizer(args, steps_per_epoch):
    import keras

    options = {}
    if args.ema:
        # Overwriting once per epoch makes the validation (and so the best checkpoint) see the averaged
        # weights.
        options = dict(
            use_ema=True,
            ema_momentum=args.ema,
            ema_overwrite_frequency=args.steps_per_epoch or steps_per_epoch,
        )
    if args.optimizer == "adadelta":
        epsilon = 1e-6 if args.epsilon is None else args.epsilon
        return keras.optimizers.Adadelta(args.learning_rate, rho=0.95, epsilon=epsilon, **options)
    return keras.optimizers.Adam(
        args.learning_rate, epsilon=1e-7 if args.epsilon is None else args.epsilon, **options
    )


def _versions():
    """The versions of what computed the numbers (a run is only repeatable on the same ones)."""
    import keras
    import tensorflow as tf
    import tensorflow_text

    import keras_mtsa

    return {
        "keras_mtsa": keras_mtsa.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tensorflow_text": tensorflow_text.__version__,
    }


def _parse_buckets(args):
    """--buckets as the preprocessor's `bucket_boundaries`: None, "auto" or a tuple of ints.

    Raises:
        ValueError: --buckets is none of those.
    """
    if args.encoder == "cnn" or args.buckets == "none":
        return None
    if args.buckets == "auto":
        return "auto"
    return tuple(int(boundary) for boundary in args.buckets.split(","))


def _resumed_epoch(backup_dir):
    """The epoch a BackupAndRestore backup in `backup_dir` resumes at (0 without one)."""
    path = os.path.join(
        backup_dir, "training_metadata.json"
    )  # written by keras.callbacks.BackupAndRestore
    if not os.path.exists(path):
        return 0
    with open(path) as file:
        return int(json.load(file)["epoch"])


def _steps(examples, batch_size, drop_remainder):
    return max(1, examples // batch_size if drop_remainder else -(-examples // batch_size))


def _loss(args, num_classes):
    if not args.label_smoothing:
        return "sparse_categorical_crossentropy"
    from keras_mtsa.losses import SparseCategoricalCrossentropyWithSmoothing

    return SparseCategoricalCrossentropyWithSmoothing(
        num_classes, label_smoothing=args.label_smoothing
    )


def _validate(args):
    names = (
        "epochs",
        "batch_size",
        "max_length",
        "vocabulary_size",
        "min_count",
        "embedding_dim",
        "num_heads",
    )
    for name in names:
        value = getattr(args, name)
        if name == "max_length" and value is None:  # fitted to the training texts
            continue
        if value is None or value < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if (
        args.steps_per_epoch is not None and args.steps_per_epoch < 1
    ):  # 0 would mean "whole epoch" to Keras
        raise SystemExit(
            f"--steps-per-epoch must be a positive integer, got {args.steps_per_epoch}"
        )
    for name in ("learning_rate", "embedding_scale"):
        if not getattr(args, name) > 0:
            raise SystemExit(
                f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}"
            )
    if args.head_dim is not None and args.head_dim < 1:
        raise SystemExit(f"--head-dim must be a positive integer, got {args.head_dim}")
    if args.conv_window < 0:
        raise SystemExit(f"--conv-window must be 0 or a positive integer, got {args.conv_window}")
    if args.conv_window and args.encoder != "mtsa":
        raise SystemExit(
            f"--conv-window feeds MTSA and needs --encoder mtsa, got --encoder {args.encoder}"
        )
    if args.num_blocks and args.encoder != "mtsa":
        raise SystemExit(
            f"--num-blocks stacks MTSA blocks and needs --encoder mtsa, got --encoder {args.encoder}"
        )
    if args.dropout_sites == "authors" and (
        args.encoder != "mtsa" or args.num_blocks or args.conv_window
    ):
        raise SystemExit(
            "--dropout-sites authors needs the single MTSA layer (--encoder mtsa, no --num-blocks or --conv-window)"
        )
    if args.epsilon is not None and not args.epsilon > 0:
        raise SystemExit(f"--epsilon must be positive, got {args.epsilon}")
    if args.buckets not in ("auto", "none"):
        from keras_mtsa.data.buckets import check_bucket_boundaries

        if args.encoder == "cnn":
            raise SystemExit(
                "--buckets does not apply to --encoder cnn (it pads every batch to --max-length)"
            )
        try:
            boundaries = _parse_buckets(args)
            check_bucket_boundaries(
                boundaries, max(boundaries) if args.max_length is None else args.max_length
            )
        except ValueError:
            raise SystemExit(
                "--buckets must be 'auto', 'none' or increasing positive integers separated by commas, at most "
                f"--max-length, got {args.buckets!r}"
            ) from None
    if args.encoder == "cnn" and args.head_dim is not None:
        raise SystemExit(
            "--head-dim does not apply to --encoder cnn (3 windows x 100 feature maps)"
        )
    if args.encoder == "cnn" and args.max_length is not None and args.max_length < max(CNN_WINDOWS):
        raise SystemExit(
            f"--max-length must be at least {max(CNN_WINDOWS)} for --encoder cnn, got {args.max_length}"
        )
    if args.encoder != "cnn" and args.head_dim is None and args.embedding_dim % args.num_heads:
        raise SystemExit(
            f"--embedding-dim ({args.embedding_dim}) must be divisible by --num-heads ({args.num_heads})"
        )
    for name in ("dropout", "attention_dropout", "token_dropout", "label_smoothing", "ema"):
        if not 0 <= getattr(args, name) < 1:
            raise SystemExit(
                f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(args, name)}"
            )
    if args.case_fallback and (not args.keep_case or args.subwords):
        raise SystemExit(
            "--case-fallback needs --keep-case and no --subwords (it looks a cased word up again case-folded)"
        )
    for name in ("train", "test", "dev"):
        path = getattr(args, name)
        if path and not os.path.isfile(path):
            raise SystemExit(f"--{name}: no such file: {path}")


def _read_splits(args, pair):
    from keras_mtsa.data import read_dataset
    from keras_mtsa.data import split_dev

    options = dict(
        on_error="skip" if args.skip_malformed else "raise", label_column=args.label_column
    )
    if args.format == "trec":
        options["trec_labels"] = args.trec_labels
    if args.format in ("tsv", "csv"):
        options["text_column"] = args.text_column
    train_data = read_dataset(args.train, args.format, **options)
    options["label_names"] = train_data.label_names  # same ids in every split
    test_data = read_dataset(args.test, args.format, **options)
    if args.dev:
        dev_data = read_dataset(args.dev, args.format, **options)
    else:
        train_data, dev_data = split_dev(train_data, fraction=0.1, seed=args.seed)
    return train_data, dev_data, test_data


def _class_names(args, label_names):
    if not args.class_names:
        return list(label_names)
    names = [name.strip() for name in args.class_names.split(",")]
    if len(names) != len(label_names):
        raise SystemExit(
            f"--class-names gives {len(names)} names but the data has {len(label_names)} labels: {label_names}"
        )
    return names


def _read_history(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    # A resumed run appends; keep the last row of each epoch.
    by_epoch = {int(row["epoch"]): row for row in rows}
    return [
        {key: float(value) for key, value in by_epoch[epoch].items()} for epoch in sorted(by_epoch)
    ]


def _best_epoch(history):
    if not history:
        return None
    best = max(history, key=lambda row: row.get("val_accuracy", 0.0))
    return int(best["epoch"]) + 1


def _installed(module):
    return importlib.util.find_spec(module) is not None


def _optional_features(args):
    """Checks the optional dependencies before any work: {"tensorboard": bool, "plot": bool}.

    TensorBoard logs and the learning-curve plot are turned off, with a warning, where their package is
    missing (TensorFlow 2.21 no longer installs TensorBoard; Keras's callback would fail in the first epoch).
    An export cannot do without its warm-up requests, so --export-dir without tensorflow-serving-api exits.
    """
    if args.export_dir and not _installed("tensorflow_serving"):
        raise SystemExit(
            "--export-dir writes TF Serving warm-up requests, which need tensorflow-serving-api: "
            "pip install 'tensorflow-serving-api>=2.16,<2.22'"
        )
    features = {}
    for feature, module, what in (
        ("tensorboard", "tensorboard", "TensorBoard logs"),
        ("plot", "matplotlib", "learning_curves.png"),
    ):
        features[feature] = _installed(module)
        if not features[feature]:
            print(
                f"Warning: {what} turned off: {module} is not installed (pip install {module})",
                file=sys.stderr,
            )
    return features


def plot_learning_curves(history, path):
    """Saves loss and accuracy per epoch (train and dev) as a PNG."""
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(row["epoch"]) + 1 for row in history]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        axis.plot(epochs, [row[metric] for row in history], marker="o", label="train")
        axis.plot(epochs, [row[f"val_{metric}"] for row in history], marker="o", label="dev")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle("MTSA learning curves")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _default_model_name(path):
    stem = os.path.basename(os.path.dirname(os.path.abspath(path))) or "model"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem.lower())


def main(argv=None, pair=False):
    """Command-line entry point: `keras-mtsa-train` (and the example scripts)."""
    args = build_argument_parser(pair=pair).parse_args(argv)
    metrics = train(args, pair=pair)
    summary = {key: metrics[key] for key in ("test_accuracy", "dev_accuracy", "best_epoch")}
    if "export_path" in metrics:
        summary["export_path"] = metrics["export_path"]
    print(json.dumps(summary))
    return 0


def main_pair(argv=None):
    """Command-line entry point of the sentence-pair model: `keras-mtsa-train-pair`."""
    return main(argv, pair=True)
