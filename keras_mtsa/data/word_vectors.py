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

Memory: values are parsed from the bytes of batches of lines straight into one float32 array that
grows geometrically (in place where the allocator can), so 400,000 x 300 vectors need about 0.5 GB.
The batches are parsed by TensorFlow string ops on a few threads while the file is read.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import gzip
import os
import sys
import time
import warnings
import zlib

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
# A value is a decimal number (or nan/inf, refused afterwards as not finite). tf.strings.to_number
# also takes a few other forms (hexadecimal, surrounding tabs); a batch with a byte
# outside _NUMBER_BYTES is checked against this pattern, so that those forms are refused
# wherever they occur.
_NUMBER = r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?(?i:nan|inf|infinity)"
_NUMBER_BYTES = b" +-.0123456789eEnNaAiIfFtTyY"
_CHUNK_BYTES = 8 << 20
_CHUNK_LINES = 8192
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


def read_word_vectors(path, *, lower_case=False, max_words=None, on_error="raise", progress=True):
    """Reads a text file of word vectors (GloVe, word2vec text, fastText ``.vec``; gzip allowed).

    See the module docstring for the format, the normalization of words and the handling of
    malformed lines.

    Args:
        path: The file to read.
        lower_case: Whether to case-fold the words as the tokenizer does with ``lower_case=True``;
            use the setting of the vocabulary the vectors are for.
        max_words: Keep only the first this many distinct words (the most frequent ones), and stop
            reading there; None reads the whole file.
        on_error: ``"raise"`` or ``"skip"`` for malformed lines.
        progress: Whether to show progress over the bytes read (of the compressed file for gzip) on
            stderr: a line redrawn in place on a terminal, else a line per quarter of the file; both
            end with a summary line.

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
    max_words = check.positive_int("max_words", max_words, allow_none=True)
    check.choice("on_error", on_error, ON_ERROR_VALUES)
    check.boolean("progress", progress)
    return _Reader(os.fspath(path), lower_case, max_words, _ErrorPolicy(on_error), progress).read()


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


class _Chunk:
    """A batch of lines: for each, its number, word and value bytes, or the problem that
    makes it malformed."""

    __slots__ = ("line_numbers", "words", "values", "problems", "lines", "size")

    def __init__(self):
        self.line_numbers, self.words, self.values, self.problems, self.lines = [], [], [], [], []
        self.size = 0

    def add(self, line_number, word, values):
        self.line_numbers.append(line_number)
        self.words.append(word)
        self.values.append(values)
        self.problems.append(None)
        self.lines.append(None)
        self.size += len(values)

    def add_malformed(self, line_number, problem, line):
        self.line_numbers.append(line_number)
        self.words.append(None)
        self.values.append(None)
        self.problems.append(problem)
        self.lines.append(line)

    def full(self):
        return self.size >= _CHUNK_BYTES or len(self.line_numbers) >= _CHUNK_LINES

    def __len__(self):
        return len(self.line_numbers)


def _parse_chunk(chunk, dim, lower_case):
    """Parses a chunk's values and normalizes its words (runs on a worker thread).

    Returns:
        ``(values, value_rows, words, problems)``: the values of the lines that were split into a
        word and ``dim`` values, the row in ``values`` of each line (-1 for none), each line's
        normalized word (None for a malformed line), and each line's problem (None for a good line).
    """
    split = [i for i, values in enumerate(chunk.values) if values is not None]
    values, value_problems = _parse_values([chunk.values[i] for i in split], dim)
    problems = list(chunk.problems)
    decoded = []
    for row, i in enumerate(split):
        if row in value_problems:
            problems[i] = value_problems[row]
            continue
        try:
            decoded.append((i, chunk.words[i].decode("utf-8")))
        except UnicodeDecodeError as error:
            problems[i] = f"expected a UTF-8 word: {error}"
    words = [None] * len(chunk)
    if decoded:
        normalized = normalize(
            tf.constant([word for _, word in decoded], tf.string), lower_case=lower_case
        )
        for (i, _), word in zip(decoded, normalized.numpy(), strict=True):
            words[i] = word.decode("utf-8")
    value_rows = np.full(len(chunk), -1, np.int64)
    value_rows[split] = np.arange(len(split))
    return values, value_rows, words, problems


def _parse_values(lines, dim):
    """Parses value bytes (each exactly ``dim`` fields split by single spaces) into float32.

    Returns:
        ``(values, problems)``: a ``(len(lines), dim)`` float32 array and a dict from the index of
        each line with a value that is not a finite decimal number to a description of it.
    """
    if not lines:
        return np.empty((0, dim or 0), np.float32), {}
    fields = tf.strings.split(tf.constant(lines, tf.string), " ").flat_values
    values = None
    if not b"".join(lines).translate(None, _NUMBER_BYTES):
        try:
            values = tf.strings.to_number(fields, tf.float32).numpy()
        except tf.errors.InvalidArgumentError:
            pass  # a field such as "-" or "fine": found by the pattern below
    problems = {}
    if values is None:
        valid = tf.strings.regex_full_match(fields, _NUMBER)
        values = tf.strings.to_number(tf.where(valid, fields, "0"), tf.float32).numpy()
        valid = valid.numpy().reshape(len(lines), dim)
        for row in np.flatnonzero(~valid.all(axis=1)):
            column = int(np.argmin(valid[row]))
            field = lines[row].split(b" ")[column]
            problems[int(row)] = (
                f"expected {dim} numbers after the word, but value {column + 1} is {_text(field)!r}"
            )
    values = values.reshape(len(lines), dim)
    finite = np.isfinite(values)
    for row in np.flatnonzero(~finite.all(axis=1)):
        if int(row) not in problems:
            column = int(np.argmin(finite[row]))
            field = _text(lines[row].split(b" ")[column])
            problems[int(row)] = f"expected finite values, but value {column + 1} is {field!r}"
    return values, problems


class _Rows:
    """A float32 array of rows that grows geometrically (by half), resized in place where
    the allocator can."""

    def __init__(self, dim, capacity):
        self.array = np.empty((max(capacity, 1), dim), np.float32)
        self.size = 0

    def append(self, values):
        end = self.size + len(values)
        if end > len(self.array):
            # No view of the array exists outside this method, so resizing without the reference
            # check is safe; realloc keeps a large block where it is when it can.
            capacity = max(end, len(self.array) + len(self.array) // 2)
            self.array.resize((capacity, self.array.shape[1]), refcheck=False)
        self.array[self.size : end] = values
        self.size = end

    def finish(self):
        self.array.resize((self.size, self.array.shape[1]), refcheck=False)
        return self.array


class _Progress:
    """Progress over the bytes of a file on stderr: redrawn in place on a terminal,
    else once a quarter."""

    _INTERVAL_S = 0.25

    def __init__(self, enabled, path, total_bytes):
        self.stream = sys.stderr if enabled else None
        self.tty = enabled and _isatty(self.stream)
        self.name = os.path.basename(path)
        self.total = max(total_bytes, 1)
        self.start = time.monotonic()
        self.last_draw = 0.0
        self.quarter = 0
        self.width = 0

    def update(self, position, words):
        if self.stream is None:
            return
        if self.tty:
            now = time.monotonic()
            if now - self.last_draw < self._INTERVAL_S:
                return
            self.last_draw = now
            self._draw(self._status(position, words))
            return
        quarter = min(4 * position // self.total, 3)
        if quarter > self.quarter:
            self.quarter = quarter
            self.stream.write(self._status(position, words) + "\n")
            self.stream.flush()

    def _status(self, position, words):
        return (
            f"{self.name}: {100 * position / self.total:.0f}% of {self.total / 2**20:.1f} MiB, "
            f"{words} words"
        )

    def _draw(self, text):
        self.stream.write("\r" + text.ljust(self.width))
        self.width = len(text)
        self.stream.flush()

    def interrupt(self):
        """Ends a line drawn in place, so that an error message starts on a line of its own."""
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()

    def close(self, words, dim, lines, skipped, duplicates, stopped):
        if self.stream is None:
            return
        elapsed = time.monotonic() - self.start
        summary = f"{self.name}: {words} word vectors of dimension {dim}"
        if stopped:
            summary += " (max_words reached)"
        if skipped:
            summary += f", {skipped} malformed line{'s' if skipped != 1 else ''} skipped"
        if duplicates:
            summary += f", {duplicates} repeated word{'s' if duplicates != 1 else ''} left out"
        summary += f", {lines} lines in {elapsed:.1f} s ({lines / max(elapsed, 1e-9):.0f} lines/s)"
        if self.tty:
            self._draw(summary)
            self.stream.write("\n")
        else:
            self.stream.write(summary + "\n")
        self.stream.flush()


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _Reader:
    """The state of one `read_word_vectors` call."""

    def __init__(self, path, lower_case, max_words, policy, progress):
        self.path = path
        self.lower_case = lower_case
        self.max_words = max_words
        self.policy = policy
        self.show_progress = progress
        self.dim = None
        self.dim_source = None
        self.header = None
        self.header_line = None
        self.words = []
        self.index = {}
        self.rows = None
        self.duplicates = 0
        self.records = 0
        self.last_line = 0
        self.stopped = False

    def read(self):
        # The main thread splits lines while workers parse: TensorFlow's string ops release the GIL.
        workers = max(1, min(4, (os.cpu_count() or 1) - 1))
        with (
            _open(self.path) as (stream, raw),
            concurrent.futures.ThreadPoolExecutor(workers, "word_vectors") as executor,
        ):
            self.raw = raw
            self.compressed = stream is not raw
            self.total_bytes = max(os.fstat(raw.fileno()).st_size, 1)
            self.progress = _Progress(self.show_progress, self.path, self.total_bytes)
            try:
                self._read(stream, executor, in_flight=2 * workers)
                self._check_end()
            except BaseException:
                self.progress.interrupt()
                raise
            finally:
                executor.shutdown(wait=True, cancel_futures=True)
        vectors = self.rows.finish()
        self.progress.close(
            len(self.words),
            self.dim,
            self.last_line,
            self.policy.skipped,
            self.duplicates,
            self.stopped,
        )
        return WordVectors(
            words=tuple(self.words),
            vectors=vectors,
            dim=self.dim,
            path=self.path,
            skipped=self.policy.skipped,
            duplicates=self.duplicates,
            index=self.index,
        )

    def _read(self, stream, executor, in_flight):
        pending = collections.deque()
        chunk = _Chunk()
        lines = enumerate(stream, start=1)
        while True:
            item = _gzip_guard(self.path, self.last_line + 1, next, lines, None)
            if item is None:
                break
            line_number, line = item
            self.last_line = line_number
            if line_number == 1:
                line = line.removeprefix(_BOM)
            line = line.rstrip()
            if not line:
                continue
            if self.dim is None and not self._start(line_number, line, chunk):
                continue
            self.records += 1
            self._split(line_number, line, chunk)
            if chunk.full():
                pending.append(
                    (chunk, executor.submit(_parse_chunk, chunk, self.dim, self.lower_case))
                )
                chunk = _Chunk()
                self.progress.update(self.raw.tell(), len(self.words))
                while len(pending) > in_flight or (pending and pending[0][1].done()):
                    self._take(*pending.popleft())
                    if self.stopped:
                        return
        if len(chunk):
            pending.append((chunk, executor.submit(_parse_chunk, chunk, self.dim, self.lower_case)))
        while pending and not self.stopped:
            self._take(*pending.popleft())

    def _start(self, line_number, line, chunk):
        """Handles a line read before the dimension is known; returns whether it is a record."""
        if self.header is None and self.header_line is None and self.records == 0:
            self.header_line = line_number  # the first non-blank line: a header or the first record
            header = _header(line)
            if header is not None:
                self.header = header
                self.dim = _header_dim(self.path, line_number, header, line)
                self.dim_source = f"as the header on line {line_number} says"
                return False
        spaces = line.count(b" ")
        if not spaces:
            self.records += 1
            chunk.add_malformed(line_number, "expected a word followed by its values", line)
            return False
        self.dim = spaces
        self.dim_source = f"as on line {line_number}"
        return True

    def _split(self, line_number, line, chunk):
        """Adds a record to the chunk as its word and value bytes, or as malformed."""
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
            chunk.add_malformed(line_number, problem, line)
            return
        if not word:
            chunk.add_malformed(line_number, "expected a word before the values", line)
            return
        chunk.add(line_number, word, values)

    def _take(self, chunk, future):
        """Adds a parsed chunk's records in file order: malformed ones go to the error policy."""
        values, value_rows, words, problems = future.result()
        if self.rows is None and self.dim is not None:
            self.rows = _Rows(self.dim, self._capacity())
        keep = []
        for i, word in enumerate(words):
            if problems[i] is not None:
                line = chunk.lines[i]
                if line is None:
                    line = chunk.words[i] + b" " + chunk.values[i][:_SNIPPET_BYTES]
                self.policy.handle(
                    DataFormatError(self.path, chunk.line_numbers[i], problems[i], _text(line))
                )
                continue
            if word in self.index:
                self.duplicates += 1
                continue
            self.index[word] = len(self.words)
            self.words.append(word)
            keep.append(value_rows[i])
            if len(self.words) == self.max_words:
                self.stopped = True
                break
        if keep:
            self.rows.append(values if len(keep) == len(values) else values[keep])

    def _capacity(self):
        """Rows to allocate first: the header's count, else an estimate from the share of the file
        read so far, but no more than max_words or the file can hold."""
        if self.header is not None:
            capacity = self.header[0]
        else:
            share = max(self.raw.tell(), 1) / self.total_bytes
            capacity = int(1.05 * self.records / min(share, 1.0)) + 1024
        if self.max_words is not None:
            capacity = min(capacity, self.max_words)
        # Each record takes at least 2 * dim bytes (a one-character value and a separator per
        # value); text of numbers compresses far less than 64-fold, so a bogus header count
        # cannot allocate much more.
        expansion = 64 if self.compressed else 1
        return min(capacity, expansion * self.total_bytes // (2 * self.dim) + 1)

    def _check_end(self):
        if self.header_line is None:
            raise DataFormatError(self.path, 1, "expected word vectors, but the file is empty")
        if self.header is not None and self.records == 0:
            raise DataFormatError(
                self.path, self.header_line, "expected word vectors after the header, got none"
            )
        if not self.words:
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
