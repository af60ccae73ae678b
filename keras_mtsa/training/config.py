"""The training job's configuration: frozen dataclasses that check themselves.

A `TrainingConfig` holds five sections, each a frozen dataclass whose fields are plain values:

- `DataConfig`: the files and how to read them;
- `TextConfig`: the vocabulary and the padded lengths;
- `ModelConfig`: the encoder and the classifier (the encoder's rules are
  `models.check_encoder_arguments`'s);
- `OptimizerConfig`: the optimizer and the training schedule;
- `RunConfig`: where and how the job runs (output folders, distribution, precision, seed).

A bad value raises `ConfigError` (a `ValueError`) when the section is made, in the Keras dialect:
"`batch_size` must be a positive integer. Received: batch_size=0". Fields whose default depends on
the task (sentences or pairs) default to None; `TrainingConfig.resolve(pair)` fills them in and
checks the rules that need the task. Field names are unique across sections and equal the command
line's flags (`batch_size` is `--batch-size`), so `TrainingConfig.from_flat` / `to_flat` map a flat
mapping, such as the parsed command line or a run's `run_settings.json`, to sections and back.

Fields whose default depends on the embeddings (learned from scratch, or started from pretrained
word vectors) default to None too: `RECIPE_DEFAULTS` holds both recipes, each chosen on dev accuracy
(docs/training.md), and `resolve` fills in the one that applies.
"""

import dataclasses
import numbers

from keras_mtsa import models
from keras_mtsa.data.buckets import check_bucket_boundaries
from keras_mtsa.data.readers import DataFormatError
from keras_mtsa.data.word_vectors import peek_word_vector_dim
from keras_mtsa.distribute import STRATEGIES
from keras_mtsa.ops import _checks as check

CLASSIFICATION_FORMATS = ("labeled-lines", "trec", "tsv", "csv")
PAIR_FORMATS = ("sick", "snli")
TREC_LABELS = ("coarse", "fine")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
OPTIMIZERS = ("adam", "adadelta")
DEFAULT_LEARNING_RATES = {"adam": 1e-3, "adadelta": 1.0}
DEFAULT_EPSILONS = {"adam": 1e-7, "adadelta": 1e-6}  # Keras's Adam; Kim's (2014) Adadelta
VERBOSITIES = (0, 1, 2)
# The defaults that differ between the sentence and the sentence-pair job (None in the dataclasses).
TASK_DEFAULTS = {
    False: {
        "keep_case": True,
        "activation": "relu",
        "token_dropout": 0.2,
        "output_dir": "runs/classifier",
    },
    True: {
        "keep_case": False,
        "activation": "elu",
        "token_dropout": 0.0,
        "output_dir": "runs/pair",
        "head": "relu",
    },
}
# The defaults that differ between embeddings learned from scratch (False) and embeddings started
# from pretrained word vectors (True, `embeddings`), each recipe chosen on dev accuracy
# (docs/training.md). Over vectors, `embedding_dim` is the file's width, and the sentence vectors of
# MTSA, MHA and the BiLSTM keep `VECTORS_ENCODER_WIDTH` features (`head_dim` is that over
# `num_heads`), so that 50-wide vectors do not make a 50-wide encoder.
RECIPE_DEFAULTS = {
    False: {"embedding_dim": 300, "optimizer": "adadelta", "dropout": 0.5, "epochs": 25},
    True: {"optimizer": "adam", "dropout": 0.3, "token_dropout": 0.0, "epochs": 15},
}
VECTORS_ENCODER_WIDTH = 300


class ConfigError(ValueError):
    """A configuration value that the job cannot run with (a user's error, not a bug)."""


def _checked(function, *args, **kwargs):
    """Runs a shared argument check, raising its ValueError as a ConfigError."""
    try:
        return function(*args, **kwargs)
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _positive_number(name, value, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ConfigError(f"`{name}` must be a positive number. Received: {name}={value!r}")


def _text(name, value, allow_none=False):
    if value is None and allow_none:
        return
    if not isinstance(value, str) or not value:
        raise ConfigError(f"`{name}` must be a non-empty string. Received: {name}={value!r}")


def parse_buckets(value):
    """`buckets` as given (e.g. "16,32,64", (16, 32, 64), "auto", "none") -> "auto",
    "none" or a tuple."""
    if value in ("auto", "none"):
        return value
    try:
        if isinstance(value, str):
            value = tuple(int(boundary) for boundary in value.split(","))
        return _checked(check_bucket_boundaries, value, max(value))
    except (TypeError, ValueError):
        raise ConfigError(
            "`buckets` must be 'auto', 'none' or increasing positive integers separated by commas. "
            f"Received: buckets={value!r}"
        ) from None


def comma_separated(value):
    """A tuple (buckets, class names) as the command line spells it ("8,16"); else the value."""
    return ",".join(str(item) for item in value) if isinstance(value, tuple) else value


def _encoder_arguments(model):
    """`models.check_encoder_arguments`'s arguments from a ModelConfig, its recipe's defaults in
    place of None (a placeholder width for vectors whose file only `resolve` reads)."""
    defaults = _recipe_defaults(model)
    return dict(
        encoder=model.encoder,
        embedding_dim=defaults.get("embedding_dim", VECTORS_ENCODER_WIDTH)
        if model.embedding_dim is None
        else model.embedding_dim,
        embedding_scale=model.embedding_scale,
        num_heads=model.num_heads,
        head_dim=defaults.get("head_dim") if model.head_dim is None else model.head_dim,
        num_blocks=model.num_blocks,
        conv_window=model.conv_window,
        token2token_activation=model.token2token,
        fusion_gate=model.fusion_gate,
        dropout=defaults["dropout"] if model.dropout is None else model.dropout,
        dropout_sites=model.dropout_sites,
        attention_dropout=model.attention_dropout,
        token_dropout=0.0 if model.token_dropout is None else model.token_dropout,
        l2=model.l2,
    )


def _recipe_defaults(model, embedding_dim=None):
    """The recipe's defaults (`RECIPE_DEFAULTS`) for a ModelConfig: with vectors, `head_dim` for
    the encoders whose width it sets, and `embedding_dim` if given (the vectors' width)."""
    vectors = model.embeddings is not None
    defaults = dict(RECIPE_DEFAULTS[vectors])
    if vectors:
        if model.encoder != "cnn" and not model.num_blocks:
            defaults["head_dim"] = max(1, VECTORS_ENCODER_WIDTH // model.num_heads)
        if embedding_dim is not None:
            defaults["embedding_dim"] = embedding_dim
    return defaults


def _vectors_width(model):
    """The width of the vectors in `model.embeddings`, which an explicit `embedding_dim` must equal.

    Raises:
        ConfigError: the file is missing or not a word-vectors file, or the widths differ.
    """
    try:
        width = peek_word_vector_dim(model.embeddings)
    except FileNotFoundError:
        raise ConfigError(
            f"`embeddings` must be an existing file. Received: embeddings={model.embeddings!r}"
        ) from None
    except DataFormatError as error:
        raise ConfigError(
            f"`embeddings` must be a word-vectors text file (GloVe, word2vec or fastText): {error}"
        ) from None
    if model.embedding_dim is not None and model.embedding_dim != width:
        raise ConfigError(
            f"`embedding_dim` must equal the width of the vectors in `embeddings` ({width}), or be "
            f"left out. Received: embedding_dim={model.embedding_dim}"
        )
    return width


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The data files and how to read them.

    Args:
        train: the training file.
        test: the test file, read once after training.
        format: one of `CLASSIFICATION_FORMATS` (sentences) or `PAIR_FORMATS` (pairs).
        dev: the dev file for model selection; None carves 10% from `train` (seeded).
        trec_labels: "coarse" or "fine" TREC labels.
        text_column: the text column of tsv/csv files.
        label_column: the label column of tsv/csv files.
        class_names: display names of the classes, in the order of the labels as sorted in the data;
            they are what an exported model returns. A tuple, or one comma-separated string.
        skip_malformed: skip (and count) malformed lines instead of stopping at the first.
    """

    train: str
    test: str
    format: str
    dev: str | None = None
    trec_labels: str = "coarse"
    text_column: str = "text"
    label_column: str = "label"
    class_names: tuple | None = None
    skip_malformed: bool = False

    def __post_init__(self):
        for name in ("train", "test", "text_column", "label_column"):
            _text(name, getattr(self, name))
        _text("dev", self.dev, allow_none=True)
        _checked(check.choice, "format", self.format, CLASSIFICATION_FORMATS + PAIR_FORMATS)
        _checked(check.choice, "trec_labels", self.trec_labels, TREC_LABELS)
        _checked(check.boolean, "skip_malformed", self.skip_malformed)
        names = self.class_names
        if isinstance(names, str):
            names = tuple(name.strip() for name in names.split(","))
        if names is not None:
            if isinstance(names, list):
                names = tuple(names)
            if not isinstance(names, tuple) or not all(
                isinstance(name, str) and name for name in names
            ):
                raise ConfigError(
                    "`class_names` must be non-empty names, as a tuple or separated by commas. "
                    f"Received: class_names={self.class_names!r}"
                )
            object.__setattr__(self, "class_names", names)


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """The vocabulary and the padded lengths.

    Args:
        max_length: the most tokens per text (longer ones are cut); None fits it to the longest
            training text, rounded up to a multiple of 8, at most 256.
        buckets: the padded lengths of batches: "auto" (up to 5 multiples of 8 chosen from the
            training lengths), "none" (every batch padded to `max_length`), or increasing lengths (a
            tuple, or a comma-separated string), the last at most `max_length`.
        vocabulary_size: the most tokens of the vocabulary (the WordPiece target
            size with `subwords`).
        min_count: rarer training words map to [UNK] (the lowest count of a word or
            piece with `subwords`).
        keep_case: a case-sensitive vocabulary; None: True for sentences, False for pairs.
        case_fallback: with `keep_case`, a word missing from the vocabulary is looked
            up again case-folded.
        subwords: a WordPiece vocabulary learned from the training text instead of words.
    """

    max_length: int | None = None
    buckets: object = "auto"
    vocabulary_size: int = 30000
    min_count: int = 2
    keep_case: bool | None = None
    case_fallback: bool = False
    subwords: bool = False

    def __post_init__(self):
        for name in ("vocabulary_size", "min_count"):
            _checked(check.positive_int, name, getattr(self, name))
        _checked(check.positive_int, "max_length", self.max_length, allow_none=True)
        object.__setattr__(self, "buckets", parse_buckets(self.buckets))
        if isinstance(self.buckets, tuple) and self.max_length is not None:
            if self.buckets[-1] > self.max_length:
                raise ConfigError(
                    "`buckets` must be at most `max_length`. "
                    f"Received: buckets={comma_separated(self.buckets)!r}, "
                    f"max_length={self.max_length}"
                )
        if self.keep_case is not None:
            _checked(check.boolean, "keep_case", self.keep_case)
        _checked(check.boolean, "case_fallback", self.case_fallback)
        _checked(check.boolean, "subwords", self.subwords)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The encoder and the classifier over it (see `keras_mtsa.models`).

    Args:
        encoder: "mtsa", or a baseline: "mha" (MultiHeadAttention, same width), "bilstm" (a
            bidirectional LSTM, same width) or "cnn" (Kim's CNN).
        embedding_dim: width of the embeddings; None: the width of the vectors in `embeddings`, else
            300.
        embedding_scale: embeddings start uniform in [-scale, scale] (the rows that no pretrained
            vector sets).
        embeddings: a word-vectors text file (GloVe, word2vec or fastText; gzip allowed) whose
            vectors start the training words' embeddings; its other words join the vocabulary
            with frozen vectors.
        freeze_embeddings: with `embeddings`, the training words' embeddings do not train either.
        num_heads: attention heads.
        head_dim: features per head (the sentence vectors of MTSA, MHA and the BiLSTM have
            `num_heads * head_dim`); None: `embedding_dim / num_heads`, or with `embeddings`
            `VECTORS_ENCODER_WIDTH / num_heads`.
        num_blocks: 0 for the single MTSA layer, N for N stacked blocks.
        conv_window: 0, or a ReLU convolution over N tokens in front of MTSA (a
            hybrid, not the paper's).
        token2token: MTSA's token2token factor; None: sigmoid for the single layer, exp for blocks.
        fusion_gate: MTSA's fusion gate, "per_head" (the authors') or "joint".
        activation: activation of MTSA's values and the pooling; None: relu for
            sentences, elu for pairs.
        head: the pair model's classifier, "relu" or "highway"; None: relu (pairs only).
        dropout: the dropout rate at the `dropout_sites`; None: 0.5, or 0.3 with `embeddings`.
        dropout_sites: "embedding" or "authors" (see `models.build_sentence_encoder`).
        attention_dropout: MTSA's (or MultiHeadAttention's) attention dropout.
        token_dropout: word dropout, the probability that a training token becomes [UNK]; None: 0.2
            for sentences, 0 for pairs and with `embeddings`.
        l2: L2 on every kernel (Keras's `L2(l2)`; the authors' weight decay wd is l2 = wd / 2).
    """

    encoder: str = "mtsa"
    embedding_dim: int | None = None
    embedding_scale: float = 0.25
    embeddings: str | None = None
    freeze_embeddings: bool = False
    num_heads: int = 2
    head_dim: int | None = None
    num_blocks: int = 0
    conv_window: int = 0
    token2token: str | None = None
    fusion_gate: str = "per_head"
    activation: str | None = None
    head: str | None = None
    dropout: float | None = None
    dropout_sites: str = "embedding"
    attention_dropout: float = 0.0
    token_dropout: float | None = None
    l2: float = 0.0

    def __post_init__(self):
        # max_length: TrainingConfig checks it against the encoder.
        _checked(models.check_encoder_arguments, max_length=None, **_encoder_arguments(self))
        if self.activation is not None:
            _checked(check.activation, "activation", self.activation)
        if self.head is not None:
            _checked(check.choice, "head", self.head, models.PAIR_HEADS)
        _text("embeddings", self.embeddings, allow_none=True)
        _checked(check.boolean, "freeze_embeddings", self.freeze_embeddings)
        if self.freeze_embeddings and self.embeddings is None:
            raise ConfigError(
                "`freeze_embeddings` needs `embeddings` (a word-vectors file). "
                "Received: freeze_embeddings=True, embeddings=None"
            )


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer and the training schedule.

    Args:
        optimizer: "adadelta" (rho 0.95, as Kim (2014) and the MTSA authors' TREC runs) or "adam";
            None: adadelta, or adam with `ModelConfig.embeddings`.
        learning_rate: None: 1.0 for adadelta, 1e-3 for adam.
        epsilon: the optimizer's epsilon; None: 1e-6 for adadelta (Kim's), 1e-7 for adam (Keras's).
        epochs: training epochs (of the dev-selected run); None: 25, or 15 with
            `ModelConfig.embeddings`.
        batch_size: the global batch size.
        patience: early stopping after this many epochs without a better dev accuracy.
        refit: after the dev split has chosen the number of epochs, train a fresh model on
            train + dev for that many epochs and keep it.
        steps_per_epoch: at most this many steps per epoch (the first of its batches); None: all.
        label_smoothing: label smoothing in [0, 1).
        ema: if > 0, an exponential moving average of the weights with this momentum, copied into
            the model at the end of every epoch (dev selection and export use the average).
    """

    optimizer: str | None = None
    learning_rate: float | None = None
    epsilon: float | None = None
    epochs: int | None = None
    batch_size: int = 50
    patience: int = 25
    refit: bool = False
    steps_per_epoch: int | None = None
    label_smoothing: float = 0.0
    ema: float = 0.0

    def __post_init__(self):
        if self.optimizer is not None:
            _checked(check.choice, "optimizer", self.optimizer, OPTIMIZERS)
        _positive_number("learning_rate", self.learning_rate, allow_none=True)
        _positive_number("epsilon", self.epsilon, allow_none=True)
        _checked(check.positive_int, "epochs", self.epochs, allow_none=True)
        _checked(check.positive_int, "batch_size", self.batch_size)
        _checked(check.non_negative_int, "patience", self.patience)
        # 0 would mean "the whole epoch" to Keras.
        _checked(check.positive_int, "steps_per_epoch", self.steps_per_epoch, allow_none=True)
        _checked(check.boolean, "refit", self.refit)
        for name in ("label_smoothing", "ema"):
            _checked(check.rate, name, getattr(self, name))

    @property
    def resolved_learning_rate(self):
        """The learning rate (of a resolved config: its optimizer is set)."""
        if self.learning_rate is None:
            return DEFAULT_LEARNING_RATES[self.optimizer]
        return self.learning_rate

    @property
    def resolved_epsilon(self):
        """The epsilon (of a resolved config: its optimizer is set)."""
        return DEFAULT_EPSILONS[self.optimizer] if self.epsilon is None else self.epsilon


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Where and how the job runs: none of it changes what a run computes, but `seed`.

    Args:
        output_dir: the run's folder (metrics, model, logs, backups); None:
            runs/classifier or runs/pair.
        export_dir: export a SavedModel for TF Serving here (the chief only).
        model_name: the model's name in the export layout; None: from the training file's folder.
        strategy: the `tf.distribute` strategy (see `keras_mtsa.distribute.get_strategy`).
        tpu: TPU name or address for strategy "tpu".
        mixed_precision: the dtype policy; None: mixed_bfloat16 on a TPU, float32 elsewhere.
        seed: the seed of the weights, the batches, the dev split and dropout.
        deterministic: TensorFlow's deterministic kernels (the same seed gives the same numbers).
        verbose: Keras fit verbosity (0, 1 or 2).
        overwrite: start the run over: train again although `output_dir` holds the finished run of
            the same settings (which is otherwise reported, not trained again), and drop an
            unfinished run there instead of resuming it.
    """

    output_dir: str | None = None
    export_dir: str | None = None
    model_name: str | None = None
    strategy: str = "auto"
    tpu: str | None = None
    mixed_precision: str | None = None
    seed: int = 1
    deterministic: bool = True
    verbose: int = 1
    overwrite: bool = False

    def __post_init__(self):
        for name in ("output_dir", "export_dir", "model_name", "tpu"):
            _text(name, getattr(self, name), allow_none=True)
        _checked(check.choice, "strategy", self.strategy, STRATEGIES)
        if self.mixed_precision is not None:
            _checked(check.choice, "mixed_precision", self.mixed_precision, PRECISIONS)
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise ConfigError(f"`seed` must be an integer. Received: seed={self.seed!r}")
        _checked(check.boolean, "deterministic", self.deterministic)
        _checked(check.choice, "verbose", self.verbose, VERBOSITIES)
        _checked(check.boolean, "overwrite", self.overwrite)


SECTIONS = {
    "data": DataConfig,
    "text": TextConfig,
    "model": ModelConfig,
    "optimizer": OptimizerConfig,
    "run": RunConfig,
}


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The whole job: `keras_mtsa.training.train(config)` (or `train_pair`) runs it.

    Example:

    ```python
    from keras_mtsa import training

    config = training.TrainingConfig(
        data=training.DataConfig(train="train.txt", test="test.txt", format="labeled-lines"),
        optimizer=training.OptimizerConfig(epochs=5),
        run=training.RunConfig(output_dir="runs/demo"),
    )
    result = training.train(config)
    print(result.metrics["test_accuracy"])
    ```
    """

    data: DataConfig
    text: TextConfig = dataclasses.field(default_factory=TextConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)

    def __post_init__(self):
        for name, section in SECTIONS.items():
            if not isinstance(getattr(self, name), section):
                raise ConfigError(
                    f"`{name}` must be a {section.__name__}. Received: "
                    f"{name}={getattr(self, name)!r}"
                )
        model, text = self.model, self.text
        if model.encoder == "cnn" and text.buckets not in ("auto", "none"):
            raise ConfigError(
                "`buckets` does not apply to encoder='cnn' (it pads every batch to `max_length`). "
                f"Received: buckets={comma_separated(text.buckets)!r}"
            )
        _checked(
            models.check_encoder_arguments, max_length=text.max_length, **_encoder_arguments(model)
        )
        if model.embeddings is not None and text.subwords:
            raise ConfigError(
                "`embeddings` holds word vectors and needs a word vocabulary, not `subwords`. "
                f"Received: embeddings={model.embeddings!r}, subwords=True"
            )
        if text.case_fallback and text.subwords:
            raise ConfigError(
                "`case_fallback` needs `keep_case` and no `subwords` (it looks a cased word up "
                "again case-folded). Received: case_fallback=True, subwords=True"
            )

    @classmethod
    def from_flat(cls, values):
        """A config from one flat mapping of field names (e.g. the parsed command line)."""
        values = dict(values)
        sections = {}
        for name, section in SECTIONS.items():
            names = {field.name for field in dataclasses.fields(section)}
            sections[name] = section(**{key: values.pop(key) for key in names & values.keys()})
        if values:
            raise ConfigError(f"Unknown training options: {sorted(values)}")
        return cls(**sections)

    def to_flat(self):
        """The fields of every section in one dict, as the command line spells them (buckets and
        class names comma-separated)."""
        flat = {}
        for name in SECTIONS:
            section = getattr(self, name)
            for field in dataclasses.fields(section):
                flat[field.name] = comma_separated(getattr(section, field.name))
        return flat

    def resolve(self, pair=False):
        """This config with the task's defaults filled in, checked against the task.

        Args:
            pair: True for the sentence-pair job.

        With `embeddings`, it reads the first line of the vectors file (for their width).

        Raises:
            ConfigError: the format or the classifier head does not fit the task, `case_fallback`
                is asked for without `keep_case`, or the vectors file is missing, unreadable or of
                another width than an explicit `embedding_dim`.
        """
        formats = PAIR_FORMATS if pair else CLASSIFICATION_FORMATS
        _checked(check.choice, "format", self.data.format, formats)
        if self.model.head is not None and not pair:
            raise ConfigError(
                "`head` chooses the sentence-pair model's classifier. "
                f"Received: head={self.model.head!r} for the sentence model"
            )
        width = _vectors_width(self.model) if self.model.embeddings is not None else None
        defaults = {**TASK_DEFAULTS[pair], **_recipe_defaults(self.model, width)}

        def filled(section, **resolved):
            values = {
                key: value
                for key, value in {**defaults, **resolved}.items()
                if key in {field.name for field in dataclasses.fields(section)}
                and getattr(section, key) is None
            }
            return dataclasses.replace(section, **values) if values else section

        model = filled(
            self.model,
            token2token=models.default_token2token_activation(self.model.num_blocks),
        )
        optimizer = filled(self.optimizer)
        optimizer = filled(optimizer, learning_rate=optimizer.resolved_learning_rate)
        resolved = dataclasses.replace(
            self,
            text=filled(self.text),
            model=model,
            optimizer=optimizer,
            run=filled(self.run),
        )
        if resolved.text.case_fallback and not resolved.text.keep_case:
            raise ConfigError(
                "`case_fallback` needs `keep_case` and no `subwords` (it looks a cased word up "
                "again case-folded). Received: case_fallback=True, keep_case=False"
            )
        return resolved
