"""The training job's configuration (`keras_mtsa.training.config`) and its command line (`cli`).

Config values are checked when a section is made, in the Keras dialect, and the command line shows
the same rule in its flags' terms; the encoder's rules are the model builder's own.
"""

import dataclasses

import pytest

from keras_mtsa import models
from keras_mtsa import training
from keras_mtsa.training import cli
from keras_mtsa.training.config import SECTIONS
from keras_mtsa.training.config import ConfigError
from keras_mtsa.training.config import DataConfig
from keras_mtsa.training.config import ModelConfig
from keras_mtsa.training.config import OptimizerConfig
from keras_mtsa.training.config import RunConfig
from keras_mtsa.training.config import TextConfig
from keras_mtsa.training.config import TrainingConfig

DATA = DataConfig(train="train.txt", test="test.txt", format="labeled-lines")
REQUIRED = ["--train", "train.txt", "--test", "test.txt", "--format", "labeled-lines"]


@pytest.mark.parametrize("pair", [False, True])
def test_every_config_field_is_a_flag_and_the_flags_defaults_are_the_configs(pair):
    argv = REQUIRED if not pair else ["--train", "a", "--test", "b", "--format", "sick"]
    config = cli.config_from_argv(argv, pair=pair)
    data = dataclasses.replace(DATA, train=config.data.train, test=config.data.test,
                               format=config.data.format)  # fmt: skip
    assert config == TrainingConfig(data=data)
    parser = cli.build_argument_parser(pair=pair)
    flags = {option for action in parser._actions for option in action.option_strings}
    fields = {f.name for section in SECTIONS.values() for f in dataclasses.fields(section)}
    if not pair:
        fields.remove("head")  # the pair model's classifier
    assert {"--" + name.replace("_", "-") for name in fields} <= flags


def test_the_flat_settings_map_back_to_the_same_config():
    config = TrainingConfig(
        data=dataclasses.replace(DATA, class_names=("negative", "positive")),
        text=TextConfig(buckets="8,16", max_length=16),
        model=ModelConfig(num_heads=6, embedding_dim=30),
    )
    flat = config.to_flat()
    assert flat["buckets"] == "8,16" and flat["class_names"] == "negative,positive"
    assert config.text.buckets == (8, 16) and config.data.class_names == ("negative", "positive")
    assert TrainingConfig.from_flat(flat) == config
    with pytest.raises(ConfigError, match=r"Unknown training options: \['bogus'\]"):
        TrainingConfig.from_flat({**flat, "bogus": 1})


def test_a_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DATA.train = "other.txt"


def test_resolve_fills_in_the_tasks_defaults_and_leaves_the_config_as_it_was():
    config = TrainingConfig(data=DATA)
    sentences = config.resolve(pair=False)
    assert (sentences.text.keep_case, sentences.model.activation) == (True, "relu")
    assert (sentences.model.token_dropout, sentences.model.token2token) == (0.2, "sigmoid")
    assert (
        sentences.optimizer.learning_rate == 1.0 and sentences.run.output_dir == "runs/classifier"
    )
    assert sentences.model.head is None
    assert config.model.activation is None, "resolve returns a new config"
    pairs = dataclasses.replace(config, data=dataclasses.replace(DATA, format="sick"))
    pairs = pairs.resolve(pair=True)
    assert (pairs.text.keep_case, pairs.model.activation, pairs.model.head) == (
        False,
        "elu",
        "relu",
    )
    assert pairs.model.token_dropout == 0.0 and pairs.run.output_dir == "runs/pair"
    blocks = dataclasses.replace(config, model=ModelConfig(num_blocks=2)).resolve()
    assert blocks.model.token2token == "exp"
    adam = dataclasses.replace(config, optimizer=OptimizerConfig(optimizer="adam")).resolve()
    assert adam.optimizer.learning_rate == 1e-3 and adam.optimizer.resolved_epsilon == 1e-7


def _vectors_file(tmp_path, dim):
    path = tmp_path / "vectors.txt"
    path.write_text("".join(f"{word} " + " ".join(["0.5"] * dim) + "\n" for word in "ab"))
    return str(path)


def test_vectors_set_the_embedding_width_and_their_recipe_fills_the_other_defaults(tmp_path):
    vectors = _vectors_file(tmp_path, 7)
    config = TrainingConfig(data=DATA, model=ModelConfig(embeddings=vectors)).resolve()
    assert config.model.embedding_dim == 7, "the file's width, without --embedding-dim"
    assert config.model.head_dim == 150, "the encoder's width is not tied to the vectors'"
    assert (config.model.dropout, config.optimizer.epochs) == (0.3, 15)
    assert config.model.token_dropout == 0.0
    assert (config.optimizer.optimizer, config.optimizer.learning_rate) == ("adam", 1e-3)
    scratch = TrainingConfig(data=DATA).resolve()
    assert (scratch.model.embedding_dim, scratch.model.head_dim) == (300, None)
    assert (scratch.model.dropout, scratch.optimizer.epochs) == (0.5, 25)
    assert scratch.model.token_dropout == 0.2
    assert (scratch.optimizer.optimizer, scratch.optimizer.learning_rate) == ("adadelta", 1.0)


@pytest.mark.parametrize(
    "model, head_dim",
    [
        (dict(num_heads=4), 75),
        (dict(encoder="mha"), 150),
        (dict(encoder="bilstm"), 150),
        (dict(head_dim=20), 20),  # given values stay
        (dict(encoder="cnn"), None),  # its width is its filters'
        (dict(num_blocks=1), None),  # blocks keep the embeddings' width
    ],
)
def test_vectors_give_mtsa_mha_and_bilstm_the_same_300_wide_sentence_vectors(
    tmp_path, model, head_dim
):
    vectors = _vectors_file(tmp_path, 8)
    config = TrainingConfig(data=DATA, model=ModelConfig(embeddings=vectors, **model)).resolve()
    assert config.model.head_dim == head_dim


def test_given_values_override_the_vectors_recipe(tmp_path):
    config = TrainingConfig(
        data=DATA,
        model=ModelConfig(embeddings=_vectors_file(tmp_path, 7), embedding_dim=7, dropout=0.1),
        optimizer=OptimizerConfig(optimizer="adadelta", epochs=3),
    ).resolve()
    assert (config.model.dropout, config.optimizer.epochs) == (0.1, 3)
    assert (config.optimizer.optimizer, config.optimizer.learning_rate) == ("adadelta", 1.0)


@pytest.mark.parametrize(
    "embeddings, embedding_dim, message",
    [
        ("missing.txt", None, "`embeddings` must be an existing file. Received: "
         "embeddings='missing.txt'"),
        ("empty", None, "`embeddings` must be a word-vectors text file"),
        ("vectors", 300, "`embedding_dim` must equal the width of the vectors in `embeddings` (7), "
         "or be left out. Received: embedding_dim=300"),
    ],
)  # fmt: skip
def test_vectors_that_cannot_set_the_width_are_refused_when_resolving(
    tmp_path, embeddings, embedding_dim, message
):
    if embeddings == "vectors":
        embeddings = _vectors_file(tmp_path, 7)
    elif embeddings == "empty":
        (tmp_path / "empty.txt").write_text("")
        embeddings = str(tmp_path / "empty.txt")
    config = TrainingConfig(
        data=DATA, model=ModelConfig(embeddings=embeddings, embedding_dim=embedding_dim)
    )
    with pytest.raises(ConfigError) as error:
        config.resolve()
    assert message in str(error.value)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: OptimizerConfig(batch_size=0), "`batch_size` must be a positive integer. "
         "Received: batch_size=0"),
        (lambda: OptimizerConfig(epochs=2.5), "`epochs` must be a positive integer"),
        (lambda: OptimizerConfig(learning_rate=-1.0), "`learning_rate` must be a positive number"),
        (lambda: OptimizerConfig(patience=-1), "`patience` must be a non-negative integer"),
        (lambda: OptimizerConfig(optimizer="sgd"),
         "`optimizer` must be one of ('adam', 'adadelta')"),
        (lambda: ModelConfig(dropout=1.0), "`dropout` must be a float in [0, 1)"),
        (lambda: ModelConfig(l2=-1e-4), "`l2` must be a non-negative number"),
        (lambda: ModelConfig(head="tanh"), "`head` must be one of ('relu', 'highway')"),
        (lambda: ModelConfig(activation="nope"), "`activation` must be a Keras activation"),
        (lambda: ModelConfig(freeze_embeddings=True), "`freeze_embeddings` needs `embeddings`"),
        (lambda: TextConfig(buckets="16,8"), "`buckets` must be 'auto', 'none' or increasing"),
        (lambda: TextConfig(buckets="8,64", max_length=32),
         "`buckets` must be at most `max_length`"),
        (lambda: TextConfig(min_count=0), "`min_count` must be a positive integer"),
        (lambda: RunConfig(strategy="gpu"), "`strategy` must be one of"),
        (lambda: RunConfig(verbose=3), "`verbose` must be one of (0, 1, 2)"),
        (lambda: RunConfig(mixed_precision="float16"), "`mixed_precision` must be one of"),
        (lambda: DataConfig(train="", test="t", format="trec"),
         "`train` must be a non-empty string"),
        (lambda: DataConfig(train="a", test="t", format="xml"), "`format` must be one of"),
        (lambda: TrainingConfig(data=DATA, model=ModelConfig(encoder="cnn"), text=TextConfig(
            max_length=4)), "`max_length` must be at least 5 for encoder='cnn'"),
        (lambda: TrainingConfig(data=DATA, model=ModelConfig(encoder="cnn"), text=TextConfig(
            buckets="8,16")), "`buckets` does not apply to encoder='cnn'"),
        (lambda: TrainingConfig(data=DATA, model=ModelConfig(embeddings="v.txt"), text=TextConfig(
            subwords=True)), "`embeddings` holds word vectors and needs a word vocabulary"),
        (lambda: TrainingConfig(data=DATA, text=TextConfig(case_fallback=True, keep_case=False))
         .resolve(), "`case_fallback` needs `keep_case`"),
        (lambda: TrainingConfig(data=DATA, model=ModelConfig(head="relu")).resolve(),
         "`head` chooses the sentence-pair model's classifier"),
        (lambda: TrainingConfig(data=DATA).resolve(pair=True), "`format` must be one of ('sick', "),
    ],
)  # fmt: skip
def test_a_bad_value_raises_a_config_error_naming_the_field(make, message):
    with pytest.raises(ConfigError) as error:
        make()
    assert message in str(error.value)
    assert isinstance(error.value, ValueError)


@pytest.mark.parametrize(
    "arguments",
    [
        dict(encoder="mha", num_blocks=2),
        dict(encoder="cnn", head_dim=8),
        dict(embedding_dim=30, num_heads=4),
        dict(num_blocks=1, dropout_sites="authors"),
        dict(encoder="mha", conv_window=3),
        dict(fusion_gate="both"),
        dict(token2token="tanh"),
    ],
)
def test_the_encoder_rules_are_the_model_builders_own(arguments):
    with pytest.raises(ConfigError) as from_config:
        ModelConfig(**arguments)
    builder_arguments = {
        ("token2token_activation" if key == "token2token" else key): value
        for key, value in arguments.items()
    }
    with pytest.raises(ValueError) as from_builder:
        models.build_sentence_encoder(vocabulary_size=10, max_length=8, **builder_arguments)
    assert str(from_config.value) == str(from_builder.value)


@pytest.mark.parametrize(
    "message, expected",
    [
        ("`batch_size` must be a positive integer. Received: batch_size=0",
         "--batch-size must be a positive integer. Received: --batch-size 0"),
        ("`num_blocks` stacks MTSA blocks and needs encoder='mtsa'. Received: encoder='mha'",
         "--num-blocks stacks MTSA blocks and needs --encoder mtsa. Received: --encoder mha"),
        ("`dropout_sites='authors'` needs the single MTSA layer (encoder='mtsa', num_blocks=0, "
         "conv_window=0)", "--dropout-sites authors needs the single MTSA layer (--encoder mtsa, "
         "--num-blocks 0, --conv-window 0)"),
        ("`embedding_dim` (30) must be divisible by `num_heads` (4) unless `head_dim` is given.",
         "--embedding-dim (30) must be divisible by --num-heads (4) unless --head-dim is given."),
        ("`x` is not a field, nor is y=2", "`x` is not a field, nor is y=2"),
    ],
)  # fmt: skip
def test_config_messages_read_in_flags_on_the_command_line(message, expected):
    assert cli.flag_message(message) == expected


def test_the_package_exports_the_library_api():
    for name in ("TrainingConfig", "DataConfig", "train", "train_pair", "TrainingResult"):
        assert name in training.__all__ and hasattr(training, name)


@pytest.mark.parametrize("encoder", ["mtsa", "mha"])
def test_an_odd_num_heads_is_refused_in_the_config_for_mtsa_only(encoder):
    # MTSA's heads are half forward, half backward; MultiHeadAttention takes any number.
    if encoder == "mha":
        assert ModelConfig(encoder=encoder, num_heads=3).num_heads == 3
        return
    with pytest.raises(ConfigError) as error:
        ModelConfig(num_heads=3)
    assert str(error.value) == (
        "`num_heads` must be even for encoder='mtsa' (half the heads attend forward, half "
        "backward). Received: num_heads=3"
    )
    assert cli.flag_message(str(error.value)).endswith("Received: --num-heads 3")


@pytest.mark.parametrize("spelling", ["None", "none"])
def test_max_length_none_on_the_command_line_fits_it_to_the_training_texts(spelling):
    config = cli.config_from_argv(REQUIRED + ["--max-length", spelling, "--max-length", spelling])
    assert config.text.max_length is None
    assert cli.config_from_argv(REQUIRED + ["--max-length", "24"]).text.max_length == 24


def test_a_bad_max_length_exits_with_a_message_that_names_none(capsys):
    with pytest.raises(SystemExit) as error:
        cli.config_from_argv(REQUIRED + ["--max-length", "long"])
    assert error.value.code == 2
    assert (
        "argument --max-length: must be a positive integer or None. Received: --max-length long"
        in capsys.readouterr().err
    )


def test_the_help_shows_integer_defaults_as_numbers_and_on_off_only_for_switches():
    help_text = " ".join(cli.build_argument_parser().format_help().split())
    assert "--seed SEED default: 1 " in help_text
    assert "Keras fit verbosity (default: 1)" in help_text
    assert "N: stacked blocks (default: 0)" in help_text
    assert "--overwrite " in help_text
    assert "(slower per epoch; see docs/training.md) (default: on)" in help_text  # --deterministic
    assert "skip malformed lines (counted) (default: off)" in help_text
