"""Lookup tables over text files that TF Serving's loader initializes, and that nothing else reuses.

A SavedModel's table must be a named `HashTableV2`: TF Serving's C++ loader (and every
Session-based loader: the TF C API, TF Java, `tf.compat.v1.saved_model.loader`) runs
`__saved_model_init_op` once, and the signatures then read the table by its resource. An anonymous
table (`experimental_is_anonymous=True`) is created anew by every op that asks for it, so the init
op fills one instance and every request reads an empty one ("Table not initialized"); only
`tf.saved_model.load`, which rebuilds tables from the object graph, serves it.

A named table is shared by every table of that name in a process, and initializing an initialized
one does nothing. TensorFlow names a file table after the repr of its filename argument, for an
Asset its memory address, so a new table at a freed one's address would find the old table with the
old vocabulary. The name here is the SHA-256 of the file's content and of the table's layout
instead: two tables share a resource only if they hold the same entries. The price: a named table
lives as long as the process (TF never frees it with its Python object), one per distinct
vocabulary or label set.
"""

import hashlib
import os

import tensorflow as tf


class _ContentNamedTextFileInitializer(tf.lookup.TextFileInitializer):
    """A `TextFileInitializer` whose table is named by the caller (TensorFlow's name is
    path-based)."""

    def __init__(self, filename, shared_name, **kwargs):
        super().__init__(filename, **kwargs)
        self._content_shared_name = shared_name

    @property
    def _shared_name(self):
        return self._content_shared_name


def text_file_table(
    filename, *, key_dtype, key_index, value_dtype, value_index, default_value, kind
):
    """A `tf.lookup.StaticHashTable` over a text file, named by the file's content.

    Args:
        filename: a path or a `tf.saved_model.Asset` (the file moves with the SavedModel).
        key_dtype: as in `tf.lookup.TextFileInitializer`.
        key_index: as in `tf.lookup.TextFileInitializer`.
        value_dtype: as in `tf.lookup.TextFileInitializer`.
        value_index: as in `tf.lookup.TextFileInitializer`.
        default_value: the value of a missing key.
        kind: a short word for the table's role ("vocabulary", "labels"), the first part of its
            name.

    Returns:
        The table, initialized from the file's current content.

    Raises:
        ValueError: the file changed while the table was being read.
    """
    path = (
        filename.asset_path.numpy().decode()
        if isinstance(filename, tf.saved_model.Asset)
        else filename
    )
    layout = f"{key_dtype.name}:{key_index}:{value_dtype.name}:{value_index}:{default_value!r}"
    digest = _digest(path, layout)
    initializer = _ContentNamedTextFileInitializer(
        filename,
        f"keras_mtsa_{kind}_{digest[:32]}",
        key_dtype=key_dtype,
        key_index=key_index,
        value_dtype=value_dtype,
        value_index=value_index,
    )
    table = tf.lookup.StaticHashTable(initializer, default_value=default_value)
    if _digest(path, layout) != digest:  # rewritten while TensorFlow read it: the name would lie
        raise ValueError(
            "`filename` changed while its table was being read; try again. "
            f"Received: filename={path}"
        )
    return table


def _digest(path, layout):
    digest = hashlib.sha256()
    with open(os.fspath(path), "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    digest.update(layout.encode())
    return digest.hexdigest()
