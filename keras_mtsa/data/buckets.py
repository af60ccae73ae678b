"""Length buckets: the few padded lengths that batches are padded to, and how they are chosen.

Padding every text to `max_length` makes a batch of short sentences cost as much as one of the
longest. A batch padded to the smallest bucket boundary that holds its longest text costs in
proportion to its real tokens, while the number of distinct shapes stays small: XLA compiles one
program per bucket (a TPU too, one per shape; untested there). Pair batches are grouped by the
buckets of both sentences, so they may take up to B x B shapes. The models ignore padding, so the
bucket a text lands in does not change its output.

The rules here are plain numpy: the preprocessor pads by them, the input pipeline groups by them,
and the export writes them down.
"""

from __future__ import annotations

import numpy as np

DEFAULT_MAX_BUCKETS = 5
BUCKET_MULTIPLE = 8


def check_bucket_boundaries(boundaries, max_length):
    """Validates `boundaries` and returns them as a tuple that ends with `max_length`.

    Args:
        boundaries: increasing positive ints, each at most `max_length`; `None` for the one
            bucket `(max_length,)` (every batch padded to `max_length`).
        max_length: the longest padded length (longer texts are truncated to it).

    Returns:
        A tuple of increasing ints whose last element is `max_length`.
    """
    if boundaries is None:
        return (max_length,)
    if isinstance(boundaries, (str, bytes)) or not hasattr(boundaries, "__iter__"):
        raise ValueError(
            f"`bucket_boundaries` must be a sequence of increasing positive ints. "
            f"Received: bucket_boundaries={boundaries!r}"
        )
    boundaries = tuple(boundaries)
    valid = all(
        isinstance(b, (int, np.integer)) and not isinstance(b, bool) and b >= 1 for b in boundaries
    )
    if not boundaries or not valid or any(a >= b for a, b in zip(boundaries, boundaries[1:])):
        raise ValueError(
            f"`bucket_boundaries` must be a non-empty sequence of increasing positive ints. "
            f"Received: bucket_boundaries={boundaries!r}"
        )
    if boundaries[-1] > max_length:
        raise ValueError(
            f"`bucket_boundaries` must not exceed max_length={max_length} (texts are cut to it). "
            f"Received: bucket_boundaries={boundaries!r}"
        )
    boundaries = tuple(int(b) for b in boundaries)
    return boundaries if boundaries[-1] == max_length else (*boundaries, max_length)


def choose_bucket_boundaries(
    lengths, max_length, *, max_buckets=DEFAULT_MAX_BUCKETS, multiple=BUCKET_MULTIPLE
):
    """The bucket boundaries that carry the fewest padded tokens over `lengths`.

    Candidates are the multiples of `multiple` below `max_length`, and `max_length` itself, which
    is always the last boundary. Of those, the at most `max_buckets` boundaries that minimize the
    total padded length of the texts (each padded to the smallest boundary that holds it) are
    chosen exactly, by dynamic programming. Padded tokens, not their square, are the cost: at
    sentence lengths the dense maps of every token cost more than MTSA's pairwise part.

    Args:
        lengths: the token counts of the training texts (clipped to `max_length`).
        max_length: the last boundary.
        max_buckets: at most this many buckets (positive int).
        multiple: candidate boundaries are multiples of it (positive int).

    Returns:
        A tuple of increasing ints ending with `max_length`.
    """
    for name, value in (
        ("max_length", max_length),
        ("max_buckets", max_buckets),
        ("multiple", multiple),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
    lengths = np.minimum(np.asarray(lengths, dtype=np.int64).reshape(-1), max_length)
    candidates = np.array([*range(multiple, max_length, multiple), max_length], dtype=np.int64)
    # counts[i]: texts whose smallest holding candidate is candidates[i].
    counts = np.bincount(
        np.searchsorted(candidates, lengths, side="left"), minlength=len(candidates)
    )
    prefix = np.concatenate([[0], np.cumsum(counts)])
    m = len(candidates)
    # best[k][j]: the least cost of the texts up to candidate j with k boundaries, the last at
    # candidate j.
    best = np.full((max_buckets + 1, m), np.inf)
    previous = np.full((max_buckets + 1, m), -1, dtype=np.int64)
    for j in range(m):
        best[1][j] = prefix[j + 1] * candidates[j]
    for k in range(2, max_buckets + 1):
        for j in range(m):
            for i in range(j):
                cost = best[k - 1][i] + (prefix[j + 1] - prefix[i + 1]) * candidates[j]
                if cost < best[k][j]:
                    best[k][j], previous[k][j] = cost, i
    k = int(np.argmin(best[1:, m - 1])) + 1  # the fewest buckets among equally cheap choices
    chosen, j = [], m - 1
    while j >= 0 and k >= 1:
        chosen.append(int(candidates[j]))
        j, k = int(previous[k][j]), k - 1
    return tuple(reversed(chosen))


def bucket_index(lengths, boundaries):
    """The index of the smallest boundary that holds each length (lengths over the last: the
    last)."""
    index = np.searchsorted(np.asarray(boundaries), np.asarray(lengths), side="left")
    return np.minimum(index, len(boundaries) - 1).astype(np.int32)
