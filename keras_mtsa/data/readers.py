"""Readers for the text classification and sentence-pair datasets used with MTSA.

Every reader returns plain Python data (lists of ``str`` and ``int``), so the
results can be inspected, split, and handed to any input pipeline.

Conventions shared by all readers:

* Files are read as bytes and split on ``b"\\n"`` only. Splitting decoded text
  with ``str.splitlines`` would also break lines at characters such as
  U+0085 (NEL), which the latin-1 fallback produces from cp1252 bytes.
* Each line is decoded as UTF-8; a line that is not valid UTF-8 is decoded as
  latin-1 instead (``train_5500.label`` and ``subj.all`` contain such lines).
  Passing ``encoding=`` decodes every line strictly with that codec instead.
* The line terminator (``\\n`` or ``\\r\\n``) and a UTF-8 byte order mark on
  the first line are removed; texts are otherwise kept verbatim.
* Lines that are empty or whitespace only are not records and are ignored.
* A malformed line raises :class:`DataFormatError` naming the file and the
  1-based line number, or with ``on_error="skip"`` it is dropped and counted in
  the result's ``skipped`` field.
* Labels become ids through ``label_names``: the label as written in the file
  at index ``i`` gets id ``i``. By default the names are the distinct labels
  sorted (numerically when all are integers, else alphabetically), except for
  SICK and SNLI which use a fixed order. Pass the training set's
  ``label_names`` when reading its test set so both share one mapping; a label
  missing from a given ``label_names`` is a :class:`DataFormatError`.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import os
import random
import re
from typing import ClassVar

from keras_mtsa.ops import _checks as check

__all__ = [
    "FORMATS",
    "DataFormatError",
    "TextClassificationData",
    "TextPairData",
    "read_dataset",
    "read_delimited",
    "read_labeled_lines",
    "read_sick",
    "read_snli",
    "read_trec",
    "split_dev",
]

FORMATS = ("labeled-lines", "trec", "tsv", "csv", "sick", "snli")
ON_ERROR_VALUES = ("raise", "skip")
TREC_LABEL_LEVELS = ("coarse", "fine")
SICK_SPLITS = ("TRAIN", "TRIAL", "TEST")
SICK_LABELS = ("ENTAILMENT", "NEUTRAL", "CONTRADICTION")
SNLI_LABELS = ("entailment", "neutral", "contradiction")
SNLI_NO_CONSENSUS = "-"

_FALLBACK_ENCODING = "latin-1"
_INTEGER = re.compile(r"-?[0-9]+")
_TREC_LABEL = re.compile(r"([^\s:]+):(\S+)")
_SNIPPET_CHARS = 80


@dataclasses.dataclass
class TextClassificationData:
    """Single-text examples with integer labels.

    Attributes:
        texts: One text per example.
        labels: One id per example, an index into ``label_names``.
        label_names: The label as written in the source file, for each id.
        skipped: Number of malformed lines skipped with ``on_error="skip"``.
    """

    texts: list[str]
    labels: list[int]
    label_names: list[str]
    skipped: int = 0

    _example_fields: ClassVar[tuple[str, ...]] = ("texts", "labels")

    def __post_init__(self):
        _check_example_fields(self)

    def __len__(self):
        return len(self.labels)


@dataclasses.dataclass
class TextPairData:
    """Sentence-pair examples (premise, hypothesis) with integer labels.

    Attributes:
        premises: First sentence of each pair.
        hypotheses: Second sentence of each pair.
        labels: One id per example, an index into ``label_names``.
        label_names: The label as written in the source file, for each id.
        skipped: Number of malformed lines skipped with ``on_error="skip"``.
        dropped: Number of well-formed records left out on purpose: SNLI pairs
            whose ``gold_label`` is ``"-"`` (annotators reached no consensus).
    """

    premises: list[str]
    hypotheses: list[str]
    labels: list[int]
    label_names: list[str]
    skipped: int = 0
    dropped: int = 0

    _example_fields: ClassVar[tuple[str, ...]] = ("premises", "hypotheses", "labels")

    def __post_init__(self):
        _check_example_fields(self)

    def __len__(self):
        return len(self.labels)


def _check_example_fields(data):
    lengths = {name: len(getattr(data, name)) for name in data._example_fields}
    if len(set(lengths.values())) > 1:
        names = [f"`{name}`" for name in lengths]
        received = ", ".join(f"len({name})={length}" for name, length in lengths.items())
        raise ValueError(
            f"{', '.join(names[:-1])} and {names[-1]} must have equal lengths (one entry per "
            f"example). Received: {received}"
        )
    bad = [label for label in data.labels if not 0 <= label < len(data.label_names)]
    if bad:
        raise ValueError(
            f"`labels` must be ids in [0, {len(data.label_names)}) to index "
            f"label_names={data.label_names!r}. Received: labels containing {sorted(set(bad))[:10]}"
        )


class DataFormatError(ValueError):
    """A line of a dataset file does not have the expected form.

    Attributes:
        path: The file being read.
        line_number: 1-based number of the offending line.
    """

    def __init__(self, path, line_number, problem, line=None):
        self.path = os.fspath(path)
        self.line_number = line_number
        message = f"{self.path}, line {line_number}: {problem}"
        if line is not None:
            snippet = line if len(line) <= _SNIPPET_CHARS else line[:_SNIPPET_CHARS] + "..."
            message += f"; the line is {snippet!r}"
        super().__init__(message)


class _ErrorPolicy:
    """Raises or counts DataFormatErrors according to ``on_error``."""

    def __init__(self, on_error):
        check.choice("on_error", on_error, ON_ERROR_VALUES)
        self.raise_errors = on_error == "raise"
        self.skipped = 0

    def handle(self, error):
        if self.raise_errors:
            raise error
        self.skipped += 1


class _LineError(Exception):
    """Raised by line parsers; the caller adds the file name and line number."""


def _decode(raw, encoding):
    if encoding is not None:
        return raw.decode(encoding)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Old corpora mix in latin-1/cp1252 bytes; latin-1 never fails, so the
        # line is kept rather than lost.
        return raw.decode(_FALLBACK_ENCODING)


def _read_lines(path, encoding, policy, *, for_csv=False):
    """Yields ``(line_number, text)`` for the lines of a file.

    Args:
        path: File to read.
        encoding: Codec for strict decoding, or None for UTF-8 with a
            per-line latin-1 fallback.
        policy: The `_ErrorPolicy` that handles undecodable lines.
        for_csv: Keep blank lines and end each text with ``"\\n"``, as the csv
            module needs to parse quoted fields that span lines. Otherwise
            blank lines are left out.
    """
    with open(path, "rb") as stream:
        for line_number, raw in enumerate(stream, start=1):
            raw = raw.rstrip(b"\n").rstrip(b"\r")
            try:
                line = _decode(raw, encoding)
            except UnicodeDecodeError as error:
                policy.handle(
                    DataFormatError(path, line_number, f"expected text in {encoding}: {error}")
                )
                continue
            if line_number == 1:
                line = line.removeprefix("\ufeff")
            if for_csv:
                yield line_number, line + "\n"
            elif line.strip():
                yield line_number, line


def _check_label_names(label_names):
    if label_names is None:
        return None
    if (
        isinstance(label_names, str)
        or not label_names
        or not all(isinstance(name, str) and name for name in label_names)
    ):
        raise ValueError(
            "`label_names` must be a non-empty sequence of non-empty strings. "
            f"Received: label_names={label_names!r}"
        )
    label_names = list(label_names)
    if len(set(label_names)) != len(label_names):
        raise ValueError(
            f"`label_names` must not contain duplicates. Received: label_names={label_names!r}"
        )
    return label_names


def _sorted_label_names(keys):
    """Distinct labels sorted numerically if all are integers, else alphabetically."""
    distinct = set(keys)
    if all(_INTEGER.fullmatch(key) for key in distinct):
        return sorted(distinct, key=lambda key: (int(key), key))
    return sorted(distinct)


def _collect(path, lines, policy, parse_line):
    """Parses lines into records, routing parse failures through ``policy``.

    Args:
        path: File being read, for error messages.
        lines: ``(line_number, line)`` pairs; a line may also be a csv row.
        policy: The `_ErrorPolicy` in effect.
        parse_line: Maps a line to a ``(label, *fields)`` record, returns None
            to leave a well-formed line out, or raises `_LineError`.

    Returns:
        A list of ``(line_number, label, *fields)`` records.
    """
    records = []
    for line_number, line in lines:
        try:
            record = parse_line(line)
        except _LineError as error:
            policy.handle(DataFormatError(path, line_number, str(error), line))
            continue
        if record is not None:
            records.append((line_number, *record))
    return records


def _assign_ids(path, records, label_names, policy):
    """Maps each record's label to its id, dropping unknown labels via ``policy``.

    Returns:
        ``(label_names, kept)`` where each kept record is ``(label_id, *fields)``.
    """
    if label_names is None:
        label_names = _sorted_label_names(record[1] for record in records)
    ids = {name: index for index, name in enumerate(label_names)}
    kept = []
    for line_number, label, *fields in records:
        if label not in ids:
            policy.handle(
                DataFormatError(
                    path, line_number, f"label {label!r} is not one of label_names {label_names!r}"
                )
            )
            continue
        kept.append((ids[label], *fields))
    return label_names, kept


def _classification(path, records, label_names, policy):
    label_names, kept = _assign_ids(path, records, label_names, policy)
    return TextClassificationData(
        texts=[text for _, text in kept],
        labels=[label for label, _ in kept],
        label_names=label_names,
        skipped=policy.skipped,
    )


def _pairs(path, records, label_names, policy, dropped=0):
    label_names, kept = _assign_ids(path, records, label_names, policy)
    return TextPairData(
        premises=[premise for _, premise, _ in kept],
        hypotheses=[hypothesis for _, _, hypothesis in kept],
        labels=[label for label, _, _ in kept],
        label_names=label_names,
        skipped=policy.skipped,
        dropped=dropped,
    )


def _parse_labeled_line(line):
    label, _, text = line.partition(" ")
    if not _INTEGER.fullmatch(label):
        raise _LineError("expected '<integer label> <text>'")
    # Canonical form, so "01" and "1" are the same label.
    return str(int(label)), text


def read_labeled_lines(path, *, label_names=None, on_error="raise", encoding=None):
    """Reads ``<integer label> <text>`` lines (SST, CR, MPQA, SUBJ, TREC.*.all).

    The text may be empty (CR and MPQA count such lines as examples).

    Args:
        path: File to read.
        label_names: Label strings in id order, e.g. ``["0", "1"]``. Defaults to
            the distinct labels sorted numerically, so files labelled
            ``0..K-1`` keep their ids.
        on_error: ``"raise"`` or ``"skip"`` for malformed lines.
        encoding: Strict codec, or None for UTF-8 with latin-1 fallback.

    Returns:
        A `TextClassificationData`.
    """
    policy = _ErrorPolicy(on_error)
    label_names = _check_label_names(label_names)
    records = _collect(path, _read_lines(path, encoding, policy), policy, _parse_labeled_line)
    return _classification(path, records, label_names, policy)


def _trec_line_parser(trec_labels):
    def parse_line(line):
        label, _, text = line.partition(" ")
        match = _TREC_LABEL.fullmatch(label)
        if match is None:
            raise _LineError("expected '<COARSE>:<fine> <question>'")
        return (match.group(1) if trec_labels == "coarse" else label), text

    return parse_line


def read_trec(path, *, trec_labels="coarse", label_names=None, on_error="raise", encoding=None):
    """Reads TREC question classification files (``COARSE:fine question``).

    Args:
        path: File to read, e.g. ``train_5500.label`` or ``TREC_10.label``.
        trec_labels: ``"coarse"`` for the 6 coarse classes (``"DESC"``) or
            ``"fine"`` for full labels (``"DESC:manner"``).
        label_names: Labels in id order; defaults to the distinct labels sorted
            alphabetically. Pass the training set's names for the test set.
        on_error: ``"raise"`` or ``"skip"`` for malformed lines.
        encoding: Strict codec, or None for UTF-8 with latin-1 fallback.

    Returns:
        A `TextClassificationData`.
    """
    check.choice("trec_labels", trec_labels, TREC_LABEL_LEVELS)
    policy = _ErrorPolicy(on_error)
    label_names = _check_label_names(label_names)
    records = _collect(
        path, _read_lines(path, encoding, policy), policy, _trec_line_parser(trec_labels)
    )
    return _classification(path, records, label_names, policy)


def read_delimited(
    path,
    *,
    delimiter,
    text_column="text",
    label_column="label",
    label_names=None,
    on_error="raise",
    encoding=None,
):
    """Reads a delimited file with a header row (CSV or TSV).

    With ``delimiter=","`` fields follow the usual CSV quoting rules (quoted
    fields may contain commas and newlines). With ``delimiter="\\t"`` quotes
    are ordinary characters, as in the TSV convention where fields never
    contain tabs or newlines; a sentence starting with ``"`` stays intact.

    Args:
        path: File to read.
        delimiter: ``","`` or ``"\\t"``.
        text_column: Header name of the text column.
        label_column: Header name of the label column; labels may be any
            non-empty strings (surrounding whitespace is removed).
        label_names: Labels in id order; defaults to the distinct labels sorted
            (numerically when all are integers).
        on_error: ``"raise"`` or ``"skip"`` for malformed rows.
        encoding: Strict codec, or None for UTF-8 with latin-1 fallback.

    Returns:
        A `TextClassificationData`.
    """
    check.choice("delimiter", delimiter, (",", "\t"))
    policy = _ErrorPolicy(on_error)
    label_names = _check_label_names(label_names)
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    rows = _csv_rows(path, _read_lines(path, encoding, policy, for_csv=True), delimiter, quoting)
    header_line_number, header = next(rows, (1, None))
    if header is None:
        expected = f"expected a header row naming {text_column!r} and {label_column!r}"
        raise DataFormatError(path, header_line_number, expected)
    for argument, column in (("text_column", text_column), ("label_column", label_column)):
        if column not in header:
            raise ValueError(
                f"{argument}={column!r} is not a column of {os.fspath(path)}; "
                f"its header is {header!r}."
            )
    text_index, label_index = header.index(text_column), header.index(label_column)

    def parse_row(row):
        if len(row) != len(header):
            raise _LineError(f"expected {len(header)} fields as in the header, got {len(row)}")
        label = row[label_index].strip()
        if not label:
            raise _LineError(f"expected a non-empty {label_column!r} field")
        return label, row[text_index]

    records = _collect(path, rows, policy, parse_row)
    return _classification(path, records, label_names, policy)


def _csv_rows(path, lines, delimiter, quoting):
    """Yields ``(line_number, row)`` for the non-blank rows parsed from ``lines``.

    The line number is that of the row's first line (a quoted field may span
    several). csv syntax errors become DataFormatErrors; they are raised even
    with ``on_error="skip"`` because the csv module cannot resume after one.
    """
    first_line_number = None

    def feed():
        nonlocal first_line_number
        for line_number, line in lines:
            if first_line_number is None:
                first_line_number = line_number
            yield line

    reader = csv.reader(feed(), delimiter=delimiter, quoting=quoting, strict=True)
    while True:
        first_line_number = None
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise DataFormatError(
                path, first_line_number, f"expected valid delimited text: {error}"
            ) from error
        if len(row) > 1 or (row and row[0].strip()):
            yield first_line_number, row


def read_sick(path, *, split=None, label_names=None, on_error="raise", encoding=None):
    """Reads SICK sentence pairs with their entailment labels.

    Handles both the SemEval-2014 files (``SICK_train.txt``, ``SICK_trial.txt``,
    ``SICK_test_annotated.txt``: label column ``entailment_judgment``) and the
    full release ``SICK.txt`` (label column ``entailment_label`` and a
    ``SemEval_set`` column). Columns are found by their header names.

    Args:
        path: File to read.
        split: For ``SICK.txt`` only: ``"TRAIN"``, ``"TRIAL"`` or ``"TEST"``
            keeps the pairs of that SemEval set; None keeps all.
        label_names: Labels in id order; defaults to
            ``["ENTAILMENT", "NEUTRAL", "CONTRADICTION"]``.
        on_error: ``"raise"`` or ``"skip"`` for malformed lines.
        encoding: Strict codec, or None for UTF-8 with latin-1 fallback.

    Returns:
        A `TextPairData` with sentence_A as premise and sentence_B as hypothesis.
    """
    if split is not None:
        if not isinstance(split, str) or split.upper() not in SICK_SPLITS:
            raise ValueError(
                f"`split` must be None or one of {SICK_SPLITS} (any case). "
                f"Received: split={split!r}"
            )
        split = split.upper()
    policy = _ErrorPolicy(on_error)
    label_names = _check_label_names(label_names) or list(SICK_LABELS)
    lines = _read_lines(path, encoding, policy)
    header_line_number, header_line = next(lines, (1, ""))
    header = header_line.split("\t")
    label_column = next(
        (name for name in ("entailment_judgment", "entailment_label") if name in header), None
    )
    if "sentence_A" not in header or "sentence_B" not in header or label_column is None:
        raise DataFormatError(
            path,
            header_line_number,
            "expected a tab-separated header with sentence_A, sentence_B and "
            "entailment_judgment or entailment_label",
            header_line,
        )
    if split is not None and "SemEval_set" not in header:
        raise ValueError(
            f"split={split!r} needs a SemEval_set column (SICK.txt); {os.fspath(path)} has none."
        )
    columns = [header.index(name) for name in ("sentence_A", "sentence_B", label_column)]
    split_index = header.index("SemEval_set") if split is not None else None

    def parse_line(line):
        fields = line.split("\t")
        if len(fields) != len(header):
            raise _LineError(
                f"expected {len(header)} tab-separated fields as in the header, got {len(fields)}"
            )
        if split_index is not None and fields[split_index].upper() != split:
            return None
        premise, hypothesis, label = (fields[index] for index in columns)
        return label, premise, hypothesis

    records = _collect(path, lines, policy, parse_line)
    return _pairs(path, records, label_names, policy)


def read_snli(path, *, label_names=None, on_error="raise", encoding=None):
    """Reads SNLI/MultiNLI-style jsonl (``sentence1``, ``sentence2``, ``gold_label``).

    Pairs whose ``gold_label`` is ``"-"`` (no annotator consensus) are left
    out, as is standard, and counted in ``dropped``.

    Args:
        path: File to read.
        label_names: Labels in id order; defaults to
            ``["entailment", "neutral", "contradiction"]``.
        on_error: ``"raise"`` or ``"skip"`` for malformed lines.
        encoding: Strict codec, or None for UTF-8 with latin-1 fallback.

    Returns:
        A `TextPairData`.
    """
    policy = _ErrorPolicy(on_error)
    label_names = _check_label_names(label_names) or list(SNLI_LABELS)
    dropped = 0

    def parse_line(line):
        nonlocal dropped
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise _LineError(f"expected a JSON object: {error}") from None
        keys = ("gold_label", "sentence1", "sentence2")
        if not isinstance(record, dict) or not all(
            isinstance(record.get(key), str) for key in keys
        ):
            raise _LineError(f"expected a JSON object with string fields {keys}")
        if record["gold_label"] == SNLI_NO_CONSENSUS:
            dropped += 1
            return None
        return tuple(record[key] for key in keys)

    records = _collect(path, _read_lines(path, encoding, policy), policy, parse_line)
    return _pairs(path, records, label_names, policy, dropped)


def _options_for(format):
    """Maps each format to its reader and the read_dataset options it accepts."""
    return {
        "labeled-lines": (read_labeled_lines, ()),
        "trec": (read_trec, ("trec_labels",)),
        "tsv": (functools.partial(read_delimited, delimiter="\t"), ("text_column", "label_column")),
        "csv": (functools.partial(read_delimited, delimiter=","), ("text_column", "label_column")),
        "sick": (read_sick, ("split",)),
        "snli": (read_snli, ()),
    }[format]


_OPTION_DEFAULTS = {
    "trec_labels": "coarse",
    "text_column": "text",
    "label_column": "label",
    "split": None,
}


def read_dataset(
    path,
    format,
    *,
    label_names=None,
    trec_labels="coarse",
    text_column="text",
    label_column="label",
    split=None,
    on_error="raise",
    encoding=None,
):
    """Reads a dataset file in one of `FORMATS`.

    Args:
        path: File to read.
        format: One of ``"labeled-lines"``, ``"trec"``, ``"tsv"``, ``"csv"``,
            ``"sick"``, ``"snli"``.
        label_names: Labels in id order, to force a mapping (e.g. the training
            set's ``label_names`` when reading its test set).
        trec_labels: ``"trec"`` only: ``"coarse"`` or ``"fine"``.
        text_column: ``"tsv"``/``"csv"`` only: header name of the text column.
        label_column: ``"tsv"``/``"csv"`` only: header name of the label column.
        split: ``"sick"`` only: SemEval set to keep from ``SICK.txt``.
        on_error: ``"raise"`` (default) or ``"skip"`` for malformed lines.
        encoding: Strict codec for every line, or None (default) for UTF-8
            with a per-line latin-1 fallback.

    Returns:
        `TextClassificationData`, or `TextPairData` for ``"sick"`` and ``"snli"``.

    Raises:
        ValueError: ``format`` is unknown, or an option is given that the
            format does not use.
        FileNotFoundError: ``path`` does not exist.
        DataFormatError: A line is malformed and ``on_error="raise"``.
    """
    check.choice("format", format, FORMATS)
    reader, accepted = _options_for(format)
    given = {
        "trec_labels": trec_labels,
        "text_column": text_column,
        "label_column": label_column,
        "split": split,
    }
    for option, value in given.items():
        if option not in accepted and value != _OPTION_DEFAULTS[option]:
            raise ValueError(f"{option}={value!r} has no effect with format={format!r}.")
    options = {option: given[option] for option in accepted}
    return reader(path, label_names=label_names, on_error=on_error, encoding=encoding, **options)


def split_dev(data, fraction=0.1, seed=0):
    """Carves a stratified, deterministic dev split out of training data.

    Each label contributes its share of the ``round(fraction * len(data))`` dev
    examples (largest remainders get the leftover places), chosen at random
    with ``seed``. Both parts keep the original example order. The read-time
    counters (``skipped``, ``dropped``) stay with the training part.

    Args:
        data: `TextClassificationData` or `TextPairData`.
        fraction: Share of examples for dev, strictly between 0 and 1.
        seed: Seed of the random choice.

    Returns:
        ``(train, dev)`` of the same type as ``data``.

    Raises:
        ValueError: ``fraction`` is out of range, or either part would be empty.
    """
    if not 0 < fraction < 1:
        raise ValueError(
            f"`fraction` must be strictly between 0 and 1. Received: fraction={fraction!r}"
        )
    dev_size = round(fraction * len(data))
    if not 0 < dev_size < len(data):
        raise ValueError(
            f"fraction={fraction} of {len(data)} examples gives a dev split of {dev_size}; "
            "both parts must be non-empty."
        )
    by_label = {}
    for index, label in enumerate(data.labels):
        by_label.setdefault(label, []).append(index)
    rng = random.Random(seed)
    dev = set()
    for label, count in _stratified_counts(by_label, dev_size, len(data)).items():
        dev.update(rng.sample(by_label[label], count))
    train_indices = [index for index in range(len(data)) if index not in dev]
    counters = {
        field.name: 0 for field in dataclasses.fields(data) if field.name in ("skipped", "dropped")
    }
    return _subset(data, train_indices), _subset(data, sorted(dev), **counters)


def join_splits(first, second):
    """The examples of ``first`` followed by those of ``second``, e.g. train and dev for a
    final refit.

    Args:
        first: `TextClassificationData` or `TextPairData`.
        second: Data of the same type with the same ``label_names`` (the same label ids).

    Returns:
        Data of the same type; its read-time counters (``skipped``, ``dropped``) are the sums.

    Raises:
        ValueError: the types or the label names differ.
    """
    if type(first) is not type(second):
        raise ValueError(f"Cannot join {type(first).__name__} and {type(second).__name__}.")
    if list(first.label_names) != list(second.label_names):
        raise ValueError(
            "Cannot join splits with different label names: "
            f"{first.label_names} and {second.label_names}."
        )
    changes = {name: getattr(first, name) + getattr(second, name) for name in first._example_fields}
    for field in dataclasses.fields(first):
        if field.name in ("skipped", "dropped"):
            changes[field.name] = getattr(first, field.name) + getattr(second, field.name)
    return dataclasses.replace(first, label_names=list(first.label_names), **changes)


def _stratified_counts(by_label, dev_size, total):
    """Splits ``dev_size`` over labels in proportion to their sizes (largest remainder)."""
    shares = {label: dev_size * len(indices) / total for label, indices in sorted(by_label.items())}
    counts = {label: int(share) for label, share in shares.items()}
    leftover = dev_size - sum(counts.values())
    for label in sorted(shares, key=lambda label: counts[label] - shares[label])[:leftover]:
        counts[label] += 1
    return counts


def _subset(data, indices, **changes):
    for name in data._example_fields:
        values = getattr(data, name)
        changes[name] = [values[index] for index in indices]
    return dataclasses.replace(data, label_names=list(data.label_names), **changes)
