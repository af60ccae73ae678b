"""The Multi-mask Tensorized Self-Attention layer."""

import keras
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers
from keras.layers import Dense
from keras.layers import Dropout
from keras.layers import EinsumDense

from keras_mtsa import ops as mtsa_ops
from keras_mtsa._xla import xla_compiled
from keras_mtsa.layers._sublayers import dense_arguments
from keras_mtsa.ops import _checks as check

TOKEN2TOKEN_ACTIVATIONS = ("exp", "sigmoid")
FUSION_GATES = ("per_head", "joint")
LAYER_IMPLEMENTATIONS = ("auto", "full", "fused")


@keras.saving.register_keras_serializable(package="keras_mtsa")
class MTSA(keras.layers.Layer):
    """Multi-mask Tensorized Self-Attention (Shen et al., NAACL 2019).

    Each head l projects the input to a value v = act(x W_v + b_v) and from it computes a pairwise
    token2token score t_ij = <v_i W_q, v_j W_k> / sqrt(head_dim) and a global, multi-dim
    source2token score s_jk = [W_s2 act(W_s1 v_j + b_s1) + b_s2]_k. The attention over keys j is a
    softmax of t_ij + s_jk + M_ij separately for every (query i, feature k), where M is the head's
    positional mask; it is computed with two matmuls per head and never builds the
    (length, length, head_dim) tensor. Each head's output is optionally fused with its value by a
    gate g_h = sigmoid(W_h [v_h; o_h] + b_h), o_h <- g_h * v_h + (1 - g_h) * o_h; the heads are
    concatenated and optionally projected to `output_dim`.

    Args:
        num_heads: number of heads. With the default `head_masks` it must be even.
        head_dim: features per head.
        head_masks: one positional mask kind per head: `"forward"` (query i sees keys j < i),
            `"backward"` (j > i) or `"none"` (every j). Defaults to the paper's layout: the first
            half of the heads forward, the second half backward.
        attend_to_self: whether a token may attend to itself (the paper excludes the diagonal).
        token2token_activation: the token2token factor: `"exp"` (exp(t), the paper and the authors'
            deep models) or `"sigmoid"` (sigmoid(t), the authors' single-layer models).
        activation: activation of the value projection.
        source2token_activation: hidden activation of the source2token MLP;
            defaults to `activation`.
        use_fusion_gate: whether to fuse the attention output with the value by a sigmoid gate.
        fusion_gate: the gate's form. `"per_head"` (the authors' code, `multi_head_dense_layer` over
            [v; o]): each head has its own (2 * head_dim, head_dim) map. `"joint"`: one
            (2 * num_heads * head_dim, num_heads * head_dim) map over all heads, num_heads times the
            parameters and FLOPs (the package's gate before 0.2; configs saved without this key load
            as `"joint"`).
        output_dim: size of a final linear projection; `None` returns the concatenated heads
            (num_heads * head_dim features).
        projection_dropout: dropout on the input of every dense map, as the authors'
            `dense_keep_prob` (off by default): x -> value with a separate mask per head,
            value -> query, key and source2token hidden (separate draws), hidden -> source2token
            output, [v; o] -> fusion gate, and the input of the output projection.
        dropout: attention dropout rate. As in the authors' code, the token2token and
            source2token factors of the numerator are dropped independently, each with keep
            probability sqrt(1 - dropout).
        use_bias: whether the projections use biases (the query/key projections never do).
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
            kernel_constraint, bias_constraint: as for `keras.layers.Dense`, applied
            to every projection.
        seed: optional seed for attention dropout.
        block_size: if set, compute the attention in (block_size x block_size) tiles with online
            rescaling (`keras_mtsa.ops.blockwise`): memory linear in length for the forward and
            the backward pass, tiles that a head's positional mask rules out skipped, and better
            numerical range than the full form. Attention dropout then drops only the source2token
            factor of the numerator, with keep probability 1 - dropout (the token2token factor
            never exists as a whole).
        implementation: the attention core (`keras_mtsa.ops.self_attention`): `"full"` (the
            efficient form on (length, length) factors per head, with its written-out gradient),
            `"fused"` (one standard softmax attention per head group through
            `keras.ops.dot_product_attention`, over the values [E_s * v, E_s]: flash attention on
            GPUs and splash attention on TPUs with JAX, memory linear in length; exp token2token and
            no attention dropout only), or `"auto"`: fused where such a kernel exists (JAX on a GPU
            or TPU) and the configuration allows it, else full.
        jit_compile: on the TensorFlow backend, run the masked attention core in
            `tf.function(jit_compile=True)` wherever the call is traced (`fit`, `predict`,
            `evaluate`, a `tf.function`), so that it is XLA-compiled even where Keras
            turns model-level XLA off (under `tf.distribute`). Eager calls run it op by op: XLA
            would compile it again for every new input shape. Left out while a SavedModel
            is traced (`model.export`): TF Serving on CPU refuses XLA must-compile functions.
            Ignored on other backends.
        **kwargs: base `Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: (batch, length, features) tensor.
        mask: optional boolean (batch, length) padding mask, usually implicit from
            `Embedding(mask_zero=True)`. Padded keys are never attended and padded positions
            output 0.
        attention_mask: optional boolean (batch, length, length) or (batch, num_heads, length,
            length) mask, True = query may attend to key; ANDed with the positional masks.
        training: whether attention dropout is active.
        return_attention_scores: whether to also return the normalized weights.

    Returns:
        (batch, length, output_dim or num_heads * head_dim) tensor; with
        `return_attention_scores=True` a tuple `(output, token2token_weights, source2token_weights)`
        with shapes (batch, num_heads, length, length) and (batch, num_heads, length, head_dim).
    """

    def __init__(
        self,
        num_heads=2,
        head_dim=64,
        head_masks=None,
        attend_to_self=False,
        token2token_activation="exp",
        activation="elu",
        source2token_activation=None,
        use_fusion_gate=True,
        fusion_gate="per_head",
        output_dim=None,
        projection_dropout=0.0,
        dropout=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        seed=None,
        block_size=None,
        implementation="auto",
        jit_compile=True,
        **kwargs,
    ):
        num_heads = check.positive_int("num_heads", num_heads)
        head_dim = check.positive_int("head_dim", head_dim)
        if head_masks is None:
            head_masks = mtsa_ops.default_head_masks(num_heads)
        head_masks = mtsa_ops.validate_head_masks(head_masks, num_heads)
        check.boolean("attend_to_self", attend_to_self)
        check.choice("token2token_activation", token2token_activation, TOKEN2TOKEN_ACTIVATIONS)
        check.activation("activation", activation)
        if source2token_activation is not None:
            check.activation("source2token_activation", source2token_activation)
        check.boolean("use_fusion_gate", use_fusion_gate)
        check.choice("fusion_gate", fusion_gate, FUSION_GATES)
        output_dim = check.positive_int("output_dim", output_dim, allow_none=True)
        projection_dropout = check.rate("projection_dropout", projection_dropout)
        dropout = check.rate("dropout", dropout)
        check.boolean("use_bias", use_bias)
        block_size = check.positive_int("block_size", block_size, allow_none=True)
        check.choice("implementation", implementation, LAYER_IMPLEMENTATIONS)
        if block_size is not None and implementation != "auto":
            raise ValueError(
                "`block_size` selects the blockwise form: leave `implementation` at 'auto'. "
                f"Received: implementation={implementation!r}, block_size={block_size}"
            )
        if implementation == "fused":
            reason = mtsa_ops.core.fused_unsupported_reason(token2token_activation, dropout > 0)
            if reason:
                raise ValueError(
                    f"`implementation='fused'` cannot compute this layer: {reason}. "
                    "Received: implementation='fused', "
                    f"token2token_activation={token2token_activation!r}, dropout={dropout}"
                )
        check.boolean("jit_compile", jit_compile)
        super().__init__(**kwargs)
        self.supports_masking = True
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.head_masks = head_masks
        self.attend_to_self = attend_to_self
        self.token2token_activation = token2token_activation
        self.activation = keras.activations.get(activation)
        self.source2token_activation = keras.activations.get(source2token_activation or activation)
        self.use_fusion_gate = use_fusion_gate
        self.fusion_gate = fusion_gate
        self.output_dim = output_dim
        self.projection_dropout = projection_dropout
        self.dropout = dropout
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.seed = seed
        self.block_size = block_size
        self.implementation = implementation
        self.jit_compile = jit_compile
        self.seed_generator = keras.random.SeedGenerator(seed) if dropout > 0 else None

    @property
    def concatenated_dim(self):
        return self.num_heads * self.head_dim

    def _sublayer_kwargs(self, use_bias=True):
        return dense_arguments(self, use_bias=use_bias and self.use_bias)

    def _per_head_dense(self, name, activation=None, use_bias=True):
        """A separate (input x head_dim) projection per head on (batch, heads, length, input)."""
        return EinsumDense(
            "bhnd,hde->bhne",
            output_shape=(self.num_heads, None, self.head_dim),
            bias_axes="he" if (use_bias and self.use_bias) else None,
            activation=activation,
            name=name,
            **self._sublayer_kwargs(use_bias),
        )

    def build(self, input_shape):
        input_shape = check.sequence_input_shape("MTSA", input_shape)
        batch, length, features = input_shape
        # With projection dropout, the input is tiled per head first so that every
        # head drops it with its own mask (as the authors'); the kernel is the same
        # (features, heads, head_dim) either way.
        self._value_dense = EinsumDense(
            "bhnc,chd->bhnd" if self.projection_dropout else "bnc,chd->bhnd",
            output_shape=(self.num_heads, None, self.head_dim),
            bias_axes="hd" if self.use_bias else None,
            activation=self.activation,
            name="value",
            **self._sublayer_kwargs(),
        )
        self._value_dense.build(
            (batch, self.num_heads, length, features) if self.projection_dropout else input_shape
        )
        head_shape = (batch, self.num_heads, length, self.head_dim)
        self._query_dense = self._per_head_dense("query", use_bias=False)
        self._key_dense = self._per_head_dense("key", use_bias=False)
        self._source2token_hidden = self._per_head_dense(
            "source2token_hidden", activation=self.source2token_activation
        )
        self._source2token_output = self._per_head_dense("source2token_output")
        for sublayer in (
            self._query_dense,
            self._key_dense,
            self._source2token_hidden,
            self._source2token_output,
        ):
            sublayer.build(head_shape)
        if self.use_fusion_gate and self.fusion_gate == "per_head":
            self._fusion_gate = self._per_head_dense("fusion_gate", activation="sigmoid")
            self._fusion_gate.build((batch, self.num_heads, length, 2 * self.head_dim))
        elif self.use_fusion_gate:
            self._fusion_gate = Dense(
                self.concatenated_dim,
                activation="sigmoid",
                use_bias=self.use_bias,
                name="fusion_gate",
                **self._sublayer_kwargs(),
            )
            self._fusion_gate.build((batch, length, 2 * self.concatenated_dim))
        if self.projection_dropout:
            # One layer, called once per dense map: each call draws a new mask. Its seed differs
            # from the attention dropout's, whose generator would otherwise draw the same numbers.
            self._projection_dropout = Dropout(
                self.projection_dropout,
                seed=None if self.seed is None else self.seed + 1,
                dtype=self.dtype_policy,
                name="projection_dropout",
            )
        if self.output_dim is not None:
            self._output_dense = Dense(
                self.output_dim, use_bias=self.use_bias, name="output", **self._sublayer_kwargs()
            )
            self._output_dense.build((batch, length, self.concatenated_dim))

    def call(
        self,
        inputs,
        mask=None,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
    ):
        if attention_mask is not None:
            attention_mask = self._expand_attention_mask(inputs, attention_mask)
        drop = self._drop_projection_input
        # A fresh tensor without the Keras mask attached: the mask is handled here, and the
        # projection would otherwise warn that it drops it.
        inputs_copy = ops.copy(inputs)
        if self.projection_dropout:
            shape = ops.shape(inputs_copy)
            inputs_copy = ops.broadcast_to(
                ops.expand_dims(inputs_copy, 1), (shape[0], self.num_heads, shape[1], shape[2])
            )
        value = self._value_dense(drop(inputs_copy, training))  # (b, h, n, d)
        query = self._query_dense(drop(value, training))
        key = self._key_dense(drop(value, training))
        hidden = self._source2token_hidden(drop(value, training))
        source2token = self._source2token_output(drop(hidden, training))

        attended = self._compute_attention(
            query,
            key,
            source2token,
            value,
            padding_mask=mask,
            attention_mask=attention_mask,
            training=training,
        )

        output = self._fuse(value, attended, training)
        if self.output_dim is not None:
            output = self._output_dense(drop(output, training))
        if mask is not None:
            output = output * ops.cast(ops.expand_dims(mask, -1), output.dtype)

        if not return_attention_scores:
            return output
        full_mask = mtsa_ops.combined_attention_mask(
            ops.shape(query)[2], self.head_masks, self.attend_to_self, mask, attention_mask
        )
        t2t = mtsa_ops.token2token_logits(query, key, self.token2token_activation)
        t2t_weights, s2t_weights = mtsa_ops.attention_weights(t2t, source2token, full_mask)
        return output, t2t_weights, s2t_weights

    def _compute_attention(
        self, query, key, source2token, value, padding_mask=None, attention_mask=None, training=None
    ):
        """The masked attention core, on per-head tensors: the hook a subclass overrides.

        Everything around it stays the layer's: the projections that make its inputs, and the fusion
        gate, output projection and output masking applied to what it returns. The default computes
        the core `implementation` chooses through `keras_mtsa.ops.self_attention` (the blockwise
        form with `block_size`), in XLA where `jit_compile` asks for it.

        Args:
            query, key: (batch, heads, length, head_dim) projections of the value (no bias).
            source2token: (batch, heads, length, head_dim) source2token logits.
            value: (batch, heads, length, head_dim) values.
            padding_mask: optional boolean (batch, length), True for real tokens.
            attention_mask: optional boolean (batch, 1 or heads, length, length), already checked.
            training: whether attention dropout is active.

        Returns:
            (batch, heads, length, head_dim) attention outputs; rows of padded
            queries are zeroed later.
        """
        t2t_dropout, s2t_dropout = self._dropout_masks(value, training)
        core = (
            xla_compiled(mtsa_ops.self_attention) if self.jit_compile else mtsa_ops.self_attention
        )
        return core(
            query,
            key,
            source2token,
            value,
            head_masks=self.head_masks,
            attend_to_self=self.attend_to_self,
            token2token_activation=self.token2token_activation,
            padding_mask=padding_mask,
            attention_mask=attention_mask,
            token2token_dropout=t2t_dropout,
            source2token_dropout=s2t_dropout,
            implementation=self._implementation,
            block_size=self.block_size,
        )

    @property
    def _implementation(self):
        return "blockwise" if self.block_size is not None else self.implementation

    def _drop_projection_input(self, x, training):
        return self._projection_dropout(x, training=training) if self.projection_dropout else x

    def _fuse(self, value, attended, training):
        """Gates (batch, heads, length, head_dim) attention outputs with their values;
        merges the heads."""
        if not self.use_fusion_gate:
            return _merge_heads(attended)
        if self.fusion_gate == "per_head":
            gate = self._fusion_gate(
                self._drop_projection_input(ops.concatenate([value, attended], axis=-1), training)
            )
            return _merge_heads(gate * value + (1.0 - gate) * attended)
        value, attended = _merge_heads(value), _merge_heads(attended)
        gate = self._fusion_gate(
            self._drop_projection_input(ops.concatenate([value, attended], axis=-1), training)
        )
        return gate * value + (1.0 - gate) * attended

    def _expand_attention_mask(self, inputs, attention_mask):
        """Checks an attention_mask's shape and returns it as (batch, 1 or
        heads, length, length)."""
        shape = tuple(attention_mask.shape)
        length = inputs.shape[1]
        if len(shape) == 3:
            expected = (None, length, length)
        elif len(shape) == 4:
            expected = (None, self.num_heads, length, length)
        else:
            expected = None
        if expected is None or any(
            want is not None and got is not None and want != got
            for want, got in zip(expected[1:], shape[1:])
        ):
            raise ValueError(
                "`attention_mask` must have shape (batch, length, length) or "
                f"(batch, num_heads={self.num_heads}, length, length) for inputs of shape "
                f"{tuple(inputs.shape)}. Received: attention_mask.shape={shape}"
            )
        attention_mask = ops.cast(attention_mask, "bool")
        return ops.expand_dims(attention_mask, 1) if len(shape) == 3 else attention_mask

    def _dropout_masks(self, value, training):
        """Keep masks for the token2token and source2token factors of the numerator.

        Full form: independent masks, each with keep probability sqrt(1 - dropout) (the authors'
        scheme). Blockwise: only the source2token factor, with keep probability 1 - dropout.
        """
        if not training or self.dropout == 0:
            return None, None
        batch, heads, length = ops.shape(value)[0], self.num_heads, ops.shape(value)[2]

        def keep_mask(shape, keep):
            draw = keras.random.uniform(shape, seed=self.seed_generator)
            return ops.cast(draw < keep, "float32") / keep

        source2token_shape = (batch, heads, length, self.head_dim)
        if self.block_size is not None:
            return None, keep_mask(source2token_shape, 1.0 - self.dropout)
        keep = (1.0 - self.dropout) ** 0.5
        return keep_mask((batch, heads, length, length), keep), keep_mask(source2token_shape, keep)

    def compute_output_shape(self, input_shape):
        input_shape = check.sequence_input_shape("MTSA", input_shape)
        return (*input_shape[:2], self.output_dim or self.concatenated_dim)

    def compute_output_spec(
        self, inputs, mask=None, attention_mask=None, training=None, return_attention_scores=False
    ):
        # Keras would build the symbolic output from compute_output_shape alone, i.e. one tensor
        # even with return_attention_scores=True.
        output = keras.KerasTensor(
            self.compute_output_shape(inputs.shape), dtype=self.compute_dtype
        )
        if not return_attention_scores:
            return output
        batch, length = inputs.shape[0], inputs.shape[1]
        return (
            output,
            keras.KerasTensor((batch, self.num_heads, length, length), dtype="float32"),
            keras.KerasTensor((batch, self.num_heads, length, self.head_dim), dtype="float32"),
        )

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            head_dim=self.head_dim,
            head_masks=list(self.head_masks),
            attend_to_self=self.attend_to_self,
            token2token_activation=self.token2token_activation,
            activation=keras.activations.serialize(self.activation),
            source2token_activation=keras.activations.serialize(self.source2token_activation),
            use_fusion_gate=self.use_fusion_gate,
            fusion_gate=self.fusion_gate,
            output_dim=self.output_dim,
            projection_dropout=self.projection_dropout,
            dropout=self.dropout,
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=regularizers.serialize(self.bias_regularizer),
            kernel_constraint=constraints.serialize(self.kernel_constraint),
            bias_constraint=constraints.serialize(self.bias_constraint),
            seed=self.seed,
            block_size=self.block_size,
            implementation=self.implementation,
            jit_compile=self.jit_compile,
        )
        return config

    @classmethod
    def from_config(cls, config):
        # Saved before the per-head gate existed: those models carry the joint gate's weights.
        return super().from_config({"fusion_gate": "joint", **config})


def _merge_heads(x):
    """(batch, heads, length, head_dim) -> (batch, length, heads * head_dim)."""
    heads, head_dim = x.shape[1], x.shape[3]
    x = ops.transpose(x, (0, 2, 1, 3))
    shape = ops.shape(x)
    return ops.reshape(x, (shape[0], shape[1], heads * head_dim))
