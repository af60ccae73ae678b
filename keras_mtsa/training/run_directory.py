"""The run's folder (`output_dir`): every path in it, and the protocol that resumes
a run after a crash.

A run that stops before its end (a crash, a preemption, a kill) leaves its state behind: the
`BackupAndRestore` backup of the last epoch it finished, the history, the best weights so far
and, with `refit`, the finished selection. Rerunning the same job resumes it. `RunDirectory.claim`
first compares the new job's settings and its data files' SHA-256 with the unfinished run's,
and refuses to mix two jobs; a run that stopped before its first epoch ended left no state, so any
job may take its place. `finish` removes the state once the job is done and marks the run finished
in `run_settings.json`: the same job run again finds it there (`finished_metrics`) and is reported,
not trained again, unless it is asked to start over (`overwrite`).

Layout, without `refit`: `history.csv`, `best.weights.h5`, `backup/`, `logs/`, `vocabulary.txt`,
then `model.keras`, `preprocessor.json`, `metrics.json`. With `refit`, the dev-selected
run keeps that layout in `selection/` (plus `selection.json` once it is finished), and the
refit adds `refit_history.csv`, `refit_backup/` and `logs/refit/` to the top folder, which
holds the final model.
"""

import csv
import dataclasses
import hashlib
import json
import os
import shutil

from keras_mtsa.training.config import ConfigError

# Settings that say where and how a run executes, not what it computes, and the test file, which
# only the evaluation after training reads: a crashed run may resume with others.
RESUMABLE_WITH_OTHER = frozenset(
    {
        "output_dir",
        "export_dir",
        "model_name",
        "strategy",
        "tpu",
        "verbose",
        "deterministic",
        "overwrite",
        "test",
    }
)
# Settings that do not make another job of the same command: a finished run is reported for it.
_SAME_JOB_WITH_OTHER = frozenset({"output_dir", "verbose", "overwrite"})
RUN_SETTINGS_FILE = "run_settings.json"
_DATA_DIGESTS = "data_sha256"  # in the run settings file: the SHA-256 of the data files
_FINISHED = "finished"  # in the run settings file once the job is done
# Settings added since a run could have been left unfinished, with the value a run from before had.
_SETTINGS_BEFORE = {
    "buckets": "none",  # before length buckets, every batch was padded to max_length
    "fusion_gate": "joint",
    "dropout_sites": "embedding",
    "epsilon": None,
    "embeddings": None,
    "freeze_embeddings": False,
}
_HEAD_BEFORE = {
    True: "relu",
    False: None,
}  # pairs had the relu head; sentence runs had no such setting


@dataclasses.dataclass(frozen=True)
class StagePaths:
    """The files of one fit: the dev-selected run, or the refit."""

    directory: str
    history: str  # CSVLogger's history, appended across resumes
    backup: str  # BackupAndRestore's folder
    logs: str  # TensorBoard's folder
    best_weights: str | None = None  # the best dev epoch's weights (the selection only)


class RunDirectory:
    """Owns `root` (a job's `output_dir`, or a non-chief worker's folder below it).

    Args:
        root: the folder.
        refit: whether the job refits on train + dev after the dev-selected run.
    """

    def __init__(self, root, refit):
        self.root = root
        self.refit = refit
        self._record = None  # what `claim` recorded: the job's settings and data digests
        selection_dir = os.path.join(root, "selection") if refit else root
        self.selection = StagePaths(
            directory=selection_dir,
            history=os.path.join(selection_dir, "history.csv"),
            backup=os.path.join(selection_dir, "backup"),
            logs=os.path.join(selection_dir, "logs"),
            best_weights=os.path.join(selection_dir, "best.weights.h5"),
        )
        self.refit_stage = StagePaths(
            directory=root,
            history=os.path.join(root, "refit_history.csv"),
            backup=os.path.join(root, "refit_backup"),
            logs=os.path.join(root, "logs", "refit"),
        )
        self.selection_file = os.path.join(selection_dir, "selection.json")
        # What a run that stopped before its end leaves behind, with or without refit.
        self._unfinished = [
            os.path.join(root, *parts)
            for parts in (
                ("backup",),
                ("selection", "backup"),
                ("selection", "selection.json"),
                ("refit_backup",),
            )
        ]

    def path(self, name):
        """A file of the final model in the top folder: metrics.json, model.keras, ..."""
        return os.path.join(self.root, name)

    def claim(self, settings, data_files, pair, overwrite=False):
        """Records the job's settings; refuses to resume an unfinished run made with others.

        Args:
            settings: the job's flat settings (`TrainingConfig.to_flat()`), before fitting.
            data_files: {"train", "dev", "test", "embeddings": path or None}: the data files. A
                backup must have learned from the same train, dev and embeddings files; the test
                file is read once, after training, so a resumed run may evaluate a newer one.
            pair: whether it is the sentence-pair job.
            overwrite: start over: drop an unfinished run instead of resuming it.

        Raises:
            ConfigError: an unfinished run exists and was made with other settings, which it would
                silently mix with this job's (restoring another model's weights, or skipping the
                selection), or from a data file whose content has changed since.
        """
        os.makedirs(self.root, exist_ok=True)
        digests = _digests(data_files)
        self._record = {**settings, _DATA_DIGESTS: digests}
        path = self.path(RUN_SETTINGS_FILE)
        if overwrite:
            self._remove_unfinished()
        if self.unfinished() and os.path.exists(path):
            before = _read_settings(path)
            digests_before = before.pop(_DATA_DIGESTS, {})
            for key, value in {**_SETTINGS_BEFORE, "head": _HEAD_BEFORE[pair]}.items():
                before.setdefault(key, value)
            now, before = (_without(values, RESUMABLE_WITH_OTHER) for values in (settings, before))
            changed = sorted(
                key for key in now.keys() | before.keys() if now.get(key) != before.get(key)
            )
            if changed:
                differences = ", ".join(
                    f"`{key}` {before.get(key)!r} there, {now.get(key)!r} now" for key in changed
                )
                raise ConfigError(
                    f"`output_dir` {self.root} holds an unfinished run with other settings "
                    f"({differences}): rerun that command to resume it, or give another "
                    "`output_dir` (or delete this one) to start anew"
                )
            # The same paths, but a file rewritten since: the backup learned from
            # other examples or labels.
            rewritten = [
                name
                for name in digests
                if name in digests_before
                and name not in RESUMABLE_WITH_OTHER
                and digests[name] != digests_before[name]
            ]
            if rewritten:
                files = ", ".join(f"`{name}` {data_files[name]} changed" for name in rewritten)
                raise ConfigError(
                    f"`output_dir` {self.root} holds an unfinished run made from other data "
                    f"({files} since): restore the file to resume it, or give another `output_dir` "
                    "(or delete this one) to start anew"
                )
        write_json(path, self._record)  # no longer marked finished: this job replaces that run

    def finished_metrics(self, settings, data_files):
        """The metrics of the finished run of the same job here, or None.

        The same job: the same settings, but how verbose it is and where its folder is named from,
        and data files of the same content (SHA-256), the test file's included.

        Args:
            settings: the job's flat settings (`TrainingConfig.to_flat()`).
            data_files: {"train", "dev", "test", "embeddings": path or None}.
        """
        path, metrics_path = self.path(RUN_SETTINGS_FILE), self.path("metrics.json")
        if self.unfinished() or not (os.path.exists(path) and os.path.exists(metrics_path)):
            return None
        before = _read_settings(path)
        if not before.pop(_FINISHED, False):
            return None
        if before.pop(_DATA_DIGESTS, None) != _digests(data_files):
            return None
        if _without(before, _SAME_JOB_WITH_OTHER) != _without(settings, _SAME_JOB_WITH_OTHER):
            return None
        with open(metrics_path) as file:
            return json.load(file)

    def unfinished(self):
        """Whether an earlier run stopped before its end here."""
        return any(os.path.exists(path) for path in self._unfinished)

    def start(self, stage):
        """Prepares `stage`'s folder. A fresh fit (no backup) forgets an older run's results."""
        os.makedirs(stage.directory, exist_ok=True)
        if not os.path.exists(stage.backup):
            for stale in (stage.best_weights, stage.history):
                if stale and os.path.exists(stale):
                    os.remove(stale)

    def finished_selection(self):
        """The dev-selected run's summary when a refit crashed after it (None otherwise)."""
        if not (self.refit and os.path.exists(self.selection_file)):
            return None
        with open(self.selection_file) as file:
            selection = json.load(file)
        # A selection from before length buckets padded every batch to max_length.
        selection.setdefault("buckets", "none")
        return selection

    def save_selection(self, selection):
        write_json(self.selection_file, selection)

    def finish(self):
        """The job is done: removes the unfinished state, so that running it again starts anew.

        Until here a crash (in the evaluation, the save or the export) resumes after the last
        trained epoch instead of training again. From here the same job is reported, not run.
        """
        self._remove_unfinished()
        if self._record is not None:
            write_json(self.path(RUN_SETTINGS_FILE), {**self._record, _FINISHED: True})

    def _remove_unfinished(self):
        for path in self._unfinished:
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)


def write_json(path, value):
    """Writes `value` as JSON to `path` atomically, so a crash never leaves a
    half-written file behind."""
    partial = path + ".partial"
    with open(partial, "w") as file:
        json.dump(value, file, indent=2)
    os.replace(partial, path)


def read_history(path):
    """The rows of a CSVLogger history, one per epoch (a resumed run appends: the
    last row of each)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    by_epoch = {int(row["epoch"]): row for row in rows}
    return [
        {key: float(value) for key, value in by_epoch[epoch].items()} for epoch in sorted(by_epoch)
    ]


def best_epoch(history):
    """The 1-based epoch of the best dev accuracy (the first of ties), None for no history."""
    if not history:
        return None
    best = max(history, key=lambda row: row.get("val_accuracy", 0.0))
    return int(best["epoch"]) + 1


def resumed_epoch(backup_dir):
    """The epoch a BackupAndRestore backup in `backup_dir` resumes at (0 without one)."""
    path = os.path.join(backup_dir, "training_metadata.json")  # written by BackupAndRestore
    if not os.path.exists(path):
        return 0
    with open(path) as file:
        return int(json.load(file)["epoch"])


def _without(values, keys):
    return {key: value for key, value in values.items() if key not in keys}


def _read_settings(path):
    with open(path) as file:
        return json.load(file)


def _digests(files):
    """The SHA-256 of each existing file of `files` ({name: path or None}), by name."""
    digests = {}
    for name, path in files.items():
        if path and os.path.isfile(path):
            digest = hashlib.sha256()
            with open(path, "rb") as file:
                for block in iter(lambda: file.read(1 << 20), b""):
                    digest.update(block)
            digests[name] = digest.hexdigest()
    return digests
