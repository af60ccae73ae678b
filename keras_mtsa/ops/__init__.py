"""Backend-agnostic MTSA math, written with `keras.ops` only; nothing here imports from above it.

- `masks`: the positional mask kinds and the mask the attention core sees.
- `numerics`: masked max / exp / softmax and guarded division, shared by the cores.
- `full`: the full form, `tensorized_attention`, with its written-out gradient;
  the explicit reference.
- `blockwise`: the tiled form, memory linear in length.
- `core`: `self_attention`, the one entry the layer calls, which picks full, blockwise or fused.
- `_checks`: argument checks shared by every floor of the package.
"""

from keras_mtsa.ops.blockwise import blockwise_self_attention
from keras_mtsa.ops.core import IMPLEMENTATIONS
from keras_mtsa.ops.core import fused_self_attention
from keras_mtsa.ops.core import scaled_dot_product
from keras_mtsa.ops.core import self_attention
from keras_mtsa.ops.core import sigmoid_as_logits
from keras_mtsa.ops.core import token2token_logits
from keras_mtsa.ops.full import attention_weights
from keras_mtsa.ops.full import reference_tensorized_attention
from keras_mtsa.ops.full import tensorized_attention
from keras_mtsa.ops.masks import MASK_KINDS
from keras_mtsa.ops.masks import allowed_keys
from keras_mtsa.ops.masks import combined_attention_mask
from keras_mtsa.ops.masks import default_head_masks
from keras_mtsa.ops.masks import positional_mask
from keras_mtsa.ops.masks import validate_head_masks
from keras_mtsa.ops.numerics import masked_softmax

__all__ = [
    "IMPLEMENTATIONS",
    "MASK_KINDS",
    "allowed_keys",
    "attention_weights",
    "blockwise_self_attention",
    "combined_attention_mask",
    "default_head_masks",
    "fused_self_attention",
    "masked_softmax",
    "positional_mask",
    "reference_tensorized_attention",
    "scaled_dot_product",
    "self_attention",
    "sigmoid_as_logits",
    "tensorized_attention",
    "token2token_logits",
    "validate_head_masks",
]
