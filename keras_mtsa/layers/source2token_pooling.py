"""Multi-dim source2token pooling: a sequence to one vector, one softmax over tokens per feature."""

import keras
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers
from keras.layers import Dense
from keras.layers import Dropout

from keras_mtsa import ops as mtsa_ops
from keras_mtsa.layers._sublayers import dense_arguments
from keras_mtsa.ops import _checks as check


@keras.saving.register_keras_serializable(package="keras_mtsa")
class Source2TokenPooling(keras.layers.Layer):
    """The paper's multi-dim source2token pooling.

    Scores every token and feature with a two-layer MLP, s = W_2 act(W_1 x + b_1) + b_2 (features ->
    features -> features), takes a softmax over the tokens separately for each feature, and returns
    the weighted sum of the tokens: out_k = sum_j softmax_j(s_jk) x_jk.

    Args:
        activation: hidden activation of the scoring MLP.
        use_bias: whether the two dense layers use biases.
        dropout: dropout on the input of each of the two dense layers (separate draws), as the
            authors' code (off by default). It reaches the scores only: the output stays a weighted
            mean of the undropped tokens.
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
            kernel_constraint, bias_constraint: as for `keras.layers.Dense`.
        seed: optional seed for the dropout.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: (batch, length, features) tensor.
        mask: optional boolean (batch, length) padding mask (implicit Keras masks are honoured).
            Padded tokens get no weight; a sequence with no token pools to 0.
        training: whether dropout is active.

    Returns:
        (batch, features) tensor.
    """

    def __init__(
        self,
        activation="elu",
        use_bias=True,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        seed=None,
        **kwargs,
    ):
        check.activation("activation", activation)
        check.boolean("use_bias", use_bias)
        dropout = check.rate("dropout", dropout)
        super().__init__(**kwargs)
        self.supports_masking = True
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.dropout = dropout
        self.seed = seed
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

    def _dense(self, units, activation, name):
        return Dense(
            units,
            activation=activation,
            use_bias=self.use_bias,
            name=name,
            **dense_arguments(self, self.use_bias),
        )

    def build(self, input_shape):
        input_shape = check.sequence_input_shape("Source2TokenPooling", input_shape)
        features = input_shape[-1]
        self._hidden = self._dense(features, self.activation, "hidden")
        self._hidden.build(input_shape)
        self._score = self._dense(features, None, "score")
        self._score.build(input_shape)
        if self.dropout:
            self._dropout = Dropout(
                self.dropout, seed=self.seed, dtype=self.dtype_policy, name="dropout"
            )

    def _drop(self, x, training):
        return self._dropout(x, training=training) if self.dropout else x

    def call(self, inputs, mask=None, training=None):
        # ops.copy drops the attached Keras mask (handled here) so the dense layers
        # do not warn about it.
        hidden = self._hidden(self._drop(ops.copy(inputs), training))
        scores = self._score(self._drop(hidden, training))  # (b, n, f)
        if mask is None:
            token_mask = ops.ones_like(scores, dtype="bool")
        else:
            token_mask = ops.broadcast_to(
                ops.expand_dims(ops.cast(mask, "bool"), -1), ops.shape(scores)
            )
        # Softmax over tokens in float32, whatever the compute dtype.
        scores = ops.cast(scores, "float32")
        weights = mtsa_ops.masked_softmax(scores, token_mask, axis=1)
        return ops.sum(ops.cast(weights, inputs.dtype) * inputs, axis=1)

    def compute_output_shape(self, input_shape):
        input_shape = check.sequence_input_shape("Source2TokenPooling", input_shape)
        return (input_shape[0], input_shape[-1])

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update(
            activation=keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
            dropout=self.dropout,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=regularizers.serialize(self.bias_regularizer),
            kernel_constraint=constraints.serialize(self.kernel_constraint),
            bias_constraint=constraints.serialize(self.bias_constraint),
            seed=self.seed,
        )
        return config
