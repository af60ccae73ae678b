"""Specification of keras_mtsa.data.preprocessing and keras_mtsa.data.pipeline."""

import gc
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from keras_mtsa import serving
from keras_mtsa.data import pipeline
from keras_mtsa.data import preprocessing
from keras_mtsa.data.preprocessing import PAD_ID
from keras_mtsa.data.preprocessing import UNK_ID
from keras_mtsa.data.preprocessing import TextPreprocessor
from keras_mtsa.data.preprocessing import build_vocabulary
from keras_mtsa.data.preprocessing import read_vocabulary
from keras_mtsa.data.preprocessing import write_vocabulary
from keras_mtsa.data.readers import TextClassificationData
from keras_mtsa.data.readers import TextPairData

MAX_LENGTH = 8
CORPUS = [
    "The film is good .",
    "the film is bad .",
    "a GOOD movie !",
    "the plot , the cast",
    "abc",
]
# "the" x4; ".", "film", "good", "is" x2; the rest once. Ties in code point order.
CORPUS_VOCABULARY = [
    "[PAD]", "[UNK]", "the", ".", "film", "good", "is",
    "!", ",", "a", "abc", "bad", "cast", "movie", "plot",
]  # fmt: skip
TF_TEXT_OPS = {
    "NormalizeUTF8",
    "CaseFoldUTF8",
    "TFText>WhitespaceTokenizeWithOffsetsV2",
    "UnicodeScriptTokenizeWithOffsets",
}


@pytest.fixture(scope="module")
def vocabulary_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocabulary") / "vocab.txt"
    write_vocabulary(CORPUS_VOCABULARY, path)
    return path


@pytest.fixture(scope="module")
def preprocessor(vocabulary_file):
    return TextPreprocessor(vocabulary_file, MAX_LENGTH)


def ids_of(*tokens):
    return [
        CORPUS_VOCABULARY.index(token) if token in CORPUS_VOCABULARY else UNK_ID for token in tokens
    ]


def padded(ids, length=MAX_LENGTH):
    return ids + [PAD_ID] * (length - len(ids))


def token_strings(preprocessor, text):
    return [
        token.decode("utf-8") for token in preprocessor.tokenize(tf.constant([text])).to_list()[0]
    ]


# Vocabulary


def test_vocabulary_reserves_pad_and_unk_then_orders_by_count_then_alphabetically():
    assert build_vocabulary(CORPUS) == CORPUS_VOCABULARY
    assert preprocessing.RESERVED_TOKENS == ("[PAD]", "[UNK]")
    assert (PAD_ID, UNK_ID) == (0, 1)


def test_vocabulary_min_count_and_max_size_include_reserved_tokens():
    assert build_vocabulary(CORPUS, min_count=2) == CORPUS_VOCABULARY[:7]
    assert build_vocabulary(CORPUS, max_size=4) == CORPUS_VOCABULARY[:4]
    assert build_vocabulary(CORPUS, max_size=2) == ["[PAD]", "[UNK]"]
    assert build_vocabulary([]) == ["[PAD]", "[UNK]"]


def test_vocabulary_without_lower_case_keeps_case():
    vocabulary = build_vocabulary(CORPUS, lower_case=False)

    assert {"The", "the", "GOOD", "good"} <= set(vocabulary)


def test_vocabulary_never_contains_reserved_tokens_from_the_text():
    assert build_vocabulary(["[PAD] [UNK] [PAD]"]) == ["[PAD]", "[UNK]", "[", "]", "pad", "unk"]


def test_case_fallback_vocabulary_keeps_the_folded_form_of_rare_casings_frequent_together():
    texts = [
        "Denver is far .",
        "denver is near .",
        "Paris is far .",
        "Paris is near .",
        "ROME is far .",
        "IS",
        "Is",
    ]

    vocabulary = build_vocabulary(texts, min_count=2, lower_case=False, case_fallback=True)

    # "Denver" and "denver" once each: "denver" kept. "Paris" twice: kept as it is, and no "paris"
    # (which training would never see). "ROME" once, no other casing: not kept. "IS" and "Is" fall
    # back to "is", which keeps its own count and rank.
    assert vocabulary == ["[PAD]", "[UNK]", ".", "is", "far", "Paris", "denver", "near"]
    assert build_vocabulary(texts, min_count=2, lower_case=False) == [
        "[PAD]",
        "[UNK]",
        ".",
        "is",
        "far",
        "Paris",
        "near",
    ]


@pytest.mark.slow
def test_case_fallback_looks_a_missing_cased_token_up_again_case_folded(tmp_path):
    write_vocabulary(["[PAD]", "[UNK]", "The", "the", "film"], tmp_path / "vocab.txt")
    plain = TextPreprocessor(tmp_path / "vocab.txt", MAX_LENGTH, lower_case=False)
    fallback = TextPreprocessor(
        tmp_path / "vocab.txt", MAX_LENGTH, lower_case=False, case_fallback=True
    )
    texts = tf.constant(["The THE the Film FILM plot"])

    assert plain(texts).numpy().tolist() == [padded([2, 1, 3, 1, 1, 1])]
    # A token in the vocabulary keeps its own id ("The"); only missing ones fall back; unknown
    # stays [UNK].
    assert fallback(texts).numpy().tolist() == [padded([2, 3, 3, 4, 4, 1])]
    assert (
        TextPreprocessor(**fallback.config())(texts).numpy().tolist()
        == fallback(texts).numpy().tolist()
    )


@pytest.mark.slow
def test_case_fallback_survives_saving_and_loading(tmp_path):
    write_vocabulary(["[PAD]", "[UNK]", "the", "film"], tmp_path / "vocab.txt")
    module = TextPreprocessor(
        tmp_path / "vocab.txt", MAX_LENGTH, lower_case=False, case_fallback=True
    )
    tf.saved_model.save(
        module, str(tmp_path / "export"), signatures={"serving_default": module.__call__}
    )

    loaded = tf.saved_model.load(str(tmp_path / "export"))

    assert loaded(tf.constant(["The FILM"])).numpy().tolist() == [padded([2, 3])]
    assert serve_on_session_road(str(tmp_path / "export"), [b"The FILM"]) == [padded([2, 3])]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lower_case": True, "case_fallback": True},
        {"lower_case": False, "subwords": True, "case_fallback": True},
    ],
)
def test_case_fallback_needs_cased_whole_words(tmp_path, kwargs):
    write_vocabulary(SUBWORD_VOCABULARY, tmp_path / "vocab.txt")

    lower_case, subwords = kwargs["lower_case"], kwargs.get("subwords", False)
    received = f"Received: lower_case={lower_case}, subwords={subwords}"
    with pytest.raises(
        ValueError,
        match=r"case_fallback=True needs lower_case=False and subwords=False .*\. " + received,
    ):
        TextPreprocessor(tmp_path / "vocab.txt", MAX_LENGTH, **kwargs)
    with pytest.raises(
        ValueError,
        match=r"case_fallback=True needs lower_case=False.* "
        r"Received: lower_case=True, subwords=False",
    ):
        build_vocabulary(CORPUS, lower_case=True, case_fallback=True)
    with pytest.raises(
        ValueError, match="`case_fallback` must be True or False. Received: case_fallback='yes'"
    ):
        TextPreprocessor(tmp_path / "vocab.txt", MAX_LENGTH, lower_case=False, case_fallback="yes")


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (
            {"max_size": 1},
            r"`max_size` must be an integer >= 2 \(the reserved tokens\)\. Received: max_size=1",
        ),
        ({"min_count": 0}, "`min_count` must be an integer >= 1. Received: min_count=0"),
        ({"min_count": True}, "`min_count` must be an integer >= 1. Received: min_count=True"),
    ],
)
def test_vocabulary_arguments_are_validated(kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        build_vocabulary(CORPUS, **kwargs)


def test_vocabulary_file_round_trip_is_utf8_one_token_per_line(tmp_path):
    tokens = ["[PAD]", "[UNK]", "café", "😀", "日本語"]
    path = tmp_path / "vocab.txt"

    write_vocabulary(tokens, path)

    assert path.read_bytes() == "\n".join(tokens).encode("utf-8") + b"\n"
    assert read_vocabulary(path) == tokens


@pytest.mark.parametrize("bad_token", ["two\nlines", "", " padded", "a\u2028b"])
def test_write_vocabulary_rejects_tokens_that_would_not_read_back(tmp_path, bad_token):
    expected = f"single lines without surrounding whitespace. Received: token={bad_token!r}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        write_vocabulary(["[PAD]", "[UNK]", bad_token], tmp_path / "vocab.txt")


def test_vocabulary_files_must_not_repeat_tokens(tmp_path):
    path = tmp_path / "vocab.txt"
    with pytest.raises(ValueError, match="repeats tokens"):
        write_vocabulary(["[PAD]", "[UNK]", "a", "a"], path)
    path.write_text("[PAD]\n[UNK]\nb\nb\n", encoding="utf-8")
    with pytest.raises(ValueError, match="repeats tokens"):
        read_vocabulary(path)


# TextPreprocessor


def test_known_sentence_maps_to_vocabulary_ids_padded_to_max_length(preprocessor):
    ids = preprocessor(tf.constant(["The film is GOOD !", "a movie about nothing ."]))

    assert ids.dtype == tf.int32
    assert ids.numpy().tolist() == [
        padded(ids_of("the", "film", "is", "good", "!")),
        padded(ids_of("a", "movie", "[UNK]", "[UNK]", ".")),
    ]


def test_long_text_is_truncated_to_max_length(preprocessor):
    ids = preprocessor(tf.constant(["the film " * 10]))

    assert ids.numpy().tolist() == [ids_of("the", "film") * (MAX_LENGTH // 2)]


def test_output_has_static_shape_batch_by_max_length(preprocessor):
    concrete = preprocessor.__call__.get_concrete_function()

    assert concrete.structured_outputs.shape.as_list() == [None, MAX_LENGTH]
    assert concrete.structured_outputs.dtype == tf.int32


def test_punctuation_is_split_from_words_but_whitespace_stays_a_boundary(preprocessor):
    assert token_strings(preprocessor, "good!it's") == ["good", "!", "it", "'", "s"]
    # A script-only tokenizer would merge these runs into "(2" and ",3" and "...".
    assert token_strings(preprocessor, "( 2x , 3x ) . . .") == [
        "(",
        "2",
        "x",
        ",",
        "3",
        "x",
        ")",
        ".",
        ".",
        ".",
    ]


@pytest.mark.parametrize("text", ["", "   ", "\t\n \u3000"])
def test_empty_and_whitespace_only_texts_give_all_padding(preprocessor, text):
    assert preprocessor(tf.constant([text])).numpy().tolist() == [padded([])]


def test_100000_character_text_is_cut_to_max_input_bytes_first(preprocessor):
    ids = preprocessor(tf.constant(["film " * 20000, "x" * 100000 + " film"]))

    # " film" lies beyond the first 64 * max_length bytes, so it is never seen.
    assert ids.numpy().tolist() == [ids_of("film") * MAX_LENGTH, padded([UNK_ID])]
    assert preprocessor.max_input_bytes == 64 * MAX_LENGTH


def test_invalid_utf8_is_replaced_not_fatal(preprocessor):
    ids = preprocessor(tf.constant([b"\xff\xfe abc", b"film \xc3"]))

    assert ids.numpy().tolist() == [padded(ids_of("[UNK]", "abc")), padded(ids_of("film", "[UNK]"))]


def test_normalize_repairs_invalid_utf8_before_the_unicode_ops():
    normalized = preprocessing.normalize(tf.constant([b"\xff\xfe abc", b"a\xc3", b"\xed\xa0\x80x"]))

    assert [text.decode("utf-8") for text in normalized.numpy()] == [
        "\ufffd\ufffd abc",
        "a\ufffd",
        "\ufffd" * 3 + "x",
    ]


def test_character_cut_by_byte_truncation_is_repaired(vocabulary_file):
    # "é" is two bytes; keeping 2 bytes of "aé" leaves half a character.
    short = TextPreprocessor(vocabulary_file, MAX_LENGTH, max_input_bytes=2)

    assert short(tf.constant(["aé"])).numpy().tolist() == [padded(ids_of("a", "[UNK]"))]


def test_mixed_scripts_and_emoji_become_separate_tokens(preprocessor):
    tokens = token_strings(preprocessor, "日本語の film😀 Привет👍🏽")
    ids = preprocessor(tf.constant(["日本語 film😀"]))

    assert tokens == ["日本語", "の", "film", "😀", "привет", "👍🏽"]
    assert ids.numpy().tolist() == [padded(ids_of("[UNK]", "film", "[UNK]"))]


def test_control_characters_separate_tokens(preprocessor):
    # C1 controls appear when cp1252 text is read as latin-1 ("\x96" was an en dash).
    assert token_strings(preprocessor, "film\x96movie\x00the") == ["film", "movie", "the"]


def test_nfkc_and_case_folding_normalize_full_width_and_capital_letters(preprocessor):
    ids = preprocessor(tf.constant(["ＦＩＬＭ", "Film", "FILM", "ﬁlm"]))

    assert ids.numpy()[:, 0].tolist() == ids_of("film") * 4


def test_without_lower_case_capitals_are_distinct_tokens(vocabulary_file):
    cased = TextPreprocessor(vocabulary_file, MAX_LENGTH, lower_case=False)

    assert cased(tf.constant(["Film film ＦＩＬＭ"])).numpy().tolist() == [
        padded(ids_of("[UNK]", "film", "[UNK]"))
    ]


@pytest.mark.parametrize("batch_size", [0, 1, 1000])
def test_any_batch_size_including_zero(preprocessor, batch_size):
    ids = preprocessor(tf.constant(["the film"] * batch_size, dtype=tf.string))

    assert ids.shape == (batch_size, MAX_LENGTH)
    np.testing.assert_array_equal(
        ids.numpy(), np.tile(padded(ids_of("the", "film")), (batch_size, 1))
    )


def test_attributes_and_config_recreate_an_equivalent_preprocessor(preprocessor, vocabulary_file):
    assert preprocessor.vocabulary_size == len(CORPUS_VOCABULARY)
    assert (preprocessor.max_length, preprocessor.lower_case) == (MAX_LENGTH, True)
    assert isinstance(preprocessor.vocabulary_file, tf.saved_model.Asset)
    assert preprocessor.vocabulary_file.asset_path.numpy().decode() == str(vocabulary_file)

    clone = TextPreprocessor(**preprocessor.config())

    texts = tf.constant(["The plot is bad !"])
    np.testing.assert_array_equal(clone(texts).numpy(), preprocessor(texts).numpy())


def test_from_texts_builds_writes_and_uses_the_vocabulary(tmp_path):
    path = tmp_path / "vocab.txt"

    built = TextPreprocessor.from_texts(CORPUS, path, 4, min_count=2)

    assert read_vocabulary(path) == CORPUS_VOCABULARY[:7]
    assert built(tf.constant(["the cast is good"])).numpy().tolist() == [
        ids_of("the", "[UNK]", "is", "good")
    ]


@pytest.mark.slow
def test_each_preprocessor_looks_up_its_own_vocabulary_even_at_a_freed_ones_address(tmp_path):
    # TensorFlow names a file-backed table after its file argument, here an Asset whose text is its
    # memory address: a table keyed that way would find a freed preprocessor's table (and old
    # vocabulary) still in the resource manager once a new Asset lands at the same address.
    seen_addresses, reused = set(), 0
    for index in range(200):
        word = "word" + "".join("abcdefghij"[int(digit)] for digit in str(index))
        path = tmp_path / f"vocab{index}.txt"
        write_vocabulary(
            ["[PAD]", "[UNK]"] + [f"filler{letter}" for letter in "abcdef"[: index % 7]] + [word],
            path,
        )
        built = TextPreprocessor(path, 2)
        address = id(built.vocabulary_file)
        if address in seen_addresses:
            reused += 1
            ids = built(tf.constant([word])).numpy().tolist()
            assert ids == [[2 + index % 7, PAD_ID]], (
                f"{word!r} was looked up in another preprocessor's vocabulary"
            )
            if reused == 2:
                return
        seen_addresses.add(address)
        del built
        gc.collect()
    pytest.skip("no Asset address was reused in 200 preprocessors, so the case did not arise")


@pytest.mark.parametrize(
    "vocabulary, kwargs, expected",
    [
        (["a", "b"], {}, "must start with the reserved tokens"),
        (
            CORPUS_VOCABULARY,
            {"max_length": 0},
            "`max_length` must be a positive integer. Received: max_length=0",
        ),
        (
            CORPUS_VOCABULARY,
            {"max_input_bytes": 0},
            "`max_input_bytes` must be a positive integer or None. Received: max_input_bytes=0",
        ),
        # A bool is an int to Python, not a length.
        (
            CORPUS_VOCABULARY,
            {"max_length": True},
            "`max_length` must be a positive integer. Received: max_length=True",
        ),
        (
            CORPUS_VOCABULARY,
            {"max_input_bytes": True},
            "`max_input_bytes` must be a positive integer or None. Received: max_input_bytes=True",
        ),
    ],
)
def test_preprocessor_arguments_are_validated(tmp_path, vocabulary, kwargs, expected):
    path = tmp_path / "vocab.txt"
    write_vocabulary(vocabulary, path)

    with pytest.raises(ValueError, match=expected):
        TextPreprocessor(path, **{"max_length": MAX_LENGTH, **kwargs})


def test_compute_max_length_is_a_percentile_of_token_counts():
    texts = ["a"] * 98 + ["a b c d e f g h i j"] * 2

    assert preprocessing.compute_max_length(texts, percentile=50) == 1
    assert preprocessing.compute_max_length(texts, percentile=100) == 10
    with pytest.raises(
        ValueError, match=r"`percentile` must be in \(0, 100\]\. Received: percentile=0"
    ):
        preprocessing.compute_max_length(texts, percentile=0)


@pytest.mark.parametrize(
    "longest, expected",
    [(0, 8), (1, 8), (8, 8), (9, 16), (37, 40), (250, 256), (257, 256), (10_000, 256)],
)
def test_fitting_max_length_covers_the_longest_text_in_multiples_of_8_up_to_256(longest, expected):
    assert preprocessing.fitting_max_length(longest) == expected


@pytest.mark.parametrize("longest", [-1, 2.5, True, "9"])
def test_fitting_max_length_rejects_what_is_not_a_token_count(longest):
    with pytest.raises(
        ValueError,
        match=re.escape(f"`longest` must be a non-negative integer. Received: longest={longest!r}"),
    ):
        preprocessing.fitting_max_length(longest)


@pytest.mark.slow
def test_from_texts_without_max_length_fits_it_to_the_longest_text(tmp_path):
    texts = ["a b", "a b c d e f g h i j"]  # 10 tokens

    fitted = TextPreprocessor.from_texts(texts, tmp_path / "vocab.txt", None)

    assert fitted.max_length == 16
    assert fitted(tf.constant(texts)).shape == (2, 16)


@pytest.mark.slow
def test_from_texts_without_max_length_counts_subwords_not_words(tmp_path, monkeypatch):
    # A fixed WordPiece vocabulary: "playing" is two pieces, so 5 words make 10 pieces.
    monkeypatch.setattr(
        preprocessing, "build_wordpiece_vocabulary", lambda texts, **options: SUBWORD_VOCABULARY
    )
    texts = ["playing " * 5, "the film"]

    subwords = TextPreprocessor.from_texts(texts, tmp_path / "vocab.txt", None, subwords=True)

    assert subwords.max_length == 16  # 10 pieces; the 5 words alone would fit in 8
    assert subwords(tf.constant(texts)).numpy()[0].tolist().count(PAD_ID) == 6


# SavedModel export

LOADER_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from tensorflow.core.protobuf import saved_model_pb2
    import tensorflow as tf
    from tensorflow.python.framework import op_def_registry

    export_dir, texts = sys.argv[1], json.loads(sys.argv[2])
    saved_model = saved_model_pb2.SavedModel()
    with open(export_dir + "/saved_model.pb", "rb") as stream:
        saved_model.ParseFromString(stream.read())
    graph = saved_model.meta_graphs[0].graph_def
    op_types = {node.op for node in graph.node}
    op_types |= {node.op for function in graph.library.function for node in function.node_def}
    unknown_to_core = sorted(op for op in op_types if op_def_registry.get(op) is None)

    import tensorflow_text  # registers the ops above
    loaded = tf.saved_model.load(export_dir)
    ids = loaded(tf.constant([text.encode("latin-1") for text in texts]))
    print(json.dumps({
        "ids": ids.numpy().tolist(),
        "shape": ids.shape.as_list(),
        "tf_text_ops": unknown_to_core,
        "asset_path": loaded.vocabulary_file.asset_path.numpy().decode(),
        "keras_mtsa_imported": "keras_mtsa" in sys.modules,
    }))
    sys.stdout.flush()
    os._exit(0)  # TensorFlow's interpreter teardown takes seconds and checks nothing.
    """
)


def load_in_fresh_process(export_dir, texts, cwd):
    """Runs LOADER_SCRIPT on the export in a new Python process; returns its JSON result."""
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            LOADER_SCRIPT,
            export_dir,
            json.dumps([text.decode("latin-1") for text in texts]),
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def serve_on_session_road(export_dir, texts):
    """The ids that TF Serving's loader (the TF C API, `keras_mtsa.serving.serve`) gives for
    `texts`."""
    [answer] = serving.serve(export_dir, [("serving_default", {"texts": texts})])
    return answer["output_0"].tolist()


@pytest.mark.slow
def test_saved_model_runs_in_a_fresh_process_with_only_tensorflow_and_tf_text(
    tmp_path, vocabulary_file
):
    vocabulary_copy = tmp_path / "vocab_to_delete.txt"
    shutil.copy(vocabulary_file, vocabulary_copy)
    module = TextPreprocessor(vocabulary_copy, MAX_LENGTH)
    texts = [
        b"The film is GOOD !",
        b"\xff\xfe abc",
        b"",
        "ＦＩＬＭ 日本語😀".encode(),
        b"the film " * 20,
    ]
    expected = module(tf.constant(texts)).numpy().tolist()
    tf.saved_model.save(
        module, str(tmp_path / "export"), signatures={"serving_default": module.__call__}
    )
    # The export must not depend on the original vocabulary file or directory.
    vocabulary_copy.unlink()
    moved = shutil.move(str(tmp_path / "export"), str(tmp_path / "moved"))
    assert serve_on_session_road(moved, texts) == expected

    assert os.listdir(os.path.join(moved, "assets")) == ["vocab_to_delete.txt"]
    result = load_in_fresh_process(moved, texts, cwd=tmp_path)
    assert result["ids"] == expected
    assert result["shape"] == [len(texts), MAX_LENGTH]
    assert result["asset_path"] == os.path.join(moved, "assets", "vocab_to_delete.txt")
    assert result["keras_mtsa_imported"] is False
    assert set(result["tf_text_ops"]) == TF_TEXT_OPS
    for op in TF_TEXT_OPS:
        assert op in preprocessing.__doc__


# WordPiece subwords

SUBWORD_VOCABULARY = ["[PAD]", "[UNK]", "the", "film", "play", "##ing", "##ed", "##s", "!", "is"]


@pytest.fixture(scope="module")
def subword_preprocessor(tmp_path_factory):
    path = tmp_path_factory.mktemp("subwords") / "vocab.txt"
    write_vocabulary(SUBWORD_VOCABULARY, path)
    return TextPreprocessor(path, MAX_LENGTH, subwords=True)


@pytest.mark.slow
def test_subwords_split_unseen_words_into_known_pieces_and_unsplittable_ones_into_unk(
    subword_preprocessor,
):
    ids = (
        subword_preprocessor(tf.constant(["The film is PLAYING !", "replayed plays"]))
        .numpy()
        .tolist()
    )

    index = SUBWORD_VOCABULARY.index
    assert ids[0] == padded(
        [index("the"), index("film"), index("is"), index("play"), index("##ing"), index("!")]
    )
    # "replayed" has no known prefix: one [UNK] for the whole word, not one per character.
    assert ids[1] == padded([UNK_ID, index("play"), index("##s")])
    assert token_strings(subword_preprocessor, "the playing film") == [
        "the",
        "play",
        "##ing",
        "film",
    ]


def test_subword_pieces_count_against_max_length(subword_preprocessor):
    ids = subword_preprocessor(tf.constant(["played " * 10])).numpy()

    assert ids.shape == (1, MAX_LENGTH)
    assert (
        ids[0].tolist() == [SUBWORD_VOCABULARY.index("play"), SUBWORD_VOCABULARY.index("##ed")] * 4
    )


@pytest.mark.slow
def test_subwords_survive_the_config_round_trip(subword_preprocessor):
    clone = TextPreprocessor(**subword_preprocessor.config())

    assert clone.subwords is True
    texts = tf.constant(["the films played"])
    np.testing.assert_array_equal(clone(texts).numpy(), subword_preprocessor(texts).numpy())


@pytest.mark.slow
def test_wordpiece_vocabulary_learns_whole_words_and_continuation_pieces(tmp_path):
    texts = ["playing played plays player", "the player plays", "walking walked walks"] * 20 + [
        "jumping"
    ]

    tokens = preprocessing.build_wordpiece_vocabulary(texts, max_size=200, min_count=2)

    assert tokens[:2] == ["[PAD]", "[UNK]"]
    assert len(tokens) == len(set(tokens)) <= 200
    assert {"the", "plays", "player"} <= set(tokens)
    assert any(token.startswith("##") for token in tokens)
    built = TextPreprocessor.from_texts(
        texts, tmp_path / "vocab.txt", 6, max_size=200, min_count=2, subwords=True
    )
    assert read_vocabulary(tmp_path / "vocab.txt") == tokens
    # "jumping" (seen once, below min_count) is spelled with learned pieces rather than one [UNK].
    pieces = token_strings(built, "jumping")
    assert (
        len(pieces) > 1
        and "[UNK]" not in pieces
        and "".join(p.removeprefix("##") for p in pieces) == "jumping"
    )


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (
            {"max_size": 2},
            r"`max_size` must be an integer >= 3 \(the reserved tokens and one more\)\. "
            r"Received: max_size=2",
        ),
        ({"min_count": 0}, "`min_count` must be an integer >= 1. Received: min_count=0"),
        ({"min_count": True}, "`min_count` must be an integer >= 1. Received: min_count=True"),
    ],
)
def test_wordpiece_vocabulary_arguments_are_validated(kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        preprocessing.build_wordpiece_vocabulary(CORPUS, **kwargs)


def test_subwords_must_be_a_boolean(vocabulary_file):
    with pytest.raises(
        ValueError, match="`subwords` must be True or False. Received: subwords='yes'"
    ):
        TextPreprocessor(vocabulary_file, MAX_LENGTH, subwords="yes")


@pytest.mark.slow
def test_subword_saved_model_runs_in_a_fresh_process_with_only_tensorflow_and_tf_text(tmp_path):
    path = tmp_path / "vocab.txt"
    write_vocabulary(SUBWORD_VOCABULARY, path)
    module = TextPreprocessor(path, MAX_LENGTH, subwords=True)
    texts = [b"The film is PLAYING !", b"\xff replayed", b""]
    expected = module(tf.constant(texts)).numpy().tolist()
    tf.saved_model.save(
        module, str(tmp_path / "export"), signatures={"serving_default": module.__call__}
    )

    assert serve_on_session_road(str(tmp_path / "export"), texts) == expected
    result = load_in_fresh_process(str(tmp_path / "export"), texts, cwd=tmp_path)
    assert result["ids"] == expected
    assert set(result["tf_text_ops"]) == TF_TEXT_OPS | {"WordpieceTokenizeWithOffsets"}
    assert "WordpieceTokenizeWithOffsets" in preprocessing.__doc__


# tf.data pipelines


@pytest.fixture(scope="module")
def classification_data():
    return TextClassificationData(texts=CORPUS, labels=[1, 0, 1, 0, 1], label_names=["0", "1"])


def test_classification_dataset_yields_int32_ids_and_labels_in_order(
    preprocessor, classification_data
):
    dataset = pipeline.make_classification_dataset(classification_data, preprocessor, batch_size=2)

    batches = list(dataset.as_numpy_iterator())

    assert [ids.shape for ids, _ in batches] == [(2, MAX_LENGTH), (2, MAX_LENGTH), (1, MAX_LENGTH)]
    assert all(ids.dtype == np.int32 and labels.dtype == np.int32 for ids, labels in batches)
    assert np.concatenate([labels for _, labels in batches]).tolist() == classification_data.labels
    np.testing.assert_array_equal(batches[0][0], preprocessor(tf.constant(CORPUS[:2])).numpy())


def test_drop_remainder_gives_a_static_batch_dimension(preprocessor, classification_data):
    dataset = pipeline.make_classification_dataset(
        classification_data, preprocessor, batch_size=2, drop_remainder=True
    )

    ids_spec, labels_spec = dataset.element_spec
    assert ids_spec == tf.TensorSpec((2, MAX_LENGTH), tf.int32)
    assert labels_spec == tf.TensorSpec((2,), tf.int32)
    assert len(list(dataset)) == 2


def test_shuffle_with_a_seed_is_deterministic_and_repeat_continues(
    preprocessor, classification_data
):
    def labels_and_first_ids(seed):
        dataset = pipeline.make_classification_dataset(
            classification_data, preprocessor, batch_size=5, shuffle=True, seed=seed, repeat=True
        )
        return [
            (ids[:, 0].tolist(), labels.tolist())
            for ids, labels in dataset.take(3).as_numpy_iterator()
        ]

    first = labels_and_first_ids(seed=7)

    assert first == labels_and_first_ids(seed=7)
    assert len(first) == 3
    assert all(sorted(labels) == [0, 0, 1, 1, 1] for _, labels in first)


@pytest.mark.slow
def test_shuffle_permutes_the_examples_and_every_epoch_differently(preprocessor):
    # Labels carry each example's index, so the order of a batch is the order of the examples.
    texts = [f"text {i}" for i in range(40)]
    data = TextClassificationData(
        texts=texts, labels=list(range(40)), label_names=[str(i) for i in range(40)]
    )

    def epochs(count, first_epoch=0, **options):
        dataset = pipeline.make_classification_dataset(
            data, preprocessor, batch_size=8, seed=3, first_epoch=first_epoch, **options
        )
        order = [
            int(i) for _, labels in dataset.take(5 * count).as_numpy_iterator() for i in labels
        ]
        return [order[40 * epoch : 40 * (epoch + 1)] for epoch in range(count)]

    assert epochs(1, shuffle=False) == [list(range(40))]
    first, second = epochs(2, shuffle=True, repeat=True)
    assert sorted(first) == sorted(second) == list(range(40))  # each epoch sees every example once
    assert first != list(range(40)) and second != list(range(40)) and first != second

    def groupings(order):
        return {frozenset(order[start : start + 8]) for start in range(0, 40, 8)}

    # Not only the batches' order: each epoch groups other examples together.
    assert groupings(first) != groupings(second)
    assert epochs(2, shuffle=True, repeat=True) == [
        first,
        second,
    ]  # the seed repeats the sequence of epochs
    # Epoch k's order depends only on the seed and k: a run resumed at epoch 1 (or an iterator made
    # again, as Keras's distributed fit does before its first epoch) sees the batches of the
    # uninterrupted one.
    assert epochs(1, shuffle=True, repeat=True, first_epoch=1) == [second]
    assert epochs(1, shuffle=True) == [
        first
    ]  # a dataset iterated again starts at its first epoch again


# Length buckets


def test_chosen_bucket_boundaries_carry_the_fewest_padded_tokens(tmp_path):
    """Checked against trying every set of at most 3 candidate boundaries (multiples of 8 and
    max_length)."""
    import itertools

    from keras_mtsa.data.buckets import choose_bucket_boundaries

    rng = np.random.default_rng(0)
    lengths = np.concatenate([rng.poisson(12, 300), rng.poisson(40, 30), [0, 1, 95, 200]])
    candidates = [*range(8, 100, 8), 100]

    def padded_tokens(boundaries):
        clipped = np.minimum(lengths, 100)
        return int(np.asarray(boundaries)[np.searchsorted(boundaries, clipped)].sum())

    best = min(
        (padded_tokens((*chosen, 100)), len(chosen), (*chosen, 100))
        for count in range(3)
        for chosen in itertools.combinations(candidates[:-1], count)
    )
    chosen = choose_bucket_boundaries(lengths, 100, max_buckets=3)
    assert padded_tokens(chosen) == best[0] and chosen == best[2]
    assert chosen[-1] == 100 and all(b % 8 == 0 for b in chosen[:-1])
    assert choose_bucket_boundaries([3, 3, 3], 40) == (8, 40)
    assert choose_bucket_boundaries([40] * 5, 40) == (
        40,
    )  # a bucket that holds nothing is not kept


@pytest.mark.parametrize(
    "boundaries, message",
    [
        ("16,32", "sequence of increasing positive ints"),
        ([], "non-empty sequence"),
        ([8, 8], "increasing"),
        ([0, 8], "increasing positive ints"),
        ([8.0], "increasing positive ints"),
        ([4, MAX_LENGTH + 1], f"must not exceed max_length={MAX_LENGTH}"),
    ],
)
def test_bad_bucket_boundaries_are_refused_by_name(vocabulary_file, boundaries, message):
    with pytest.raises(
        ValueError, match=f"`bucket_boundaries`.*{message}.*Received: bucket_boundaries="
    ):
        TextPreprocessor(vocabulary_file, MAX_LENGTH, bucket_boundaries=boundaries)


@pytest.fixture(scope="module")
def bucketed(vocabulary_file):
    return TextPreprocessor(vocabulary_file, MAX_LENGTH, bucket_boundaries=[2, 4])


def test_a_length_equal_to_a_boundary_goes_to_that_bucket_and_longer_ones_to_the_last():
    from keras_mtsa.data.buckets import bucket_index

    lengths = [0, 1, 8, 9, 16, 17, 24, 25, 300]
    np.testing.assert_array_equal(bucket_index(lengths, [8, 16, 24]), [0, 0, 0, 1, 1, 2, 2, 2, 2])


@pytest.mark.slow
def test_a_batch_is_padded_to_the_smallest_bucket_that_holds_its_longest_text(
    preprocessor, bucketed
):
    assert bucketed.bucket_boundaries == (2, 4, MAX_LENGTH)  # max_length is always the last
    cases = [([""], 2), (["the", "a film"], 2), (["the film is"], 4)]
    cases += [(["a", "the film is good ."], MAX_LENGTH), ([], 2)]
    for texts, length in cases:
        ids = bucketed(tf.constant(texts, tf.string)).numpy()
        assert ids.shape == (len(texts), length), texts
        # The ids padded to max_length, cut to the bucket: the same ids, only less padding.
        full = preprocessor(tf.constant(texts, tf.string)).numpy()
        np.testing.assert_array_equal(ids, full[:, :length])
        assert np.all(full[:, length:] == PAD_ID)
    assert bucketed(tf.constant(["the film " * 10])).numpy().shape == (
        1,
        MAX_LENGTH,
    )  # truncated as before
    assert bucketed.bucket_indices(["", "the film is", "the film " * 10]).tolist() == [0, 1, 2]
    assert TextPreprocessor(**bucketed.config()).bucket_boundaries == bucketed.bucket_boundaries


@pytest.mark.slow
def test_from_texts_chooses_buckets_from_the_training_lengths(tmp_path):
    texts = ["word"] * 50 + ["many words " * 9] * 5  # 1 and 18 tokens
    chosen = TextPreprocessor.from_texts(
        texts, tmp_path / "vocab.txt", None, bucket_boundaries="auto"
    )
    assert chosen.max_length == 24 and chosen.bucket_boundaries == (8, 24)
    assert TextPreprocessor.from_texts(texts, tmp_path / "v2.txt", None).bucket_boundaries == (24,)


def _bucketed_corpus(count=37):
    rng = np.random.default_rng(5)
    lengths = rng.integers(0, 12, size=count)
    texts = [" ".join(["film"] * int(n)) for n in lengths]
    return TextClassificationData(
        texts=texts, labels=list(range(count)), label_names=[str(i) for i in range(count)]
    )


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_training_batches_are_full_batches_of_one_bucket_padded_to_it(bucketed, drop_remainder):
    """Each epoch: a permutation of the examples (less the remainder with drop_remainder) in full
    batches, at most one of them short; every batch holds texts of one bucket, but for the at most
    two that straddle a bucket boundary, and is padded to the bucket of its longest text."""
    data = _bucketed_corpus()
    buckets = bucketed.bucket_indices(data.texts)
    dataset = pipeline.make_classification_dataset(
        data,
        bucketed,
        batch_size=4,
        shuffle=True,
        seed=2,
        repeat=True,
        drop_remainder=drop_remainder,
    )
    per_epoch = 37 // 4 if drop_remainder else -(-37 // 4)
    batches = list(dataset.take(per_epoch).as_numpy_iterator())
    seen = np.concatenate([labels for _, labels in batches])
    assert len(set(seen.tolist())) == len(seen) == (36 if drop_remainder else 37)
    assert sum(len(labels) != 4 for _, labels in batches) == (0 if drop_remainder else 1)
    if drop_remainder:
        assert dataset.element_spec[1].shape == (4,)
    mixed = 0
    for ids, labels in batches:
        own = buckets[labels]
        assert ids.shape[1] == bucketed.bucket_boundaries[own.max()]
        mixed += len(set(own.tolist())) > 1
    assert mixed <= 2
    orders = [[int(i) for i in labels] for _, labels in batches]
    assert orders != sorted(
        orders, key=lambda labels: buckets[labels].max()
    )  # the batches are shuffled too


def test_without_grouping_the_data_keeps_its_order_and_each_batch_its_own_padding(bucketed):
    data = _bucketed_corpus(9)
    dataset = pipeline.make_classification_dataset(
        data, bucketed, batch_size=4, group_by_length=False
    )
    batches = list(dataset.as_numpy_iterator())
    assert np.concatenate([labels for _, labels in batches]).tolist() == list(range(9))
    for ids, labels in batches:
        assert (
            ids.shape[1]
            == bucketed.bucket_boundaries[
                bucketed.bucket_indices([data.texts[i] for i in labels]).max()
            ]
        )


def test_pair_dataset_yields_premise_and_hypothesis_ids(preprocessor):
    data = TextPairData(
        premises=["the film", "a movie", "the cast"],
        hypotheses=["is good", "is bad", ""],
        labels=[0, 2, 1],
        label_names=["entailment", "neutral", "contradiction"],
    )

    dataset = pipeline.make_pair_dataset(data, preprocessor, batch_size=2, drop_remainder=True)

    features, labels = next(iter(dataset))
    assert set(features) == {"premise", "hypothesis"}
    assert dataset.element_spec[0]["premise"] == tf.TensorSpec((2, MAX_LENGTH), tf.int32)
    assert features["hypothesis"].numpy().tolist() == [
        padded(ids_of("is", "good")),
        padded(ids_of("is", "bad")),
    ]
    assert labels.numpy().tolist() == [0, 2]


def test_pipeline_arguments_are_validated(preprocessor, classification_data):
    with pytest.raises(
        ValueError, match="`batch_size` must be a positive int. Received: batch_size=0"
    ):
        pipeline.make_classification_dataset(classification_data, preprocessor, batch_size=0)
    with pytest.raises(
        ValueError, match="`first_epoch` must be a non-negative int. Received: first_epoch=-1"
    ):
        pipeline.make_classification_dataset(
            classification_data, preprocessor, batch_size=2, first_epoch=-1
        )
    with pytest.raises(ValueError, match="`batch_size` must be at most the number of examples"):
        pipeline.make_classification_dataset(
            classification_data, preprocessor, batch_size=8, drop_remainder=True, repeat=True
        )
    with pytest.raises(
        ValueError,
        match="`data` must be a TextPairData. Received: data of type TextClassificationData",
    ):
        pipeline.make_pair_dataset(classification_data, preprocessor, batch_size=2)
