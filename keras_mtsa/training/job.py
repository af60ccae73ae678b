"""The training job as a function: `train(config)` for sentences,
`train_pair(config)` for sentence pairs.

A job reads a dataset, learns a vocabulary (optionally extended by pretrained word vectors), builds
the tf-text preprocessing and a functional model under a `tf.distribute` strategy, trains with
dev-based model selection (optionally followed by a refit on train + dev for the chosen number of
epochs), resumes from a backup after a crash, evaluates on the test file, writes `metrics.json`,
TensorBoard logs and a learning curve plot, and optionally exports a SavedModel for TF Serving.

Every data file is read and checked before any work that a bad one would waste; the same job run
again after it finished reports that run instead of training again (`RunConfig.overwrite` starts
it over); Ctrl-C raises `TrainingInterrupted`, which says after which epoch a rerun resumes.
"""

import contextlib
import dataclasses
import json
import os

from keras_mtsa.training import environment
from keras_mtsa.training.config import ConfigError
from keras_mtsa.training.plotting import plot_learning_curves
from keras_mtsa.training.run_directory import RunDirectory
from keras_mtsa.training.run_directory import best_epoch
from keras_mtsa.training.run_directory import resumed_epoch
from keras_mtsa.training.run_directory import write_json
from keras_mtsa.training.trainer import Trainer


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during a job; the message says after which epoch the same job resumes."""


@dataclasses.dataclass(frozen=True, eq=False)
class TrainingResult:
    """What a job produced.

    Attributes:
        metrics: the dict written to `metrics.json` (test and dev accuracy, best
            epoch, settings, ...).
        config: the resolved config the job ran (task defaults filled in).
        max_length: the padded length the model was trained with (fitted unless given).
        bucket_boundaries: the batches' padded lengths.
        output_dir: the run's folder (a non-chief worker's folder below the configured one).
        model: the final `keras.Model`.
        preprocessor: its `keras_mtsa.data.TextPreprocessor`.
        export_path: the exported SavedModel's version folder, or None.
        already_finished: whether `output_dir` held the finished run of the same job, which is
            reported (read back from its files) instead of trained again.
    """

    metrics: dict
    config: object
    max_length: int
    bucket_boundaries: tuple
    output_dir: str
    model: object
    preprocessor: object
    export_path: str | None = None
    already_finished: bool = False

    @property
    def model_path(self):
        return os.path.join(self.output_dir, "model.keras")


def train(config, callbacks=()):
    """Trains, selects on dev, evaluates and (optionally) exports a sentence classifier.

    Args:
        config: a `TrainingConfig` whose data format is a sentence format.
        callbacks: more Keras callbacks for every fit.

    Returns:
        A `TrainingResult`.

    Raises:
        ConfigError: a setting the job cannot run with, or a data file that is missing, unreadable,
            empty or not in `config.data.format` (raised before any training).
        OptionalDependencyError: an export without tensorflow-serving-api.
        TrainingInterrupted: Ctrl-C (a `KeyboardInterrupt`) after the run's folder was claimed.
    """
    return _run(config, pair=False, callbacks=callbacks)


def train_pair(config, callbacks=()):
    """`train` for the sentence-pair (NLI) classifier: its format is "sick" or "snli"."""
    return _run(config, pair=True, callbacks=callbacks)


def _run(config, pair, callbacks):
    import keras

    from keras_mtsa.distribute import get_strategy
    from keras_mtsa.distribute import is_tpu
    from keras_mtsa.distribute import worker_role

    _check_files(config)
    config = config.resolve(pair)  # with vectors, their width from the file's first line
    data_config, run = config.data, config.run
    keras.utils.set_random_seed(run.seed)
    environment.set_op_determinism(run.deterministic)
    try:
        strategy = get_strategy(run.strategy, run.tpu)
    except ValueError as error:  # no TPU where one was asked for, or no cluster for multi-worker
        raise ConfigError(str(error)) from None
    role = worker_role(strategy)
    # Only the chief writes to output_dir (and exports); each other worker keeps its checkpoints,
    # backup and logs in a folder of its own below it, so that no two processes write the same file.
    root = os.path.join(run.output_dir, role) if role else run.output_dir
    directory = RunDirectory(root, config.optimizer.refit)
    data_files = _data_files(config)
    if not run.overwrite:
        finished = directory.finished_metrics(config.to_flat(), data_files)
        if finished is not None:
            return _finished_result(finished, config, directory)
    optional = environment.optional_features(export=run.export_dir is not None)
    # Every data file, read and checked before any work that a bad one would waste.
    train_data, dev_data, test_data = read_splits(data_config, pair, run.seed)
    word_vectors = _read_word_vectors(config)
    precision = run.mixed_precision or ("mixed_bfloat16" if is_tpu(strategy) else "float32")
    keras.config.set_dtype_policy(precision)
    trainer = Trainer(
        config,
        pair,
        strategy,
        callbacks=callbacks,
        tensorboard=optional["tensorboard"],
        word_vectors=word_vectors,
    )
    batch_size = config.optimizer.batch_size
    if trainer.drop_remainder and len(train_data) < batch_size:
        raise ConfigError(
            f"`batch_size` must be at most the {len(train_data)} training examples on a TPU (every "
            f"batch is full there). Received: batch_size={batch_size}"
        )
    class_names = _class_names(data_config.class_names, train_data.label_names)
    # Claimed only now: a job refused above leaves the folder as it was.
    directory.claim(config.to_flat(), data_files, pair, overwrite=run.overwrite)
    with _interruptible(directory, config):
        return _fit_evaluate_and_export(
            config,
            pair,
            directory,
            trainer,
            (train_data, dev_data, test_data),
            dict(
                optional=optional,
                word_vectors=word_vectors,
                strategy=strategy,
                role=role,
                precision=precision,
                class_names=class_names,
            ),
        )


def _fit_evaluate_and_export(config, pair, directory, trainer, splits, context):
    """The job once its data is read and its folder claimed."""
    from keras_mtsa.data import join_splits

    data_config, run = config.data, config.run
    train_data, dev_data, test_data = splits
    optional, word_vectors = context["optional"], context["word_vectors"]
    strategy, role, precision = context["strategy"], context["role"], context["precision"]
    class_names, root = context["class_names"], directory.root
    selection = directory.finished_selection()
    if selection is not None:
        # A rerun after a crash during the refit: the selection finished before
        # it, with these lengths.
        trainer.fitted(selection["max_length"], selection["buckets"])
        selection_seconds = 0.0
        print(
            f"Resuming the refit: the selection run already chose {selection['best_epoch']} epochs."
        )
    else:
        model, preprocessor, history, selection_seconds = trainer.fit_selecting_on_dev(
            train_data, dev_data, directory
        )
        dev_dataset = trainer.dataset(dev_data, preprocessor, drop_remainder=trainer.drop_remainder)
        _, dev_accuracy = model.evaluate(dev_dataset, verbose=0)
        selection = {
            "dev_accuracy": float(dev_accuracy),
            "best_epoch": best_epoch(history),
            "epochs_run": len(history),
            **trainer.fitted_settings,
        }
        if optional["plot"]:
            plot_learning_curves(history, directory.path("learning_curves.png"))
        if config.optimizer.refit:
            _, test_accuracy = model.evaluate(trainer.dataset(test_data, preprocessor), verbose=0)
            selection["test_accuracy_before_refit"] = float(test_accuracy)
            directory.save_selection(selection)
    refit = None
    if config.optimizer.refit:
        all_data = join_splits(train_data, dev_data)
        model, preprocessor, refit_seconds = trainer.refit(
            all_data, selection["best_epoch"], directory
        )
        refit = {
            "epochs": selection["best_epoch"],
            "examples": len(all_data),
            "train_seconds": refit_seconds,
        }

    # The final model and its preprocessing settings, e.g. for examples/plot_attention.py.
    model.save(directory.path("model.keras"))
    write_json(directory.path("preprocessor.json"), preprocessor.config())
    test_loss, test_accuracy = model.evaluate(trainer.dataset(test_data, preprocessor), verbose=0)
    metrics = {
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        # Of the dev-selected model: a refit model has trained on dev, so its own dev accuracy says
        # nothing.
        "dev_accuracy": selection["dev_accuracy"],
        "best_epoch": selection["best_epoch"],
        "epochs_run": selection["epochs_run"],
        # Fitting time of this process (selection and refit): a resumed run counts
        # only what it trained.
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
        "versions": environment.versions(),
        "settings": {**config.to_flat(), **trainer.fitted_settings, "output_dir": root},
    }
    if word_vectors is not None:
        metrics["embeddings"] = _embeddings_summary(word_vectors, trainer.embedding_summary)
    if refit:
        refit["test_accuracy_before_refit"] = selection["test_accuracy_before_refit"]
        metrics["refit"] = refit

    metrics_file = directory.path("metrics.json")
    write_json(metrics_file, metrics)  # before the export, so a failed export loses no results

    export_path = None
    if run.export_dir and role is None:
        from keras_mtsa.export import export_for_serving

        name = run.model_name or _default_model_name(data_config.train)
        export_path = export_for_serving(
            model, preprocessor, run.export_dir, model_name=name, labels=class_names, pair=pair
        )
        metrics["export_path"] = export_path
        write_json(metrics_file, metrics)
    directory.finish()
    return TrainingResult(
        metrics=metrics,
        config=config,
        max_length=trainer.max_length,
        bucket_boundaries=tuple(preprocessor.bucket_boundaries),
        output_dir=root,
        model=model,
        preprocessor=preprocessor,
        export_path=export_path,
    )


@contextlib.contextmanager
def _interruptible(directory, config):
    """Turns Ctrl-C into `TrainingInterrupted`, whose message says where a rerun resumes."""
    try:
        yield
    except KeyboardInterrupt:
        raise TrainingInterrupted(_interruption_message(directory, config)) from None


def _interruption_message(directory, config):
    selection = directory.finished_selection()  # with refit: the refit was running
    if selection is not None:
        stage, epochs, what = directory.refit_stage, selection["best_epoch"], "the refit"
    else:
        stage, epochs, what = directory.selection, config.optimizer.epochs, "the run"
    done = resumed_epoch(stage.backup)
    if not done and selection is None:
        return (
            "Interrupted before the end of the first epoch, with nothing to resume: rerun the "
            f"same command to start again in {directory.root}"
        )
    return (
        f"Interrupted: {what} can resume after epoch {done} of {epochs}; rerun the same command "
        f"to resume it from {directory.root}"
    )


def _finished_result(metrics, config, directory):
    """The `TrainingResult` of the finished run of the same job, read back from its files."""
    import keras

    from keras_mtsa.data import TextPreprocessor

    export_path = metrics.get("export_path")
    exported = f", exported to {export_path}" if export_path else ""
    print(
        f"{directory.root} holds the finished run of these settings (test accuracy "
        f"{metrics['test_accuracy']:.4f}, dev accuracy {metrics['dev_accuracy']:.4f} at epoch "
        f"{metrics['best_epoch']}; {directory.path('metrics.json')}, "
        f"{directory.path('model.keras')}{exported}): not trained again (--overwrite, or "
        "overwrite=True, starts it over)"
    )
    with open(directory.path("preprocessor.json")) as file:
        preprocessor = TextPreprocessor(**json.load(file))
    return TrainingResult(
        metrics=metrics,
        config=config,
        max_length=metrics["settings"]["max_length"],
        bucket_boundaries=tuple(preprocessor.bucket_boundaries),
        output_dir=directory.root,
        model=keras.models.load_model(directory.path("model.keras")),
        preprocessor=preprocessor,
        export_path=export_path,
        already_finished=True,
    )


def _data_files(config):
    """{field: path or None} of every data file the job reads."""
    data = config.data
    return {
        "train": data.train,
        "dev": data.dev,
        "test": data.test,
        "embeddings": config.model.embeddings,
    }


def _check_files(config):
    for name, path in _data_files(config).items():
        if path and not os.path.isfile(path):
            raise ConfigError(f"`{name}` must be an existing file. Received: {name}={path!r}")


def _read_word_vectors(config):
    """The pretrained vectors of `config.model.embeddings` (None without); `resolve` has checked
    their width."""
    model = config.model
    if model.embeddings is None:
        return None
    from keras_mtsa.data import read_word_vectors

    vectors = read_word_vectors(
        model.embeddings, lower_case=not config.text.keep_case, progress=config.run.verbose > 0
    )
    print(
        f"{len(vectors.words)} word vectors of {model.embedding_dim} values read from "
        f"{model.embeddings}"
    )
    return vectors


def _embeddings_summary(word_vectors, summary):
    rows = summary["rows"]
    return {
        "file": word_vectors.path,
        "words_in_file": len(word_vectors.words),
        "skipped_malformed": word_vectors.skipped,
        "training_words_found": int(rows.found),
        "training_words": summary["trainable_rows"] - 2,  # [PAD] and [UNK] take no vector
        "frozen_rows": len(rows.extra_tokens),
    }


def read_splits(data_config, pair, seed):
    """The train, dev and test data of a `DataConfig` (dev carved from train, seeded,
    without a dev file).

    Raises:
        ConfigError: a file that is unreadable, holds no example, or is not in the format (naming
            the file's field and the reader's complaint).
    """
    from keras_mtsa.data import split_dev

    options = dict(
        on_error="skip" if data_config.skip_malformed else "raise",
        label_column=data_config.label_column,
    )
    if data_config.format == "trec":
        options["trec_labels"] = data_config.trec_labels
    if data_config.format in ("tsv", "csv"):
        options["text_column"] = data_config.text_column
    train_data = _read_split("train", data_config, options)
    options["label_names"] = train_data.label_names  # same ids in every split
    test_data = _read_split("test", data_config, options)
    if data_config.dev:
        dev_data = _read_split("dev", data_config, options)
    else:
        try:
            train_data, dev_data = split_dev(train_data, fraction=0.1, seed=seed)
        except ValueError:  # too few examples for both parts
            raise ConfigError(
                f"`train` must hold enough examples to carve 10% for dev, or `dev` be given. "
                f"Received: train={data_config.train!r} with {len(train_data)} examples"
            ) from None
    return train_data, dev_data, test_data


def _read_split(name, data_config, options):
    """The examples of the file of `data_config`'s field `name`, checked: readable, in its format,
    and not empty."""
    from keras_mtsa.data import read_dataset

    path, data_format = getattr(data_config, name), data_config.format
    try:
        data = read_dataset(path, data_format, **options)
    except OSError as error:
        raise ConfigError(
            f"`{name}` must be a readable file. Received: {name}={path!r} ({error.strerror})"
        ) from None
    except ValueError as error:  # DataFormatError, or a header without the columns asked for
        raise ConfigError(
            f"`{name}` must be a file in format={data_format!r}. Received: {name}={path!r}, "
            f"where {error} (format={data_format!r}: is that the file's format?)"
        ) from None
    if not len(data):
        skipped = f", {data.skipped} malformed lines skipped" if data.skipped else ""
        raise ConfigError(
            f"`{name}` must hold at least one example in format={data_format!r}. "
            f"Received: {name}={path!r}, which holds none{skipped}"
        )
    return data


def _class_names(names, label_names):
    if not names:
        return list(label_names)
    if len(names) != len(label_names):
        raise ConfigError(
            f"`class_names` must give one name per label of the data, {len(label_names)}: "
            f"{list(label_names)}. Received: class_names={','.join(names)!r}"
        )
    return list(names)


def _default_model_name(path):
    stem = os.path.basename(os.path.dirname(os.path.abspath(path))) or "model"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem.lower())
