"""The training job (`keras_mtsa.training`, `examples/train_*.py`): end to end on small slices,
under `tf.distribute` (two logical CPUs in-process, two worker processes on 127.0.0.1), resuming
after a kill, and its errors for bad command lines.

Real-data slices come from `<repo>/../shared/data` (skipped when absent, failing under CI=true); the
other tests use the small synthetic corpus of `examples/demo_corpus.py`. Models are tiny:
embedding_dim 16-32, max_length 16-24.
"""

import concurrent.futures
import contextlib
import csv
import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtsa
from conftest import SHARED_DATA
from conftest import require_shared_data
from keras_mtsa import _xla
from keras_mtsa import distribute
from keras_mtsa import models
from keras_mtsa import serving
from keras_mtsa import training
from keras_mtsa.data import TextPreprocessor
from keras_mtsa.data import fitting_max_length
from keras_mtsa.data import make_classification_dataset
from keras_mtsa.data import read_dataset
from keras_mtsa.data import read_labeled_lines
from keras_mtsa.data import split_dev
from keras_mtsa.data import tokenize
from keras_mtsa.training import cli
from keras_mtsa.training import main
from keras_mtsa.training import resumable_early_stopping

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_CLASSIFIER = os.path.join(REPO, "examples", "train_classifier.py")
TREC_TRAIN = os.path.join(SHARED_DATA, "trec", "train_5500.label")
SICK_TRAIN = os.path.join(SHARED_DATA, "sick", "SICK_train.txt")
SICK_TRIAL = os.path.join(SHARED_DATA, "sick", "SICK_trial.txt")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMALL = ["--embedding-dim", "32", "--max-length", "24", "--batch-size", "32", "--verbose", "0"]
# One padded length: each bucket would be one more XLA compilation of every function of the run.
TINY = ["--embedding-dim", "16", "--max-length", "16", "--batch-size", "32", "--buckets", "none"]


def _write_lines(path, lines):
    with open(path, "wb") as file:
        file.writelines(lines)
    return str(path)


def _trec_slice(directory, train_lines=320, test_lines=64):
    """The first `train_lines` of TREC's training file, and `test_lines` later ones
    (labels seen in train).

    320 lines: 288 to train and 32 carved for dev, whole batches of 32 (each new batch shape is one
    more XLA compilation of the MTSA core).
    """
    require_shared_data(TREC_TRAIN)
    with open(TREC_TRAIN, "rb") as file:  # latin-1 text: copied as bytes
        lines = file.readlines()
    train = lines[:train_lines]
    labels = {line.split(b":")[0] for line in train}
    test = [line for line in lines[train_lines:] if line.split(b":")[0] in labels][:test_lines]
    return _write_lines(directory / "train.label", train), _write_lines(
        directory / "test.label", test
    )


def _sick_slice(directory, train_pairs=320, test_pairs=64):
    require_shared_data(SICK_TRAIN, SICK_TRIAL)
    slices = []
    for source, count, name in (
        (SICK_TRAIN, train_pairs, "train.txt"),
        (SICK_TRIAL, test_pairs, "test.txt"),
    ):
        with open(source, "rb") as file:
            lines = file.readlines()
        slices.append(_write_lines(directory / name, lines[: count + 1]))  # with the header
    return slices


def _demo_corpus(directory, sizes=(240, 64, 64), seed=3):
    """Synthetic `label text` files (examples/demo_corpus.py): train, dev, test paths."""
    sys.path.insert(0, os.path.join(REPO, "examples"))
    try:
        from demo_corpus import write_corpus
    finally:
        sys.path.pop(0)
    return write_corpus(str(directory), sizes=sizes, seed=seed)


def _read_history(output_dir):
    with open(os.path.join(output_dir, "history.csv"), newline="") as file:
        return list(csv.DictReader(file))


def _read_metrics(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as file:
        return json.load(file)


def _read_preprocessor(output_dir):
    with open(os.path.join(output_dir, "preprocessor.json")) as file:
        return TextPreprocessor(**json.load(file))


def _assert_run_outputs(output_dir, epochs):
    metrics = _read_metrics(output_dir)
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert 0.0 <= metrics["dev_accuracy"] <= 1.0
    assert metrics["epochs_run"] == epochs
    assert 1 <= metrics["best_epoch"] <= epochs
    assert metrics["settings"]["epochs"] == epochs
    assert metrics["settings"]["output_dir"] == str(output_dir)
    with open(os.path.join(output_dir, "learning_curves.png"), "rb") as file:
        assert file.read(8) == PNG_SIGNATURE
    events = glob.glob(
        os.path.join(output_dir, "logs", "**", "events.out.tfevents.*"), recursive=True
    )
    assert {os.path.basename(os.path.dirname(path)) for path in events} >= {"train", "validation"}
    assert os.path.getsize(os.path.join(output_dir, "best.weights.h5")) > 0
    assert [int(row["epoch"]) for row in _read_history(output_dir)] == list(range(epochs))
    assert not os.path.exists(os.path.join(output_dir, "backup")), "a finished run leaves no backup"
    # The dev accuracy is the best epoch's, as the history recorded it.
    best = max(float(row["val_accuracy"]) for row in _read_history(output_dir))
    assert metrics["dev_accuracy"] == pytest.approx(best, abs=1e-6)
    return metrics


def _assert_test_accuracy_is_the_saved_models_on(output_dir, test_file, data_format, pair=False):
    """metrics.json's test accuracy equals the saved model.keras, evaluated here
    on the --test file."""
    metrics = _read_metrics(output_dir)
    data = read_dataset(test_file, data_format)
    preprocessor = _read_preprocessor(output_dir)
    model = keras.models.load_model(os.path.join(output_dir, "model.keras"))
    if pair:
        inputs = {
            "premise": preprocessor(tf.constant(data.premises)),
            "hypothesis": preprocessor(tf.constant(data.hypotheses)),
        }
    else:
        inputs = preprocessor(tf.constant(data.texts))
    predicted = np.argmax(model.predict(inputs, verbose=0), axis=-1)
    predicted_names = [metrics["label_names"][i] for i in predicted]
    true_names = [data.label_names[i] for i in data.labels]
    accuracy = np.mean([p == t for p, t in zip(predicted_names, true_names, strict=True)])
    assert metrics["test_accuracy"] == pytest.approx(accuracy, abs=1e-6)


# 1. Smoke runs of the command-line job.


@pytest.mark.slow
def test_sentence_classifier_job_on_a_trec_slice(tmp_path, capsys):
    train, test = _trec_slice(tmp_path)
    output_dir = tmp_path / "run"
    argv = ["--train", train, "--test", test, "--format", "trec", "--output-dir", str(output_dir)]
    assert main(argv + ["--epochs", "2", *SMALL]) == 0

    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary) == {"test_accuracy", "dev_accuracy", "best_epoch"}
    metrics = _assert_run_outputs(output_dir, epochs=2)
    _assert_test_accuracy_is_the_saved_models_on(output_dir, test, "trec")
    assert metrics["label_names"] == sorted(metrics["label_names"])
    assert metrics["examples"] == {"train": 288, "dev": 32, "test": 64}  # dev carved from train
    assert metrics["strategy"] == "_DefaultDistributionStrategy" and metrics["replicas"] == 1
    assert metrics["worker"] == "chief"
    assert metrics["settings"]["format"] == "trec"
    assert (
        _read_preprocessor(output_dir).lower_case is False
    )  # sentences keep their case by default
    assert metrics["settings"]["token_dropout"] == 0.2  # word dropout by default for sentences


@pytest.mark.slow
def test_pair_classifier_job_on_a_sick_slice(tmp_path):
    train, test = _sick_slice(tmp_path)
    output_dir = tmp_path / "run"
    argv = ["--train", train, "--test", test, "--format", "sick", "--output-dir", str(output_dir)]
    without_max_length = [arg for arg in SMALL if arg not in ("--max-length", "24")]
    assert main(argv + ["--epochs", "1", *without_max_length], pair=True) == 0

    metrics = _assert_run_outputs(output_dir, epochs=1)
    _assert_test_accuracy_is_the_saved_models_on(output_dir, test, "sick", pair=True)
    assert metrics["label_names"] == ["ENTAILMENT", "NEUTRAL", "CONTRADICTION"]
    assert metrics["examples"] == {"train": 288, "dev": 32, "test": 64}
    assert metrics["settings"]["format"] == "sick"
    # No --max-length: fitted to the longest training sentence (premise or
    # hypothesis), in multiples of 8.
    train_data, _ = split_dev(read_dataset(train, "sick"), fraction=0.1, seed=1)
    tokens = tokenize(train_data.premises + train_data.hypotheses)
    assert metrics["settings"]["max_length"] == fitting_max_length(int(max(tokens.row_lengths())))
    assert _read_preprocessor(output_dir).bucket_boundaries[-1] == metrics["settings"]["max_length"]
    import tensorflow_text

    # The versions that computed the numbers.
    assert metrics["versions"] == {
        "keras_mtsa": keras_mtsa.__version__, "tensorflow": tf.__version__,
        "keras": keras.__version__, "tensorflow_text": tensorflow_text.__version__,
    }  # fmt: skip
    assert _read_preprocessor(output_dir).lower_case is True  # pairs are case-folded by default
    assert metrics["settings"]["token_dropout"] == 0.0  # and have no word dropout by default
    assert metrics["settings"]["head"] == "relu"


# 2. MirroredStrategy over the two logical CPUs of conftest.py.


def _train_under(strategy, data, preprocessor, steps=3):
    keras.utils.set_random_seed(7)
    # In order and whole batches: the same examples in each step under both strategies.
    dataset = make_classification_dataset(
        data, preprocessor, batch_size=32, drop_remainder=True
    ).take(steps)
    with strategy.scope():
        model = models.build_sentence_classifier(
            len(data.label_names),
            vocabulary_size=preprocessor.vocabulary_size,
            max_length=preprocessor.max_length,
            embedding_dim=16,
            hidden_units=16,
            dropout=0.0,
        )
        # SGD, not Adam: Adam's first steps move every weight by about +-learning_rate whatever
        # the size of its gradient, so round-off in gradients that are nearly zero would
        # decide the comparison.
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    initial = model.get_weights()
    model.fit(dataset, epochs=1, verbose=0)
    return model, initial


@pytest.mark.slow
def test_mirrored_strategy_matches_one_device_and_keeps_the_mtsa_core_compiled(
    tmp_path, monkeypatch
):
    import tensorflow as tf

    train, _, _ = _demo_corpus(tmp_path, sizes=(96, 1, 1))
    data = read_labeled_lines(train)
    preprocessor = TextPreprocessor.from_texts(data.texts, str(tmp_path / "vocabulary.txt"), 16)

    # Records each request for the XLA-compiled core: in which replica context and what it returned.
    requests = []
    compiled = _xla._compiled

    def spy(function):
        context = tf.distribute.get_replica_context()
        result = compiled(function)
        requests.append((tf.distribute.get_strategy(), context is not None, result))
        return result

    monkeypatch.setattr(_xla, "_compiled", spy)

    single, single_initial = _train_under(tf.distribute.get_strategy(), data, preprocessor)
    mirrored_strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored_strategy.num_replicas_in_sync == 2
    requests.clear()
    mirrored, mirrored_initial = _train_under(mirrored_strategy, data, preprocessor)

    for before, after in zip(single_initial, mirrored_initial):
        np.testing.assert_array_equal(before, after)  # same seed, same initial weights
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(single_initial, single.get_weights()))
    assert moved > 1e-2, (
        "training must have changed the weights for the comparison to mean anything"
    )
    for a, b, variable in zip(single.get_weights(), mirrored.get_weights(), single.weights):
        np.testing.assert_allclose(b, a, atol=1e-5, err_msg=variable.path)

    # The MTSA core was requested inside the replica function of the mirrored strategy and what ran
    # is the jit-compiled tf.function, whose concrete functions carry XLA's must-compile attribute.
    mtsa = mirrored.get_layer("sentence_encoder").get_layer("mtsa")
    assert mtsa.jit_compile is True
    mirrored_requests = [r for r in requests if r[0] is mirrored_strategy and r[1]]
    assert mirrored_requests, "the MTSA core was never traced under the MirroredStrategy"
    function = mirrored_requests[0][2]
    assert isinstance(function, tf.types.experimental.PolymorphicFunction)
    assert function._jit_compile is True
    concrete = function._list_all_concrete_functions()
    assert concrete and all(f.function_def.attr["_XlaMustCompile"].b for f in concrete)
    per_replica_batch = {f.structured_input_signature[0][0].shape[0] for f in concrete}
    assert 16 in per_replica_batch, f"no trace for the per-replica batch of 16: {per_replica_batch}"


# 3. MultiWorkerMirroredStrategy: two worker processes on the loopback address.


def _free_ports(count):
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _environment(**extra):
    """A child's environment: this checkout first on its path (never an installed,
    possibly stale copy)."""
    environment = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    environment.update(PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", **extra)
    return environment


def _kill(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)  # the worker and anything it started
    process.wait()


def _load_h5(path):
    import h5py

    arrays = {}

    def collect(name, item):  # returns None, or visititems would stop
        if isinstance(item, h5py.Dataset):
            arrays[name] = item[()]

    with h5py.File(path, "r") as file:
        file.visititems(collect)
    return arrays


@pytest.fixture(scope="module")
def multi_worker_run(tmp_path_factory):
    """Two worker processes train one epoch under MultiWorkerMirroredStrategy; returns the run's
    directory and the training arguments (without --output-dir and --strategy)."""
    tmp_path = tmp_path_factory.mktemp("multi_worker")
    train, dev, test = _demo_corpus(tmp_path, sizes=(128, 32, 32))
    data = ["--train", train, "--dev", dev, "--test", test, "--format", "labeled-lines"]
    # Nothing random but the shared seed: the two workers together should train
    # what one process trains.
    same_training = [
        *data,
        "--epochs",
        "1",
        "--dropout",
        "0",
        "--token-dropout",
        "0",
        "--verbose",
        "2",
        *TINY,
    ]
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes, logs = [], []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        command = [
            sys.executable, TRAIN_CLASSIFIER, "--output-dir", str(tmp_path / "run"),
            "--strategy", "multi-worker", *same_training,
        ]  # fmt: skip
        log = open(tmp_path / f"worker{index}.log", "w+")
        logs.append(log)
        processes.append(
            subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
                start_new_session=True,
                env=_environment(TF_CONFIG=tf_config),
            )  # fmt: skip
        )
    deadline = time.monotonic() + 400
    try:
        for process in processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for process in processes:
            _kill(process)
    outputs = []
    for log in logs:
        log.seek(0)
        outputs.append(log.read()[-3000:])
        log.close()
    for index, process in enumerate(processes):
        assert process.returncode == 0, (
            f"worker {index} exited {process.returncode}:\n{outputs[index]}"
        )
    return tmp_path, same_training


@pytest.mark.slow
@pytest.mark.xdist_group("multi_worker")
def test_multi_worker_strategy_with_two_local_workers(multi_worker_run):
    tmp_path, _ = multi_worker_run
    # One --output-dir for both: the chief (worker 0) writes there, worker 1 in a folder
    # of its own below it.
    directories = [tmp_path / "run", tmp_path / "run" / "worker-1"]
    metrics = [_read_metrics(directory) for directory in directories]
    assert [worker["worker"] for worker in metrics] == ["chief", "worker-1"]
    for worker in metrics:
        # tf.distribute.MultiWorkerMirroredStrategy is an alias of CollectiveAllReduceStrategy.
        assert worker["strategy"] == "CollectiveAllReduceStrategy" and worker["replicas"] == 2
        assert worker["epochs_run"] == 1
    assert metrics[0]["dev_accuracy"] == metrics[1]["dev_accuracy"]
    weights = [_load_h5(directory / "best.weights.h5") for directory in directories]
    assert weights[0].keys() == weights[1].keys() and len(weights[0]) > 10
    for name in weights[0]:
        np.testing.assert_allclose(weights[1][name], weights[0][name], atol=1e-6, err_msg=name)


@pytest.mark.slow
@pytest.mark.xdist_group("multi_worker")
def test_multi_worker_training_equals_one_process_over_the_same_global_batches(multi_worker_run):
    # Under tf.distribute, Keras's fit draws a batch from a fresh iterator of the training data
    # before its first epoch; the batches of each epoch depend only on the seed and the epoch's
    # number, so that draw changes nothing, and one process trains the weights of the two workers.
    tmp_path, same_training = multi_worker_run
    chief = _load_h5(tmp_path / "run" / "best.weights.h5")
    assert (
        main([*same_training, "--output-dir", str(tmp_path / "single"), "--strategy", "default"])
        == 0
    )
    single = _load_h5(tmp_path / "single" / "best.weights.h5")
    assert single.keys() == chief.keys()
    differences = {name: float(np.max(np.abs(single[name] - chief[name]))) for name in single}
    assert max(differences.values()) < 1e-5, differences


# 4. No lost work: a killed run resumes from its backup.


def _resume_command(train, dev, test, output_dir, epochs):
    return [
        sys.executable, TRAIN_CLASSIFIER, "--train", train, "--dev", dev, "--test", test,
        "--format", "labeled-lines", "--output-dir", output_dir, "--epochs", str(epochs),
        "--steps-per-epoch", "3", "--patience", str(epochs), "--verbose", "2", *TINY,
    ]  # fmt: skip


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_epoch(tmp_path):
    train, dev, test = _demo_corpus(tmp_path, sizes=(400, 64, 64))
    output_dir = str(tmp_path / "run")
    epochs = 4
    command = _resume_command(train, dev, test, output_dir, epochs)
    backup = os.path.join(output_dir, "backup")
    history = os.path.join(output_dir, "history.csv")

    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
        start_new_session=True, env=_environment(),
    )  # fmt: skip
    done = 0
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            if os.path.isdir(backup) and os.path.exists(history):
                done = len(_read_history(output_dir))
                if 1 <= done < epochs - 1:
                    # at least one epoch finished, backed up and logged; the next one is running
                    break
            time.sleep(0.05)
    finally:
        _kill(process)  # SIGKILL: no callback or cleanup runs
    assert 1 <= done < epochs - 1, (
        f"no backup while the run was in progress (exit {process.returncode})"
    )
    assert not os.path.exists(os.path.join(output_dir, "metrics.json"))
    backed_up = json.load(open(os.path.join(backup, "training_metadata.json")))["epoch"]
    assert backed_up >= done

    rerun = subprocess.run(
        command, capture_output=True, text=True, cwd=tmp_path, timeout=300, env=_environment()
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    epoch_lines = [
        line for line in rerun.stdout.splitlines() if line.startswith("Epoch ")
    ]  # "Epoch 3/4"
    started = [int(line.split()[1].split("/")[0]) for line in epoch_lines]
    assert started and started[0] == backed_up + 1, (
        f"the rerun trained epochs {started}; backup at {backed_up}"
    )
    assert started == list(range(backed_up + 1, epochs + 1))

    metrics = _read_metrics(output_dir)
    assert metrics["epochs_run"] == epochs
    rows = _read_history(output_dir)
    assert sorted({int(row["epoch"]) for row in rows}) == list(range(epochs))
    # The reported model is the best one of the whole run, across the kill.
    best = max(float(row["val_accuracy"]) for row in rows)
    assert metrics["dev_accuracy"] == pytest.approx(best, abs=1e-6)
    assert not os.path.exists(backup)


class _SimulatedCrash(Exception):
    pass


class _CrashBeforeEpoch(keras.callbacks.Callback):
    """Raises `_SimulatedCrash` when the run reaches epoch `epoch` (after the earlier
    epochs' backups)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _SimulatedCrash


class _RecordEpochs(keras.callbacks.Callback):
    """Records (fit number, epoch) of every epoch that the run trains."""

    def __init__(self):
        super().__init__()
        self.fits, self.epochs = 0, []

    def on_train_begin(self, logs=None):
        self.fits += 1

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append((self.fits, epoch))

    @property
    def trained(self):
        return [epoch for _, epoch in self.epochs]


def _train(argv, callbacks=(), pair=False):
    """Runs the job of a command line through the library API, with more callbacks (for crashes)."""
    config = training.config_from_argv(argv, pair=pair)
    return (training.train_pair if pair else training.train)(config, callbacks=callbacks)


def _cli_error(argv, capsys, pair=False):
    """The one-line message of a command line that the job refuses (exit code 2, no traceback)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as error:
        main(argv, pair=pair)
    assert error.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if ": error: " in line]
    return line


@pytest.mark.slow
def test_resuming_keeps_the_best_checkpoint_from_before_the_crash(tmp_path):
    """After a resume, `best.weights.h5` is replaced only by an epoch better than
    every earlier one."""
    train, dev, test = _demo_corpus(tmp_path, sizes=(160, 64, 32))
    output_dir = tmp_path / "run"
    argv = [
        "--train", train, "--dev", dev, "--test", test, "--format", "labeled-lines",
        "--output-dir", str(output_dir), "--epochs", "4", "--steps-per-epoch", "2",
        "--patience", "9", "--learning-rate", "0.01", "--verbose", "0", *TINY,
    ]  # fmt: skip
    best_weights = output_dir / "best.weights.h5"
    with pytest.raises(_SimulatedCrash):
        _train(argv, [_CrashBeforeEpoch(2)])
    assert len(_read_history(output_dir)) == 2 and (output_dir / "backup").is_dir()
    saved = best_weights.stat().st_mtime_ns

    class FrozenAfterResume(keras.callbacks.Callback):
        """The resumed epochs learn nothing, so none of them beats the best epoch
        before the crash."""

        def on_epoch_begin(self, epoch, logs=None):
            self.model.optimizer.learning_rate.assign(0.0)

    _train(argv, [FrozenAfterResume()])
    rows = _read_history(output_dir)
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2, 3]
    assert best_weights.stat().st_mtime_ns == saved, (
        "a resumed epoch that is no better replaced the best"
    )
    metrics = _read_metrics(output_dir)
    assert metrics["best_epoch"] in (1, 2)
    assert metrics["dev_accuracy"] == pytest.approx(
        max(float(row["val_accuracy"]) for row in rows), abs=1e-6
    )


@pytest.mark.slow
def test_a_resumed_run_trains_on_the_batches_of_the_uninterrupted_one(tmp_path):
    """Epoch k's batches depend only on --seed and k: a run that crashed before its third epoch and
    was resumed ends with the weights of the run that never stopped (dropout off, so that only the
    data order and the restored weights and optimizer state decide them)."""
    argv, output_dir = _small_run_argv(tmp_path, epochs=3)
    argv += ["--dropout", "0", "--token-dropout", "0", "--buckets", "8,16"]
    whole = tmp_path / "whole"
    assert main([*argv, "--output-dir", str(whole)]) == 0
    with pytest.raises(_SimulatedCrash):
        _train(argv, [_CrashBeforeEpoch(2)])
    assert main(argv) == 0
    resumed, uninterrupted = _read_history(output_dir), _read_history(whole)
    assert (
        [row["epoch"] for row in resumed]
        == [row["epoch"] for row in uninterrupted]
        == ["0", "1", "2"]
    )
    for row, expected in zip(resumed, uninterrupted):
        assert float(row["loss"]) == pytest.approx(float(expected["loss"]), abs=1e-6)
    weights, expected = (
        _load_h5(output_dir / "best.weights.h5"),
        _load_h5(whole / "best.weights.h5"),
    )
    assert weights.keys() == expected.keys()
    for name in weights:
        np.testing.assert_allclose(weights[name], expected[name], atol=1e-6, err_msg=name)


def _small_run_argv(tmp_path, epochs):
    """A command line training a tiny model on the demo corpus, and its output directory."""
    train, dev, test = _demo_corpus(tmp_path, sizes=(96, 32, 32))
    output_dir = tmp_path / "run"
    argv = [
        "--train", train, "--dev", dev, "--test", test, "--format", "labeled-lines",
        "--output-dir", str(output_dir), "--epochs", str(epochs), "--learning-rate", "0.05",
        "--verbose", "0", *TINY,
    ]  # fmt: skip
    return argv, output_dir


@pytest.mark.slow
def test_an_unfinished_run_is_not_resumed_with_other_settings(tmp_path, capsys):
    argv, output_dir = _small_run_argv(tmp_path, epochs=3)
    with pytest.raises(_SimulatedCrash):
        _train(argv, [_CrashBeforeEpoch(1)])

    # Its backup holds another model's weights (another seed; another width would not even load).
    assert re.search(r"--output-dir .* holds an unfinished run with other settings "
                     r"\(--seed 1 there, 2 now\): rerun that command",
                     _cli_error(argv + ["--seed", "2"], capsys))  # fmt: skip
    assert "--refit False there, True now" in _cli_error(argv + ["--refit"], capsys)

    recorder = _RecordEpochs()
    _train(argv + ["--verbose", "2", "--no-deterministic"], [recorder])  # how it runs may change
    assert recorder.trained == [1, 2], "the same settings resume the run"
    finished = main(argv + ["--seed", "2", "--epochs", "1"])
    assert finished == 0, "a finished run does not hold its output directory"
    assert _read_metrics(output_dir)["settings"]["seed"] == 2


@pytest.mark.slow
def test_an_unfinished_run_from_before_the_per_head_gate_resumes_with_fusion_gate_joint(
    tmp_path, capsys
):
    argv, output_dir = _small_run_argv(tmp_path, epochs=2)
    with pytest.raises(_SimulatedCrash):
        _train(argv + ["--fusion-gate", "joint"], [_CrashBeforeEpoch(1)])
    settings_path = os.path.join(output_dir, "run_settings.json")
    settings = json.load(open(settings_path))
    for key in (
        "fusion_gate",
        "dropout_sites",
        "epsilon",
        "head",
        "embeddings",
        "freeze_embeddings",
    ):  # as the package wrote them before these options
        del settings[key]
    json.dump(settings, open(settings_path, "w"))

    assert "--fusion-gate 'joint' there, 'per_head' now" in _cli_error(argv, capsys)
    recorder = _RecordEpochs()
    _train(argv + ["--fusion-gate", "joint"], [recorder])
    assert recorder.trained == [1]


@pytest.mark.slow
def test_the_pair_job_takes_the_authors_head_and_dropout_sites(tmp_path):
    train, test = _sick_slice(tmp_path, train_pairs=96, test_pairs=32)
    output_dir = tmp_path / "run"
    argv = [
        "--train",
        train,
        "--test",
        test,
        "--format",
        "sick",
        "--output-dir",
        str(output_dir),
        *TINY,
    ]
    assert (
        main(
            argv
            + [
                "--epochs",
                "1",
                "--verbose",
                "0",
                "--head",
                "highway",
                "--dropout-sites",
                "authors",
            ],
            pair=True,
        )
        == 0
    )
    model = keras.models.load_model(os.path.join(output_dir, "model.keras"))
    assert model.get_layer("highway").dropout == 0.5
    assert model.get_layer("sentence_encoder").get_layer("mtsa").projection_dropout == 0.5
    assert _read_metrics(output_dir)["settings"]["head"] == "highway"


@pytest.mark.slow
def test_an_unfinished_run_is_not_resumed_from_a_training_file_rewritten_since(tmp_path, capsys):
    argv, output_dir = _small_run_argv(tmp_path, epochs=2)
    train = argv[argv.index("--train") + 1]
    with pytest.raises(_SimulatedCrash):
        _train(argv, [_CrashBeforeEpoch(1)])

    with open(train, "rb") as file:
        original = file.read()
    _write_lines(train, [original.split(b"\n", 1)[1]])  # the same path, one example fewer
    assert (f"--output-dir {output_dir} holds an unfinished run made from other data (--train "
            f"{train} changed since): restore the file") in _cli_error(argv, capsys)  # fmt: skip

    _write_lines(train, [original])
    recorder = _RecordEpochs()
    _train(argv, [recorder])
    assert recorder.trained == [1], "the restored file resumes the run"


@pytest.mark.slow
def test_a_crash_after_training_resumes_with_no_epoch_left_to_train(tmp_path, monkeypatch):
    argv, output_dir = _small_run_argv(tmp_path, epochs=2)
    save = keras.Model.save

    def crash_on_save(self, *args, **kwargs):  # the first step after training: model.keras
        raise _SimulatedCrash

    monkeypatch.setattr(keras.Model, "save", crash_on_save)
    with pytest.raises(_SimulatedCrash):
        main(argv)
    assert not (output_dir / "metrics.json").exists() and (output_dir / "backup").is_dir()

    monkeypatch.setattr(keras.Model, "save", save)
    recorder = _RecordEpochs()
    _train(argv, [recorder])
    assert recorder.trained == [], "the rerun trained again"
    assert [int(row["epoch"]) for row in _read_history(output_dir)] == [0, 1]
    assert _read_metrics(output_dir)["epochs_run"] == 2
    assert not (output_dir / "backup").exists(), "a finished job leaves no backup"


def _refit_argv(tmp_path, epochs=3):
    train, dev, test = _demo_corpus(tmp_path, sizes=(96, 30, 32))
    with open(dev, "a", encoding="utf-8") as file:
        file.write(
            "1 zyzzyva is great\n0 zyzzyva is awful\n"
        )  # a word seen twice, both times in dev
    output_dir = tmp_path / "run"
    argv = [
        "--train", train, "--dev", dev, "--test", test, "--format", "labeled-lines",
        "--output-dir", str(output_dir), "--epochs", str(epochs), "--learning-rate", "0.05",
        "--refit", "--verbose", "0", *TINY,
    ]  # fmt: skip
    return argv, output_dir


@pytest.mark.slow
def test_refit_trains_a_fresh_model_on_train_and_dev_for_the_dev_chosen_epochs(tmp_path):
    argv, output_dir = _refit_argv(tmp_path)

    assert main(argv) == 0

    selection_dir = output_dir / "selection"
    metrics = _read_metrics(output_dir)
    best_epoch = metrics["best_epoch"]
    assert [int(row["epoch"]) for row in _read_history(selection_dir)] == [
        0,
        1,
        2,
    ]  # the dev-selected run
    assert (selection_dir / "best.weights.h5").stat().st_size > 0
    assert metrics["refit"]["epochs"] == best_epoch and metrics["refit"]["examples"] == 96 + 32
    with open(output_dir / "refit_history.csv", newline="") as file:
        assert [int(row["epoch"]) for row in csv.DictReader(file)] == list(range(best_epoch))
    assert 0.0 <= metrics["refit"]["test_accuracy_before_refit"] <= 1.0
    assert metrics["train_seconds_this_run"] > metrics["refit"]["train_seconds"] > 0, (
        "selection + refit"
    )
    # The refit learns its vocabulary from train and dev; the selection run saw only train.
    assert "zyzzyva" in (output_dir / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    assert "zyzzyva" not in (selection_dir / "vocabulary.txt").read_text(encoding="utf-8").split(
        "\n"
    )
    assert _read_preprocessor(output_dir).vocabulary_size == metrics["vocabulary_size"]
    model = keras.models.load_model(output_dir / "model.keras")
    assert (
        model.get_layer("sentence_encoder").get_layer("embedding").input_dim
        == metrics["vocabulary_size"]
    )
    leftovers = ("selection/selection.json", "selection/backup", "refit_backup")
    assert not [name for name in leftovers if (output_dir / name).exists()], (
        "a finished job leaves no state"
    )


@pytest.mark.slow
def test_a_crash_during_the_refit_resumes_the_refit_not_the_selection(tmp_path):
    argv, output_dir = _refit_argv(tmp_path)
    del argv[
        argv.index("--max-length") : argv.index("--max-length") + 2
    ]  # fitted to the training texts
    argv += ["--buckets", "auto"]  # chosen from them too
    dev = argv[argv.index("--dev") + 1]
    with open(dev, "a", encoding="utf-8") as file:
        file.write("1 " + "the plot is great " * 10 + "\n")  # longer than every training text

    class CrashAfterFirstRefitEpoch(keras.callbacks.Callback):
        fits = 0

        def on_train_begin(self, logs=None):
            self.fits += 1

        def on_epoch_end(self, epoch, logs=None):
            if self.fits == 2:  # the refit, after BackupAndRestore has saved its epoch 0
                raise _SimulatedCrash

    with pytest.raises(_SimulatedCrash):
        _train(argv, [CrashAfterFirstRefitEpoch()])
    assert (output_dir / "selection" / "selection.json").exists() and (
        output_dir / "refit_backup"
    ).is_dir()
    selection_history = (output_dir / "selection" / "history.csv").read_bytes()
    selection = json.loads((output_dir / "selection" / "selection.json").read_text())
    fitted_length, fitted_buckets = selection["max_length"], selection["buckets"]
    assert fitted_length < 40, "the long dev text did not set the length"
    assert fitted_buckets.split(",")[-1] == str(fitted_length)

    recorder = _RecordEpochs()
    _train(argv, [recorder])

    metrics = _read_metrics(output_dir)
    # One fit, the refit's (its epochs are the selection's choice), and only the rest of it.
    assert recorder.epochs == [(1, epoch) for epoch in range(1, metrics["best_epoch"])]
    assert (output_dir / "selection" / "history.csv").read_bytes() == selection_history
    assert metrics["refit"]["epochs"] == metrics["best_epoch"]
    with open(output_dir / "refit_history.csv", newline="") as file:
        assert [int(row["epoch"]) for row in csv.DictReader(file)] == list(
            range(metrics["best_epoch"])
        )
    assert not (output_dir / "selection" / "selection.json").exists()
    # The resumed refit pads to the length and buckets the crashed run used, as its
    # backed-up model did.
    refit_preprocessor = json.loads((output_dir / "preprocessor.json").read_text())
    assert refit_preprocessor["max_length"] == fitted_length
    assert refit_preprocessor["bucket_boundaries"] == [int(b) for b in fitted_buckets.split(",")]


# 5. Errors for a missing TPU and bad command lines.


@pytest.fixture
def corpus(tmp_path):
    train, dev, test = _demo_corpus(tmp_path, sizes=(40, 8, 8))
    return ["--train", train, "--dev", dev, "--test", test, "--format", "labeled-lines",
            "--output-dir", str(tmp_path / "run")]  # fmt: skip


@pytest.mark.parametrize(
    "scores, epochs_until_stop",
    [
        ([], 3),  # a fresh run: patience 2 after its first epoch
        ([0.5, 0.7, 0.6], 1),  # one epoch without improvement already: one more allowed
        ([0.5, 0.7, 0.7], 1),  # a tie is no improvement
        ([0.5, 0.6, 0.7], 2),
    ],
)
def test_early_stopping_patience_goes_on_across_a_resume(scores, epochs_until_stop):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    callback = resumable_early_stopping(2, scores)
    model.stop_training = False  # as `fit` sets it
    callback.set_model(model)
    callback.on_train_begin()
    for epoch in range(len(scores), len(scores) + 5):
        callback.on_epoch_end(epoch, {"val_accuracy": 0.1})  # never better than before the crash
        if model.stop_training:
            break
    assert epoch - len(scores) + 1 == epochs_until_stop


def test_tpu_strategy_without_a_tpu_fails_clearly(corpus):
    with pytest.raises(ValueError, match=r"strategy='tpu'.*no TPU"):
        _train(corpus + ["--strategy", "tpu", "--epochs", "1"])


def test_an_unreachable_tpu_address_fails_fast_and_names_the_address(corpus):
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"grpc://127.0.0.1:{port}"

    started = time.monotonic()
    with pytest.raises(ValueError, match=rf"no TPU could be used: cannot connect to {address}"):
        _train(corpus + ["--strategy", "tpu", "--tpu", address, "--epochs", "1"])
    assert time.monotonic() - started < 30  # TF's own TPU initialization would retry for minutes


@contextlib.contextmanager
def _local_server(reply):
    """A TCP server on 127.0.0.1 that answers every connection with `reply`
    (None: never answers)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    connections = []

    def serve():
        while True:
            try:
                connection, _ = server.accept()
            except OSError:  # closed
                return
            connections.append(connection)
            if reply is not None:
                connection.recv(1024)
                connection.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"grpc://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        for connection in connections:
            connection.close()


@pytest.mark.parametrize(
    "reply, message",
    [
        (
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            "it does not answer as a gRPC server",
        ),
        (None, "timed out"),
    ],
    ids=["an HTTP/1 server", "a silent server"],
)
def test_a_tpu_address_where_no_grpc_server_answers_fails_fast(corpus, monkeypatch, reply, message):
    monkeypatch.setattr(distribute, "TPU_CONNECT_TIMEOUT_SECONDS", 1)

    with _local_server(reply) as address:
        started = time.monotonic()
        with pytest.raises(ValueError, match=rf"cannot connect to {address} \({message}\)"):
            _train(corpus + ["--strategy", "tpu", "--tpu", address, "--epochs", "1"])
    assert time.monotonic() - started < 30


def test_the_tpu_address_check_accepts_a_grpc_server():
    import grpc

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        assert distribute._unreachable(f"127.0.0.1:{port}", timeout=5) is None
    finally:
        server.stop(None)


@pytest.mark.slow
def test_model_and_optimizer_options_train_and_reload(corpus):
    argv = corpus + [
        "--epochs",
        "2",
        "--head-dim",
        "12",
        "--label-smoothing",
        "0.1",
        "--ema",
        "0.9",
        *TINY,
    ]
    argv += ["--attention-dropout", "0.3"]
    argv += [
        "--optimizer",
        "adadelta",
        "--learning-rate",
        "0.5",
        "--embedding-scale",
        "0.25",
        "--no-keep-case",
    ]
    argv += [
        "--epsilon",
        "1e-8",
        "--dropout-sites",
        "authors",
        "--fusion-gate",
        "joint",
        "--l2",
        "1e-4",
    ]
    assert main(argv + ["--verbose", "0"]) == 0
    output_dir = corpus[corpus.index("--output-dir") + 1]
    assert _read_preprocessor(output_dir).tokenize(["The Film"]).to_list() == [[b"the", b"film"]]
    model = keras.models.load_model(os.path.join(output_dir, "model.keras"))
    # 2 heads of 12 features (not embedding_dim / num_heads = 8) reach the pooling.
    assert model.get_layer("sentence_encoder").output.shape == (None, 24)
    mtsa = model.get_layer("sentence_encoder").get_layer("mtsa")
    assert mtsa.dropout == 0.3
    assert (mtsa.fusion_gate, mtsa.projection_dropout) == (
        "joint",
        0.5,
    )  # the authors' sites at --dropout
    assert len(model.losses) == 10  # --l2 on every kernel
    assert model.loss.label_smoothing == 0.1
    assert model.optimizer.use_ema and model.optimizer.ema_momentum == 0.9
    assert isinstance(model.optimizer, keras.optimizers.Adadelta)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.5)
    assert model.optimizer.epsilon == pytest.approx(1e-8)
    metrics = json.load(open(os.path.join(output_dir, "metrics.json")))
    assert 0.0 <= metrics["test_accuracy"] <= 1.0


def _write_vectors(path, words, dim, seed=0):
    """A GloVe-style file of `words`, gzip-compressed; returns {word: vector} as float32."""
    import gzip

    rng = np.random.default_rng(seed)
    vectors = {word: rng.uniform(-1, 1, dim).astype(np.float32) for word in words}
    with gzip.open(path, "wt", encoding="utf-8") as file:
        for word, vector in vectors.items():
            file.write(word + " " + " ".join(f"{value:.6f}" for value in vector) + "\n")
    return {
        word: np.float32([f"{value:.6f}" for value in vector]) for word, vector in vectors.items()
    }


@pytest.mark.slow
@pytest.mark.parametrize("freeze", [False, True])
def test_pretrained_vectors_start_the_embeddings_and_unseen_file_words_keep_theirs(
    corpus, tmp_path, freeze
):
    # "great" and "the" are training words; "zyzzyva" and "quokka" only in the file.
    path = str(tmp_path / "vectors.txt.gz")
    vectors = _write_vectors(path, ["the", "great", "zyzzyva", "quokka"], dim=16)
    argv = corpus + ["--epochs", "1", "--verbose", "0", *TINY, "--embeddings", path]
    argv += ["--export-dir", str(tmp_path / "export"), "--freeze-embeddings"] if freeze else []
    assert main(argv) == 0
    output_dir = corpus[corpus.index("--output-dir") + 1]
    metrics = _read_metrics(output_dir)
    assert metrics["embeddings"]["training_words_found"] == 2
    assert metrics["embeddings"]["frozen_rows"] == 2
    assert metrics["settings"]["embeddings"] == path
    tokens = (Path(output_dir) / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    assert tokens[-2:] == ["zyzzyva", "quokka"], "the file's other words follow the training words"
    assert metrics["vocabulary_size"] == len(tokens)
    model = keras.models.load_model(os.path.join(output_dir, "model.keras"))
    embedding = model.get_layer("sentence_encoder").get_layer("embedding")
    assert embedding.trainable_rows == len(tokens) - 2
    np.testing.assert_array_equal(
        embedding.frozen_embeddings.numpy(), [vectors["zyzzyva"], vectors["quokka"]]
    )  # frozen through training
    great = embedding.embeddings.numpy()[tokens.index("great")]
    if freeze:
        np.testing.assert_array_equal(great, vectors["great"])
    else:
        assert not np.array_equal(great, vectors["great"]), "training words are fine-tuned"
        assert np.abs(great - vectors["great"]).max() < 0.5
    ids = _read_preprocessor(output_dir)(tf.constant(["zyzzyva quokka"])).numpy()[0]
    assert list(ids[:2]) == [len(tokens) - 2, len(tokens) - 1], "unseen test words have their row"
    if freeze:  # the export carries the whole vocabulary, on TF Serving's road
        [export] = glob.glob(str(tmp_path / "export" / "*" / "1"))
        [vocabulary] = glob.glob(os.path.join(export, "assets", "*vocabulary*"))
        assert open(vocabulary, encoding="utf-8").read().splitlines() == tokens
        texts = ["zyzzyva quokka", "xylophones kazoos"]  # file words, then two [UNK]s
        [answer] = serving.serve(export, [("serving_default", {"text": texts})])
        assert not np.allclose(answer["probabilities"][0], answer["probabilities"][1])


def test_a_malformed_line_of_the_vectors_file_exits_naming_the_vectors_not_the_format(
    corpus, tmp_path, capsys
):
    path = str(tmp_path / "vectors.txt")
    with open(path, "w", encoding="utf-8") as file:
        file.write("the " + " ".join(["0.5"] * 16) + "\ngreat 0.5 oops\n")
    message = _cli_error(corpus + ["--epochs", "1", *TINY, "--embeddings", path], capsys)
    assert f"{path}, line 2: " in message
    assert message.endswith("(--embeddings: word vectors as text, a word and its values a line)")
    assert "--format" not in message


def test_pretrained_vectors_of_another_width_exit_before_any_work(corpus, tmp_path, capsys):
    path = str(tmp_path / "vectors.txt.gz")
    _write_vectors(path, ["the", "great"], dim=8)
    message = _cli_error(corpus + ["--epochs", "1", *TINY, "--embeddings", path], capsys)
    assert "--embedding-dim must equal the width of the vectors in --embeddings (8), or be left " \
        "out. Received: --embedding-dim 16" in message  # fmt: skip
    assert not os.path.exists(corpus[corpus.index("--output-dir") + 1])


@pytest.mark.slow
def test_case_fallback_reaches_the_preprocessor_that_is_saved_and_exported(corpus, tmp_path):
    argv = corpus + [
        "--epochs",
        "1",
        "--verbose",
        "0",
        *TINY,
        "--case-fallback",
        "--export-dir",
        str(tmp_path / "e"),
    ]
    assert main(argv) == 0
    output_dir = corpus[corpus.index("--output-dir") + 1]
    assert _read_preprocessor(output_dir).case_fallback is True
    assert _read_metrics(output_dir)["settings"]["case_fallback"] is True
    [export] = glob.glob(str(tmp_path / "e" / "*" / "1"))
    texts = ["the acting is great", "THE Acting IS GREAT"]
    [answer] = serving.serve(export, [("serving_default", {"text": texts})])  # on TF Serving's road
    # Capitals never seen in training fall back to the lower-case words in the export too.
    np.testing.assert_array_equal(answer["probabilities"][0], answer["probabilities"][1])


@pytest.mark.slow
def test_missing_tensorboard_and_matplotlib_turn_their_outputs_off_with_a_warning(
    corpus, monkeypatch, capsys
):
    for module in ("tensorboard", "matplotlib"):  # as if not installed: find_spec answers None
        monkeypatch.setitem(sys.modules, module, None)
    assert main(corpus + ["--epochs", "1", "--verbose", "0", *TINY]) == 0
    output_dir = corpus[corpus.index("--output-dir") + 1]
    warnings = capsys.readouterr().err
    assert (
        "Warning: TensorBoard logs turned off: "
        "tensorboard is not installed (pip install tensorboard)" in warnings
    )
    assert "Warning: learning_curves.png turned off: matplotlib is not installed" in warnings
    assert not os.path.exists(os.path.join(output_dir, "logs"))
    assert not os.path.exists(os.path.join(output_dir, "learning_curves.png"))
    assert 0.0 <= _read_metrics(output_dir)["test_accuracy"] <= 1.0


def test_an_export_without_tensorflow_serving_api_exits_before_any_work(
    corpus, monkeypatch, tmp_path, capsys
):
    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)
    output_dir = corpus[corpus.index("--output-dir") + 1]
    message = _cli_error(corpus + ["--export-dir", str(tmp_path / "export"), *TINY], capsys)
    assert "--export-dir writes TF Serving warm-up requests, which need tensorflow-serving-api: " \
        "pip install 'tensorflow-serving-api" in message  # fmt: skip
    assert not os.path.exists(output_dir)


def test_the_console_scripts_are_the_training_entry_points(capsys):
    from importlib.metadata import entry_points

    scripts = {
        ep.name: ep
        for ep in entry_points(group="console_scripts")
        if ep.name.startswith("keras-mtsa")
    }
    assert scripts["keras-mtsa-train"].load() is training.main
    assert scripts["keras-mtsa-train-pair"].load() is training.main_pair
    with pytest.raises(SystemExit) as done:
        training.main_pair(["--help"])
    assert done.value.code == 0
    assert "Train an MTSA sentence-pair classifier" in capsys.readouterr().out


@pytest.mark.slow
def test_deterministic_kernels_are_on_unless_turned_off(corpus):
    # On full TREC, four runs of one seed with them gave identical histories; three
    # without, three others.
    from tensorflow.python.framework import config

    output_dir = corpus[corpus.index("--output-dir") + 1]
    for flag, expected in (
        ([], True),
        (["--no-deterministic"], False),
    ):  # the setting is process-wide
        assert main(corpus + ["--epochs", "1", "--verbose", "0", *TINY, *flag]) == 0
        assert config.is_op_determinism_enabled() == expected
        assert _read_metrics(output_dir)["settings"]["deterministic"] == expected


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--epochs", "0"], "--epochs must be a positive integer"),
        (["--batch-size", "-4"], "--batch-size must be a positive integer"),
        (["--steps-per-epoch", "0"], "--steps-per-epoch must be a positive integer"),
        (["--steps-per-epoch", "-1"], "--steps-per-epoch must be a positive integer"),
        (["--dropout", "1.0"], "--dropout must be a float in [0, 1)"),
        (["--token-dropout", "-0.1"], "--token-dropout must be a float in [0, 1)"),
        (["--attention-dropout", "1.0"], "--attention-dropout must be a float in [0, 1)"),
        (
            ["--case-fallback", "--no-keep-case"],
            "--case-fallback needs --keep-case and no --subwords",
        ),
        (["--min-count", "0"], "--min-count must be a positive integer"),
        (["--head-dim", "0"], "--head-dim must be a positive integer"),
        (["--label-smoothing", "1.0"], "--label-smoothing must be a float in [0, 1)"),
        (["--ema", "-0.5"], "--ema must be a float in [0, 1)"),
        (["--embedding-scale", "0"], "--embedding-scale must be a positive number"),
        (["--learning-rate", "0"], "--learning-rate must be a positive number"),
        (["--epsilon", "0"], "--epsilon must be a positive number"),
        (["--format", "trec"], "(--format trec: is that the file's format?)"),
        (
            ["--encoder", "cnn", "--dropout-sites", "authors"],
            "--dropout-sites authors needs the single MTSA layer",
        ),
        (
            ["--num-blocks", "1", "--dropout-sites", "authors"],
            "--dropout-sites authors needs the single MTSA layer",
        ),
        (
            ["--embedding-dim", "30", "--num-heads", "4"],
            "--embedding-dim (30) must be divisible by --num-heads (4)",
        ),
        (
            ["--encoder", "mha", "--num-blocks", "2"],
            "--num-blocks stacks MTSA blocks and needs --encoder mtsa",
        ),
        (["--encoder", "cnn", "--head-dim", "8"], "--head-dim does not apply to --encoder cnn"),
        (
            ["--encoder", "cnn", "--max-length", "4"],
            "--max-length must be at least 5 for --encoder cnn",
        ),
        (["--conv-window", "-1"], "--conv-window must be a non-negative integer"),
        (
            ["--encoder", "mha", "--conv-window", "3"],
            "--conv-window feeds MTSA and needs --encoder mtsa",
        ),
        (["--buckets", "16,8"], "--buckets must be 'auto', 'none' or increasing positive integers"),
        (["--buckets", "a,b"], "--buckets must be 'auto', 'none' or increasing positive integers"),
        (
            ["--buckets", "8,64", "--max-length", "32"],
            "--buckets must be at most --max-length. Received: --buckets 8,64, --max-length 32",
        ),
        (["--buckets", "8,512"], "--buckets 8,512 must not exceed the fitted --max-length"),
        (
            ["--encoder", "cnn", "--buckets", "8,16"],
            "--buckets does not apply to --encoder cnn (it pads every batch to --max-length)",
        ),
        (
            ["--test", "/nonexistent/test.txt"],
            "--test must be an existing file. Received: --test /nonexistent/test.txt",
        ),
        (
            ["--class-names", "one,two,three"],
            "--class-names must give one name per label of the data, 2",
        ),
        (  # before any work: the MTSA layer would refuse it after the data preparation
            ["--num-heads", "3"],
            "--num-heads must be even for --encoder mtsa (half the heads attend forward, half "
            "backward). Received: --num-heads 3",
        ),
    ],
)
def test_bad_values_exit_with_a_message(corpus, capsys, extra, message):
    assert message in _cli_error(corpus + extra, capsys)


def test_missing_train_file_exits_with_a_message(corpus, tmp_path, capsys):
    argv = list(corpus)
    missing = str(tmp_path / "missing.txt")
    argv[argv.index("--train") + 1] = missing
    assert f"--train must be an existing file. Received: --train {missing}" in _cli_error(
        argv, capsys
    )


@pytest.mark.parametrize(
    "drop, extra, message",
    [
        ("--train", [], "the following arguments are required: --train"),
        (None, ["--strategy", "gpu"], "argument --strategy: invalid choice: 'gpu'"),
        (None, ["--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
    ],
)
def test_bad_command_lines_exit_with_usage(corpus, capsys, drop, extra, message):
    argv = list(corpus)
    if drop:
        index = argv.index(drop)
        del argv[index : index + 2]
    with pytest.raises(SystemExit) as error:
        main(argv + extra)
    assert error.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag, content, message",
    [
        ("--train", b"", "--train must hold at least one example in --format labeled-lines. "),
        ("--dev", b"\n\n", "--dev must hold at least one example in --format labeled-lines. "),
        ("--test", b"", "--test must hold at least one example in --format labeled-lines. "),
        ("--test", b"7 a label that training never saw\n", "--test must be a file in --format "),
        ("--train", b"label\ttext\n", "--train must be a file in --format labeled-lines. "),
    ],
)
def test_a_bad_input_file_exits_before_any_work_naming_its_flag_and_file(
    corpus, tmp_path, capsys, flag, content, message
):
    argv = list(corpus) + ["--epochs", "1", "--verbose", "0", *TINY]
    argv[argv.index(flag) + 1] = path = _write_lines(tmp_path / "bad.txt", [content])
    line = _cli_error(argv, capsys)
    assert message in line and f"Received: {flag} {path}" in line
    assert not os.path.exists(corpus[corpus.index("--output-dir") + 1]), "the folder was claimed"


def test_a_tsv_flag_on_a_file_of_another_format_exits_with_one_line(corpus, capsys):
    line = _cli_error(corpus + ["--format", "tsv"], capsys)
    assert "--train must be a file in --format tsv. Received: --train " in line
    assert "--text-column text is not a column of" in line
    assert line.endswith("(--format tsv: is that the file's format?)")


@pytest.mark.slow
def test_a_run_refused_for_an_empty_test_file_reruns_with_the_corrected_one(tmp_path, capsys):
    argv, output_dir = _small_run_argv(tmp_path, epochs=1)
    test = argv[argv.index("--test") + 1]
    argv[argv.index("--test") + 1] = empty = _write_lines(tmp_path / "empty.txt", [])
    assert f"Received: --test {empty}, which holds none" in _cli_error(argv, capsys)

    argv[argv.index("--test") + 1] = test
    assert main(argv) == 0, "the refused run held its folder"
    assert _read_metrics(output_dir)["examples"]["test"] == 32


@pytest.mark.slow
def test_rerunning_a_finished_run_reports_it_and_overwrite_trains_it_again(tmp_path, capsys):
    argv, output_dir = _small_run_argv(tmp_path, epochs=1)
    first = _train(argv)
    metrics_file = output_dir / "metrics.json"
    written = metrics_file.stat().st_mtime_ns
    capsys.readouterr()

    recorder = _RecordEpochs()
    rerun = _train(argv + ["--verbose", "2"], [recorder])  # how verbose it is changes no result
    assert recorder.trained == [] and rerun.already_finished and not first.already_finished
    assert rerun.metrics == first.metrics and metrics_file.stat().st_mtime_ns == written
    assert rerun.model.count_params() == first.model.count_params()
    assert rerun.max_length == first.max_length == 16
    out = capsys.readouterr().out
    assert f"{output_dir} holds the finished run of these settings (test accuracy " in out
    assert f"{metrics_file}, {output_dir / 'model.keras'}): not trained again (--overwrite" in out
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["test_accuracy"] == first.metrics["test_accuracy"]

    _train(argv + ["--overwrite"], [recorder])
    assert recorder.trained == [0]
    assert metrics_file.stat().st_mtime_ns != written
    test = argv[argv.index("--test") + 1]
    with open(test, "a", encoding="utf-8") as file:
        file.write("1 the plot is great\n")
    _train(argv, [recorder])
    assert recorder.trained == [0, 0], "a rewritten test file makes another job"


class _InterruptAfterEpoch(keras.callbacks.Callback):
    """Ctrl-C (KeyboardInterrupt) at the end of epoch `epoch` (1-based), after its backup."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_ctrl_c_says_where_the_run_resumes_and_the_resumed_run_equals_the_uninterrupted_one(
    tmp_path, monkeypatch, capsys
):
    """Dropout (0.5) and word dropout (0.2) on: their draws depend on (seed, epoch, step), as the
    batches do, so the resumed run's every number is the uninterrupted run's."""
    argv, output_dir = _small_run_argv(tmp_path, epochs=2)
    whole = tmp_path / "whole"
    assert main([*argv, "--output-dir", str(whole)]) == 0
    monkeypatch.setattr(
        cli, "train", lambda config: training.train(config, callbacks=[_InterruptAfterEpoch(1)])
    )
    capsys.readouterr()
    with pytest.raises(SystemExit) as error:
        main(argv)
    assert error.value.code == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if "Interrupted" in line]
    assert line.endswith(
        "Interrupted: the run can resume after epoch 1 of 2; rerun the same command to resume it "
        f"from {output_dir}"
    )
    monkeypatch.undo()

    assert main(argv) == 0
    assert f"Resuming after epoch 1 of 2 from {output_dir}\n" in capsys.readouterr().out
    resumed, uninterrupted = _read_history(output_dir), _read_history(whole)
    assert len(resumed) == 2 and resumed == uninterrupted
    metrics, expected = _read_metrics(output_dir), _read_metrics(whole)
    for key in ("test_accuracy", "test_loss", "dev_accuracy", "best_epoch"):
        assert metrics[key] == expected[key], key
    weights = keras.models.load_model(output_dir / "model.keras").get_weights()
    expected_weights = keras.models.load_model(whole / "model.keras").get_weights()
    for value, expected_value in zip(weights, expected_weights, strict=True):
        np.testing.assert_array_equal(value, expected_value)
