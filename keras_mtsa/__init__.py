"""keras-mtsa: Multi-mask Tensorized Self-Attention (Shen et al., NAACL 2019) for Keras 3."""

from keras_mtsa import layers
from keras_mtsa import models  # registers the example models' helper layers for loading
from keras_mtsa import ops
from keras_mtsa.layers import MTSA
from keras_mtsa.layers import MTSAEncoderBlock
from keras_mtsa.layers import Source2TokenPooling

__version__ = "0.1.0"

__all__ = ["MTSA", "MTSAEncoderBlock", "Source2TokenPooling", "layers", "models", "ops"]
