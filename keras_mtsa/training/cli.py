"""The command line of the training job: `keras-mtsa-train` and `keras-mtsa-train-pair`.

Each flag is a `TrainingConfig` field (`--batch-size` is `batch_size`), and its default is the
field's, so the config's dataclasses are the one place for both. A user's error, a bad value, a
missing file, a file in another format or a missing optional package, exits with one line that names
the flags (and code 2, as argparse's own errors), never a traceback. Ctrl-C ends in one line that
says after which epoch the same command resumes (code 130, as a shell's for SIGINT).
"""

import argparse
import dataclasses
import json
import os
import re
import sys

from keras_mtsa.distribute import STRATEGIES
from keras_mtsa.layers.mtsa import FUSION_GATES
from keras_mtsa.layers.mtsa import TOKEN2TOKEN_ACTIVATIONS
from keras_mtsa.models import DROPOUT_SITES
from keras_mtsa.models import ENCODERS
from keras_mtsa.models import PAIR_HEADS
from keras_mtsa.training import config as config_module
from keras_mtsa.training.config import CLASSIFICATION_FORMATS
from keras_mtsa.training.config import OPTIMIZERS
from keras_mtsa.training.config import PAIR_FORMATS
from keras_mtsa.training.config import PRECISIONS
from keras_mtsa.training.config import RECIPE_DEFAULTS
from keras_mtsa.training.config import TASK_DEFAULTS
from keras_mtsa.training.config import TREC_LABELS
from keras_mtsa.training.config import VECTORS_ENCODER_WIDTH
from keras_mtsa.training.config import VERBOSITIES
from keras_mtsa.training.config import ConfigError
from keras_mtsa.training.config import TrainingConfig
from keras_mtsa.training.environment import OptionalDependencyError
from keras_mtsa.training.job import TrainingInterrupted
from keras_mtsa.training.job import train
from keras_mtsa.training.job import train_pair

_FIELDS = {
    field.name: field
    for section in config_module.SECTIONS.values()
    for field in dataclasses.fields(section)
}
_OPTIONAL = {"max_length", "head_dim", "learning_rate", "epsilon", "steps_per_epoch"}
_OPTIONAL |= {"dev", "class_names", "export_dir", "model_name", "tpu", "mixed_precision"}
_OPTIONAL |= {"embeddings", "token2token"}
_SWITCHES = ("store_true", argparse.BooleanOptionalAction)


def _positive_int_or_none(flag):
    """The argparse type of `flag`: an integer, or None spelled "None" or "none" (the config checks
    the sign)."""

    def parse(value):
        if value in ("None", "none"):
            return None
        try:
            return int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a positive integer or None. Received: {flag} {value}"
            ) from None

    return parse


def build_argument_parser(pair=False):
    """The command-line flags of the training job (`pair=True` for the sentence-pair model)."""
    kind = "sentence-pair" if pair else "sentence"
    parser = argparse.ArgumentParser(
        description=f"Train an MTSA {kind} classifier.", argument_default=argparse.SUPPRESS
    )

    def add(name, help_text="", **options):
        """A flag for config field `name`, its default named in the help text."""
        field = name.lstrip("-").replace("-", "_")
        default = TASK_DEFAULTS[pair].get(field, _FIELDS[field].default)
        if field in RECIPE_DEFAULTS[False] or field in RECIPE_DEFAULTS[True]:
            shown = RECIPE_DEFAULTS[False].get(field, default)
            vectors = RECIPE_DEFAULTS[True].get(field, "the vectors' width")
            shown = f"{shown}; with --embeddings: {vectors}"
        elif field not in _OPTIONAL and default is not dataclasses.MISSING:
            # on/off for switches only: 1 == True and 0 == False would show --seed 1 as "on".
            shown = ("on" if default else "off") if options.get("action") in _SWITCHES else default
        else:
            shown = None
        if shown is not None:
            help_text = f"{help_text} (default: {shown})" if help_text else f"default: {shown}"
        parser.add_argument(name, help=help_text.replace("%", "%%"), **options)

    add("--train", "training file", required=True)
    add("--test", "test file (used once, after training)", required=True)
    add("--dev", "dev file for model selection; default: 10% carved from --train")
    add(
        "--format",
        "file format",
        required=True,
        choices=PAIR_FORMATS if pair else CLASSIFICATION_FORMATS,
    )
    add("--trec-labels", choices=TREC_LABELS)
    add("--text-column", "tsv/csv: text column")
    add("--label-column", "tsv/csv: label column")
    add(
        "--class-names",
        "comma-separated display names of the classes, in the order of the labels as sorted in the "
        "data (e.g. 'negative,positive' for 0/1 labels); they are what the exported model returns",
    )
    add("--skip-malformed", "skip malformed lines (counted)", action="store_true")
    add("--output-dir")
    add("--export-dir", "export a SavedModel here for TF Serving")
    add("--model-name", "model name in the export layout; default: from --train's folder")
    add("--epochs", type=int)
    add("--batch-size", "global batch size", type=int)
    add(
        "--max-length",
        "the most tokens per sentence (longer ones are cut); default (or None): the longest "
        "training text's, rounded up to a multiple of 8, at most 256",
        type=_positive_int_or_none("--max-length"),
    )
    add(
        "--buckets",
        "the padded lengths of batches, e.g. 16,32,64 (--max-length is always the last): each "
        "batch is made of sentences of one bucket and padded to it, so a step costs about its real "
        "tokens; 'auto' chooses up to 5 multiples of 8 from the training lengths, 'none' pads "
        "every batch to --max-length (--encoder cnn always does: its max-over-time "
        "pooling sees the padding)",
    )
    add("--vocabulary-size", type=int)
    add("--min-count", "rarer training words map to [UNK], which so learns rare words", type=int)
    add(
        "--keep-case",
        "case-sensitive vocabulary, model and export (as Kim (2014) for TREC, where capitals mark "
        "names); --no-keep-case folds case",
        action=argparse.BooleanOptionalAction,
    )
    add(
        "--case-fallback",
        "with --keep-case: a word missing from the vocabulary is looked up again case-folded "
        '("Denver" seen once and "denver" once become "denver")',
        action=argparse.BooleanOptionalAction,
    )
    add(
        "--subwords",
        "WordPiece subwords learned from the training text (tensorflow-text's learner) instead of "
        "words: --vocabulary-size is its target size and --min-count the lowest "
        "count of a word or piece",
        action="store_true",
    )
    add("--embedding-dim", type=int)
    add(
        "--embedding-scale",
        "embeddings start uniform in [-scale, scale] (the rows no pretrained vector sets)",
        type=float,
    )
    add(
        "--embeddings",
        "pretrained word vectors, a GloVe, word2vec or fastText text file (gzip allowed): training "
        "words start from their vectors and are fine-tuned; the file's other words join the "
        "vocabulary with frozen vectors, so that unseen test words have one",
        metavar="PATH",
    )
    add(
        "--freeze-embeddings",
        "with --embeddings: the training words' embeddings do not train either",
        action="store_true",
    )
    add("--num-heads", type=int)
    add(
        "--head-dim",
        "features per head: the sentence vectors of mtsa, mha and bilstm have --num-heads x "
        "--head-dim; default: --embedding-dim / --num-heads, with --embeddings "
        f"{VECTORS_ENCODER_WIDTH} / --num-heads",
        type=int,
    )
    add("--num-blocks", "0: single MTSA layer; N: stacked blocks", type=int)
    add(
        "--conv-window",
        "0: the paper's setup; N: a ReLU convolution over N tokens in front of MTSA (a hybrid, not "
        "the paper's)",
        type=int,
    )
    add(
        "--encoder",
        "mtsa, or a baseline: mha (MultiHeadAttention, same width), bilstm (a bidirectional LSTM, "
        "same width) or cnn (Kim's 2014 CNN)",
        choices=ENCODERS,
    )
    add(
        "--token2token",
        "MTSA's token2token factor; default: sigmoid for the single layer (the authors' sentence "
        "models), exp with --num-blocks (their deep models)",
        choices=TOKEN2TOKEN_ACTIVATIONS,
    )
    add(
        "--fusion-gate",
        "the MTSA layer's fusion gate: per_head (the authors': one (2d x d) map per head) or joint "
        "(one map over all heads, the package's gate before 0.2)",
        choices=FUSION_GATES,
    )
    add("--activation", "activation of MTSA's values and of the pooling")
    if pair:
        add(
            "--head",
            "the classifier over [u; v; u - v; u * v]: relu (Dense(300, relu)) or highway (the "
            "authors' SNLI head: Dense(300, elu), then a highway layer)",
            choices=PAIR_HEADS,
        )
    add("--dropout", type=float)
    add(
        "--dropout-sites",
        "where --dropout applies: embedding (the embeddings and the classifier's input) or authors "
        "(as the authors' code: the input of every dense map, per head inside MTSA, in the pooling "
        "and in the head; needs the single MTSA layer)",
        choices=DROPOUT_SITES,
    )
    add(
        "--attention-dropout",
        "attention dropout of MTSA (its token2token and source2token factors, as the authors' "
        "code) or of MultiHeadAttention",
        type=float,
    )
    add(
        "--token-dropout",
        "word dropout: the probability that a training token becomes [UNK], which so learns to "
        "stand for unseen words",
        type=float,
    )
    add(
        "--optimizer",
        "adam, or adadelta (rho 0.95, as Kim (2014) and the MTSA authors' TREC runs)",
        choices=OPTIMIZERS,
    )
    add("--learning-rate", "default: 1.0 for adadelta, 1e-3 for adam", type=float)
    add(
        "--epsilon",
        "the optimizer's epsilon; default: 1e-6 for adadelta (Kim's), 1e-7 for adam",
        type=float,
    )
    add(
        "--l2",
        "L2 on every kernel (not embeddings or biases), as Keras's L2(l2): the authors' weight "
        "decay wd (wd * tf.nn.l2_loss(W)) is --l2 wd/2",
        type=float,
    )
    add("--label-smoothing", "label smoothing in [0, 1)", type=float)
    add(
        "--ema",
        "if > 0: keep an exponential moving average of the weights with this momentum (e.g. 0.99) "
        "and copy it into the model at the end of every epoch, so dev selection and "
        "export use the average",
        type=float,
    )
    add(
        "--patience",
        "early stopping after this many epochs without a better dev accuracy",
        type=int,
    )
    add(
        "--refit",
        "after the dev split has chosen the number of epochs, train a fresh model on train + dev "
        "for that many epochs and keep it (about twice the training time); the selection run stays "
        "in <output-dir>/selection/",
        action=argparse.BooleanOptionalAction,
    )
    add("--strategy", choices=STRATEGIES)
    add("--tpu", "TPU name or address for --strategy tpu")
    add(
        "--mixed-precision",
        "dtype policy; default: mixed_bfloat16 on a TPU, float32 elsewhere",
        choices=PRECISIONS,
    )
    add("--seed", type=int)
    add(
        "--deterministic",
        "TensorFlow's deterministic kernels, so that the same command and --seed give the same "
        "numbers (slower per epoch; see docs/training.md)",
        action=argparse.BooleanOptionalAction,
    )
    add(
        "--steps-per-epoch",
        "at most this many steps per epoch (the first of its batches)",
        type=_positive_int_or_none("--steps-per-epoch"),
    )
    add("--verbose", "Keras fit verbosity", type=int, choices=VERBOSITIES)
    add(
        "--overwrite",
        "start over: train again although --output-dir holds the finished run of this command "
        "(which is otherwise reported, not trained again), or drop an unfinished run there instead "
        "of resuming it",
        action="store_true",
    )
    return parser


def config_from_argv(argv=None, pair=False):
    """The `TrainingConfig` of a command line (parse errors exit as argparse's do).

    Raises:
        ConfigError: a value the config refuses (the message names the config's fields).
    """
    args = build_argument_parser(pair=pair).parse_args(argv)
    return TrainingConfig.from_flat(vars(args))


def flag_message(message):
    """A config message in the command line's terms:
    `batch_size` -> --batch-size, x='a' -> --x a."""

    def flag(name):
        return "--" + name.replace("_", "-")

    names = "|".join(sorted(_FIELDS, key=len, reverse=True))

    def assignment(match):
        value = match.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        return f"{flag(match.group(1))} {value}"

    message = re.sub(rf"\b({names})=('[^']*'|\"[^\"]*\"|[^\s,)]+)", assignment, message)
    message = re.sub(rf"`({names})`", lambda match: flag(match.group(1)), message)
    return re.sub(r"`(--[^`]*)`", r"\1", message)


def main(argv=None, pair=False):
    """Command-line entry point: `keras-mtsa-train` (and the example scripts)."""
    from keras_mtsa.data import DataFormatError

    try:
        config = config_from_argv(argv, pair=pair)
        result = (train_pair if pair else train)(config)
    except DataFormatError as error:
        embeddings = config.model.embeddings
        if embeddings is not None and os.path.abspath(error.path) == os.path.abspath(embeddings):
            _exit(f"{error} (--embeddings: word vectors as text, a word and its values a line)")
        _exit(f"{error} (--format {config.data.format}: is that the file's format?)")
    except (ConfigError, OptionalDependencyError) as error:
        _exit(flag_message(str(error)))
    except TrainingInterrupted as interrupted:
        _exit(str(interrupted), code=130)
    except KeyboardInterrupt:  # before the run's folder was claimed: nothing to resume
        _exit("Interrupted before training: rerun the same command to start it", code=130)
    metrics = result.metrics
    summary = {key: metrics[key] for key in ("test_accuracy", "dev_accuracy", "best_epoch")}
    if result.export_path:
        summary["export_path"] = result.export_path
    print(json.dumps(summary))
    return 0


def main_pair(argv=None):
    """Command-line entry point of the sentence-pair model: `keras-mtsa-train-pair`."""
    return main(argv, pair=True)


def _exit(message, code=2):
    """Exits as argparse does for a bad command line: the message on stderr, code 2 (an error), or
    130 (Ctrl-C, which is no error)."""
    kind = "error: " if code == 2 else ""
    print(f"{os.path.basename(sys.argv[0])}: {kind}{message}", file=sys.stderr)
    raise SystemExit(code)
