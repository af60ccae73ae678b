"""Specification of keras_mtsa.data.word_vectors: pretrained word-vector text files in,
float32 rows out."""

import contextlib
import gzip
import re

import numpy as np
import pytest
import tensorflow as tf

from keras_mtsa.data import word_vectors as word_vectors_module
from keras_mtsa.data.preprocessing import build_vocabulary
from keras_mtsa.data.preprocessing import read_vocabulary
from keras_mtsa.data.preprocessing import tokenize
from keras_mtsa.data.preprocessing import write_vocabulary
from keras_mtsa.data.readers import DataFormatError
from keras_mtsa.data.word_vectors import WordVectors
from keras_mtsa.data.word_vectors import embedding_rows
from keras_mtsa.data.word_vectors import peek_word_vector_dim
from keras_mtsa.data.word_vectors import read_word_vectors

GLOVE = b"the 0.1 0.2 0.3\n, -1 2.5 3e-2\nfilm 4 5 6\n"
GLOVE_VECTORS = np.array([[0.1, 0.2, 0.3], [-1, 2.5, 3e-2], [4, 5, 6]], np.float32)


@pytest.fixture
def small_batches(monkeypatch):
    """Makes the reader parse two lines per batch, so that a few lines span several batches."""
    monkeypatch.setattr(word_vectors_module, "_CHUNK_LINES", 2)


def read(path, **options):
    return read_word_vectors(path, progress=False, **options)


@contextlib.contextmanager
def raises_at(path, line_number, problem):
    """Expects a DataFormatError located at `line_number` of `path`, in the readers' own message
    form, whose message matches the regex `problem`."""
    with pytest.raises(DataFormatError) as raised:
        yield
    error = raised.value
    assert (error.path, error.line_number) == (str(path), line_number)
    assert str(error).startswith(str(DataFormatError(path, line_number, "")))
    assert re.search(problem, str(error)), str(error)


# The format


def test_glove_lines_become_words_and_float32_rows_in_file_order(write):
    path = write("glove.txt", GLOVE)

    vectors = read(path)

    assert isinstance(vectors, WordVectors)
    assert vectors.words == ("the", ",", "film")
    assert vectors.vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors.vectors, GLOVE_VECTORS)
    assert vectors.dim == 3
    assert vectors.index == {"the": 0, ",": 1, "film": 2}
    assert vectors.path == str(path)
    assert (vectors.skipped, vectors.duplicates, len(vectors)) == (0, 0, 3)


def test_a_header_line_is_skipped_and_fixes_the_dimension(write):
    path = write("wiki.vec", b"3 3\n" + GLOVE)

    vectors = read(path)

    assert vectors.words == ("the", ",", "film")
    np.testing.assert_array_equal(vectors.vectors, GLOVE_VECTORS)
    assert peek_word_vector_dim(path) == 3


def test_without_a_header_the_first_record_fixes_the_dimension(write):
    path = write("glove.txt", b"the 1 2 3\nfilm 1 2\n")

    with raises_at(path, 2, "expected 3 values after the word as on line 1, got 2"):
        read(path)


@pytest.mark.parametrize("name", ["vectors.txt.gz", "vectors.txt"])
def test_a_gzip_file_is_recognized_by_its_magic_bytes_whatever_its_name(write, name):
    path = write(name, gzip.compress(b"3 3\n" + GLOVE))

    vectors = read(path)

    assert vectors.words == ("the", ",", "film")
    np.testing.assert_array_equal(vectors.vectors, GLOVE_VECTORS)
    assert peek_word_vector_dim(path) == 3


def test_a_truncated_gzip_stream_raises(write):
    compressed = gzip.compress(b"".join(b"w%d 1 2 3\n" % i for i in range(2000)))
    path = write("cut.txt.gz", compressed[: len(compressed) // 2])

    with pytest.raises(DataFormatError, match="expected a complete gzip stream"):
        read(path, on_error="skip")


def test_a_word_with_spaces_takes_all_fields_but_the_last_dim(write):
    path = write("glove.840B.txt", b"the 1 2\n. . . 3 4\nat name@domain.com 5 6\n")

    vectors = read(path)

    assert vectors.words == ("the", ". . .", "at name@domain.com")
    np.testing.assert_array_equal(vectors.vectors, [[1, 2], [3, 4], [5, 6]])


def test_crlf_trailing_whitespace_a_byte_order_mark_and_blank_lines_are_tolerated(write):
    path = write("windows.txt", b"\xef\xbb\xbf2 2\r\n\r\nthe 1 2 \r\n\n  \nfilm 3 4\t\r\n")

    vectors = read(path)

    assert vectors.words == ("the", "film")
    np.testing.assert_array_equal(vectors.vectors, [[1, 2], [3, 4]])


def test_a_repeated_word_keeps_its_first_vector(write):
    path = write("glove.txt", b"the 1 2\nfilm 3 4\nthe 5 6\n")

    vectors = read(path)

    assert vectors.words == ("the", "film")
    np.testing.assert_array_equal(vectors.vectors, [[1, 2], [3, 4]])
    assert vectors.duplicates == 1
    assert vectors.skipped == 0


def test_lower_case_folds_words_and_keeps_the_first_of_each_folded_form(write):
    path = write("cased.txt", b"Paris 1 1\nparis 2 2\nPARIS 3 3\nStra\xc3\x9fe 4 4\nstrasse 5 5\n")

    cased = read(path)
    folded = read(path, lower_case=True)

    assert cased.words == ("Paris", "paris", "PARIS", "Straße", "strasse")
    assert folded.words == ("paris", "strasse")
    np.testing.assert_array_equal(folded.vectors, [[1, 1], [4, 4]])
    assert folded.duplicates == 3


@pytest.mark.parametrize("lower_case", [True, False])
def test_words_are_normalized_as_the_tokenizer_so_vocabulary_words_find_their_vectors(
    write, lower_case
):
    # NFD "é", a ligature, full-width letters, a German sharp s and a capital: the file's spellings
    # differ from what the tokenizer makes of the same text.
    texts = ["Paris e\u0301cole \ufb01ne \uff21\uff22 Stra\u00dfe", "Paris film"]
    tokens = build_vocabulary(texts, lower_case=lower_case)
    lines = ["Paris 1 0", "e\u0301cole 2 0", "\ufb01ne 3 0", "\uff21\uff22 4 0", "Stra\u00dfe 5 0"]
    path = write("unicode.txt", "\n".join(lines).encode("utf-8"))

    rows = embedding_rows(tokens, read(path, lower_case=lower_case))

    assert rows.found == 5  # all the words but "film"
    assert np.isnan(rows.initial[tokens.index("film")]).all()


# Malformed lines


@pytest.mark.parametrize(
    "line, problem",
    [
        (b"film 4 5", "expected 3 values after the word as on line 1, got 2"),
        (b"film", "expected 3 values after the word as on line 1, got 0"),
        (b"film 4 five 6", "value 2 is 'five'"),
        (b"film 4  6", "value 2 is ''"),
        (b"film 4 0x10 6", "value 2 is '0x10'"),
        (b"film 4 5,5 6", "value 2 is '5,5'"),
        (b"film 4 - 6", "value 2 is '-'"),
        (b"film 4 5\t6 7", "value 2 is '5\\t6'"),
        (b"film 4 nan 6", "expected finite values, but value 2 is 'nan'"),
        (b"film 4 5 -inf", "expected finite values, but value 3 is '-inf'"),
        (b"film 4 1e50 6", "expected finite values, but value 2 is '1e50'"),
        (b"fil\xe9 4 5 6", "expected a UTF-8 word"),
        (b" 4 5 6", "expected a word before the values"),
    ],
)
def test_a_malformed_line_raises_with_path_and_line_number_or_is_skipped_and_counted(
    write, line, problem
):
    path = write("bad.txt", b"the 1 2 3\n, 1 2 3\n" + line + b"\nend 7 8 9\n")

    with raises_at(path, 3, re.escape(problem)):
        read(path)
    skipped = read(path, on_error="skip")

    assert skipped.words == ("the", ",", "end")
    np.testing.assert_array_equal(skipped.vectors[-1], [7, 8, 9])
    assert skipped.skipped == 1


def test_the_first_malformed_line_is_reported_whatever_the_batch_that_finds_it(
    write, small_batches
):
    # Line 3 has a bad value (found when its batch is parsed), line 6 too few values (found while
    # splitting, before line 3's batch is parsed).
    lines = [b"a 1 2", b"b 1 2", b"c 1 x", b"d 1 2", b"e 1 2", b"f 1", b"g 1 2"]
    path = write("bad.txt", b"\n".join(lines))

    with raises_at(path, 3, "value 2 is 'x'"):
        read(path)
    skipped = read(path, on_error="skip")

    assert skipped.words == ("a", "b", "d", "e", "g")
    assert skipped.skipped == 2


def test_many_malformed_lines_across_batches_are_all_skipped(write, small_batches):
    lines = [b"w%d 1 %s" % (i, b"x" if i % 3 == 0 else b"%d" % i) for i in range(1, 31)]
    path = write("bad.txt", b"\n".join(lines))

    vectors = read(path, on_error="skip")

    kept = [i for i in range(1, 31) if i % 3]
    assert vectors.words == tuple(f"w{i}" for i in kept)
    np.testing.assert_array_equal(vectors.vectors, [[1, i] for i in kept])
    assert vectors.skipped == 10


def test_a_header_whose_dim_exceeds_the_first_record_raises_even_with_skip(write):
    path = write("wrong.vec", b"3 2\n" + GLOVE)

    with raises_at(
        path, 2, "the header on line 1 says 2 values per word, but the first record has 3"
    ):
        read(path, on_error="skip")


def test_a_header_whose_dim_the_records_lack_makes_every_record_malformed(write):
    path = write("wrong.vec", b"3 4\n" + GLOVE)

    with raises_at(path, 2, "expected 4 values after the word as the header on line 1 says, got 3"):
        read(path)
    with raises_at(path, 1, r"none of the 3 records is valid \(3 malformed lines skipped\)"):
        read(path, on_error="skip")


def test_a_header_count_other_than_the_records_raises_or_warns_with_skip(write):
    path = write("cut.vec", b"5 3\n" + GLOVE)

    with raises_at(path, 1, "the header says 5 words, but the file has 3 records"):
        read(path)
    with pytest.warns(UserWarning, match="the header says 5 words"):
        vectors = read(path, on_error="skip")
    assert len(vectors) == 3


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "expected word vectors, but the file is empty"),
        (b"\n \r\n\n", "expected word vectors, but the file is empty"),
        (b"400000 300\n", "expected word vectors after the header, got none"),
        (b"3 0\n", "expected a header 'count dim' with a positive dim"),
    ],
)
def test_a_file_without_vectors_raises(write, content, problem):
    path = write("empty.txt", content)

    with raises_at(path, 1, problem):
        read(path, on_error="skip")


def test_peek_reads_only_the_first_line(write):
    path = write("glove.txt", b"\n\nthe 1 2 3 4\n" + b"\xff garbage\n" * 10)

    assert peek_word_vector_dim(path) == 4
    empty, words = write("empty.txt", b""), write("words.txt", b"\nthe\n")
    with raises_at(empty, 1, "expected word vectors, but the file is empty"):
        peek_word_vector_dim(empty)
    with raises_at(words, 2, "expected a word followed by its values"):
        peek_word_vector_dim(words)


# Options


def test_max_words_keeps_the_first_distinct_words_and_stops_reading(write):
    path = write("big.vec", b"9 2\nthe 1 1\nThe 2 2\nfilm 3 3\nbad line\nrest 4 4\n")

    vectors = read(path, max_words=2, lower_case=True)

    assert vectors.words == ("the", "film")
    np.testing.assert_array_equal(vectors.vectors, [[1, 1], [3, 3]])
    assert vectors.duplicates == 1


def plain_vectors(text, lower_case=False):
    """An independent oracle: each line's word (all fields but the last `dim`) and float32 values,
    first spelling of each word kept; for well-formed ASCII files without a header."""
    rows = {}
    for line in text.decode().splitlines():
        fields = line.split(" ")
        dim = len(fields) - 1 if not rows else len(next(iter(rows.values())))
        word = " ".join(fields[:-dim])
        rows.setdefault(word.lower() if lower_case else word, np.float32(fields[-dim:]))
    return rows


def test_words_keeps_only_the_given_words_in_file_order(write):
    text = b"the 1 1\nThe 2 2\nfilm 3 3\n. . . 4 4\nplot 5 5\nFILM 6 6\ndull 7 7\n"
    path = write("glove.txt", text)
    wanted = {"film", "dull", ". . .", "absent"}
    oracle = plain_vectors(text, lower_case=True)
    expected = [word for word in oracle if word in wanted]

    vectors = read(path, lower_case=True, words=wanted)

    assert vectors.words == tuple(expected) == ("film", ". . .", "dull")
    np.testing.assert_array_equal(vectors.vectors, [oracle[word] for word in expected])
    assert vectors.vectors.flags.owndata and vectors.vectors.shape == (3, 2)
    assert vectors.duplicates == 1  # "FILM"; "The" repeats a word that is not kept
    assert vectors.index == {"film": 0, ". . .": 1, "dull": 2}


def test_words_and_max_words_keep_the_first_max_words_of_the_given_words(write):
    text = b"".join(b"w%d %d 0\n" % (i, i) for i in range(100))
    path = write("glove.txt", text)
    wanted = {f"w{i}" for i in range(0, 100, 7)}

    vectors = read(path, words=wanted, max_words=3)

    assert vectors.words == ("w0", "w7", "w14")
    np.testing.assert_array_equal(vectors.vectors, [[0, 0], [7, 0], [14, 0]])


def test_words_stops_reading_once_all_are_found_but_checks_every_line_read(write):
    path = write("glove.txt", b"the 1 2\nfilm 3 4\nplot 5 x\nrest 6 7\n")

    found = read(path, words={"the", "film"})
    with raises_at(path, 3, "value 2 is 'x'"):
        read(path, words={"the", "rest"})
    skipped = read(path, words={"the", "rest"}, on_error="skip")

    assert found.words == ("the", "film")
    assert skipped.words == ("the", "rest") and skipped.skipped == 1


def test_words_none_of_which_is_in_the_file_give_no_vectors(write):
    path = write("glove.txt", GLOVE)

    vectors = read(path, words={"absent"})

    assert vectors.words == () and vectors.vectors.shape == (0, 3) and vectors.dim == 3


@pytest.mark.parametrize(
    "options, argument",
    [
        (dict(lower_case="yes"), "lower_case"),
        (dict(max_words=0), "max_words"),
        (dict(max_words=2.0), "max_words"),
        (dict(words="the"), "words"),
        (dict(words=set()), "words"),
        (dict(words={"the", 3}), "words"),
        (dict(on_error="ignore"), "on_error"),
        (dict(progress=1), "progress"),
    ],
)
def test_invalid_options_raise_naming_the_argument(write, options, argument):
    path = write("glove.txt", GLOVE)

    with pytest.raises(ValueError, match=f"`{argument}` must be .* Received: {argument}="):
        read_word_vectors(path, **options)


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read(tmp_path / "missing.txt")


def test_progress_off_writes_nothing(write, capsys):
    read_word_vectors(write("glove.txt", GLOVE), progress=False)

    assert capsys.readouterr() == ("", "")


def test_progress_is_a_keras_progbar_over_the_kib_of_the_file(write, capsys, small_batches):
    lines = b"".join(b"w%d 1 2 3\n" % i for i in range(3000))
    path = write("many.txt", lines + b"bad\n")
    kib = -(-len(lines + b"bad\n") // 1024)

    read_word_vectors(path, on_error="skip")

    out, err = capsys.readouterr()
    assert err == ""
    assert re.search(rf"(?<![0-9]){kib}/{kib}(?![0-9])", out) and "/KiB" in out
    assert out.endswith("\n") and out.count("\n") == 1  # one line, redrawn as Keras does


def test_an_error_after_progress_was_shown_starts_on_a_new_line(write, capsys, small_batches):
    path = write("bad.txt", b"a 1 2\nb 1 2\nc 1 2\nd 1 x\n")

    with raises_at(path, 4, "value 2 is 'x'"):
        read_word_vectors(path)

    out = capsys.readouterr().out
    assert out and out.endswith("\n")


# Streaming


@pytest.fixture(scope="module")
def large_file(tmp_path_factory):
    """20k lines of 50 random values (some in exponent notation), with and without a header."""
    rng = np.random.default_rng(0)
    count, dim = 20000, 50
    values = rng.normal(scale=0.5, size=(count, dim))
    values[::7] *= 1e-6
    row_format = " ".join(["%.6g"] * dim)
    text = "".join(
        f"w{i} " + row_format % tuple(row) + "\n" for i, row in enumerate(values.tolist())
    )
    directory = tmp_path_factory.mktemp("large")
    (directory / "glove.txt").write_text(text)
    (directory / "word2vec.txt").write_text(f"{count} {dim}\n" + text)
    expected = np.loadtxt(
        directory / "glove.txt", dtype=np.float32, delimiter=" ", usecols=range(1, dim + 1)
    )
    return directory, expected


@pytest.mark.parametrize("name", ["glove.txt", "word2vec.txt"])
def test_a_large_file_reads_to_exact_float32_values_in_batches(large_file, monkeypatch, name):
    """Many small batches and a growing array (no header) or one sized by the header: exact values
    against an independent numpy parse."""
    monkeypatch.setattr(word_vectors_module, "_CHUNK_LINES", 512)
    directory, expected = large_file

    vectors = read(directory / name)

    assert vectors.vectors.shape == expected.shape == (20000, 50)
    assert vectors.vectors.dtype == np.float32
    assert vectors.vectors.flags.c_contiguous and vectors.vectors.flags.owndata
    np.testing.assert_array_equal(vectors.vectors, expected)
    assert vectors.words[:2] == ("w0", "w1") and vectors.words[-1] == "w19999"


def test_rows_kept_across_many_small_blocks_join_to_exact_values(tmp_path, monkeypatch):
    monkeypatch.setattr(word_vectors_module, "_CHUNK_LINES", 128)
    monkeypatch.setattr(word_vectors_module, "_BLOCK_BYTES", 4 * 4 * 300)  # 300 rows a block
    long_lines = [f"long{i} " + " ".join(["0.12345678901234567890"] * 4) for i in range(500)]
    short_lines = [f"s{i} {i} 1 2 3" for i in range(8000)]
    path = tmp_path / "uneven.txt"
    path.write_text("\n".join(long_lines + short_lines))

    vectors = read(path)

    assert len(vectors) == 8500
    assert vectors.vectors.flags.c_contiguous and vectors.vectors.flags.owndata
    np.testing.assert_array_equal(
        vectors.vectors[:500], np.float32([[0.12345678901234567890] * 4] * 500)
    )
    np.testing.assert_array_equal(vectors.vectors[500:, 0], np.arange(8000))
    np.testing.assert_array_equal(vectors.vectors[500:, 1:], np.float32([[1, 2, 3]] * 8000))


# WordVectors


def test_word_vectors_check_their_fields():
    with pytest.raises(ValueError, match="`vectors` must be a float32 numpy array of shape"):
        WordVectors(words=("a",), vectors=np.zeros((1, 2), np.float64), dim=2)
    with pytest.raises(ValueError, match="`words` must be distinct"):
        WordVectors(words=("a", "a"), vectors=np.zeros((2, 2), np.float32), dim=2)

    vectors = WordVectors(words=["a", "b"], vectors=np.eye(2, dtype=np.float32), dim=2)
    assert vectors.words == ("a", "b") and vectors.index == {"a": 0, "b": 1}


# embedding_rows


def make_vectors(words, dim=2):
    values = np.arange(len(words) * dim, dtype=np.float32).reshape(len(words), dim)
    return WordVectors(words=words, vectors=values, dim=dim)


def test_training_tokens_take_the_file_vectors_and_the_other_file_words_follow_in_file_order():
    vectors = make_vectors(("the", "film", "a", "movie", "plot", "dull"))
    tokens = ["[PAD]", "[UNK]", "film", "good", "the"]

    rows = embedding_rows(tokens, vectors)

    assert rows.found == 2
    np.testing.assert_array_equal(rows.initial[[2, 4]], vectors.vectors[[1, 0]])
    assert np.isnan(rows.initial[[0, 1, 3]]).all()
    assert rows.initial.dtype == np.float32 and rows.initial.shape == (5, 2)
    assert rows.extra_tokens == ("a", "movie", "plot", "dull")
    np.testing.assert_array_equal(rows.extra, vectors.vectors[2:])
    assert np.shares_memory(rows.extra, vectors.vectors)  # contiguous extra rows: a view
    assert rows.unusable == 0


def test_extra_rows_out_of_file_order_gaps_are_gathered():
    vectors = make_vectors(("a", "the", "b", "c"))

    rows = embedding_rows(["[PAD]", "[UNK]", "the"], vectors)

    assert rows.extra_tokens == ("a", "b", "c")
    np.testing.assert_array_equal(rows.extra, vectors.vectors[[0, 2, 3]])


def test_reserved_tokens_and_subword_pieces_never_take_a_file_vector():
    vectors = make_vectors(("[UNK]", "##ing", "the", "[PAD]", "##s", "[MASK]"))
    tokens = ["[PAD]", "[UNK]", "the", "##ing"]

    rows = embedding_rows(tokens, vectors)

    assert rows.found == 1
    assert np.isnan(rows.initial[[0, 1, 3]]).all()
    np.testing.assert_array_equal(rows.initial[2], vectors.vectors[2])
    # "[MASK]" is split by the tokenizer ("[", "MASK", "]"), so no text can ever reach it.
    assert rows.extra_tokens == ()
    assert rows.unusable == 5


def test_extra_tokens_leave_out_words_that_a_vocabulary_or_the_tokenizer_cannot_hold(tmp_path):
    words = (
        "ok",
        " lead",
        "trail ",
        "a\nb",
        "a\u2028b",
        "",
        "x y",
        ". . .",
        "u.s.",
        "don't",
        "##ab",
        "[UNK]",
        "na\u00efve",
        "e\u0301",
        "3.14",
        "\u2026",
        "\u2014",
    )
    vectors = make_vectors(words)
    tokens = ["[PAD]", "[UNK]", "film"]

    rows = embedding_rows(tokens, vectors)

    # "3.14" and "—" are one token each (a single script run); NFKC changes "e" + combining accent
    # and "…" ("..."), so no text can reach them either.
    assert rows.extra_tokens == ("ok", "na\u00efve", "3.14", "\u2014")
    assert rows.unusable == len(words) - 4
    assert rows.found + rows.unusable + len(rows.extra_tokens) == len(words)
    vocabulary_file = tmp_path / "vocab.txt"
    write_vocabulary(tokens + list(rows.extra_tokens), vocabulary_file)
    assert read_vocabulary(vocabulary_file) == tokens + list(rows.extra_tokens)
    text_tokens = tokenize(tf.constant(["ok na\u00efve 3.14 \u2014"]), lower_case=False)
    assert [token.decode() for token in text_tokens[0].numpy()] == list(rows.extra_tokens)


def test_read_vectors_and_a_built_vocabulary_give_a_writable_vocabulary(write, tmp_path):
    path = write(
        "glove.txt",
        b"the 1 1\n. . . 2 2\nfilm 3 3\nThe 4 4\nu.s. 5 5\nplot 6 6\nunseen 7 7\n",
    )
    tokens = build_vocabulary(["The film .", "the plot"], lower_case=True)

    rows = embedding_rows(tokens, read(path, lower_case=True))

    assert set(tokens) == {"[PAD]", "[UNK]", "the", "film", ".", "plot"}
    assert rows.found == 3
    assert rows.extra_tokens == ("unseen",)
    np.testing.assert_array_equal(rows.extra, [[7, 7]])
    assert rows.unusable == 2  # ". . ." and "u.s."
    write_vocabulary(tokens + list(rows.extra_tokens), tmp_path / "vocab.txt")


@pytest.mark.parametrize(
    "tokens, vectors, options, argument",
    [
        ("the film", make_vectors(("a",)), {}, "tokens"),
        (["[PAD]", 3], make_vectors(("a",)), {}, "tokens"),
        (["[PAD]", "[UNK]", "a", "a"], make_vectors(("a",)), {}, "tokens"),
        (["[PAD]"], {"a": [1.0]}, {}, "word_vectors"),
        (["[PAD]", "[UNK]"], make_vectors(("a",)), dict(num_reserved=-1), "num_reserved"),
        (["[PAD]", "[UNK]"], make_vectors(("a",)), dict(num_reserved=3), "num_reserved"),
    ],
)
def test_embedding_rows_rejects_invalid_arguments_naming_them(tokens, vectors, options, argument):
    with pytest.raises(ValueError, match=f"`{argument}` must be"):
        embedding_rows(tokens, vectors, **options)


def test_the_data_package_exports_the_word_vector_api():
    from keras_mtsa import data

    for name in ("read_word_vectors", "WordVectors", "peek_word_vector_dim", "embedding_rows"):
        assert name in data.__all__
        assert getattr(data, name) is getattr(word_vectors_module, name)
