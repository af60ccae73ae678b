"""tf.data input pipelines that tokenize inside the graph with a `TextPreprocessor`.

Batches are grouped by length: each epoch draws a seeded permutation of the examples (a new one
every epoch, computed from the seed and the epoch's number, so a resumed or distributed run sees
exactly the batches of an uninterrupted single-device one), orders it by bucket (stable, so the
order within a bucket stays random), cuts it into full batches and shuffles the batches. The
preprocessor pads each batch to the smallest bucket that holds its longest text, so a batch carries
about as many tokens as its texts. At most one batch per epoch is short (none with
``drop_remainder``); a batch that straddles two buckets is padded to the larger.
"""

from __future__ import annotations

import random

import numpy as np
import tensorflow as tf

from keras_mtsa.data.readers import TextClassificationData
from keras_mtsa.data.readers import TextPairData


def make_classification_dataset(
    data,
    preprocessor,
    *,
    batch_size,
    shuffle=False,
    seed=None,
    drop_remainder=False,
    repeat=False,
    group_by_length=None,
    first_epoch=0,
    batches_per_epoch=None,
):
    """Builds a dataset of ``(token_ids, labels)`` batches.

    Args:
        data: A `TextClassificationData`.
        preprocessor: A `TextPreprocessor`: it pads each batch to its bucket,
            and its ``bucket_boundaries`` group the examples.
        batch_size: Positive int.
        shuffle: Whether to shuffle examples (over the whole dataset), with a
            new order each epoch.
        seed: Shuffle seed; the same seed gives the same sequence of batches.
            ``None``: a random one.
        drop_remainder: Whether to leave out ``len(data) % batch_size``
            examples each epoch (random ones when shuffling), so every batch
            has a static batch dimension.
        repeat: Whether to repeat indefinitely (epoch after epoch, each with
            its own order).
        group_by_length: Whether batches are made of texts of one bucket
            (the preprocessor's ``bucket_boundaries``); ``None`` (default):
            when shuffling. ``False`` keeps the data's order (for ``predict``);
            each batch is still padded to the bucket of its own longest text.
            ``True`` without shuffling suits evaluation (the order of the
            batches does not matter there).
        first_epoch: The number of the first epoch; with ``shuffle``, epoch
            ``k`` gets the same batches whatever epoch the dataset starts at
            (a resumed run passes the epoch it resumes at).
        batches_per_epoch: At most this many batches of each epoch (the
            first of its order: random ones when shuffling, the shortest
            texts' when grouping without shuffling); ``None``: all of them.

    Returns:
        A ``tf.data.Dataset`` of ``(ids, labels)``: ``int32`` tensors of shape
        ``(batch, length)`` and ``(batch,)``, ``length`` one of the
        preprocessor's bucket boundaries.
    """
    _check_data(data, TextClassificationData)
    examples = (tf.constant(data.texts, tf.string), tf.constant(data.labels, tf.int32))
    keys = (
        preprocessor.bucket_indices(data.texts)
        if _grouped(preprocessor, group_by_length, shuffle)
        else None
    )
    return _batched(
        examples,
        keys,
        lambda texts, labels: (_ids_for(preprocessor, texts), labels),
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        drop_remainder=drop_remainder,
        repeat=repeat,
        first_epoch=first_epoch,
        batches_per_epoch=batches_per_epoch,
    )


def make_pair_dataset(
    data,
    preprocessor,
    *,
    batch_size,
    shuffle=False,
    seed=None,
    drop_remainder=False,
    repeat=False,
    group_by_length=None,
    first_epoch=0,
    batches_per_epoch=None,
):
    """Builds a dataset of ``({"premise": ids, "hypothesis": ids}, labels)`` batches.

    Args:
        data: A `TextPairData`.
        preprocessor: See `make_classification_dataset`; both sentences use it.
        batch_size: See `make_classification_dataset`.
        shuffle: See `make_classification_dataset`.
        seed: See `make_classification_dataset`.
        drop_remainder: See `make_classification_dataset`.
        repeat: See `make_classification_dataset`.
        group_by_length: See `make_classification_dataset`; pairs are grouped
            by the buckets of both sentences (premise first).
        first_epoch: See `make_classification_dataset`.
        batches_per_epoch: See `make_classification_dataset`.

    Returns:
        A ``tf.data.Dataset``; ids are ``int32`` of shape ``(batch, length)``
        (each sentence padded to its own bucket), labels ``int32`` of shape
        ``(batch,)``.
    """
    _check_data(data, TextPairData)
    examples = (
        tf.constant(data.premises, tf.string),
        tf.constant(data.hypotheses, tf.string),
        tf.constant(data.labels, tf.int32),
    )
    keys = None
    if _grouped(preprocessor, group_by_length, shuffle):
        buckets = len(preprocessor.bucket_boundaries)
        keys = preprocessor.bucket_indices(data.premises) * buckets + preprocessor.bucket_indices(
            data.hypotheses
        )
    return _batched(
        examples,
        keys,
        lambda premises, hypotheses, labels: (
            {
                "premise": _ids_for(preprocessor, premises),
                "hypothesis": _ids_for(preprocessor, hypotheses),
            },
            labels,
        ),
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        drop_remainder=drop_remainder,
        repeat=repeat,
        first_epoch=first_epoch,
        batches_per_epoch=batches_per_epoch,
    )


def _ids_for(preprocessor, texts):
    ids = preprocessor(texts)
    # The preprocessor's signature has an unknown batch size; restore the
    # static one that drop_remainder gives the string batch.
    ids.set_shape(texts.shape.concatenate([None] * (ids.shape.rank - 1)))
    return ids


def _grouped(preprocessor, group_by_length, shuffle):
    """Whether to group by bucket (with one bucket there is nothing to group, nor to tokenize for
    it)."""
    grouped = shuffle if group_by_length is None else group_by_length
    return bool(grouped) and len(preprocessor.bucket_boundaries) > 1


def _check_data(data, expected_type):
    if not isinstance(data, expected_type):
        raise ValueError(
            f"`data` must be a {expected_type.__name__}. "
            f"Received: data of type {type(data).__name__}"
        )


def _check_count(name, value, *, minimum, or_none=False):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive int" if minimum == 1 else "a non-negative int"
        raise ValueError(
            f"`{name}` must be {kind}{' or None' if or_none else ''}. Received: {name}={value!r}"
        )


def _batched(
    examples,
    keys,
    preprocess,
    *,
    batch_size,
    shuffle,
    seed,
    drop_remainder,
    repeat,
    first_epoch,
    batches_per_epoch,
):
    _check_count("batch_size", batch_size, minimum=1)
    _check_count("first_epoch", first_epoch, minimum=0)
    if batches_per_epoch is not None:
        _check_count("batches_per_epoch", batches_per_epoch, minimum=1, or_none=True)
    if shuffle and seed is None:
        # Not Python's global generator: drawing from it would shift the seeds Keras draws from it
        # too.
        seed = random.SystemRandom().randrange(2**31)
    indices = _index_batches(
        len(examples[0]),
        keys,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        drop_remainder=drop_remainder,
        repeat=repeat,
        first_epoch=first_epoch,
        batches_per_epoch=batches_per_epoch,
    )

    def gather_and_preprocess(index):
        # Gathering a batch of indices, then mapping, lets the preprocessor tokenize a whole
        # batch in one vectorized call instead of one call per example.
        return preprocess(*(tf.gather(tensor, index) for tensor in examples))

    # A sequential map, prefetched: a batch is tokenized in one vectorized call, cheap beside a
    # training step, and under TensorFlow's deterministic ops (the training job's default) TF 2.21
    # rewrites a parallel map into a sequential one anyway, logging an error-level "NodeDef mentions
    # attribute use_unbounded_threadpool" line for every dataset it rewrites.
    return indices.map(gather_and_preprocess).prefetch(tf.data.AUTOTUNE)


def _index_batches(
    num_examples,
    keys,
    *,
    batch_size,
    shuffle,
    seed,
    drop_remainder,
    repeat,
    first_epoch,
    batches_per_epoch,
):
    """A dataset of int32 index vectors, one per batch, epoch after epoch (see the module
    docstring)."""
    kept = num_examples - num_examples % batch_size if drop_remainder else num_examples
    num_batches = -(-kept // batch_size)
    if repeat and not num_batches:  # an endless dataset of empty epochs would never yield a batch
        raise ValueError(
            f"`batch_size` must be at most the number of examples ({num_examples}) to repeat with "
            f"drop_remainder={drop_remainder}. Received: batch_size={batch_size}"
        )
    keys = tf.constant(
        np.zeros([num_examples], np.int32) if keys is None else np.asarray(keys, np.int32)
    )

    def epoch_batches(epoch):
        order = tf.range(num_examples, dtype=tf.int32)
        if shuffle:
            epoch_seed = tf.stack([tf.constant(seed, tf.int64), epoch])
            order = tf.random.experimental.stateless_shuffle(order, seed=epoch_seed)
        order = order[
            :kept
        ]  # the examples left out with drop_remainder are random ones when shuffling
        order = tf.gather(order, tf.argsort(tf.gather(keys, order), stable=True))
        # Rows of batch_size indices; -1 fills the last row.
        rows = tf.reshape(
            tf.pad(order, [[0, num_batches * batch_size - kept]], constant_values=-1),
            [-1, batch_size],
        )
        if shuffle:
            # A seed no epoch's permutation uses: (seed, -1 - epoch).
            rows_seed = tf.stack([tf.constant(seed, tf.int64), -1 - epoch])
            rows = tf.random.experimental.stateless_shuffle(rows, seed=rows_seed)
        if batches_per_epoch is not None:
            rows = rows[:batches_per_epoch]
        return tf.data.Dataset.from_tensor_slices(rows)

    last_epoch = np.iinfo(np.int64).max if repeat else first_epoch + 1
    rows = tf.data.Dataset.range(first_epoch, last_epoch).flat_map(epoch_batches)
    # flat_map hides the number of batches; Keras's progress bar and epoch ends want it.
    per_epoch = num_batches if batches_per_epoch is None else min(num_batches, batches_per_epoch)
    rows = rows.apply(
        tf.data.experimental.assert_cardinality(
            tf.data.INFINITE_CARDINALITY if repeat else per_epoch
        )
    )
    if drop_remainder:
        return rows  # every row is full: a static batch dimension
    return rows.map(lambda row: tf.boolean_mask(row, row >= 0))
