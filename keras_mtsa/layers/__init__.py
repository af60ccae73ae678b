"""Keras layers of keras-mtsa."""

from keras_mtsa.layers.encoder_block import MTSAEncoderBlock
from keras_mtsa.layers.mtsa import MTSA
from keras_mtsa.layers.pretrained_embedding import PretrainedEmbedding
from keras_mtsa.layers.source2token_pooling import Source2TokenPooling

__all__ = ["MTSA", "MTSAEncoderBlock", "PretrainedEmbedding", "Source2TokenPooling"]
