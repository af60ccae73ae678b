"""An embedding table in two parts: trainable rows, then frozen rows that hold
pretrained vectors."""

import keras
from keras import initializers
from keras import ops

from keras_mtsa.ops import _checks as check


@keras.saving.register_keras_serializable(package="keras_mtsa")
class PretrainedEmbedding(keras.layers.Layer):
    """Turns token ids into vectors from a trainable table followed by a frozen one.

    Ids in [0, trainable_rows) read the trainable table `embeddings`; ids in
    [trainable_rows, trainable_rows + frozen_rows) read the frozen table `frozen_embeddings`, which
    never trains. The usual layout: the training vocabulary takes the trainable rows (initialized
    from pretrained vectors where the file has them, randomly elsewhere), and the pretrained vectors
    of the file's other words take the frozen rows, so that a word unseen in training still gets its
    pretrained vector without costing optimizer state (see `keras_mtsa.data.embedding_rows`).

    Both tables are created with the layer, so the frozen one can be assigned right away; it starts
    as zeros. Setting `layer.trainable = False` freezes the trainable table too (Keras semantics).
    Gradients reach the trainable table through a gather, so optimizers see sparse updates, as with
    `keras.layers.Embedding`. As there, an id outside [0, trainable_rows + frozen_rows) is an error
    on CPU (and reads zeros on a GPU).

    Args:
        trainable_rows: positive integer, rows of the trainable table (ids 0 to trainable_rows - 1).
        frozen_rows: non-negative integer, rows of the frozen table (the ids that follow).
        output_dim: positive integer, width of the vectors.
        embeddings_initializer: initializer of the trainable table (see `keras.initializers`).
        mask_zero: whether id 0 is padding, as for `keras.layers.Embedding`: the layer then returns
            the mask `inputs != 0` for the layers that follow.
        **kwargs: base `Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: integer tensor of ids, of any shape.

    Returns:
        Tensor of shape `inputs.shape + (output_dim,)` in the layer's compute dtype (`float16` under
        the `"mixed_float16"` policy; the tables stay in the variable dtype).

    Example:
        >>> layer = PretrainedEmbedding(trainable_rows=4, frozen_rows=2, output_dim=3)
        >>> layer.frozen_embeddings.assign(np.ones((2, 3), "float32"))
        >>> layer(np.array([[1, 5]])).shape  # id 1 trainable, id 5 frozen (all ones)
        (1, 2, 3)
    """

    def __init__(
        self,
        trainable_rows,
        frozen_rows,
        output_dim,
        embeddings_initializer="uniform",
        mask_zero=False,
        **kwargs,
    ):
        trainable_rows = check.positive_int("trainable_rows", trainable_rows)
        frozen_rows = check.non_negative_int("frozen_rows", frozen_rows)
        output_dim = check.positive_int("output_dim", output_dim)
        check.boolean("mask_zero", mask_zero)
        try:
            embeddings_initializer = initializers.get(embeddings_initializer)
        except (ValueError, TypeError) as error:
            raise ValueError(
                "`embeddings_initializer` must be a Keras initializer name, config or callable. "
                f"Received: embeddings_initializer={embeddings_initializer!r}"
            ) from error
        super().__init__(**kwargs)
        self.trainable_rows = trainable_rows
        self.frozen_rows = frozen_rows
        self.output_dim = output_dim
        self.embeddings_initializer = embeddings_initializer
        self.mask_zero = mask_zero
        self.supports_masking = mask_zero
        # The tables stay in the variable dtype; the output is cast to the compute dtype in `call`.
        self.autocast = False
        self.build()

    @property
    def input_dim(self):
        """The number of ids: trainable_rows + frozen_rows."""
        return self.trainable_rows + self.frozen_rows

    def build(self, input_shape=None):
        if self.built:
            return
        self.embeddings = self.add_weight(
            shape=(self.trainable_rows, self.output_dim),
            initializer=self.embeddings_initializer,
            name="embeddings",
            trainable=True,
        )
        self.frozen_embeddings = self.add_weight(
            shape=(self.frozen_rows, self.output_dim),
            initializer="zeros",
            name="frozen_embeddings",
            trainable=False,
        )
        self.built = True

    def call(self, inputs):
        if inputs.dtype not in ("int32", "int64"):
            inputs = ops.cast(inputs, "int32")
        if not self.frozen_rows:
            outputs = ops.take(self.embeddings, inputs, axis=0)
            return ops.cast(outputs, self.compute_dtype)
        # Each table is gathered at ids moved into its range only from the other table's side, so
        # that an id out of [0, input_dim) still fails (on CPU) as in keras.layers.Embedding.
        trainable = ops.take(self.embeddings, ops.minimum(inputs, self.trainable_rows - 1), axis=0)
        frozen_ids = ops.maximum(inputs - self.trainable_rows, 0)
        frozen = ops.take(self.frozen_embeddings, frozen_ids, axis=0)
        in_trainable = ops.expand_dims(ops.less(inputs, self.trainable_rows), -1)
        return ops.cast(ops.where(in_trainable, trainable, frozen), self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            trainable_rows=self.trainable_rows,
            frozen_rows=self.frozen_rows,
            output_dim=self.output_dim,
            embeddings_initializer=initializers.serialize(self.embeddings_initializer),
            mask_zero=self.mask_zero,
        )
        return config
