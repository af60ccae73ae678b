"""Functional example models: a sentence classifier and a sentence-pair (NLI) classifier.

Both take padded token ids (0 = padding) and use `Embedding(mask_zero=True)`, so every downstream
layer sees the padding mask. The encoder is the paper's single-layer setup by default (MTSA with 2
heads, one forward and one backward, sigmoid token2token, the authors' per-head fusion gate, then
multi-dim source2token pooling), stacked `MTSAEncoderBlock`s with `num_blocks > 0` (MTSA-inspired:
the authors' stacked layer puts the feed-forward first and has no fusion gate), or one of three
baselines with the same pipeline: Keras `MultiHeadAttention` of the same width (`encoder="mha"`), a
bidirectional LSTM of the same width (`encoder="bilstm"`), or Kim's (2014) convolutional sentence
encoder (`encoder="cnn"`).

The attention encoders and the BiLSTM produce `num_heads * head_dim` features whatever the width of
the embeddings (the sentence vectors of 50-wide pretrained vectors need not be 50 wide): MTSA's own
value maps take the embeddings to that width, the BiLSTM has `num_heads * head_dim / 2` units per
direction, and `MultiHeadAttention`, whose residual connection keeps its input's width, runs over a
linear projection of the embeddings to that width (none when the widths are equal).
"""

import numbers

import keras
from keras import layers
from keras import ops

from keras_mtsa.layers import MTSA
from keras_mtsa.layers import MTSAEncoderBlock
from keras_mtsa.layers import Source2TokenPooling
from keras_mtsa.layers.mtsa import FUSION_GATES
from keras_mtsa.layers.mtsa import TOKEN2TOKEN_ACTIVATIONS
from keras_mtsa.layers.pretrained_embedding import PretrainedEmbedding
from keras_mtsa.ops import _checks as check

ENCODERS = ("mtsa", "mha", "bilstm", "cnn")
# Where dropout goes. "embedding": on the embeddings and before the classifier. "authors": as the
# authors' code, on the input of every dense map (inside MTSA per head, inside the pooling, on the
# sentence vector, on each layer of the head), and nowhere else.
DROPOUT_SITES = ("embedding", "authors")
PAIR_HEADS = ("relu", "highway")
# Kim (2014): filter windows of 3, 4 and 5 tokens, 100 feature maps each, max-over-time pooling.
CNN_WINDOWS = (3, 4, 5)
CNN_FILTERS = 100


@keras.saving.register_keras_serializable(package="keras_mtsa")
class PositionEmbedding(layers.Layer):
    """Adds a learned embedding of each position (for the order-blind
    `MultiHeadAttention` baseline)."""

    def __init__(self, max_length, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.max_length = check.positive_int("max_length", max_length)

    def build(self, input_shape):
        self.position_embeddings = self.add_weight(
            shape=(self.max_length, input_shape[-1]),
            initializer="glorot_uniform",
            name="embeddings",
        )

    def call(self, inputs):
        length = ops.shape(inputs)[1]
        return inputs + ops.cast(self.position_embeddings[:length], inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length}


@keras.saving.register_keras_serializable(package="keras_mtsa")
class TokenDropout(layers.Layer):
    """During training, replaces each real token id by `unknown_id` with probability `rate`.

    Word-level dropout: with embeddings learned from scratch on a few thousand sentences, it keeps
    the model from memorizing rare content words (padding, id 0, is left alone).
    """

    def __init__(self, rate, unknown_id=1, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check.rate("rate", rate)
        self.unknown_id = unknown_id
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, token_ids, training=None):
        if not training or self.rate == 0:
            return token_ids
        drop = keras.random.uniform(ops.shape(token_ids), seed=self.seed_generator) < self.rate
        drop = ops.logical_and(drop, token_ids > 0)
        return ops.where(drop, ops.cast(self.unknown_id, token_ids.dtype), token_ids)

    def get_config(self):
        return {
            **super().get_config(),
            "rate": self.rate,
            "unknown_id": self.unknown_id,
            "seed": self.seed,
        }


def _zero_padded(inputs, mask):
    """`inputs` (batch, length, features) with the rows that `mask` marks as padding set to zero."""
    if mask is None:
        return inputs
    return inputs * ops.cast(mask, inputs.dtype)[..., None]


@keras.saving.register_keras_serializable(package="keras_mtsa")
class ZeroPadding(layers.Layer):
    """Zeroes the padded positions and drops the mask, for layers that take no mask (`Conv1D`).

    Kim's (2014) CNN pads sentences with zero vectors: this makes the embedding row of the padding
    id irrelevant, as the mask makes it for the attention encoders.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        return _zero_padded(inputs, mask)

    def compute_mask(self, inputs, mask=None):
        return None


@keras.saving.register_keras_serializable(package="keras_mtsa")
class LocalConvolution(layers.Layer):
    """A ReLU convolution over `window` tokens ("same" padding) that keeps the padding mask.

    Padded positions are zeroed first, so that their embedding row does not leak into the windows of
    the real tokens next to them.
    """

    def __init__(self, filters, window, kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.filters = check.positive_int("filters", filters)
        self.window = check.positive_int("window", window)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self._convolution = layers.Conv1D(
            self.filters,
            self.window,
            padding="same",
            activation="relu",
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name="convolution",
        )

    def build(self, input_shape):
        self._convolution.build(input_shape)

    def call(self, inputs, mask=None):
        return self._convolution(_zero_padded(inputs, mask))

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "window": self.window,
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        }


@keras.saving.register_keras_serializable(package="keras_mtsa")
class Highway(layers.Layer):
    """A highway layer as the authors' `highway_net`: g * act(W x + b) + (1 - g) * x,
    g = sigmoid(W_g x + b_g).

    Args:
        activation: activation of the transform.
        dropout: dropout on the input of the transform and of the gate (separate
            draws), as the authors'.
        kernel_regularizer: for both kernels.
        seed: optional seed for the dropout.
        **kwargs: base `Layer` arguments.
    """

    def __init__(self, activation="elu", dropout=0.0, kernel_regularizer=None, seed=None, **kwargs):
        check.activation("activation", activation)
        dropout = check.rate("dropout", dropout)
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)
        self.dropout = dropout
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.seed = seed

    def build(self, input_shape):
        width = input_shape[-1]
        options = dict(kernel_regularizer=self.kernel_regularizer, dtype=self.dtype_policy)
        self._transform = layers.Dense(
            width, activation=self.activation, name="transform", **options
        )
        self._transform.build(input_shape)
        self._gate = layers.Dense(width, activation="sigmoid", name="gate", **options)
        self._gate.build(input_shape)
        if self.dropout:
            self._dropout = layers.Dropout(
                self.dropout, seed=self.seed, dtype=self.dtype_policy, name="dropout"
            )

    def call(self, inputs, training=None):
        def drop(x):
            return self._dropout(x, training=training) if self.dropout else x

        gate = self._gate(drop(inputs))
        return gate * self._transform(drop(inputs)) + (1.0 - gate) * inputs

    def get_config(self):
        return {
            **super().get_config(),
            "activation": keras.activations.serialize(self.activation),
            "dropout": self.dropout,
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "seed": self.seed,
        }


def default_token2token_activation(num_blocks):
    """The authors' token2token factor: sigmoid for the single layer, exp for stacked blocks."""
    return "exp" if num_blocks else "sigmoid"


def check_encoder_arguments(
    *,
    encoder,
    max_length,
    embedding_dim,
    embedding_scale,
    num_heads,
    head_dim,
    num_blocks,
    conv_window,
    token2token_activation,
    fusion_gate,
    dropout,
    dropout_sites,
    attention_dropout,
    token_dropout,
    l2,
):
    """The encoder's rules, in one place: `build_sentence_encoder` and the training
    config both apply them.

    Args:
        As `build_sentence_encoder`; `max_length` may be None (not fitted yet),
        which skips its check.

    Returns:
        `(head_dim, token2token_activation)` with their defaults resolved.

    Raises:
        ValueError: an argument is out of range, or options that do not go together (naming them).
    """
    check.choice("encoder", encoder, ENCODERS)
    max_length = check.positive_int("max_length", max_length, allow_none=True)
    embedding_dim = check.positive_int("embedding_dim", embedding_dim)
    if (
        isinstance(embedding_scale, bool)
        or not isinstance(embedding_scale, numbers.Real)
        or not embedding_scale > 0
    ):
        raise ValueError(
            "`embedding_scale` must be a positive number. Received: "
            f"embedding_scale={embedding_scale!r}"
        )
    num_heads = check.positive_int("num_heads", num_heads)
    if encoder == "mtsa" and num_heads % 2:
        # MTSA's default head layout; the layer itself would advise a `head_masks` argument that
        # the builder does not take.
        raise ValueError(
            "`num_heads` must be even for encoder='mtsa' (half the heads attend forward, half "
            f"backward). Received: num_heads={num_heads}"
        )
    if encoder == "cnn":
        if head_dim is not None:  # rather than silently ignored
            raise ValueError(
                f"`head_dim` does not apply to encoder='cnn'. Received: head_dim={head_dim!r}"
            )
    elif head_dim is None:
        if embedding_dim % num_heads:
            raise ValueError(
                f"`embedding_dim` ({embedding_dim}) must be divisible by `num_heads` ({num_heads}) "
                "unless `head_dim` is given."
            )
        head_dim = embedding_dim // num_heads
    else:
        head_dim = check.positive_int("head_dim", head_dim)
    if encoder == "bilstm" and num_heads * head_dim % 2:
        raise ValueError(
            "`num_heads * head_dim` must be even for encoder='bilstm' (half the features run "
            f"forward, half backward). Received: num_heads={num_heads}, head_dim={head_dim}"
        )
    num_blocks = check.non_negative_int("num_blocks", num_blocks)
    if num_blocks and encoder != "mtsa":
        raise ValueError(
            "`num_blocks` stacks MTSA blocks and needs encoder='mtsa'. "
            f"Received: encoder={encoder!r}"
        )
    conv_window = check.non_negative_int("conv_window", conv_window)
    if conv_window and encoder != "mtsa":
        raise ValueError(
            f"`conv_window` feeds MTSA and needs encoder='mtsa'. Received: encoder={encoder!r}"
        )
    if token2token_activation is None:
        token2token_activation = default_token2token_activation(num_blocks)
    check.choice("token2token_activation", token2token_activation, TOKEN2TOKEN_ACTIVATIONS)
    check.choice("fusion_gate", fusion_gate, FUSION_GATES)
    check.choice("dropout_sites", dropout_sites, DROPOUT_SITES)
    if dropout_sites == "authors" and (encoder != "mtsa" or num_blocks or conv_window):
        raise ValueError(
            "`dropout_sites='authors'` needs the single MTSA layer (encoder='mtsa', num_blocks=0, "
            f"conv_window=0). Received: encoder={encoder!r}, num_blocks={num_blocks}, "
            f"conv_window={conv_window}"
        )
    for name, value in (
        ("dropout", dropout),
        ("attention_dropout", attention_dropout),
        ("token_dropout", token_dropout),
    ):
        check.rate(name, value)
    if isinstance(l2, bool) or not isinstance(l2, numbers.Real) or not l2 >= 0:
        raise ValueError(f"`l2` must be a non-negative number. Received: l2={l2!r}")
    if encoder == "cnn" and max_length is not None and max_length < max(CNN_WINDOWS):
        raise ValueError(
            f"`max_length` must be at least {max(CNN_WINDOWS)} for encoder='cnn' (its widest "
            f"window). Received: max_length={max_length}"
        )
    return head_dim, token2token_activation


def build_sentence_encoder(
    *,
    vocabulary_size,
    max_length,
    embedding_dim=300,
    embedding_scale=0.05,
    encoder="mtsa",
    num_heads=2,
    head_dim=None,
    num_blocks=0,
    conv_window=0,
    token2token_activation=None,
    fusion_gate="per_head",
    activation="relu",
    dropout=0.5,
    dropout_sites="embedding",
    attention_dropout=0.0,
    token_dropout=0.0,
    l2=0.0,
    frozen_rows=0,
    name="sentence_encoder",
):
    """Token ids (batch, length) -> sentence vectors, as a `keras.Model`.

    `length` is any padded length up to max_length (the length buckets of
    `keras_mtsa.data.buckets`), except for the CNN, whose max-over-time pooling also sees the
    windows that lie in the padding: its inputs are padded to max_length.

    The sentence vectors have num_heads * head_dim features (embedding_dim by default) for the
    single MTSA layer, MHA and the BiLSTM (the authors' layout is 2 heads of the embedding width,
    i.e. 600 features from 300-wide embeddings), embedding_dim for stacked MTSA blocks, or 300 for
    the CNN (3 windows x 100 feature maps, as Kim's).

    Args:
        vocabulary_size: rows of the embedding table (id 0 is padding).
        max_length: the longest padded length of the inputs (the padded length for the CNN).
        embedding_dim: width of the embeddings and of the encoder output.
        embedding_scale: embeddings start uniform in [-embedding_scale, embedding_scale] (0.05 is
            Keras's default; Kim (2014) drew random word vectors from [-0.25, 0.25]).
        encoder: `"mtsa"`, `"mha"` (Keras `MultiHeadAttention` with learned position embeddings,
            a residual connection and layer normalization), `"bilstm"` (Keras
            `Bidirectional(LSTM)`, masked, each direction's states concatenated) or `"cnn"` (Kim's
            CNN: ReLU convolutions over 3, 4 and 5 tokens, 100 maps each, max-pooled over the
            zero-padded sentence; the attention arguments do not apply to it). All but the CNN are
            followed by the same source2token pooling.
        num_heads: attention heads (the BiLSTM's width is `num_heads * head_dim` too).
        head_dim: features per head; defaults to embedding_dim // num_heads. The sentence vectors of
            MTSA (single layer), MHA and the BiLSTM have `num_heads * head_dim` features.
        num_blocks: 0 for the paper's single MTSA layer, else that many stacked `MTSAEncoderBlock`s.
        conv_window: 0 for the paper's setup; N > 0 puts a ReLU convolution over N tokens
            (embedding_dim maps) between the embeddings and MTSA, so that MTSA's values see local
            n-grams (not in the paper; a hybrid measured on TREC, see the README).
        token2token_activation: MTSA's token2token factor; defaults to "sigmoid" for the single
            layer (the authors' sentence models) and "exp" for stacked blocks (their deep models).
        fusion_gate: the single MTSA layer's gate, "per_head" (the authors') or
            "joint" (see `MTSA`).
        activation: activation of the MTSA value projection and pooling MLP.
        dropout: the dropout rate at the `dropout_sites` (and inside stacked blocks).
        dropout_sites: "embedding" (on the embeddings; the classifiers add one before their output
            layer) or "authors" (the authors' sites: the input of every dense map, per head inside
            MTSA, in the pooling and, in the classifiers, on the sentence vector and the input of
            each head layer; no embedding dropout). "authors" needs the single MTSA layer
            (encoder="mtsa", no blocks, no convolution).
        attention_dropout: MTSA / MHA attention dropout.
        token_dropout: probability of replacing a token by the unknown token while training.
        l2: L2 weight decay on every kernel of the encoder (not the embeddings or biases): Keras's
            `L2(l2)`, i.e. the authors' `wd * tf.nn.l2_loss(W)` with wd = 2 * l2.
        frozen_rows: rows of the embedding table after the first `vocabulary_size` that never train
            (the pretrained vectors of words outside the training vocabulary, set by the caller
            after building; see `keras_mtsa.layers.PretrainedEmbedding`); 0 for one trainable
            `keras.layers.Embedding`.
        name: the sub-model's name.
    """
    vocabulary_size = check.positive_int("vocabulary_size", vocabulary_size)
    frozen_rows = check.non_negative_int("frozen_rows", frozen_rows)
    head_dim, token2token_activation = check_encoder_arguments(
        encoder=encoder,
        max_length=max_length,
        embedding_dim=embedding_dim,
        embedding_scale=embedding_scale,
        num_heads=num_heads,
        head_dim=head_dim,
        num_blocks=num_blocks,
        conv_window=conv_window,
        token2token_activation=token2token_activation,
        fusion_gate=fusion_gate,
        dropout=dropout,
        dropout_sites=dropout_sites,
        attention_dropout=attention_dropout,
        token_dropout=token_dropout,
        l2=l2,
    )
    regularizer = keras.regularizers.L2(l2) if l2 else None

    # Any padded length up to max_length: batches are padded to their length bucket, and every
    # encoder but the CNN gives a text the same vector whatever padding follows it.
    token_ids = keras.Input(
        (max_length if encoder == "cnn" else None,), dtype="int32", name="token_ids"
    )
    x = TokenDropout(token_dropout, name="token_dropout")(token_ids) if token_dropout else token_ids
    initializer = keras.initializers.RandomUniform(-embedding_scale, embedding_scale)
    if frozen_rows:
        embedding = PretrainedEmbedding(
            vocabulary_size,
            frozen_rows,
            embedding_dim,
            embeddings_initializer=initializer,
            mask_zero=True,
            name="embedding",
        )
    else:
        embedding = layers.Embedding(
            vocabulary_size,
            embedding_dim,
            embeddings_initializer=initializer,
            mask_zero=True,
            name="embedding",
        )
    x = embedding(x)
    authors_sites = dropout_sites == "authors"
    if not authors_sites:
        x = layers.Dropout(dropout, name="embedding_dropout")(x)
    if conv_window:
        x = LocalConvolution(
            embedding_dim, conv_window, kernel_regularizer=regularizer, name="local_convolution"
        )(x)
    if encoder == "cnn":
        x = ZeroPadding(name="zero_padding")(x)
        features = [
            layers.GlobalMaxPooling1D(name=f"max_pooling_{window}")(
                layers.Conv1D(
                    CNN_FILTERS,
                    window,
                    activation="relu",
                    kernel_regularizer=regularizer,
                    name=f"conv_{window}",
                )(x)
            )
            for window in CNN_WINDOWS
        ]
        return keras.Model(token_ids, layers.Concatenate(name="cnn_features")(features), name=name)
    width = num_heads * head_dim
    if encoder == "bilstm":
        x = layers.Bidirectional(
            layers.LSTM(
                width // 2,
                return_sequences=True,
                kernel_regularizer=regularizer,
                recurrent_regularizer=regularizer,
            ),
            name="bilstm",
        )(x)
    elif encoder == "mha":
        if width != embedding_dim:
            # The residual connection below keeps the width of its input.
            x = layers.Dense(width, kernel_regularizer=regularizer, name="input_projection")(x)
        x = PositionEmbedding(max_length, name="position_embedding")(x)
        attended = layers.MultiHeadAttention(
            num_heads,
            head_dim,
            dropout=attention_dropout,
            kernel_regularizer=regularizer,
            name="mha",
        )(x, x)
        # An `Add` layer, not `x + attended`: a plain op drops the padding mask, and the pooling
        # would then average over padded positions.
        x = layers.LayerNormalization(name="mha_norm")(
            layers.Add(name="mha_residual")([x, attended])
        )
    elif num_blocks == 0:
        x = MTSA(
            num_heads=num_heads,
            head_dim=head_dim,
            token2token_activation=token2token_activation,
            activation=activation,
            use_fusion_gate=True,
            fusion_gate=fusion_gate,
            projection_dropout=dropout if authors_sites else 0.0,
            dropout=attention_dropout,
            kernel_regularizer=regularizer,
            name="mtsa",
        )(x)
    else:
        for index in range(num_blocks):
            x = MTSAEncoderBlock(
                num_heads=num_heads,
                head_dim=head_dim,
                token2token_activation=token2token_activation,
                activation=activation,
                dropout=dropout,
                attention_dropout=attention_dropout,
                kernel_regularizer=regularizer,
                name=f"mtsa_block_{index}",
            )(x)
    sentence = Source2TokenPooling(
        activation=activation,
        dropout=dropout if authors_sites else 0.0,
        kernel_regularizer=regularizer,
        name="pooling",
    )(x)
    return keras.Model(token_ids, sentence, name=name)


def build_sentence_classifier(
    num_classes,
    *,
    hidden_units=300,
    dropout=0.5,
    dropout_sites="embedding",
    l2=0.0,
    **encoder_kwargs,
):
    """Sentence classifier: encoder -> Dense(hidden_units, relu) -> dropout -> softmax.

    Args:
        num_classes: number of classes (>= 2).
        hidden_units: width of the hidden layer before the classifier.
        dropout: the dropout rate, before the classifier and at the encoder's `dropout_sites`.
        dropout_sites: "embedding" or "authors" (see `build_sentence_encoder`); "authors" also drops
            the sentence vector before the hidden layer.
        l2: L2 weight decay on every kernel.
        **encoder_kwargs: `build_sentence_encoder` arguments (vocabulary_size and
            max_length required).

    Returns:
        A functional `keras.Model` from int32 token ids (batch, length) to float32 class
        probabilities (batch, num_classes).
    """
    num_classes = _num_classes(num_classes)
    encoder = build_sentence_encoder(
        dropout=dropout, dropout_sites=dropout_sites, l2=l2, **encoder_kwargs
    )
    token_ids = keras.Input(encoder.input_shape[1:], dtype="int32", name="token_ids")
    features = encoder(token_ids)
    probabilities = _classifier_head(
        features, num_classes, hidden_units, dropout, dropout_sites, l2
    )
    return keras.Model(token_ids, probabilities, name="sentence_classifier")


def build_pair_classifier(
    num_classes,
    *,
    hidden_units=300,
    head="relu",
    dropout=0.5,
    dropout_sites="embedding",
    l2=0.0,
    **encoder_kwargs,
):
    """Sentence-pair (NLI) classifier with one shared encoder and [u; v; u - v; u * v] features.

    Inputs are a dict {"premise": ids, "hypothesis": ids}; arguments as
    `build_sentence_classifier`, and

    Args:
        head: "relu" (Dense(hidden_units, relu) -> dropout -> softmax) or "highway", the authors'
            SNLI head: Dense(hidden_units, elu) -> a highway layer (elu) -> dropout -> softmax.
    """
    num_classes = _num_classes(num_classes)
    check.choice("head", head, PAIR_HEADS)
    encoder = build_sentence_encoder(
        dropout=dropout, dropout_sites=dropout_sites, l2=l2, **encoder_kwargs
    )
    shape = encoder.input_shape[1:]
    premise = keras.Input(shape, dtype="int32", name="premise")
    hypothesis = keras.Input(shape, dtype="int32", name="hypothesis")
    u, v = encoder(premise), encoder(hypothesis)
    features = layers.Concatenate(name="pair_features")(
        [u, v, layers.Subtract(name="difference")([u, v]), layers.Multiply(name="product")([u, v])]
    )
    probabilities = _classifier_head(
        features, num_classes, hidden_units, dropout, dropout_sites, l2, highway=head == "highway"
    )
    return keras.Model(
        {"premise": premise, "hypothesis": hypothesis}, probabilities, name="pair_classifier"
    )


def _classifier_head(
    features, num_classes, hidden_units, dropout, dropout_sites, l2, highway=False
):
    regularizer = keras.regularizers.L2(l2) if l2 else None
    authors_sites = dropout_sites == "authors"
    x = features
    if authors_sites:  # the authors drop the input of every dense map, the sentence vector's too
        x = layers.Dropout(dropout, name="features_dropout")(x)
    activation = "elu" if highway else "relu"
    x = layers.Dense(
        hidden_units, activation=activation, kernel_regularizer=regularizer, name="hidden"
    )(x)
    if highway:
        x = Highway(
            activation,
            dropout=dropout if authors_sites else 0.0,
            kernel_regularizer=regularizer,
            name="highway",
        )(x)
    x = layers.Dropout(dropout, name="hidden_dropout")(x)
    # float32 probabilities under mixed precision too.
    return layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=regularizer,
        dtype="float32",
        name="probabilities",
    )(x)


def _num_classes(num_classes):
    num_classes = check.positive_int("num_classes", num_classes)
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be at least 2. Received: num_classes={num_classes}")
    return num_classes
