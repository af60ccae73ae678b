"""A stackable MTSA encoder block: attention and feed-forward sublayers with
residuals and layer norm."""

import keras
from keras import initializers
from keras import regularizers
from keras.layers import Dense
from keras.layers import Dropout
from keras.layers import LayerNormalization

from keras_mtsa import ops as mtsa_ops
from keras_mtsa.layers._sublayers import clone_initializer
from keras_mtsa.layers.mtsa import FUSION_GATES
from keras_mtsa.layers.mtsa import MTSA
from keras_mtsa.layers.mtsa import TOKEN2TOKEN_ACTIVATIONS
from keras_mtsa.ops import _checks as check


@keras.saving.register_keras_serializable(package="keras_mtsa")
class MTSAEncoderBlock(keras.layers.Layer):
    """A stackable block around MTSA for deep models: MTSA-inspired, not the authors' stacked layer.

    x -> MTSA (projected back to the input width) -> dropout -> + x -> LayerNorm ->
    Dense(intermediate_dim, activation) -> Dense(width) -> dropout -> + -> LayerNorm (post-norm; set
    `normalize_first=True` for pre-norm, which trains deep stacks more easily). Several blocks stack
    because the output has the input's shape and mask. The authors' `stacking_mtsa` differs: the
    feed-forward sublayer comes first, query, key and value come from one bias-free dense map of the
    input, the source2token score is one linear map, and the output projection is activated.

    Args:
        num_heads: MTSA heads.
        head_dim: features per head; defaults to width // num_heads.
        intermediate_dim: width of the feed-forward hidden layer; defaults to 4 * width.
        head_masks, attend_to_self, token2token_activation, use_fusion_gate, fusion_gate,
            jit_compile: passed to `MTSA`.
            The stacked variant defaults to exp token2token and no fusion gate.
        activation: activation of the MTSA value projection and of the feed-forward hidden layer.
        dropout: dropout after each sublayer.
        attention_dropout: MTSA attention dropout.
        layer_norm_epsilon: epsilon of the layer norms.
        normalize_first: pre-norm instead of post-norm.
        kernel_initializer, bias_initializer, kernel_regularizer: for every dense projection (MTSA's
            and the feed-forward's).
        seed: optional seed for the dropouts.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: (batch, length, width) tensor.
        mask: optional (batch, length) padding mask (implicit masks are honoured and passed on).
        attention_mask: optional mask passed to `MTSA`.
        training: whether dropout is active.

    Returns:
        (batch, length, width) tensor.
    """

    def __init__(
        self,
        num_heads=8,
        head_dim=None,
        intermediate_dim=None,
        head_masks=None,
        attend_to_self=False,
        token2token_activation="exp",
        use_fusion_gate=False,
        fusion_gate="per_head",
        activation="elu",
        dropout=0.1,
        attention_dropout=0.0,
        layer_norm_epsilon=1e-6,
        normalize_first=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        seed=None,
        jit_compile=True,
        **kwargs,
    ):
        num_heads = check.positive_int("num_heads", num_heads)
        head_dim = check.positive_int("head_dim", head_dim, allow_none=True)
        intermediate_dim = check.positive_int("intermediate_dim", intermediate_dim, allow_none=True)
        check.activation("activation", activation)
        dropout = check.rate("dropout", dropout)
        attention_dropout = check.rate("attention_dropout", attention_dropout)
        check.boolean("normalize_first", normalize_first)
        # MTSA is built once the width is known; check its arguments now so bad ones fail here.
        mtsa_ops.validate_head_masks(
            mtsa_ops.default_head_masks(num_heads) if head_masks is None else head_masks, num_heads
        )
        check.boolean("attend_to_self", attend_to_self)
        check.choice("token2token_activation", token2token_activation, TOKEN2TOKEN_ACTIVATIONS)
        check.boolean("use_fusion_gate", use_fusion_gate)
        check.choice("fusion_gate", fusion_gate, FUSION_GATES)
        check.boolean("jit_compile", jit_compile)
        super().__init__(**kwargs)
        self.supports_masking = True
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.intermediate_dim = intermediate_dim
        self.head_masks = head_masks
        self.attend_to_self = attend_to_self
        self.token2token_activation = token2token_activation
        self.use_fusion_gate = use_fusion_gate
        self.fusion_gate = fusion_gate
        self.activation = keras.activations.get(activation)
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.normalize_first = normalize_first
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.seed = seed
        self.jit_compile = jit_compile

    def build(self, input_shape):
        input_shape = check.sequence_input_shape("MTSAEncoderBlock", input_shape)
        width = input_shape[-1]
        head_dim = self.head_dim or width // self.num_heads
        if head_dim < 1:
            raise ValueError(
                f"`head_dim` defaults to width // num_heads, which is 0 for width {width} and "
                f"num_heads={self.num_heads}. Pass `head_dim` or use fewer heads."
            )
        self._attention = MTSA(
            num_heads=self.num_heads,
            head_dim=head_dim,
            head_masks=self.head_masks,
            attend_to_self=self.attend_to_self,
            token2token_activation=self.token2token_activation,
            activation=self.activation,
            use_fusion_gate=self.use_fusion_gate,
            fusion_gate=self.fusion_gate,
            output_dim=width,
            dropout=self.attention_dropout,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            kernel_regularizer=self.kernel_regularizer,
            seed=self.seed,
            jit_compile=self.jit_compile,
            dtype=self.dtype_policy,
            name="attention",
        )
        self._attention.build(input_shape)
        dense_kwargs = dict(
            bias_initializer=clone_initializer(self.bias_initializer),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
        )
        self._intermediate = Dense(
            self.intermediate_dim or 4 * width,
            activation=self.activation,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            name="intermediate",
            **dense_kwargs,
        )
        self._intermediate.build(input_shape)
        self._feedforward_output = Dense(
            width,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            name="feedforward_output",
            **dense_kwargs,
        )
        self._feedforward_output.build((*input_shape[:2], self.intermediate_dim or 4 * width))
        self._attention_norm = LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="attention_norm"
        )
        self._attention_norm.build(input_shape)
        self._feedforward_norm = LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="feedforward_norm"
        )
        self._feedforward_norm.build(input_shape)
        # Distinct seeds: Dropout layers seeded alike drop the same units on every call.
        self._attention_dropout = Dropout(
            self.dropout, seed=self._derived_seed(1), dtype=self.dtype_policy
        )
        self._feedforward_dropout = Dropout(
            self.dropout, seed=self._derived_seed(2), dtype=self.dtype_policy
        )

    def _derived_seed(self, offset):
        return None if self.seed is None else self.seed + offset

    def call(self, inputs, mask=None, attention_mask=None, training=None):
        x = inputs
        residual = x
        if self.normalize_first:
            x = self._attention_norm(x)
        x = self._attention(x, mask=mask, attention_mask=attention_mask, training=training)
        x = self._attention_dropout(x, training=training) + residual
        if not self.normalize_first:
            x = self._attention_norm(x)

        residual = x
        if self.normalize_first:
            x = self._feedforward_norm(x)
        x = self._feedforward_output(self._intermediate(x))
        x = self._feedforward_dropout(x, training=training) + residual
        if not self.normalize_first:
            x = self._feedforward_norm(x)
        return x

    def compute_output_shape(self, input_shape):
        return check.sequence_input_shape("MTSAEncoderBlock", input_shape)

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            head_dim=self.head_dim,
            intermediate_dim=self.intermediate_dim,
            head_masks=None if self.head_masks is None else list(self.head_masks),
            attend_to_self=self.attend_to_self,
            token2token_activation=self.token2token_activation,
            use_fusion_gate=self.use_fusion_gate,
            fusion_gate=self.fusion_gate,
            activation=keras.activations.serialize(self.activation),
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            layer_norm_epsilon=self.layer_norm_epsilon,
            normalize_first=self.normalize_first,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
            seed=self.seed,
            jit_compile=self.jit_compile,
        )
        return config

    @classmethod
    def from_config(cls, config):
        # Saved before the per-head gate existed: a gated block then carried the
        # joint gate's weights.
        return super().from_config({"fusion_gate": "joint", **config})
