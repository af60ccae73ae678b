"""Runs the README's accuracy table (TREC, SST-2 and SICK) and prints it as a markdown table.

It runs TREC (MTSA and the MultiHeadAttention and CNN baselines, several seeds), SST-2 and SICK,
each with the training script's default settings.

    python examples/reproduce_results.py [--data ../shared/data] [--seeds 1 2 3] [--only trec]

Each run is a separate process (`examples/train_classifier.py` / `train_pair_classifier.py`) writing
to runs/results/<name>/; the table reports test accuracy (mean over seeds, and each seed) and wall
time. When MTSA and a baseline ran on TREC, it also prints their difference seed by seed (same seed:
same dev split, same data order), with its mean and standard error, which says more than two means
whose seed spread is larger.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def experiments(data):
    trec = [
        "--train",
        f"{data}/trec/train_5500.label",
        "--test",
        f"{data}/trec/TREC_10.label",
        "--format",
        "trec",
    ]
    sst2 = [
        "--train",
        f"{data}/sst2/stsa.binary.train",
        "--dev",
        f"{data}/sst2/stsa.binary.dev",
        "--test",
        f"{data}/sst2/stsa.binary.test",
        "--format",
        "labeled-lines",
        "--class-names",
        "negative,positive",
    ]
    sick = [
        "--train",
        f"{data}/sick/SICK_train.txt",
        "--dev",
        f"{data}/sick/SICK_trial.txt",
        "--test",
        f"{data}/sick/SICK_test_annotated.txt",
        "--format",
        "sick",
    ]
    return {
        "trec": ("TREC (6 coarse classes)", "train_classifier.py", trec),
        "trec-mha": (
            "TREC, MultiHeadAttention encoder",
            "train_classifier.py",
            trec + ["--encoder", "mha"],
        ),
        "trec-cnn": ("TREC, Kim's CNN encoder", "train_classifier.py", trec + ["--encoder", "cnn"]),
        "sst2": ("SST-2", "train_classifier.py", sst2),
        "sick": ("SICK entailment", "train_pair_classifier.py", sick),
    }


def paired_comparison(first, second):
    """Seed-by-seed differences first - second (lists in seed order) and a
    one-line summary of them."""
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


def run(name, script, arguments, seed, output_root):
    output_dir = os.path.join(output_root, f"{name}-seed{seed}")
    command = [
        sys.executable,
        os.path.join(ROOT, "examples", script),
        *arguments,
        "--seed",
        str(seed),
        "--output-dir",
        output_dir,
        "--verbose",
        "2",
    ]
    print("$", " ".join(command), flush=True)
    started = time.time()
    subprocess.run(command, check=True)
    with open(os.path.join(output_dir, "metrics.json")) as file:
        metrics = json.load(file)
    return metrics["test_accuracy"], time.time() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--only", nargs="+", help="experiment names to run (default: all)")
    parser.add_argument("--output-root", default=os.path.join(ROOT, "runs", "results"))
    args = parser.parse_args(argv)
    table = [
        "| experiment | test accuracy (mean) | per seed | minutes per run |",
        "|---|---|---|---|",
    ]
    accuracies_of = {}
    for name, (title, script, arguments) in experiments(args.data).items():
        if args.only and name not in args.only:
            continue
        results = [run(name, script, arguments, seed, args.output_root) for seed in args.seeds]
        accuracies = accuracies_of[name] = [accuracy for accuracy, _ in results]
        minutes = statistics.mean(seconds for _, seconds in results) / 60
        table.append(
            f"| {title} | {statistics.mean(accuracies):.3f} | "
            f"{', '.join(f'{a:.3f}' for a in accuracies)} | {minutes:.1f} |"
        )
        print("\n".join(table), flush=True)
    print("\n".join(table))
    for baseline, title in (("trec-mha", "MultiHeadAttention"), ("trec-cnn", "Kim's CNN")):
        if "trec" in accuracies_of and baseline in accuracies_of:
            _, summary = paired_comparison(accuracies_of["trec"], accuracies_of[baseline])
            print(f"TREC test accuracy, MTSA minus {title}, seed by seed: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
