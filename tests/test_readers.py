"""Specification of keras_mtsa.data.readers: dataset files in, plain Python data out."""

import json
import re
from pathlib import Path

import pytest

from conftest import require_shared_data
from keras_mtsa.data import readers
from keras_mtsa.data.readers import DataFormatError
from keras_mtsa.data.readers import TextClassificationData
from keras_mtsa.data.readers import TextPairData
from keras_mtsa.data.readers import join_splits
from keras_mtsa.data.readers import read_dataset
from keras_mtsa.data.readers import read_delimited
from keras_mtsa.data.readers import split_dev

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"

SICK_HEADER = b"pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n"
SICK_FULL_HEADER = (
    b"pair_ID\tsentence_A\tsentence_B\tentailment_label\trelatedness_score\tentailment_AB\t"
    b"entailment_BA\tsentence_A_original\tsentence_B_original\tsentence_A_dataset\t"
    b"sentence_B_dataset\tSemEval_set\n"
)


def sick_full_row(pair_id, sentence_a, sentence_b, label, semeval_set):
    fields = [
        str(pair_id),
        sentence_a,
        sentence_b,
        label,
        "4.5",
        "A_x_B",
        "B_x_A",
        "a",
        "b",
        "FLICKR",
        "FLICKR",
    ]
    return ("\t".join(fields + [semeval_set]) + "\n").encode()


# labeled-lines


def test_labeled_lines_reads_labels_and_texts_with_empty_texts_and_crlf(write):
    path = write("sst.txt", b"1 a fine film\r\n0 a dull film\n1 \n0\n")

    data = read_dataset(path, "labeled-lines")

    assert isinstance(data, TextClassificationData)
    assert data.texts == ["a fine film", "a dull film", "", ""]
    assert data.labels == [1, 0, 1, 0]
    assert data.label_names == ["0", "1"]
    assert len(data) == 4
    assert data.skipped == 0


def test_labeled_lines_keeps_text_verbatim_after_the_first_space(write):
    path = write("subj.txt", b"0  . . . leading space and trailing space \n")

    assert read_dataset(path, "labeled-lines").texts == [" . . . leading space and trailing space "]


def test_non_utf8_line_falls_back_to_latin1_and_other_lines_stay_utf8(write):
    path = write("mixed.txt", b"0 caf\xe9 latin-1\n1 caf\xc3\xa9 utf-8\n")

    assert read_dataset(path, "labeled-lines").texts == ["caf\u00e9 latin-1", "caf\u00e9 utf-8"]


def test_lines_split_only_at_newline_bytes_not_at_unicode_line_separators(write):
    # \x85 is NEL in latin-1 and \xc2\x85 is NEL in UTF-8; str.splitlines would split there.
    path = write("nel.txt", b"0 one\x85two\n1 three\xc2\x85four\n")

    data = read_dataset(path, "labeled-lines")

    assert data.texts == ["one\x85two", "three\x85four"]


def test_utf8_byte_order_mark_is_removed(write):
    path = write("bom.txt", b"\xef\xbb\xbf1 first\n0 second\n")

    assert read_dataset(path, "labeled-lines").labels == [1, 0]


def test_blank_lines_are_not_records(write):
    path = write("blank.txt", b"0 a\n\n   \r\n1 b\n\n")

    data = read_dataset(path, "labeled-lines")

    assert data.texts == ["a", "b"]
    assert data.skipped == 0


def test_label_ids_outside_0_to_k_are_mapped_in_numeric_order(write):
    path = write("ids.txt", b"10 a\n2 b\n10 c\n-1 d\n")

    data = read_dataset(path, "labeled-lines")

    assert data.label_names == ["-1", "2", "10"]
    assert data.labels == [2, 1, 2, 0]


def test_labeled_lines_label_names_force_the_mapping(write):
    path = write("only_zeros.txt", b"0 a\n0 b\n")

    data = read_dataset(path, "labeled-lines", label_names=["0", "1", "2"])

    assert data.labels == [0, 0]
    assert data.label_names == ["0", "1", "2"]


def test_malformed_line_raises_with_file_name_line_number_and_expectation(write):
    path = write("bad.txt", b"0 fine\nnolabel here\n1 fine\n")

    with pytest.raises(DataFormatError) as raised:
        read_dataset(path, "labeled-lines")

    message = str(raised.value)
    assert "bad.txt" in message
    assert "line 2" in message
    assert "<integer label> <text>" in message
    assert "nolabel here" in message
    assert raised.value.line_number == 2
    assert raised.value.path == str(path)


@pytest.mark.parametrize(
    "line", [b"1.5 text", b"x text", b" 1 leading space", b"\xd9\xa3 arabic-indic digit"]
)
def test_non_integer_labels_are_malformed(write, line):
    path = write("labels.txt", line + b"\n")

    with pytest.raises(DataFormatError, match="line 1"):
        read_dataset(path, "labeled-lines")


def test_skip_drops_malformed_lines_and_counts_them(write):
    path = write("bad.txt", b"0 fine\nnolabel here\n1 fine\nx\n")

    data = read_dataset(path, "labeled-lines", on_error="skip")

    assert data.texts == ["fine", "fine"]
    assert data.skipped == 2


def test_explicit_encoding_is_strict_and_names_the_line(write):
    path = write("latin.txt", b"0 ok\n1 caf\xe9\n")

    with pytest.raises(DataFormatError, match=r"latin\.txt, line 2: expected text in utf-8"):
        read_dataset(path, "labeled-lines", encoding="utf-8")
    assert read_dataset(path, "labeled-lines", encoding="utf-8", on_error="skip").skipped == 1
    assert read_dataset(path, "labeled-lines", encoding="cp1252").texts == ["ok", "caf\u00e9"]


# trec


TREC_TRAIN = (
    b"DESC:manner How did serfdom develop ?\nHUM:ind Who stole the cork ?\n"
    b"ABBR:exp What is .com ?\n"
)


def test_trec_coarse_labels_sorted_alphabetically(write):
    data = read_dataset(write("train.label", TREC_TRAIN), "trec")

    assert data.label_names == ["ABBR", "DESC", "HUM"]
    assert data.labels == [1, 2, 0]
    assert data.texts[0] == "How did serfdom develop ?"


def test_trec_fine_labels_keep_the_coarse_prefix(write):
    data = read_dataset(write("train.label", TREC_TRAIN), "trec", trec_labels="fine")

    assert data.label_names == ["ABBR:exp", "DESC:manner", "HUM:ind"]
    assert data.labels == [1, 2, 0]


def test_trec_test_file_shares_the_training_label_mapping(write):
    train = read_dataset(write("train.label", TREC_TRAIN), "trec")
    test_path = write("test.label", b"HUM:gr What team ?\n")

    test = read_dataset(test_path, "trec", label_names=train.label_names)

    assert test.label_names == train.label_names
    assert test.labels == [train.label_names.index("HUM")]
    # Without the shared mapping the only label would get id 0.
    assert read_dataset(test_path, "trec").labels == [0]


def test_label_unseen_in_training_is_a_clear_error(write):
    train = read_dataset(write("train.label", TREC_TRAIN), "trec")
    test_path = write("test.label", b"HUM:gr What team ?\nNUM:date When ?\n")

    with pytest.raises(DataFormatError) as raised:
        read_dataset(test_path, "trec", label_names=train.label_names)

    message = str(raised.value)
    assert "test.label, line 2" in message
    assert "'NUM'" in message
    assert "label_names" in message
    assert (
        read_dataset(test_path, "trec", label_names=train.label_names, on_error="skip").skipped == 1
    )


@pytest.mark.parametrize("line", [b"DESC How ?", b"DESC: How ?", b":manner How ?", b""])
def test_trec_label_without_coarse_and_fine_parts_is_malformed(write, line):
    path = write("bad.label", b"DESC:def What is it ?\n" + line + b"x\n")

    with pytest.raises(DataFormatError, match=r"line 2: expected '<COARSE>:<fine> <question>'"):
        read_dataset(path, "trec")


def test_trec_labels_argument_is_validated(write):
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`trec_labels` must be one of ('coarse', 'fine'). Received: trec_labels='medium'"
        ),
    ):
        read_dataset(write("train.label", TREC_TRAIN), "trec", trec_labels="medium")


# tsv and csv


def test_tsv_reads_named_columns_and_keeps_quotes_as_text(write):
    path = write("data.tsv", b'id\tsentence\tlabel\n1\t"Quoted" start\tpos\n2\tplain\tneg\r\n')

    data = read_dataset(path, "tsv", text_column="sentence")

    assert data.texts == ['"Quoted" start', "plain"]
    assert data.label_names == ["neg", "pos"]
    assert data.labels == [1, 0]


def test_csv_handles_quoted_commas_and_newlines_and_numeric_labels(write):
    path = write("data.csv", b'text,label\n"one, two",10\r\n"multi\nline",2\nplain,10\n')

    data = read_dataset(path, "csv")

    assert data.texts == ["one, two", "multi\nline", "plain"]
    assert data.label_names == ["2", "10"]
    assert data.labels == [1, 0, 1]


def test_csv_error_names_the_file_line_after_a_multiline_record(write):
    path = write("data.csv", b'text,label\n"multi\nline",a\n\nonly one field\n')

    with pytest.raises(DataFormatError, match=r"data\.csv, line 5: expected 2 fields"):
        read_dataset(path, "csv")
    assert read_dataset(path, "csv", on_error="skip").skipped == 1


def test_delimited_empty_label_is_malformed(write):
    path = write("data.tsv", b"text\tlabel\nsome text\t \n")

    with pytest.raises(DataFormatError, match="line 2: expected a non-empty 'label' field"):
        read_dataset(path, "tsv")


def test_delimited_missing_column_names_the_argument_and_the_header(write):
    path = write("data.csv", b"sentence,label\nx,1\n")

    with pytest.raises(
        ValueError, match=r"text_column='text' is not a column .*\['sentence', 'label'\]"
    ):
        read_dataset(path, "csv")


def test_delimited_file_without_header_is_malformed(write):
    with pytest.raises(DataFormatError, match="expected a header row"):
        read_dataset(write("empty.csv", b""), "csv")


# sick


def test_sick_semeval_file_reads_pairs_with_fixed_label_order(write):
    path = write(
        "SICK_train.txt",
        SICK_HEADER
        + b"1\tA man runs\tA person runs\t4.5\tENTAILMENT\n2\tA dog\tNo dog\t3.0\tCONTRADICTION\n",
    )

    data = read_dataset(path, "sick")

    assert isinstance(data, TextPairData)
    assert data.premises == ["A man runs", "A dog"]
    assert data.hypotheses == ["A person runs", "No dog"]
    assert data.label_names == ["ENTAILMENT", "NEUTRAL", "CONTRADICTION"]
    assert data.labels == [0, 2]


def test_sick_full_release_selects_a_semeval_split(write):
    path = write(
        "SICK.txt",
        SICK_FULL_HEADER
        + sick_full_row(1, "a", "b", "NEUTRAL", "TRAIN")
        + sick_full_row(2, "c", "d", "ENTAILMENT", "TEST")
        + sick_full_row(3, "e", "f", "CONTRADICTION", "TRIAL")
        + b"\n",
    )

    assert len(read_dataset(path, "sick")) == 3
    test = read_dataset(path, "sick", split="TEST")
    assert (test.premises, test.labels) == (["c"], [0])
    assert read_dataset(path, "sick", split="train").labels == [1]


def test_sick_split_is_validated(write):
    semeval = write("SICK_trial.txt", SICK_HEADER + b"1\ta\tb\t1.0\tNEUTRAL\n")

    with pytest.raises(
        ValueError,
        match=re.escape(
            "`split` must be None or one of ('TRAIN', 'TRIAL', 'TEST') (any case). "
            "Received: split='DEV'"
        ),
    ):
        read_dataset(semeval, "sick", split="DEV")
    with pytest.raises(ValueError, match="SemEval_set"):
        read_dataset(semeval, "sick", split="TRIAL")


def test_sick_wrong_column_count_and_unknown_label_are_malformed(write):
    path = write(
        "SICK_trial.txt",
        SICK_HEADER + b"1\ta\tb\t1.0\n2\ta\tb\t1.0\tMAYBE\n3\ta\tb\t1.0\tNEUTRAL\n",
    )

    with pytest.raises(DataFormatError, match=r"line 2: expected 5 tab-separated fields"):
        read_dataset(path, "sick")
    data = read_dataset(path, "sick", on_error="skip")
    assert (data.labels, data.skipped) == ([1], 2)


def test_sick_file_without_the_expected_header_is_malformed(write):
    with pytest.raises(DataFormatError, match="line 1: expected a tab-separated header"):
        read_dataset(write("SICK_x.txt", b"1\ta\tb\t1.0\tNEUTRAL\n"), "sick")


# snli


def snli_line(gold, premise="A man.", hypothesis="A person."):
    record = {
        "gold_label": gold,
        "sentence1": premise,
        "sentence2": hypothesis,
        "annotator_labels": [],
    }
    return json.dumps(record, ensure_ascii=False).encode() + b"\n"


def test_snli_drops_no_consensus_pairs_and_counts_them_apart_from_errors(write):
    path = write(
        "snli.jsonl", snli_line("neutral") + snli_line("-") + snli_line("contradiction", "Ça", "😀")
    )

    data = read_dataset(path, "snli")

    assert data.label_names == ["entailment", "neutral", "contradiction"]
    assert data.labels == [1, 2]
    assert data.premises[1] == "Ça"
    assert data.hypotheses[1] == "😀"
    assert (data.dropped, data.skipped) == (1, 0)


@pytest.mark.parametrize(
    "bad_line, expected",
    [
        (b'{"gold_label": "neutral", "sentence1": "x"\n', "expected a JSON object"),
        (b'["neutral", "x", "y"]\n', "expected a JSON object with string fields"),
        (
            b'{"gold_label": "neutral", "sentence1": "x", "sentence2": null}\n',
            "expected a JSON object with string",
        ),
    ],
)
def test_snli_malformed_json_lines_follow_on_error(write, bad_line, expected):
    path = write("snli.jsonl", snli_line("entailment") + bad_line)

    with pytest.raises(DataFormatError, match=rf"snli\.jsonl, line 2: {expected}"):
        read_dataset(path, "snli")
    data = read_dataset(path, "snli", on_error="skip")
    assert (len(data), data.skipped) == (1, 1)


def test_snli_unknown_gold_label_is_malformed(write):
    with pytest.raises(DataFormatError, match="'maybe' is not one of label_names"):
        read_dataset(write("snli.jsonl", snli_line("maybe")), "snli")


# read_dataset argument validation


def test_unknown_format_names_the_argument_and_lists_the_valid_formats(write):
    path = write("x.txt", b"0 a\n")

    with pytest.raises(
        ValueError, match=r"`format` must be one of \(.*\)\. Received: format='parquet'"
    ) as raised:
        read_dataset(path, "parquet")

    for name in readers.FORMATS:
        assert name in str(raised.value)


def test_formats_are_the_documented_ones():
    assert readers.FORMATS == ("labeled-lines", "trec", "tsv", "csv", "sick", "snli")


def test_missing_file_raises_file_not_found_with_the_path(tmp_path):
    path = tmp_path / "missing.txt"

    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_dataset(path, "labeled-lines")


def test_option_that_the_format_ignores_is_rejected(write):
    path = write("x.txt", b"0 a\n")

    with pytest.raises(
        ValueError, match="trec_labels='fine' has no effect with format='labeled-lines'"
    ):
        read_dataset(path, "labeled-lines", trec_labels="fine")


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (
            {"on_error": "ignore"},
            "`on_error` must be one of ('raise', 'skip'). Received: on_error='ignore'",
        ),
        (
            {"label_names": "01"},
            "`label_names` must be a non-empty sequence of non-empty strings. "
            "Received: label_names='01'",
        ),
        (
            {"label_names": []},
            "`label_names` must be a non-empty sequence of non-empty strings. "
            "Received: label_names=[]",
        ),
        (
            {"label_names": ["0", "0"]},
            "`label_names` must not contain duplicates. Received: label_names=['0', '0']",
        ),
    ],
)
def test_invalid_arguments_are_named(write, kwargs, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        read_dataset(write("x.txt", b"0 a\n"), "labeled-lines", **kwargs)


def test_delimiter_is_validated(write):
    with pytest.raises(
        ValueError,
        match=re.escape("`delimiter` must be one of (',', '\\t'). Received: delimiter=';'"),
    ):
        read_delimited(write("x.csv", b"text;label\na;0\n"), delimiter=";")


# data classes, split_dev and join_splits


def test_data_classes_reject_inconsistent_examples():
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`texts` and `labels` must have equal lengths (one entry per example). "
            "Received: len(texts)=1, len(labels)=2"
        ),
    ):
        TextClassificationData(texts=["a"], labels=[0, 1], label_names=["0", "1"])
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`premises`, `hypotheses` and `labels` must have equal lengths (one entry per "
            "example). Received: len(premises)=2, len(hypotheses)=1, len(labels)=1"
        ),
    ):
        TextPairData(premises=["a", "c"], hypotheses=["b"], labels=[0], label_names=["x", "y"])
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`labels` must be ids in [0, 2) to index label_names=['x', 'y']. "
            "Received: labels containing [-1, 2]"
        ),
    ):
        TextPairData(
            premises=["a", "b", "c"],
            hypotheses=["d", "e", "f"],
            labels=[2, 0, -1],
            label_names=["x", "y"],
        )


def make_classification(counts):
    texts, labels = [], []
    for label, count in enumerate(counts):
        texts += [f"text {label}-{i}" for i in range(count)]
        labels += [label] * count
    return TextClassificationData(texts, labels, [str(i) for i in range(len(counts))], skipped=3)


def test_split_dev_is_stratified_deterministic_and_a_partition():
    data = make_classification([80, 20])

    train, dev = split_dev(data, fraction=0.25, seed=1)

    assert (len(train), len(dev)) == (75, 25)
    assert (dev.labels.count(0), dev.labels.count(1)) == (20, 5)
    assert sorted(train.texts + dev.texts) == sorted(data.texts)
    assert split_dev(data, fraction=0.25, seed=1) == (train, dev)
    assert split_dev(data, fraction=0.25, seed=2)[1].texts != dev.texts
    assert (train.skipped, dev.skipped) == (3, 0)
    assert train.label_names == dev.label_names == data.label_names


def test_split_dev_gives_small_classes_their_rounded_share():
    train, dev = split_dev(make_classification([5, 3, 2]), fraction=0.3)

    assert len(dev) == 3
    assert sorted(dev.labels) == [0, 1, 2]


def test_split_dev_keeps_pairs_aligned():
    data = TextPairData(
        premises=[f"p{i}" for i in range(10)],
        hypotheses=[f"h{i}" for i in range(10)],
        labels=[i % 3 for i in range(10)],
        label_names=["e", "n", "c"],
        dropped=4,
    )

    train, dev = split_dev(data, fraction=0.2)

    assert len(dev) == 2
    for part in (train, dev):
        assert [p[1:] for p in part.premises] == [h[1:] for h in part.hypotheses]
        assert part.labels == [int(p[1:]) % 3 for p in part.premises]
    assert (train.dropped, dev.dropped) == (4, 0)


@pytest.mark.parametrize(
    "fraction, expected",
    [
        (0, "`fraction` must be strictly between 0 and 1. Received: fraction=0"),
        (1, "`fraction` must be strictly between 0 and 1. Received: fraction=1"),
        (1.5, "`fraction` must be strictly between 0 and 1. Received: fraction=1.5"),
        (0.01, "fraction=0.01 of 10 examples gives a dev split of 0"),
    ],
)
def test_split_dev_rejects_fractions_that_leave_a_part_empty(fraction, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        split_dev(make_classification([5, 5]), fraction=fraction)


def test_join_splits_appends_the_second_part_and_sums_the_counters():
    data = make_classification([8, 2])
    train, dev = split_dev(data, fraction=0.2, seed=1)

    joined = join_splits(train, dev)

    assert joined.texts == train.texts + dev.texts and joined.labels == train.labels + dev.labels
    assert sorted(zip(joined.texts, joined.labels)) == sorted(zip(data.texts, data.labels))
    assert (joined.label_names, joined.skipped) == (data.label_names, 3)


def test_join_splits_keeps_pairs_aligned_and_sums_dropped():
    first = TextPairData(
        premises=["p0"], hypotheses=["h0"], labels=[0], label_names=["e", "c"], dropped=2
    )
    second = TextPairData(
        premises=["p1"], hypotheses=["h1"], labels=[1], label_names=["e", "c"], dropped=1
    )

    joined = join_splits(first, second)

    assert (joined.premises, joined.hypotheses) == (["p0", "p1"], ["h0", "h1"])
    assert (joined.labels, joined.dropped) == ([0, 1], 3)


def test_join_splits_rejects_other_label_names_or_another_type():
    data = make_classification([2, 2])
    renamed = TextClassificationData(["a"], [0], ["x", "y"])
    pairs = TextPairData(premises=["a"], hypotheses=["b"], labels=[0], label_names=["0", "1"])

    with pytest.raises(ValueError, match="different label names"):
        join_splits(data, renamed)
    with pytest.raises(ValueError, match="Cannot join TextClassificationData and TextPairData"):
        join_splits(data, pairs)


# Real datasets in ../shared/data (skipped when absent, failing under CI=true).

REAL_CLASSIFICATION = [
    ("trec/train_5500.label", "trec", {}, 5452, 6, 0),
    ("trec/TREC_10.label", "trec", {}, 500, 6, 0),
    ("trec/TREC.train.all", "labeled-lines", {}, 5452, 6, 0),
    ("trec/TREC.test.all", "labeled-lines", {}, 500, 6, 0),
    ("sst2/stsa.binary.train", "labeled-lines", {}, 6920, 2, 0),
    ("sst2/stsa.binary.dev", "labeled-lines", {}, 872, 2, 0),
    ("sst2/stsa.binary.test", "labeled-lines", {}, 1821, 2, 0),
    ("sst5/stsa.fine.train", "labeled-lines", {}, 8544, 5, 0),
    ("sst5/stsa.fine.dev", "labeled-lines", {}, 1101, 5, 0),
    ("sst5/stsa.fine.test", "labeled-lines", {}, 2210, 5, 0),
    ("cr/custrev.all", "labeled-lines", {}, 3775, 2, 4),
    ("mpqa/mpqa.all", "labeled-lines", {}, 10606, 2, 3),
    ("subj/subj.all", "labeled-lines", {}, 10000, 2, 0),
]

REAL_PAIRS = [
    ("sick/SICK_train.txt", "sick", {}, 4500, 0),
    ("sick/SICK_trial.txt", "sick", {}, 500, 0),
    ("sick/SICK_test_annotated.txt", "sick", {}, 4927, 0),
    ("sick/SICK.txt", "sick", {}, 9840, 0),
    ("sick/SICK.txt", "sick", {"split": "TRAIN"}, 4439, 0),
    ("sick/SICK.txt", "sick", {"split": "TRIAL"}, 495, 0),
    ("sick/SICK.txt", "sick", {"split": "TEST"}, 4906, 0),
    # 1289 and 1277 lines, of which 16 and 23 have gold_label "-".
    ("snli/snli_1.0_dev.partial.jsonl", "snli", {}, 1273, 16),
    ("snli/snli_1.0_test.partial.jsonl", "snli", {}, 1254, 23),
]


def real_path(relative):
    path = DATA_DIR / relative
    require_shared_data(path)
    return path


@pytest.mark.parametrize(
    "relative, format, kwargs, size, num_classes, empty_texts", REAL_CLASSIFICATION
)
def test_real_classification_dataset_counts(
    relative, format, kwargs, size, num_classes, empty_texts
):
    data = read_dataset(real_path(relative), format, **kwargs)

    assert len(data) == size
    assert len(data.label_names) == num_classes
    assert set(data.labels) == set(range(num_classes))
    assert data.texts.count("") == empty_texts
    assert data.skipped == 0


@pytest.mark.parametrize("relative, format, kwargs, size, dropped", REAL_PAIRS)
def test_real_pair_dataset_counts(relative, format, kwargs, size, dropped):
    data = read_dataset(real_path(relative), format, **kwargs)

    assert len(data) == size
    assert set(data.labels) == {0, 1, 2}
    assert (data.skipped, data.dropped) == (0, dropped)


def test_real_trec_test_labels_map_onto_training_labels_at_both_levels():
    train_path, test_path = real_path("trec/train_5500.label"), real_path("trec/TREC_10.label")
    for level, num_train_labels in (("coarse", 6), ("fine", 50)):
        train = read_dataset(train_path, "trec", trec_labels=level)
        test = read_dataset(test_path, "trec", trec_labels=level, label_names=train.label_names)
        assert len(train.label_names) == num_train_labels
        assert len(test) == 500


def test_real_non_utf8_lines_are_decoded_as_latin1():
    trec = read_dataset(real_path("trec/train_5500.label"), "trec")
    subj = read_dataset(real_path("subj/subj.all"), "labeled-lines")

    assert "sister\u00f0city" in trec.texts[65]
    assert subj.texts[20].startswith("si el siglo xxi necesita de h\u00e9roes")
