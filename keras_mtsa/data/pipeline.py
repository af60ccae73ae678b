"""tf.data input pipelines that tokenize inside the graph with a `TextPreprocessor`."""

from __future__ import annotations

import tensorflow as tf

from keras_mtsa.data.readers import TextClassificationData, TextPairData


def make_classification_dataset(
    data, preprocessor, *, batch_size, shuffle=False, seed=None, drop_remainder=False, repeat=False
):
    """Builds a dataset of ``(token_ids, labels)`` batches.

    Args:
        data: A `TextClassificationData`.
        preprocessor: A `TextPreprocessor` (or any callable mapping a 1-D string
            tensor to ``[batch, max_length]`` ids in graph mode).
        batch_size: Positive int.
        shuffle: Whether to shuffle examples (over the whole dataset), with a
            new order each epoch.
        seed: Shuffle seed; the same seed gives the same sequence of batches.
        drop_remainder: Whether to drop a last batch smaller than
            ``batch_size``, so every batch has a static batch dimension.
        repeat: Whether to repeat indefinitely.

    Returns:
        A ``tf.data.Dataset`` of ``(ids, labels)``: ``int32`` tensors of shape
        ``(batch, max_length)`` and ``(batch,)``.
    """
    _check_data(data, TextClassificationData)
    examples = (tf.constant(data.texts, tf.string), tf.constant(data.labels, tf.int32))
    return _batched(
        examples,
        lambda texts, labels: (_ids_for(preprocessor, texts), labels),
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        drop_remainder=drop_remainder,
        repeat=repeat,
    )


def make_pair_dataset(data, preprocessor, *, batch_size, shuffle=False, seed=None, drop_remainder=False, repeat=False):
    """Builds a dataset of ``({"premise": ids, "hypothesis": ids}, labels)`` batches.

    Args:
        data: A `TextPairData`.
        preprocessor: See `make_classification_dataset`; both sentences use it.
        batch_size: See `make_classification_dataset`.
        shuffle: See `make_classification_dataset`.
        seed: See `make_classification_dataset`.
        drop_remainder: See `make_classification_dataset`.
        repeat: See `make_classification_dataset`.

    Returns:
        A ``tf.data.Dataset``; ids are ``int32`` of shape ``(batch, max_length)``,
        labels ``int32`` of shape ``(batch,)``.
    """
    _check_data(data, TextPairData)
    examples = (
        tf.constant(data.premises, tf.string),
        tf.constant(data.hypotheses, tf.string),
        tf.constant(data.labels, tf.int32),
    )
    return _batched(
        examples,
        lambda premises, hypotheses, labels: (
            {"premise": _ids_for(preprocessor, premises), "hypothesis": _ids_for(preprocessor, hypotheses)},
            labels,
        ),
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        drop_remainder=drop_remainder,
        repeat=repeat,
    )


def _ids_for(preprocessor, texts):
    ids = preprocessor(texts)
    # The preprocessor's signature has an unknown batch size; restore the
    # static one that drop_remainder gives the string batch.
    ids.set_shape(texts.shape.concatenate([None] * (ids.shape.rank - 1)))
    return ids


def _check_data(data, expected_type):
    if not isinstance(data, expected_type):
        raise ValueError(f"data must be a {expected_type.__name__}, got {type(data).__name__}.")


def _batched(examples, preprocess, *, batch_size, shuffle, seed, drop_remainder, repeat):
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    dataset = tf.data.Dataset.from_tensor_slices(examples)
    if shuffle:
        # A buffer as large as the data gives a uniform shuffle; the examples
        # are already in memory, so it costs only indices and string handles.
        dataset = dataset.shuffle(max(1, len(examples[0])), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    # Batching before mapping lets the preprocessor tokenize a whole batch in
    # one vectorized call instead of one call per example.
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)
