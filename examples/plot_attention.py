"""Render an MTSA model's attention for one sentence as heatmaps (one row of plots per head).

    python examples/plot_attention.py --run-dir runs/trec --text "what is the capital of france ?" \
        --output attention.png

Left: token2token weights (query x key, softmax over the head's allowed keys: forward heads
look left, backward heads look right). Right: source2token weights (key x feature, softmax
over tokens per feature). `--run-dir` is a training output directory (it holds model.keras
and preprocessor.json).
"""

import argparse
import json
import os
import sys

import keras
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mtsa  # noqa: E402,F401  (registers the layers for loading)
from keras_mtsa.data import TextPreprocessor  # noqa: E402


def attention_for(model, preprocessor, text):
    """Returns (tokens, token2token (heads, n, n), source2token (heads, n, d), head_masks)."""
    layers = list(_walk(model))
    mtsa = next((layer for layer in layers if isinstance(layer, keras_mtsa.MTSA)), None)
    embedding = next((layer for layer in layers if isinstance(layer, keras.layers.Embedding)), None)
    if mtsa is None or embedding is None:
        raise SystemExit(
            "the model has no MTSA layer fed by an Embedding (is it an --encoder mha or cnn run?)"
        )
    ids = preprocessor(tf.constant([text]))
    tokens = [
        t.decode("utf-8", "replace") for t in preprocessor.tokenize(tf.constant([text]))[0].numpy()
    ]
    tokens = tokens[: preprocessor.max_length]
    _, t2t, s2t = mtsa(
        embedding(ids), mask=embedding.compute_mask(ids), return_attention_scores=True
    )
    n = len(tokens)
    return tokens, np.asarray(t2t)[0, :, :n, :n], np.asarray(s2t)[0, :, :n, :], mtsa.head_masks


def _walk(layer):
    for sublayer in getattr(layer, "layers", []):
        yield sublayer
        yield from _walk(sublayer)


def plot(tokens, t2t, s2t, head_masks, path, title):
    heads = t2t.shape[0]
    size = max(4.0, 0.35 * len(tokens) + 2)
    figure, axes = plt.subplots(heads, 2, figsize=(2 * size + 2, size * heads), squeeze=False)
    for head in range(heads):
        left, right = axes[head]
        image = left.imshow(t2t[head], cmap="viridis", vmin=0)
        left.set_title(f"head {head} ({head_masks[head]}): token2token")
        left.set_xticks(range(len(tokens)), tokens, rotation=90)
        left.set_yticks(range(len(tokens)), tokens)
        left.set_xlabel("key")
        left.set_ylabel("query")
        figure.colorbar(image, ax=left, fraction=0.046)
        image = right.imshow(s2t[head], cmap="magma", aspect="auto", vmin=0)
        right.set_title(f"head {head}: source2token (softmax over tokens per feature)")
        right.set_yticks(range(len(tokens)), tokens)
        right.set_xlabel("feature")
        figure.colorbar(image, ax=right, fraction=0.046)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--run-dir", required=True, help="training output dir (model.keras, preprocessor.json)"
    )
    parser.add_argument("--text", required=True)
    parser.add_argument("--output", default="attention.png")
    args = parser.parse_args(argv)
    for name in ("model.keras", "preprocessor.json"):
        if not os.path.exists(os.path.join(args.run_dir, name)):
            raise SystemExit(
                f"--run-dir {args.run_dir} has no {name}: point it at a training output dir"
            )
    model = keras.models.load_model(os.path.join(args.run_dir, "model.keras"))
    with open(os.path.join(args.run_dir, "preprocessor.json")) as file:
        preprocessor = TextPreprocessor(**json.load(file))
    tokens, t2t, s2t, head_masks = attention_for(model, preprocessor, args.text)
    if not tokens:
        raise SystemExit("--text has no tokens")
    plot(tokens, t2t, s2t, head_masks, args.output, args.text)
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
