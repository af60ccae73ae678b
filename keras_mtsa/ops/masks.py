"""MTSA's positional masks: one kind per head, and the mask the attention core sees."""

from keras import ops

MASK_KINDS = ("forward", "backward", "none")


def positional_mask(length, head_masks, attend_to_self=False):
    """Builds the per-head positional masks of MTSA.

    Args:
        length: number of tokens (a Python int or a scalar tensor).
        head_masks: sequence of mask kinds, one per head: `"forward"` (query i sees keys j < i),
            `"backward"` (keys j > i) or `"none"` (every key j != i).
        attend_to_self: whether a token may attend to itself (the comparisons become <=, >= and
            "none" allows every key).

    Returns:
        Boolean tensor of shape (heads, length, length), True where query i may attend to key j.
    """
    head_masks = validate_head_masks(head_masks)
    positions = ops.arange(length, dtype="int32")
    return ops.stack(
        [allowed_keys(kind, positions, positions, attend_to_self) for kind in head_masks], axis=0
    )


def allowed_keys(kind, query_positions, key_positions, attend_to_self=False):
    """(queries, keys) boolean mask of one mask kind for the given absolute positions
    (1-D int tensors)."""
    query = ops.expand_dims(query_positions, 1)
    key = ops.expand_dims(key_positions, 0)
    if kind == "forward":
        return key <= query if attend_to_self else key < query
    if kind == "backward":
        return key >= query if attend_to_self else key > query
    return ops.ones_like(key == query) if attend_to_self else key != query


def validate_head_masks(head_masks, num_heads=None):
    """Checks a list of per-head mask kinds and returns it as a tuple."""
    if isinstance(head_masks, str) or not hasattr(head_masks, "__len__"):
        raise ValueError(
            f"`head_masks` must be a list of mask kinds, one per head, each one of {MASK_KINDS}. "
            f"Received: head_masks={head_masks!r}"
        )
    head_masks = tuple(head_masks)
    for kind in head_masks:
        if kind not in MASK_KINDS:
            raise ValueError(
                f"Unknown mask kind {kind!r} in `head_masks`: expected each of {MASK_KINDS}. "
                f"Received: head_masks={list(head_masks)}"
            )
    if num_heads is not None and len(head_masks) != num_heads:
        raise ValueError(
            f"`head_masks` must have one entry per head (num_heads={num_heads}). "
            f"Received {len(head_masks)} entries: head_masks={list(head_masks)}"
        )
    return head_masks


def default_head_masks(num_heads):
    """The paper's multi-mask layout: the first half of the heads forward, the
    second half backward."""
    if num_heads % 2:
        raise ValueError(
            "The default multi-mask layout (half forward, half backward) needs an even "
            f"`num_heads`. Received: num_heads={num_heads}. Pass `head_masks` to "
            "choose each head's mask."
        )
    half = num_heads // 2
    return ("forward",) * half + ("backward",) * half


def head_groups(head_masks):
    """[(kind, [head indices])] in order of first appearance: the heads a core can treat alike."""
    groups = {}
    for head, kind in enumerate(head_masks):
        groups.setdefault(kind, []).append(head)
    return list(groups.items())


def combined_attention_mask(length, head_masks, attend_to_self, padding_mask, attention_mask):
    """Positional masks AND padding AND the caller's mask, broadcastable to (b, h, q, k).

    Padding masks keys and queries both: a padded query attends to nothing (its output is zeroed
    anyway), so keys that only padded queries could see do not enter the source2token maxima, and
    the attention scores of padded rows are 0.
    """
    mask = ops.expand_dims(positional_mask(length, head_masks, attend_to_self), 0)
    if padding_mask is not None:
        padding_mask = ops.cast(padding_mask, "bool")
        mask = ops.logical_and(mask, padding_mask[:, None, None, :])
        mask = ops.logical_and(mask, padding_mask[:, None, :, None])
    if attention_mask is not None:
        mask = ops.logical_and(mask, attention_mask)
    return mask
