"""Text-to-token-id preprocessing in TensorFlow graph ops, exportable in a SavedModel.

The same graph tokenizer (`tokenize`) builds the vocabulary, feeds training
through tf.data, and runs at serving time inside the exported model, so the
three can never disagree about what a token is.

`TextPreprocessor.__call__` maps a batch of raw strings to ``int32`` ids:

1. truncate each string to ``max_input_bytes`` bytes, bounding the cost of
   arbitrarily long requests;
2. repair invalid UTF-8 (including a character cut by step 1) with U+FFFD;
3. NFKC-normalize and, with ``lower_case``, case-fold;
4. replace control characters with spaces;
5. split on whitespace, then split each piece where its Unicode script
   changes, which separates punctuation, emoji and mixed scripts from words;
6. look tokens up in the vocabulary (unknown tokens get ``UNK_ID``) or, with
   ``subwords=True``, split each token into WordPiece subwords (a learned
   vocabulary of whole words and ``##``-prefixed word pieces, so rare and
   unseen words keep their known parts), then pad or truncate to
   ``max_length`` with ``PAD_ID``.

Ops in the graph: besides core TensorFlow ops (Substr, UnicodeTranscode,
StaticRegexReplace, UnicodeDecodeWithOffsets, UnicodeEncode, HashTableV2,
InitializeTableFromTextFileV2, LookupTableFindV2, ragged ops), the exported
functions use these tensorflow-text ops (op types as they appear in the saved
graph), which a serving binary must link, and which plain TensorFlow only
knows after ``import tensorflow_text``:

* ``NormalizeUTF8``
* ``CaseFoldUTF8`` (only with ``lower_case=True`` or ``case_fallback=True``)
* ``TFText>WhitespaceTokenizeWithOffsetsV2``
* ``UnicodeScriptTokenizeWithOffsets``
* ``WordpieceTokenizeWithOffsets`` (only with ``subwords=True``)
"""

from __future__ import annotations

import collections
import itertools
import os

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from keras_mtsa.data.buckets import bucket_index
from keras_mtsa.data.buckets import check_bucket_boundaries
from keras_mtsa.data.buckets import choose_bucket_boundaries
from keras_mtsa.data.tables import text_file_table
from keras_mtsa.ops import _checks as check

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
RESERVED_TOKENS = (PAD_TOKEN, UNK_TOKEN)
PAD_ID = 0
UNK_ID = 1

_BATCH_SIZE = 1024
_DEFAULT_BYTES_PER_TOKEN = 64
AUTO_MAX_LENGTH_MULTIPLE = 8
AUTO_MAX_LENGTH_LIMIT = 256

# Tokenizer choice: UnicodeScriptTokenizer alone splits punctuation from words
# (right for SST/TREC text and for raw serving input like "great!"), but it
# joins runs of "Common"-script characters across whitespace, so "( 2x , 3x )"
# becomes "(2", "x", ",3", ... and ". . ." becomes "...". Splitting on
# whitespace first and then by script keeps whitespace a hard boundary while
# still separating "great" from "!" and "emoji" from "👍".
_WHITESPACE_TOKENIZER = tf_text.WhitespaceTokenizer()
_SCRIPT_TOKENIZER = tf_text.UnicodeScriptTokenizer()


def normalize(texts, *, lower_case=True, max_input_bytes=None):
    """Truncates, repairs, normalizes and cleans a batch of strings.

    Args:
        texts: 1-D string tensor.
        lower_case: Whether to case-fold after NFKC normalization.
        max_input_bytes: Keep at most this many leading bytes of each string;
            None keeps all.

    Returns:
        1-D string tensor of valid, normalized UTF-8.
    """
    if max_input_bytes is not None:
        texts = tf.strings.substr(texts, 0, max_input_bytes, unit="BYTE")
    # Replaces invalid bytes, including a multi-byte character cut in two by
    # the truncation above, so the ICU-based ops below never see bad UTF-8.
    texts = tf.strings.unicode_transcode(
        texts,
        input_encoding="UTF-8",
        output_encoding="UTF-8",
        errors="replace",
        replacement_char=0xFFFD,
    )
    texts = tf_text.normalize_utf8(texts, "NFKC")
    if lower_case:
        texts = tf_text.case_fold_utf8(texts)
    # Control characters (e.g. C1 codes from cp1252 text read as latin-1) carry
    # no meaning but would otherwise become tokens of their own.
    return tf.strings.regex_replace(texts, r"\p{Cc}", " ")


def tokenize(texts, *, lower_case=True, max_input_bytes=None):
    """Splits a batch of raw strings into tokens with graph ops.

    Args:
        texts: 1-D string tensor.
        lower_case: Whether to case-fold.
        max_input_bytes: Keep at most this many leading bytes of each string;
            None keeps all.

    Returns:
        ``tf.RaggedTensor`` of shape ``[batch, (tokens)]`` holding UTF-8 tokens.
    """
    texts = normalize(texts, lower_case=lower_case, max_input_bytes=max_input_bytes)
    words = _WHITESPACE_TOKENIZER.tokenize(texts)
    return _SCRIPT_TOKENIZER.tokenize(words).merge_dims(1, 2)


def _tokenize_in_batches(texts, lower_case):
    """Yields the token RaggedTensor of each batch of ``texts``, run eagerly."""
    texts = iter(texts)
    while batch := list(itertools.islice(texts, _BATCH_SIZE)):
        yield tokenize(tf.constant(batch, dtype=tf.string), lower_case=lower_case)


def build_vocabulary(texts, *, max_size=20000, min_count=1, lower_case=True, case_fallback=False):
    """Builds a vocabulary from texts using the graph tokenizer.

    Args:
        texts: Iterable of ``str``.
        max_size: Maximum vocabulary size, reserved tokens included.
        min_count: Minimum number of occurrences for a token to be kept.
        lower_case: Whether to case-fold; must match the `TextPreprocessor`.
        case_fallback: With ``lower_case=False``: also keep the case-folded form of rare tokens
            whose occurrences in all their casings reach ``min_count`` ("Denver" once and "denver"
            once keep "denver"), for a `TextPreprocessor` with ``case_fallback=True``. Only
            occurrences that are not kept as they are count, so every kept token is one that
            training sees.

    Returns:
        List of tokens: ``"[PAD]"`` (id 0), ``"[UNK]"`` (id 1), then tokens by
        descending count, ties in alphabetical (code point) order.

    Raises:
        ValueError: ``max_size`` < 2 or ``min_count`` < 1.
    """
    check.int_at_least("max_size", max_size, len(RESERVED_TOKENS), " (the reserved tokens)")
    check.int_at_least("min_count", min_count, 1)
    _check_case_fallback(case_fallback, lower_case)
    counts = collections.Counter()
    folded = {}
    for tokens in _tokenize_in_batches(texts, lower_case):
        unique, _, batch_counts = tf.unique_with_counts(tokens.flat_values)
        unique_tokens = unique.numpy().tolist()
        counts.update(dict(zip(unique_tokens, batch_counts.numpy().tolist(), strict=True)))
        if case_fallback:
            folded.update(
                zip(unique_tokens, tf_text.case_fold_utf8(unique).numpy().tolist(), strict=True)
            )
    kept = {token: count for token, count in counts.items() if count >= min_count}
    if case_fallback:
        # Only the occurrences that will fall back count for a folded form, so that every kept
        # token is one that training sees at least min_count times ("Paris" kept twice does not
        # add an untrained "paris").
        fallback_counts = collections.Counter()
        for token, count in counts.items():
            if token not in kept:
                fallback_counts[folded[token]] += count
        for token, count in fallback_counts.items():
            if (
                count >= min_count and token not in kept
            ):  # a kept token keeps its own count (and rank)
                kept[token] = count
    kept = sorted(
        ((token.decode("utf-8"), count) for token, count in kept.items()),
        key=lambda item: (-item[1], item[0]),
    )
    words = [token for token, _ in kept if token not in RESERVED_TOKENS]
    return list(RESERVED_TOKENS) + words[: max_size - len(RESERVED_TOKENS)]


def _check_case_fallback(case_fallback, lower_case, subwords=False):
    check.boolean("case_fallback", case_fallback)
    if case_fallback and (lower_case or subwords):
        raise ValueError(
            "case_fallback=True needs lower_case=False and subwords=False (it looks a cased word "
            f"up again case-folded). Received: lower_case={lower_case!r}, subwords={subwords!r}"
        )


SUBWORD_PREFIX = "##"


def build_wordpiece_vocabulary(texts, *, max_size=8000, min_count=2, lower_case=True):
    """Learns a WordPiece vocabulary from texts, over the graph tokenizer's tokens.

    Uses tensorflow-text's ``bert_vocab_from_dataset`` learner: whole words
    and ``##``-prefixed continuation pieces, chosen so that the training text
    needs few pieces per word.

    Args:
        texts: Iterable of ``str``.
        max_size: Target vocabulary size, reserved tokens included (the learner
            may return fewer on a small corpus).
        min_count: The learner's lowest count for a word or piece.
        lower_case: Whether to case-fold; must match the `TextPreprocessor`.

    Returns:
        List of tokens: ``"[PAD]"`` (id 0), ``"[UNK]"`` (id 1), then the
        learned words and pieces.

    Raises:
        ValueError: ``max_size`` < 3 or ``min_count`` < 1.
    """
    from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset

    check.int_at_least(
        "max_size", max_size, len(RESERVED_TOKENS) + 1, " (the reserved tokens and one more)"
    )
    check.int_at_least("min_count", min_count, 1)
    # The learner splits on whitespace and punctuation itself; feeding it our tokens joined by
    # spaces makes its words the preprocessor's tokens.
    joined = [
        tf.strings.reduce_join(tokens, axis=-1, separator=" ")
        for tokens in _tokenize_in_batches(texts, lower_case)
    ]
    if not joined:
        return list(RESERVED_TOKENS)
    dataset = tf.data.Dataset.from_tensor_slices(tf.concat(joined, axis=0)).batch(_BATCH_SIZE)
    learned = bert_vocab_from_dataset.bert_vocab_from_dataset(
        dataset,
        vocab_size=max_size,
        reserved_tokens=list(RESERVED_TOKENS),
        bert_tokenizer_params={"lower_case": False},  # already normalized and case-folded above
        learn_params={"lower_thresh": min_count},
    )
    words = [
        token
        for token in learned
        if token not in RESERVED_TOKENS and token.strip() == token and token
    ]
    return list(RESERVED_TOKENS) + list(dict.fromkeys(words))[: max_size - len(RESERVED_TOKENS)]


def compute_max_length(texts, *, percentile=99.0, lower_case=True):
    """Suggests a ``max_length``: the given percentile of token counts.

    Args:
        texts: Iterable of ``str``.
        percentile: Percentile in (0, 100] of the per-text token counts.
        lower_case: Whether to case-fold (does not change counts in practice,
            but keeps tokenization identical to the preprocessor's).

    Returns:
        The percentile rounded up, at least 1.
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"`percentile` must be in (0, 100]. Received: percentile={percentile!r}")
    lengths = [tokens.row_lengths().numpy() for tokens in _tokenize_in_batches(texts, lower_case)]
    if not lengths:
        raise ValueError("texts must not be empty.")
    return max(1, int(np.ceil(np.percentile(np.concatenate(lengths), percentile))))


def fitting_max_length(longest, *, multiple=AUTO_MAX_LENGTH_MULTIPLE, limit=AUTO_MAX_LENGTH_LIMIT):
    """A ``max_length`` that truncates no text of ``longest`` tokens, unless that exceeds ``limit``.

    Rounded up to a multiple of ``multiple``, so that nearby corpora share compiled shapes; at most
    ``limit``, so that one outlier cannot make every batch long (attention costs grow with the
    square of the length).
    """
    if isinstance(longest, bool) or not isinstance(longest, (int, np.integer)) or longest < 0:
        raise ValueError(f"`longest` must be a non-negative integer. Received: longest={longest!r}")
    rounded = max(multiple, -(-int(longest) // multiple) * multiple)
    return min(rounded, limit)


def _token_counts(preprocessor, texts):
    """The number of tokens (or subwords) `preprocessor` makes of each of ``texts``, not
    truncated."""
    texts = list(texts)
    counts = [
        preprocessor.tokenize(tf.constant(texts[start : start + _BATCH_SIZE], tf.string))
        .row_lengths()
        .numpy()
        for start in range(0, len(texts), _BATCH_SIZE)
    ]
    return np.concatenate(counts).astype(np.int64) if counts else np.zeros([0], np.int64)


def write_vocabulary(tokens, path):
    """Writes tokens one per line (UTF-8), in id order.

    Raises:
        ValueError: A token is empty, contains a line break, has whitespace at
            either end (it could not be read back as the same line), or is
            repeated.
    """
    tokens = list(tokens)
    _check_tokens(tokens, path)
    with open(path, "w", encoding="utf-8", newline="\n") as stream:
        stream.writelines(token + "\n" for token in tokens)


def read_vocabulary(path):
    """Reads a vocabulary written by `write_vocabulary`.

    Returns:
        The list of tokens in id order.

    Raises:
        ValueError: A line is not a valid token, or a token is repeated.
    """
    with open(path, encoding="utf-8", newline="\n") as stream:
        tokens = [line.removesuffix("\n") for line in stream]
    _check_tokens(tokens, path)
    return tokens


def _check_tokens(tokens, path):
    for token in tokens:
        # The lookup table reads one token per line, so a token must survive
        # that round trip unchanged.
        if not token or token != token.strip() or len(token.splitlines()) != 1:
            raise ValueError(
                f"Vocabulary {os.fspath(path)}: tokens must be non-empty single lines without "
                f"surrounding whitespace. Received: token={token!r}"
            )
    duplicates = [token for token, count in collections.Counter(tokens).items() if count > 1]
    if duplicates:
        raise ValueError(f"Vocabulary {os.fspath(path)} repeats tokens {duplicates[:10]!r}.")


class TextPreprocessor(tf.Module):
    """Maps raw strings to padded token ids with graph ops only.

    The vocabulary file is tracked as a SavedModel asset: saving a model that
    holds this module copies the file into ``assets/`` and the loaded model
    reads it from there.

    Example:
        >>> preprocessor = TextPreprocessor("vocab.txt", max_length=64)
        >>> ids = preprocessor(tf.constant(["A fine film ."]))  # (1, 64) int32

    Attributes:
        vocabulary_file: The ``tf.saved_model.Asset`` of the vocabulary file.
        vocabulary_size: Number of tokens, reserved ones included.
        max_length: The longest output row (longer texts are truncated).
        bucket_boundaries: The padded lengths a batch may have, ending with ``max_length``: a
            batch is padded to the smallest one that holds its longest text.
        lower_case: Whether input is case-folded.
        max_input_bytes: Bytes of each input string that are looked at.
        subwords: Whether tokens are split into WordPiece subwords.
        case_fallback: Whether a cased token missing from the vocabulary is looked up again
            case-folded.
    """

    def __init__(
        self,
        vocabulary_file,
        max_length,
        *,
        lower_case=True,
        max_input_bytes=None,
        subwords=False,
        case_fallback=False,
        bucket_boundaries=None,
        name=None,
    ):
        """Creates the preprocessor.

        Args:
            vocabulary_file: Path of a vocabulary written by `write_vocabulary`
                whose first tokens are ``"[PAD]"`` and ``"[UNK]"``.
            max_length: Positive int, the most ids per text.
            lower_case: Whether to case-fold; must match the vocabulary.
            max_input_bytes: Positive int; longer inputs are cut to this many
                bytes before anything else. Defaults to ``64 * max_length``.
            subwords: Whether to split tokens into WordPiece subwords with the
                vocabulary (one from `build_wordpiece_vocabulary`): a token
                becomes its longest known prefix, then ``##``-prefixed pieces;
                a token with no such split becomes ``"[UNK]"``.
            case_fallback: With ``lower_case=False``: a token missing from the vocabulary
                ("Denver") is looked up again case-folded ("denver") before it becomes ``"[UNK]"``
                (a vocabulary from `build_vocabulary` with ``case_fallback=True`` holds such folded
                forms).
            bucket_boundaries: Increasing padded lengths, at most ``max_length`` (appended if
                missing); each batch is padded to the smallest that holds its longest text
                (`keras_mtsa.data.buckets`). ``None``: every batch is padded to ``max_length``.
            name: Module name.
        """
        super().__init__(name=name)
        check.boolean("subwords", subwords)
        _check_case_fallback(case_fallback, lower_case, subwords)
        max_length = check.positive_int("max_length", max_length)
        max_input_bytes = check.positive_int("max_input_bytes", max_input_bytes, allow_none=True)
        if max_input_bytes is None:
            max_input_bytes = _DEFAULT_BYTES_PER_TOKEN * max_length
        vocabulary_file = os.fspath(vocabulary_file)
        tokens = read_vocabulary(vocabulary_file)
        if tuple(tokens[: len(RESERVED_TOKENS)]) != RESERVED_TOKENS:
            raise ValueError(
                f"vocabulary_file must start with the reserved tokens {RESERVED_TOKENS}, "
                f"but {vocabulary_file} starts with {tokens[:2]!r}."
            )
        self.max_length = max_length
        self.bucket_boundaries = check_bucket_boundaries(bucket_boundaries, max_length)
        self.lower_case = lower_case
        self.max_input_bytes = max_input_bytes
        self.vocabulary_size = len(tokens)
        self._vocabulary_path = vocabulary_file
        self.vocabulary_file = tf.saved_model.Asset(vocabulary_file)
        self._table = text_file_table(
            self.vocabulary_file,
            key_dtype=tf.string,
            key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
            value_dtype=tf.int64,
            value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
            default_value=UNK_ID,
            kind="vocabulary",
        )
        self.subwords = subwords
        self.case_fallback = case_fallback
        if subwords:
            # String pieces (unknown words as "[UNK]"), looked up in the same table as whole words
            # are.
            self._wordpiece = tf_text.WordpieceTokenizer(
                self._table,
                suffix_indicator=SUBWORD_PREFIX,
                max_bytes_per_word=100,
                token_out_type=tf.string,
                unknown_token=UNK_TOKEN,
            )

    @classmethod
    def from_texts(
        cls,
        texts,
        vocabulary_file,
        max_length,
        *,
        max_size=20000,
        min_count=1,
        lower_case=True,
        max_input_bytes=None,
        subwords=False,
        case_fallback=False,
        bucket_boundaries=None,
        name=None,
    ):
        """Builds a vocabulary from ``texts``, writes it, and creates a preprocessor.

        Args:
            texts: Iterable of training texts.
            vocabulary_file: Path to write the vocabulary to.
            max_length: See `__init__`; ``None`` fits it to the texts (`fitting_max_length` of
                the longest one, counted in the preprocessor's own tokens or subwords).
            max_size: See `build_vocabulary`.
            min_count: See `build_vocabulary`.
            lower_case: Used for both the vocabulary and the preprocessor.
            max_input_bytes: See `__init__`.
            subwords: Learn a WordPiece vocabulary (`build_wordpiece_vocabulary`,
                ``max_size`` its target size) instead of a word vocabulary.
            case_fallback: See `__init__` and `build_vocabulary`.
            bucket_boundaries: See `__init__`; ``"auto"`` chooses them from the lengths of
                ``texts`` (`keras_mtsa.data.buckets.choose_bucket_boundaries`).
            name: Module name.

        Returns:
            A `TextPreprocessor`.
        """
        texts = list(texts)
        _check_case_fallback(case_fallback, lower_case, subwords)
        if subwords:
            tokens = build_wordpiece_vocabulary(
                texts, max_size=max_size, min_count=min_count, lower_case=lower_case
            )
        else:
            tokens = build_vocabulary(
                texts,
                max_size=max_size,
                min_count=min_count,
                lower_case=lower_case,
                case_fallback=case_fallback,
            )
        write_vocabulary(tokens, vocabulary_file)
        options = dict(
            lower_case=lower_case,
            max_input_bytes=max_input_bytes,
            subwords=subwords,
            case_fallback=case_fallback,
            name=name,
        )
        auto_buckets = isinstance(bucket_boundaries, str) and bucket_boundaries == "auto"
        if max_length is None or auto_buckets:
            # Tokenizing does not depend on max_length, so a provisional preprocessor can count
            # the tokens.
            counts = _token_counts(cls(vocabulary_file, AUTO_MAX_LENGTH_LIMIT, **options), texts)
            if max_length is None:
                max_length = fitting_max_length(int(counts.max(initial=0)))
            if auto_buckets:
                bucket_boundaries = choose_bucket_boundaries(counts, max_length)
        return cls(vocabulary_file, max_length, bucket_boundaries=bucket_boundaries, **options)

    def config(self):
        """Returns the constructor arguments, so ``TextPreprocessor(**config)`` recreates it."""
        return {
            "vocabulary_file": self._vocabulary_path,
            "max_length": self.max_length,
            "lower_case": self.lower_case,
            "max_input_bytes": self.max_input_bytes,
            "subwords": self.subwords,
            "case_fallback": self.case_fallback,
            "bucket_boundaries": list(self.bucket_boundaries),
            "name": self.name,
        }

    def token_counts(self, texts):
        """The number of ids each of ``texts`` gets (its tokens, at most ``max_length``), as
        numpy int64."""
        return np.minimum(_token_counts(self, texts), self.max_length)

    def bucket_indices(self, texts):
        """The index in ``bucket_boundaries`` of the bucket each of ``texts`` is padded to on
        its own."""
        return bucket_index(self.token_counts(texts), self.bucket_boundaries)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, texts):
        """Returns the string tokens (or subwords) of each text, as a ``[batch, (tokens)]``
        RaggedTensor."""
        return self._tokens(texts)

    def _tokens(self, texts):
        tokens = tokenize(texts, lower_case=self.lower_case, max_input_bytes=self.max_input_bytes)
        if self.subwords:
            tokens = self._wordpiece.tokenize(tokens).merge_dims(1, 2)
        return tokens

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, texts):
        """Maps a batch of raw strings to token ids.

        Args:
            texts: ``tf.string`` tensor of shape ``[batch]``; any bytes.

        Returns:
            ``tf.int32`` tensor of shape ``[batch, length]``: ids of the first ``max_length``
            tokens, then ``PAD_ID``; ``length`` is the smallest of ``bucket_boundaries`` that holds
            the batch's longest text (static ``max_length`` with the single bucket
            ``(max_length,)``).
        """
        ids = tf.ragged.map_flat_values(self._lookup, self._tokens(texts))
        ids = tf.cast(ids, tf.int32)
        if len(self.bucket_boundaries) == 1:
            return ids.to_tensor(default_value=PAD_ID, shape=[None, self.max_length])
        longest = tf.minimum(
            tf.reduce_max(tf.pad(ids.row_lengths(), [[0, 1]])), self.max_length
        )  # 0 if empty
        boundaries = tf.constant(self.bucket_boundaries, tf.int64)
        length = tf.gather(boundaries, tf.searchsorted(boundaries, longest[None], side="left"))[0]
        return ids.to_tensor(default_value=PAD_ID, shape=tf.stack([ids.nrows(), length]))

    def _lookup(self, tokens):
        ids = self._table.lookup(tokens)
        if self.case_fallback:
            folded_ids = self._table.lookup(tf_text.case_fold_utf8(tokens))
            ids = tf.where(ids == UNK_ID, folded_ids, ids)
        return ids
