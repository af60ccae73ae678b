"""Runs the README's accuracy study and prints it as markdown tables.

The study (issue 27): MTSA against three baselines, MultiHeadAttention (`mha`), a bidirectional LSTM
(`bilstm`) and Kim's CNN (`cnn`), all over the same pretrained word vectors (GloVe 6B 50d), through
the same pipeline and selection, on six datasets: TREC, SST-2, SST-5, SUBJ, CR and SICK (entailment,
the pair model). Every run takes the training command's defaults for runs with vectors; it selects
its epoch on dev only (the dataset's dev file, or 10% carved from the training part) and reads the
test part once, at the end. Three runs a cell: seeds 1-3, or for SUBJ and CR (no official split)
folds 0-2, fold k testing on every 10th line of the file from line k (this script writes the fold
files). The from-scratch rows of the earlier table (TREC with MTSA, MHA and the CNN, SST-2, SICK;
embeddings learned from scratch) are kept for comparison: `--study scratch`.

    python examples/reproduce_results.py [--study vectors|scratch|all] [--datasets trec sst2 ...]
        [--encoders mtsa mha ...] [--runs 3] [--jobs 2] [--table-only]

Each run is a separate process (`keras-mtsa-train` / `keras-mtsa-train-pair`) writing to
runs/results/<study>/<dataset>-<encoder>-<seed or fold>/. A finished run appends one line to the
records file (`--records`, docs/results/study.jsonl): its accuracies and minutes, the commit it ran
at and how many runs ran at a time. A run with a record is not run again, so a study resumes where
it stopped, on this machine or on another one with the records file, and the tables are printed
from the records alone (`--table-only`). Each cell is reported as the mean and standard deviation
of its runs, and MTSA minus each baseline paired by seed or fold (same seed: same dev split and data
order; same fold: same test lines), with the standard error of the differences. A cell with fewer
runs than asked is marked as such, never filled in.
"""

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDS = os.path.join(ROOT, "docs", "results", "study.jsonl")
DATA = os.path.join(ROOT, "..", "shared", "data")
VECTORS = "glove/glove.6B.50d.txt.gz"
ENCODERS = ("mtsa", "mha", "bilstm", "cnn")
ENCODER_TITLES = {"mtsa": "MTSA", "mha": "MHA", "bilstm": "BiLSTM", "cnn": "CNN"}
# Datasets without an official split: their runs are folds of the one file.
FOLDED = {"subj": "subj/subj.all", "cr": "cr/custrev.all"}
FOLDS = 10


def datasets(data, fold_dir):
    """{name: (title, pair, arguments(run_index))}: the training command's data arguments for the
    run_index-th run (a fold for SUBJ and CR)."""

    def labeled(prefix, class_names=None):
        names = ["--class-names", class_names] if class_names else []
        return lambda run: [
            *("--train", f"{data}/{prefix}.train", "--dev", f"{data}/{prefix}.dev"),
            *("--test", f"{data}/{prefix}.test", "--format", "labeled-lines", *names),
        ]

    def folded(name):
        def arguments(run):
            train, test = write_fold(os.path.join(data, FOLDED[name]), run, fold_dir)
            return ["--train", train, "--test", test, "--format", "labeled-lines"]

        return arguments

    return {
        "trec": (
            "TREC (6 classes)",
            False,
            lambda run: [
                *("--train", f"{data}/trec/train_5500.label"),
                *("--test", f"{data}/trec/TREC_10.label", "--format", "trec"),
            ],
        ),
        "sst2": ("SST-2", False, labeled("sst2/stsa.binary", "negative,positive")),
        "sst5": ("SST-5", False, labeled("sst5/stsa.fine")),
        "subj": ("SUBJ (folds 0-2)", False, folded("subj")),
        "cr": ("CR (folds 0-2)", False, folded("cr")),
        "sick": (
            "SICK entailment",
            True,
            lambda run: [
                *("--train", f"{data}/sick/SICK_train.txt", "--dev", f"{data}/sick/SICK_trial.txt"),
                *("--test", f"{data}/sick/SICK_test_annotated.txt", "--format", "sick"),
            ],
        ),
    }


def write_fold(path, fold, directory):
    """Writes fold `fold` of a file without an official split: the test part is every 10th line
    from line `fold` (counting from 0), the training part the other lines, bytes as they are.

    Returns:
        `(train_path, test_path)`.
    """
    if not 0 <= fold < FOLDS:
        raise ValueError(f"`fold` must be in [0, {FOLDS}). Received: fold={fold}")
    os.makedirs(directory, exist_ok=True)
    stem = os.path.join(directory, f"{os.path.basename(path)}.fold{fold}")
    train_path, test_path = f"{stem}.train", f"{stem}.test"
    if not (os.path.exists(train_path) and os.path.exists(test_path)):
        with open(path, "rb") as file:
            lines = file.read().splitlines(keepends=True)
        parts = {train_path: [], test_path: []}
        for index, line in enumerate(lines):
            parts[test_path if index % FOLDS == fold else train_path].append(line)
        for part, part_lines in parts.items():
            with open(part + ".partial", "wb") as file:
                file.writelines(part_lines)
            os.replace(part + ".partial", part)  # a fold file is whole or absent
    return train_path, test_path


def plan(study, names, encoders, runs):
    """The runs of a study, seed (or fold) by seed, so that every cell has one run before any has
    two: [(study, dataset, encoder, run_index)]."""
    if study == "scratch":
        cells = [("trec", encoder) for encoder in ("mtsa", "mha", "cnn")]
        cells += [("sst2", "mtsa"), ("sick", "mtsa")]
        cells = [(name, encoder) for name, encoder in cells if name in names]
    else:
        cells = [(name, encoder) for name in names for encoder in encoders]
    return [(study, name, encoder, run) for run in range(runs) for name, encoder in cells]


def run_directory(output_root, study, name, encoder, run):
    kind = "fold" if name in FOLDED else "seed"
    number = run if name in FOLDED else run + 1
    return os.path.join(output_root, study, f"{name}-{encoder}-{kind}{number}")


def command(study, name, encoder, run, data, output_dir, fold_dir):
    _, pair, arguments = datasets(data, fold_dir)[name]
    program = "keras-mtsa-train-pair" if pair else "keras-mtsa-train"
    seed = 1 if name in FOLDED else run + 1
    vectors = ["--embeddings", os.path.join(data, VECTORS)] if study == "vectors" else []
    return [
        os.path.join(os.path.dirname(sys.executable), program),
        *arguments(run),
        *vectors,
        *("--encoder", encoder, "--seed", str(seed), "--output-dir", output_dir),
        *("--verbose", "2"),
    ]


def read_metrics(output_dir):
    path = os.path.join(output_dir, "metrics.json")
    if not os.path.exists(path):
        return None
    with open(path) as file:
        return json.load(file)


def read_records(path):
    """{(study, dataset, encoder, run): record} of the finished runs in a records file."""
    records = {}
    if os.path.exists(path):
        with open(path) as file:
            for line in file:
                if line.strip():
                    record = json.loads(line)
                    key = (record["study"], record["dataset"], record["encoder"], record["run"])
                    records[key] = record
    return records


def commit_of(directory):
    """The commit the code in `directory` is at, `+` appended when it has uncommitted changes."""

    def git(*arguments):
        return subprocess.run(
            ["git", "-C", directory, *arguments], capture_output=True, text=True
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+" if git("status", "--porcelain", "--untracked-files=no") else "")


class Records:
    """The records file, appended one finished run a line (threads share it)."""

    def __init__(self, path, commit, jobs):
        self.path, self.commit, self.jobs = path, commit, jobs
        self.lock = threading.Lock()

    def add(self, job, metrics):
        study, name, encoder, run = job
        record = {
            "study": study,
            "dataset": name,
            "encoder": encoder,
            "run": run,
            "test_accuracy": metrics["test_accuracy"],
            "dev_accuracy": metrics["dev_accuracy"],
            "train_minutes": round(metrics["train_seconds_this_run"] / 60, 2),
            "commit": self.commit,
            "jobs": self.jobs,
        }
        with self.lock:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            with open(self.path, "a") as file:
                file.write(json.dumps(record) + "\n")
        return record


def execute(job, data, output_root, fold_dir, records):
    """Runs one job and records it; returns (job, metrics or None, seconds)."""
    output_dir = run_directory(output_root, *job)
    metrics = read_metrics(output_dir)  # finished here before, but not recorded
    seconds = 0.0
    if metrics is None:
        argv = command(*job, data, output_dir, fold_dir)
        os.makedirs(output_dir, exist_ok=True)
        started = time.time()
        with open(os.path.join(output_dir, "stdout.log"), "ab") as log:
            print("$", " ".join(argv), flush=True)
            completed = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT)
        seconds = time.time() - started
        if completed.returncode != 0:
            print(f"FAILED ({completed.returncode}): {output_dir}/stdout.log", flush=True)
        metrics = read_metrics(output_dir)
    if metrics is not None:
        records.add(job, metrics)
    return job, metrics, seconds


def paired_comparison(first, second):
    """Run-by-run differences first - second (lists in seed or fold order) and a one-line summary
    of them."""
    if len(first) != len(second) or not first:
        raise ValueError(
            f"need two equally long, non-empty lists, got {len(first)} and {len(second)} values"
        )
    # Rounded, so that equal accuracies stored as slightly different floats count as a tie.
    differences = [round(a - b, 6) for a, b in zip(first, second)]
    mean = statistics.mean(differences)
    spread = (
        f"standard error {statistics.stdev(differences) / len(differences) ** 0.5:.4f}"
        if len(differences) > 1
        else "one seed, no standard error"
    )
    ahead = sum(difference > 0 for difference in differences)
    behind = sum(difference < 0 for difference in differences)
    summary = (
        f"{', '.join(f'{d:+.3f}' for d in differences)}; mean {mean:+.4f} ({spread}, "
        f"{len(differences)} seed{'s' if len(differences) > 1 else ''}; "
        f"ahead on {ahead}, behind on {behind})"
    )
    return differences, summary


def _cell(accuracies, runs):
    if not accuracies:
        return "missing"
    text = f"{statistics.mean(accuracies):.3f}"
    if len(accuracies) > 1:
        text += f" ± {statistics.stdev(accuracies):.3f}"
    return text + ("" if len(accuracies) == runs else f" ({len(accuracies)} of {runs} runs)")


def tables(study, names, encoders, runs, records):
    """The study's markdown tables (accuracy, paired differences, minutes) of its recorded runs
    (`read_records`)."""
    titles = {name: title for name, (title, _, _) in datasets("", "").items()}
    jobs = plan(study, names, encoders, runs)
    accuracy = {}  # (name, encoder) -> {run: test accuracy}
    minutes = {}
    for job in jobs:
        record = records.get(job)
        if record is None:
            continue
        _, name, encoder, run = job
        accuracy.setdefault((name, encoder), {})[run] = record["test_accuracy"]
        if record["train_minutes"] is not None:  # None: not timed whole (resumed, or paused)
            minutes.setdefault(encoder, []).append(record["train_minutes"])
    columns = sorted({encoder for _, _, encoder, _ in jobs}, key=ENCODERS.index)
    rows = [name for name in names if any((name, e) in accuracy for e in columns)]
    kind = "pretrained GloVe 6B 50d" if study == "vectors" else "embeddings learned from scratch"
    lines = [
        f"Test accuracy, {kind}: mean ± standard deviation of {runs} runs (seeds 1-{runs}; "
        f"SUBJ and CR: folds 0-{runs - 1})",
        "",
        "| dataset | " + " | ".join(ENCODER_TITLES[e] for e in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name in rows:
        cells = [
            _cell([value for _, value in sorted(accuracy.get((name, e), {}).items())], runs)
            for e in columns
        ]
        lines.append(f"| {titles[name]} | " + " | ".join(cells) + " |")
    baselines = [e for e in columns if e != "mtsa"]
    if "mtsa" in columns and baselines:
        lines += [
            "",
            "MTSA minus each baseline, paired by seed or fold: mean (standard error, runs)",
            "",
            "| dataset | " + " | ".join(f"− {ENCODER_TITLES[e]}" for e in baselines) + " |",
            "|---" * (len(baselines) + 1) + "|",
        ]
        for name in rows:
            mtsa = accuracy.get((name, "mtsa"), {})
            cells = []
            for baseline in baselines:
                other = accuracy.get((name, baseline), {})
                shared = sorted(set(mtsa) & set(other))
                if not shared:
                    cells.append("missing")
                    continue
                differences, _ = paired_comparison(
                    [mtsa[r] for r in shared], [other[r] for r in shared]
                )
                mean = statistics.mean(differences)
                error = (
                    f"{statistics.stdev(differences) / len(differences) ** 0.5:.3f}"
                    if len(differences) > 1
                    else "-"
                )
                cells.append(f"{mean:+.3f} ({error}, {len(differences)})")
            lines.append(f"| {titles[name]} | " + " | ".join(cells) + " |")
    if minutes:
        lines += [
            "",
            "Training minutes a run (mean): "
            + ", ".join(
                f"{ENCODER_TITLES[e]} {statistics.mean(minutes[e]):.1f}"
                for e in columns
                if e in minutes
            ),
        ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--study", choices=("vectors", "scratch", "all"), default="vectors")
    parser.add_argument("--datasets", nargs="+", default=list(datasets(DATA, ""))[:6])
    parser.add_argument("--encoders", nargs="+", choices=ENCODERS, default=list(ENCODERS))
    parser.add_argument("--runs", type=int, default=3, help="seeds (or folds) a cell")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (2 at most on 2 cores)")
    parser.add_argument("--output-root", default=os.path.join(ROOT, "runs", "results"))
    parser.add_argument("--records", default=RECORDS, help="the finished runs, one JSON a line")
    parser.add_argument("--table-only", action="store_true", help="print the finished runs' tables")
    args = parser.parse_args(argv)
    known = datasets(args.data, "")
    unknown = sorted(set(args.datasets) - set(known))
    if unknown:
        parser.error(f"--datasets must be among {', '.join(known)}. Received: {' '.join(unknown)}")
    if not 1 <= args.runs <= FOLDS:
        parser.error(f"--runs must be in [1, {FOLDS}]. Received: --runs {args.runs}")
    if args.jobs < 1:
        parser.error(f"--jobs must be a positive integer. Received: --jobs {args.jobs}")
    fold_dir = os.path.join(args.output_root, "folds")
    studies = ("vectors", "scratch") if args.study == "all" else (args.study,)
    if not args.table_only:
        for name in set(args.datasets) & set(FOLDED):  # before the runs that share them start
            for fold in range(args.runs):
                write_fold(os.path.join(args.data, FOLDED[name]), fold, fold_dir)
        finished = read_records(args.records)
        jobs = [
            job
            for study in studies
            for job in plan(study, args.datasets, args.encoders, args.runs)
            if job not in finished
        ]
        records = Records(args.records, commit_of(ROOT), args.jobs)
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            for job, metrics, seconds in pool.map(
                lambda job: execute(job, args.data, args.output_root, fold_dir, records), jobs
            ):
                if metrics is not None and seconds:
                    print(
                        f"{'/'.join(map(str, job))}: test {metrics['test_accuracy']:.3f}, "
                        f"dev {metrics['dev_accuracy']:.3f}, {seconds / 60:.1f} min",
                        flush=True,
                    )
    records = read_records(args.records)
    for study in studies:
        print()
        print(tables(study, args.datasets, args.encoders, args.runs, records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
