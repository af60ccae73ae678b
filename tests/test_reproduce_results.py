"""The README's result script (`examples/reproduce_results.py`): its paired
MTSA-vs-baseline summary."""

import os
import sys

import pytest

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
)

from reproduce_results import paired_comparison  # noqa: E402


def test_paired_comparison_reports_differences_seed_by_seed_with_mean_and_standard_error():
    differences, summary = paired_comparison([0.90, 0.89, 0.1 + 0.2], [0.88, 0.90, 0.3])

    assert differences == pytest.approx([0.02, -0.01, 0.0])
    # mean 0.0033; standard deviation 0.01528, over sqrt(3): 0.0088. 0.1 + 0.2 != 0.3 in
    # floats: still a tie.
    assert (
        summary
        == "+0.020, -0.010, +0.000; mean +0.0033 (standard error 0.0088, 3 seeds; ahead on 1, "
        "behind on 1)"
    )


def test_paired_comparison_of_one_seed_has_no_standard_error():
    assert (
        paired_comparison([0.9], [0.8])[1]
        == "+0.100; mean +0.1000 (one seed, no standard error, 1 seed; ahead on 1, behind on 0)"
    )


@pytest.mark.parametrize("first, second", [([], []), ([0.9, 0.8], [0.9])])
def test_paired_comparison_needs_equally_long_non_empty_lists(first, second):
    with pytest.raises(ValueError, match="need two equally long, non-empty lists"):
        paired_comparison(first, second)


def test_a_fold_tests_on_every_tenth_line_from_its_index_and_trains_on_the_rest(tmp_path):
    from reproduce_results import write_fold

    source = tmp_path / "all.txt"
    lines = [f"{i % 2} line {i}\n".encode() for i in range(23)]
    lines[5] = b"1 caf\xe9 latin-1\n"  # bytes stay as they are
    source.write_bytes(b"".join(lines))
    tests = []
    for fold in range(10):
        train, test = write_fold(str(source), fold, str(tmp_path / "folds"))
        expected_test = [lines[i] for i in range(fold, 23, 10)]
        assert open(test, "rb").read().splitlines(keepends=True) == expected_test
        expected_train = [line for i, line in enumerate(lines) if i % 10 != fold]
        assert open(train, "rb").read().splitlines(keepends=True) == expected_train
        tests += expected_test
    assert sorted(tests) == sorted(lines), "the ten folds' test parts partition the file"
    with pytest.raises(ValueError, match=r"`fold` must be in \[0, 10\)"):
        write_fold(str(source), 10, str(tmp_path / "folds"))


def test_the_study_runs_every_cell_once_before_any_cell_twice():
    from reproduce_results import plan

    jobs = plan("vectors", ["trec", "cr"], ["mtsa", "cnn"], runs=2)
    assert jobs[:4] == [
        ("vectors", "trec", "mtsa", 0),
        ("vectors", "trec", "cnn", 0),
        ("vectors", "cr", "mtsa", 0),
        ("vectors", "cr", "cnn", 0),
    ]
    assert [run for *_, run in jobs] == [0] * 4 + [1] * 4


def _record(encoder, run, accuracy, study="vectors", dataset="trec"):
    return {
        **{"study": study, "dataset": dataset, "encoder": encoder, "run": run},
        **{"test_accuracy": accuracy, "dev_accuracy": 0.5, "train_minutes": 1.0},
        **{"commit": "abc1234", "jobs": 1},
    }


def _write_records(path, records):
    import json

    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def test_the_tables_pair_runs_by_seed_and_mark_missing_cells(tmp_path):
    from reproduce_results import read_records
    from reproduce_results import tables

    results = {("mtsa", 0): 0.9, ("mtsa", 1): 0.8, ("cnn", 0): 0.85, ("cnn", 1): 0.9}
    path = tmp_path / "study.jsonl"
    _write_records(
        path, [_record(encoder, run, value) for (encoder, run), value in results.items()]
    )
    text = tables("vectors", ["trec"], ["mtsa", "mha", "cnn"], 2, read_records(str(path)))
    assert "| TREC (6 classes) | 0.850 ± 0.071 | missing | 0.875 ± 0.035 |" in text
    # differences +0.05 and -0.10: mean -0.025, standard error 0.075
    assert "| TREC (6 classes) | missing | -0.025 (0.075, 2) |" in text


def test_a_finished_run_is_recorded_with_its_commit_and_a_recorded_run_is_not_run_again(
    tmp_path, monkeypatch, capsys
):
    import json

    import reproduce_results
    from reproduce_results import run_directory

    # One run finished on disk but not yet recorded; the other three recorded (another machine).
    records = tmp_path / "study.jsonl"
    _write_records(
        records, [_record("mtsa", 0, 0.9), _record("cnn", 0, 0.8), _record("cnn", 1, 0.7)]
    )
    directory = run_directory(str(tmp_path / "runs"), "vectors", "trec", "mtsa", 1)
    os.makedirs(directory)
    with open(os.path.join(directory, "metrics.json"), "w") as file:
        json.dump({"test_accuracy": 0.6, "dev_accuracy": 0.55, "train_seconds_this_run": 90}, file)

    def no_training(*args, **kwargs):
        raise AssertionError(f"a finished run was started again: {args}")

    monkeypatch.setattr(reproduce_results.subprocess, "run", no_training)
    monkeypatch.setattr(reproduce_results, "commit_of", lambda directory: "def5678")
    arguments = ["--datasets", "trec", "--encoders", "mtsa", "cnn", "--runs", "2"]
    arguments += ["--records", str(records), "--output-root", str(tmp_path / "runs")]
    assert reproduce_results.main(arguments) == 0

    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert len(lines) == 4
    assert lines[-1] == {
        **{"study": "vectors", "dataset": "trec", "encoder": "mtsa", "run": 1},
        **{"test_accuracy": 0.6, "dev_accuracy": 0.55, "train_minutes": 1.5},
        **{"commit": "def5678", "jobs": 1},
    }
    # mtsa 0.9, 0.6 against cnn 0.8, 0.7: differences +0.1 and -0.1
    assert "| TREC (6 classes) | 0.750 ± 0.212 | 0.750 ± 0.071 |" in capsys.readouterr().out
