"""A streaming reader of pretrained word vectors in text form (GloVe, word2vec
text, fastText ``.vec``).

The format: one ``word v1 ... vd`` record per line, fields separated by single spaces. word2vec and
fastText write a first line ``count dim``, GloVe none; a first line of exactly two unsigned integers
is taken as that header. The dimension ``d`` is the header's, else that of the first record (whose
word must then not contain a space). A word may contain spaces (GloVe 840B has such entries): the
last ``d`` fields of a line are its values, the rest is the word. So a line with too few values is
malformed, but one with too many reads as a word with spaces; such a word can never be a token, and
`embedding_rows` leaves it out.

Conventions shared with `keras_mtsa.data.readers`:

* Files are read as bytes, line by line, and may be gzip-compressed (recognized by their first two
  bytes, whatever their name). A UTF-8 byte order mark on the first line, the line terminator and
  any trailing whitespace are removed; blank lines are ignored.
* A malformed line (a word that is not UTF-8, too few values, a value that is not a decimal number,
  or one that is not finite: nan, inf, or beyond the float32 range) raises `DataFormatError` naming
  the file and the 1-based line number, or with ``on_error="skip"`` it is dropped and counted in
  ``skipped``. Problems of the whole file (empty, no valid record, a header that contradicts the
  first record, a gzip stream cut short) always raise.

Words are normalized as the package's tokenizer normalizes text
(`keras_mtsa.data.preprocessing.normalize`: NFKC, control characters to spaces, and with
``lower_case=True`` the tokenizer's case folding), so a token of a vocabulary built with the same
``lower_case`` finds its vector. A word whose normalized form repeats an earlier one is dropped:
files are sorted by frequency, so the first is the most common ("Paris" before "paris" with
``lower_case=True``).

Reading is one pass over the lines, a batch of lines at a time: numpy's parser takes a batch's
values at once, TensorFlow normalizes its words, and only the rows kept are copied out, into blocks
joined at the end. Memory is that of the rows kept (4 bytes a value, 400,000 x 300 vectors: 0.5
GB) plus a batch and a block, whatever the size of the file; with ``words`` (the words to keep), a
file of millions of vectors streams through. Measurements on GloVe 6B: ``docs/word_vectors.md``.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gzip
import os
import re
import warnings
import zlib

import keras
import numpy as np
import tensorflow as tf

from keras_mtsa.data.preprocessing import RESERVED_TOKENS
from keras_mtsa.data.preprocessing import SUBWORD_PREFIX
from keras_mtsa.data.preprocessing import normalize
from keras_mtsa.data.preprocessing import tokenize
from keras_mtsa.data.readers import ON_ERROR_VALUES
from keras_mtsa.data.readers import DataFormatError
from keras_mtsa.data.readers import _ErrorPolicy
from keras_mtsa.ops import _checks as check

__all__ = [
    "EmbeddingRows",
    "WordVectors",
    "embedding_rows",
    "peek_word_vector_dim",
    "read_word_vectors",
]

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
# A value is a decimal number (or nan/inf, refused afterwards as not finite); a batch of only
# _NUMBER_BYTES is parsed at once, any other is checked value by value against _NUMBER.
_NUMBER = re.compile(
    rb"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?(?i:nan|inf|infinity)"
)
_NUMBER_BYTES = b" +-.0123456789eEnNaAiIfFtTyY"
_CHUNK_LINES = 8192
# At glibc's largest mmap threshold, so that each block is mapped and unmapped on its own.
_BLOCK_BYTES = 32 << 20
_PEEK_LINE_BYTES = 1 << 20
_TOKENIZE_BATCH = 1 << 15
_SNIPPET_BYTES = 200


@dataclasses.dataclass(frozen=True, eq=False)
class WordVectors:
    """Pretrained word vectors, in the order of their file.

    Attributes:
        words: The distinct (normalized) words, most frequent first as in the file.
        vectors: float32 array of shape ``(len(words), dim)``; row ``i`` is the
            vector of ``words[i]``.
        dim: The width of the vectors.
        path: The file read.
        skipped: Malformed lines skipped with ``on_error="skip"``.
        duplicates: Lines left out because their word (after normalization) came earlier.
        index: Maps each word to its row in ``vectors``.
    """

    words: tuple[str, ...] = dataclasses.field(repr=False)
    vectors: np.ndarray = dataclasses.field(repr=False)
    dim: int
    path: str = ""
    skipped: int = 0
    duplicates: int = 0
    index: dict[str, int] = dataclasses.field(default=None, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "words", tuple(self.words))
        if not all(isinstance(word, str) for word in self.words):
            raise ValueError("`words` must be strings. Received: a word of another type")
        vectors = self.vectors
        if (
            not isinstance(vectors, np.ndarray)
            or vectors.dtype != np.float32
            or vectors.shape != (len(self.words), self.dim)
        ):
            shape = getattr(vectors, "shape", None)
            dtype = getattr(vectors, "dtype", type(vectors).__name__)
            raise ValueError(
                f"`vectors` must be a float32 numpy array of shape (len(words), dim) = "
                f"({len(self.words)}, {self.dim}). Received: vectors with shape "
                f"{shape} and dtype {dtype}"
            )
        if self.index is None:
            index = {word: row for row, word in enumerate(self.words)}
            if len(index) != len(self.words):
                repeated = [w for w, n in collections.Counter(self.words).items() if n > 1]
                raise ValueError(
                    f"`words` must be distinct. Received: words repeating {repeated[:10]!r}"
                )
            object.__setattr__(self, "index", index)

    def __len__(self):
        return len(self.words)


@dataclasses.dataclass(frozen=True, eq=False)
class EmbeddingRows:
    """The rows of an embedding table that starts from pretrained vectors (see `embedding_rows`).

    Attributes:
        initial: float32 array of shape ``(len(tokens), dim)``: the file's vector of each
            training token found in it, NaN rows for the others (the reserved tokens included), to
            initialize randomly.
        extra_tokens: The file's words that are not training tokens and that the tokenizer can
            produce, in file order: the vocabulary's rows after the training tokens.
        extra: float32 array of shape ``(len(extra_tokens), dim)``, their vectors (the frozen rows);
            a view of the `WordVectors`' array where the extra words are consecutive in the file.
        found: Training tokens (reserved ones not counted) that took a vector from the file.
        unusable: The file's words that are neither a found training token nor an extra token: words
            a vocabulary cannot hold or the tokenizer never produces (with spaces, punctuation
            inside, ``"##"`` pieces, reserved tokens), and file words equal to a training token that
            takes no file vector (a reserved token or a ``"##"`` piece).
    """

    initial: np.ndarray = dataclasses.field(repr=False)
    extra_tokens: tuple[str, ...] = dataclasses.field(repr=False)
    extra: np.ndarray = dataclasses.field(repr=False)
    found: int
    unusable: int


def read_word_vectors(
    path, *, lower_case=False, words=None, max_words=None, on_error="raise", progress=True
):
    """Reads a text file of word vectors (GloVe, word2vec text, fastText ``.vec``; gzip allowed).

    See the module docstring for the format, the normalization of words and the handling of
    malformed lines.

    Args:
        path: The file to read.
        lower_case: Whether to case-fold the words as the tokenizer does with ``lower_case=True``;
            use the setting of the vocabulary the vectors are for.
        words: None, or the words to keep (a non-empty collection of strings, compared with the
            file's normalized words): the result holds only those found, in file order, and
            reading stops once all are found. Memory then grows with the rows kept, not with the
            file. Every line read is still checked (a malformed line raises or is skipped as
            without ``words``); ``duplicates`` counts repeats of kept words only.
        max_words: Keep only the first this many distinct words (the most frequent ones; with
            ``words``, of those), and stop reading there; None reads the whole file.
        on_error: ``"raise"`` or ``"skip"`` for malformed lines.
        progress: Whether to show a `keras.utils.Progbar` over the bytes read (of the compressed
            file for gzip), where Keras prints (standard output).

    Returns:
        A `WordVectors`.

    Raises:
        ValueError: An argument is invalid.
        FileNotFoundError: ``path`` does not exist.
        DataFormatError: A line is malformed and ``on_error="raise"``, or the file as a whole is not
            a file of word vectors (empty, no valid record, a header ``count dim`` whose dim
            contradicts the first record or, with ``on_error="raise"``, whose count differs from the
            number of records; a truncated gzip stream).
    """
    check.boolean("lower_case", lower_case)
    if words is not None:
        keep = None if isinstance(words, (str, bytes)) else frozenset(words)
        if not keep or not all(isinstance(word, str) for word in keep):
            raise ValueError(
                "`words` must be None or a non-empty collection of strings (the words to keep). "
                f"Received: words={_short(words)}"
            )
        words = keep
    max_words = check.positive_int("max_words", max_words, allow_none=True)
    check.choice("on_error", on_error, ON_ERROR_VALUES)
    check.boolean("progress", progress)
    reader = _Reader(os.fspath(path), lower_case, words, max_words, _ErrorPolicy(on_error))
    return reader.read(progress)


def peek_word_vector_dim(path):
    """The width of the vectors of a word-vector file, from its header or its first record only.

    Args:
        path: A file that `read_word_vectors` reads (gzip allowed).

    Returns:
        The dimension, a positive int.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataFormatError: The file is empty, or its first non-blank line is neither a ``count dim``
            header nor a word followed by values.
    """
    path = os.fspath(path)
    with _open(path) as (stream, _):
        line_number = 0
        while True:
            line = _gzip_guard(path, line_number + 1, stream.readline, _PEEK_LINE_BYTES)
            line_number += 1
            if not line:
                raise DataFormatError(path, 1, "expected word vectors, but the file is empty")
            if len(line) == _PEEK_LINE_BYTES and not line.endswith(b"\n"):
                raise DataFormatError(
                    path,
                    line_number,
                    f"expected a line of text, got more than {_PEEK_LINE_BYTES} bytes",
                )
            if line_number == 1:
                line = line.removeprefix(_BOM)
            line = line.rstrip()
            if line:
                break
    header = _header(line)
    if header is not None:
        return _header_dim(path, line_number, header, line)
    dim = line.count(b" ")
    if not dim:
        raise DataFormatError(
            path, line_number, "expected a word followed by its values", _text(line)
        )
    return dim


def embedding_rows(tokens, word_vectors, *, num_reserved=len(RESERVED_TOKENS)):
    """Lays out an embedding table for a training vocabulary and pretrained vectors.

    The training tokens keep their ids (trainable rows, from the file's vectors where it has them);
    the file's other words follow (frozen rows, for words that training never sees). Write
    ``list(tokens) + list(rows.extra_tokens)`` as the vocabulary: every extra token passes
    `keras_mtsa.data.preprocessing.write_vocabulary`.

    Args:
        tokens: The training vocabulary in id order (``"[PAD]"``, ``"[UNK]"``, then words), as from
            `keras_mtsa.data.preprocessing.build_vocabulary`.
        word_vectors: A `WordVectors` read with the vocabulary's ``lower_case``.
        num_reserved: How many leading tokens are reserved: they never take a file vector.

    Returns:
        An `EmbeddingRows`; each file word is counted once:
        ``found + unusable + len(extra_tokens) == len(word_vectors.words)``.

    Raises:
        ValueError: ``tokens`` is not a sequence of distinct strings, ``word_vectors`` is not a
            `WordVectors`, or ``num_reserved`` is not an integer in [0, len(tokens)].
    """
    if isinstance(tokens, (str, bytes)) or not all(isinstance(token, str) for token in tokens):
        raise ValueError(
            f"`tokens` must be a sequence of strings in id order. Received: tokens={_short(tokens)}"
        )
    tokens = list(tokens)
    if len(set(tokens)) != len(tokens):
        repeated = [token for token, n in collections.Counter(tokens).items() if n > 1]
        raise ValueError(f"`tokens` must be distinct. Received: tokens repeating {repeated[:10]!r}")
    if not isinstance(word_vectors, WordVectors):
        raise ValueError(
            "`word_vectors` must be a WordVectors (from read_word_vectors). "
            f"Received: word_vectors of type {type(word_vectors).__name__}"
        )
    num_reserved = check.non_negative_int("num_reserved", num_reserved)
    if num_reserved > len(tokens):
        raise ValueError(
            f"`num_reserved` must be at most len(tokens)={len(tokens)}. Received: "
            f"num_reserved={num_reserved}"
        )
    vectors, index = word_vectors.vectors, word_vectors.index
    token_rows, file_rows = [], []
    for token_row in range(num_reserved, len(tokens)):
        token = tokens[token_row]
        file_row = index.get(token)
        if file_row is not None and not token.startswith(SUBWORD_PREFIX):
            token_rows.append(token_row)
            file_rows.append(file_row)
    initial = np.full((len(tokens), word_vectors.dim), np.nan, np.float32)
    initial[token_rows] = vectors[file_rows]

    vocabulary = set(tokens)
    candidates = [row for row, word in enumerate(word_vectors.words) if word not in vocabulary]
    taken = _tokenizer_tokens([word_vectors.words[row] for row in candidates])
    extra_rows = [row for row, usable in zip(candidates, taken, strict=True) if usable]
    if extra_rows and extra_rows[-1] - extra_rows[0] + 1 == len(extra_rows):
        extra = vectors[extra_rows[0] : extra_rows[-1] + 1]  # a view
    else:
        extra = vectors[extra_rows]
    return EmbeddingRows(
        initial=initial,
        extra_tokens=tuple(word_vectors.words[row] for row in extra_rows),
        extra=extra,
        found=len(token_rows),
        unusable=len(word_vectors.words) - len(token_rows) - len(extra_rows),
    )


def _tokenizer_tokens(words):
    """For each word: whether a vocabulary can hold it and the tokenizer can
    produce it as one token."""
    usable = [
        bool(word)
        and word == word.strip()
        and len(word.splitlines()) == 1
        and word not in RESERVED_TOKENS
        and not word.startswith(SUBWORD_PREFIX)
        for word in words
    ]
    # The words are normalized already; case folding is idempotent, so lower_case=False tokenizes a
    # folded word as lower_case=True would.
    checked = [i for i, ok in enumerate(usable) if ok]
    for start in range(0, len(checked), _TOKENIZE_BATCH):
        batch = checked[start : start + _TOKENIZE_BATCH]
        encoded = [words[i].encode("utf-8") for i in batch]
        pieces = tokenize(tf.constant(encoded, tf.string), lower_case=False)
        lengths = pieces.row_lengths().numpy()
        starts = pieces.row_starts().numpy()
        flat = pieces.flat_values.numpy()
        for i, word, length, first in zip(batch, encoded, lengths, starts, strict=True):
            usable[i] = length == 1 and flat[first] == word
    return usable


# --------------------------------------------------------------------------------------------------
# Reading


@contextlib.contextmanager
def _open(path):
    """Yields ``(stream, raw)``: the decompressed byte stream and the file (its
    position: bytes read)."""
    with open(path, "rb") as raw:
        compressed = raw.read(len(_GZIP_MAGIC)) == _GZIP_MAGIC
        raw.seek(0)
        if not compressed:
            yield raw, raw
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
            yield stream, raw


def _gzip_guard(path, line_number, function, *args):
    try:
        return function(*args)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise DataFormatError(
            path, line_number, f"expected a complete gzip stream: {error}"
        ) from error


def _header(line):
    """``(count, dim)`` if the line is a word2vec/fastText header, else None."""
    fields = line.split(b" ")
    if len(fields) == 2 and all(field.isdigit() for field in fields):
        return int(fields[0]), int(fields[1])
    return None


def _header_dim(path, line_number, header, line):
    if header[1] < 1:
        raise DataFormatError(
            path, line_number, "expected a header 'count dim' with a positive dim", _text(line)
        )
    return header[1]


def _text(raw):
    return raw[:_SNIPPET_BYTES].decode("utf-8", "replace")


def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."


def _normalized(words, lower_case):
    if not words:
        return []
    normalized = normalize(tf.constant(words, tf.string), lower_case=lower_case)
    return [word.decode("utf-8") for word in normalized.numpy()]


def _parse_values(lines, dim):
    """Parses value bytes (each exactly ``dim`` fields split by single spaces) into float32.

    Returns:
        ``(values, problems)``: a ``(len(lines), dim)`` float32 array and a dict from the index of
        each line with a value that is not a finite decimal number to a description of it.
    """
    if not lines:
        return np.empty((0, dim or 0), np.float32), {}
    # numpy's C parser takes the batch at once. Within _NUMBER_BYTES it accepts what _NUMBER does
    # (checked on all 20,439 strings of one to three of those bytes), so the line by line pass
    # below only runs for a batch with a malformed line, to name it.
    if not b"".join(lines).translate(None, _NUMBER_BYTES):
        try:
            text = [line.decode("ascii") for line in lines]
            values = np.loadtxt(text, np.float32, delimiter=" ", comments=None, ndmin=2)
        except ValueError:
            values = None
        if values is not None and np.isfinite(values).all():
            return values, {}
    values = np.zeros((len(lines), dim), np.float32)
    problems = {}
    for row, line in enumerate(lines):
        fields = line.split(b" ")
        column = next((i for i, field in enumerate(fields) if not _NUMBER.fullmatch(field)), None)
        if column is not None:
            field = _text(fields[column])
            problems[row] = (
                f"expected {dim} numbers after the word, but value {column + 1} is {field!r}"
            )
            continue
        with np.errstate(over="ignore"):  # beyond the float32 range: inf, refused below
            values[row] = np.array([float(field) for field in fields]).astype(np.float32)
        finite = np.isfinite(values[row])
        if not finite.all():
            column = int(np.argmin(finite))
            field = _text(fields[column])
            problems[row] = f"expected finite values, but value {column + 1} is {field!r}"
    return values, problems


class _Blocks:
    """Rows appended into blocks of a fixed size, joined into one array at the end.

    Blocks are allocated uninitialized and large enough for the allocator to map them on their
    own, so pages count once written and a block is given back when freed: memory is that of the
    rows kept plus at most one block, whatever the size of the file.
    """

    def __init__(self, dim):
        self.dim = dim
        self.block_rows = max(1, _BLOCK_BYTES // (4 * dim))
        self.blocks = []
        self.size = 0

    def append(self, values):
        start = 0
        while start < len(values):
            offset = self.size % self.block_rows
            if offset == 0:
                self.blocks.append(np.empty((self.block_rows, self.dim), np.float32))
            count = min(len(values) - start, self.block_rows - offset)
            self.blocks[-1][offset : offset + count] = values[start : start + count]
            start += count
            self.size += count

    def finish(self):
        array = np.empty((self.size, self.dim), np.float32)
        for start in range(0, self.size, self.block_rows):
            rows = array[start : start + self.block_rows]
            rows[:] = self.blocks.pop(0)[: len(rows)]
        return array


class _Reader:
    """The state of one `read_word_vectors` call: one pass over the lines, a batch at a time."""

    def __init__(self, path, lower_case, keep, max_words, policy):
        self.path = path
        self.lower_case = lower_case
        self.keep = keep
        # With `keep`, reading stops once every word in it is found.
        limits = [limit for limit in (max_words, keep and len(keep)) if limit is not None]
        self.limit = min(limits) if limits else None
        self.policy = policy
        self.dim = None
        self.dim_source = None
        self.header = None
        self.header_line = None
        self.words = []
        self.index = {}
        self.rows = None
        self.records = 0
        self.valid = 0
        self.duplicates = 0
        self.stopped = False

    def read(self, progress):
        with _open(self.path) as (stream, raw):
            # In KiB: Keras shows the time per unit in whole microseconds at best.
            kib = max(1, -(-os.fstat(raw.fileno()).st_size // 1024))
            bar = keras.utils.Progbar(kib, verbose=int(progress), unit_name="KiB")
            shown = False
            try:
                for _ in self._batches(stream):
                    bar.update(raw.tell() // 1024)
                    shown = True
                self._check_end()
            except BaseException:
                if progress and shown:
                    print(flush=True)  # ends the bar's line, so that the error starts on its own
                raise
        bar.update(kib, finalize=True)
        return WordVectors(
            words=tuple(self.words),
            vectors=self.rows.finish(),
            dim=self.dim,
            path=self.path,
            skipped=self.policy.skipped,
            duplicates=self.duplicates,
            index=self.index,
        )

    def _batches(self, stream):
        """Reads the lines, a batch at a time; yields after each full batch."""
        batch = []
        line_number = 0
        lines = iter(stream)
        while True:
            line = _gzip_guard(self.path, line_number + 1, next, lines, None)
            if line is None:
                break
            line_number += 1
            if line_number == 1:
                line = line.removeprefix(_BOM)
            line = line.rstrip()
            record = self._split(line_number, line) if line else None
            if record is None:
                continue
            batch.append(record)
            if len(batch) == _CHUNK_LINES:
                self._take(batch)
                batch = []
                yield
                if self.stopped:
                    return
        self._take(batch)

    def _split(self, line_number, line):
        """A line as ``(line_number, line, word, values, problem)``: its word and value bytes, or
        the problem that makes it malformed; None for the header."""
        if self.header_line is None:
            self.header_line = line_number  # the first non-blank line: a header or the first record
            header = _header(line)
            if header is not None:
                self.header = header
                self.dim = _header_dim(self.path, line_number, header, line)
                self.dim_source = f"as the header on line {line_number} says"
                return None
        self.records += 1
        if self.dim is None:
            if not line.count(b" "):
                return line_number, line, None, None, "expected a word followed by its values"
            self.dim = line.count(b" ")
            self.dim_source = f"as on line {line_number}"
        dim = self.dim
        word, _, values = line.partition(b" ")
        spaces = values.count(b" ")
        if spaces > dim - 1:
            if self.header is not None and self.records == 1:
                raise DataFormatError(
                    self.path,
                    line_number,
                    f"the header on line {self.header_line} says {dim} values per word, but the "
                    f"first record has {spaces + 1} after its first word",
                    _text(line),
                )
            word = line.rsplit(b" ", dim)[0]  # a word with spaces
            values = line[len(word) + 1 :]
        elif spaces < dim - 1 or not values:
            count = spaces + 1 if values else 0
            problem = f"expected {dim} values after the word {self.dim_source}, got {count}"
            return line_number, line, None, None, problem
        if not word:
            return line_number, line, None, None, "expected a word before the values"
        return line_number, line, word, values, None

    def _take(self, batch):
        """Parses a batch and keeps its new words in file order; malformed lines go to the error
        policy in file order."""
        split = [record for record in batch if record[4] is None]
        values, problems = _parse_values([record[3] for record in split], self.dim)
        decoded = {}
        for row, record in enumerate(split):
            if row not in problems:
                try:
                    decoded[row] = record[2].decode("utf-8")
                except UnicodeDecodeError as error:
                    problems[row] = f"expected a UTF-8 word: {error}"
        words = dict(zip(decoded, _normalized(list(decoded.values()), self.lower_case)))
        if self.rows is None and self.dim is not None:
            self.rows = _Blocks(self.dim)
        kept = []
        row = -1
        for line_number, line, _, _, problem in batch:
            if problem is None:
                row += 1
                problem = problems.get(row)
            if problem is not None:
                self.policy.handle(DataFormatError(self.path, line_number, problem, _text(line)))
                continue
            self.valid += 1
            word = words[row]
            if self.keep is not None and word not in self.keep:
                continue
            if word in self.index:
                self.duplicates += 1
                continue
            self.index[word] = len(self.words)
            self.words.append(word)
            kept.append(row)
            if len(self.words) == self.limit:
                self.stopped = True
                break
        if kept:
            self.rows.append(values[kept])

    def _check_end(self):
        if self.header_line is None:
            raise DataFormatError(self.path, 1, "expected word vectors, but the file is empty")
        if self.header is not None and self.records == 0:
            raise DataFormatError(
                self.path, self.header_line, "expected word vectors after the header, got none"
            )
        if not self.valid:
            raise DataFormatError(
                self.path,
                self.header_line,
                f"expected word vectors, but none of the {self.records} records is valid "
                f"({self.policy.skipped} malformed lines skipped)",
            )
        if self.header is not None and not self.stopped and self.records != self.header[0]:
            problem = (
                f"the header says {self.header[0]} words, but the file has {self.records} records "
                "(is it cut short?)"
            )
            if self.policy.raise_errors:
                raise DataFormatError(self.path, self.header_line, problem)
            warnings.warn(f"{self.path}, line {self.header_line}: {problem}", stacklevel=4)
