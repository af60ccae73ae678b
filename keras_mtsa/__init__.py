"""keras-mtsa: Multi-mask Tensorized Self-Attention (Shen et al., NAACL 2019) for Keras 3."""

__version__ = "0.1.0"
