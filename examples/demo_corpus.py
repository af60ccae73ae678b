"""A small synthetic sentiment corpus that ships with the project (no download, no ../shared data).

It is generated from templates, not collected: short reviews whose label depends on word order,
through negation ("the plot is not dull" is positive) and contrast ("the acting is great but the
ending is awful" is negative: the clause after "but" wins). A bag of words cannot solve it; a
directional attention model can. Use it to see the pipeline work end to end, not to claim anything
about real sentiment analysis.

    # writes train.txt, dev.txt, test.txt ("label text" lines)
    python examples/demo_corpus.py OUTPUT_DIR
"""

import os
import random
import sys

SUBJECTS = (
    "the movie",
    "this film",
    "the plot",
    "the acting",
    "the soundtrack",
    "the ending",
    "the story",
    "the dialogue",
    "the cast",
    "the director",
    "the script",
    "the camera work",
    "the pacing",
    "the hero",
    "the villain",
    "the sequel",
    "the first act",
    "the finale",
    "the score",
    "the humor",
)
POSITIVE = (
    "good",
    "great",
    "wonderful",
    "moving",
    "clever",
    "funny",
    "beautiful",
    "brilliant",
    "charming",
    "gripping",
    "fresh",
    "superb",
    "delightful",
    "touching",
    "sharp",
    "excellent",
)
NEGATIVE = (
    "bad",
    "boring",
    "dull",
    "awful",
    "predictable",
    "clumsy",
    "tedious",
    "weak",
    "messy",
    "bland",
    "forgettable",
    "painful",
    "silly",
    "flat",
    "lazy",
    "terrible",
)
INTENSIFIERS = ("", "", "", "really ", "very ", "quite ", "truly ", "rather ")
NEGATIONS = ("not", "never", "hardly", "not at all")


def _clause(rng):
    """A clause and its polarity (1 positive, 0 negative), possibly negated."""
    subject = rng.choice(SUBJECTS)
    polarity = rng.randrange(2)
    adjective = rng.choice(POSITIVE if polarity else NEGATIVE)
    if rng.random() < 0.4:
        negation = rng.choice(NEGATIONS)
        if negation == "not at all":
            return f"{subject} is not {adjective} at all", 1 - polarity
        return f"{subject} is {negation} {adjective}", 1 - polarity
    return f"{subject} is {rng.choice(INTENSIFIERS)}{adjective}", polarity


def make_example(rng):
    """One (label, sentence) pair."""
    first, first_polarity = _clause(rng)
    form = rng.random()
    if form < 0.35:
        return first_polarity, first
    second, second_polarity = _clause(rng)
    if form < 0.7:
        return second_polarity, f"{first} , but {second}"  # the clause after "but" decides
    if form < 0.85:
        return second_polarity, f"although {first} , {second}"
    return first_polarity, f"{first} , even though {second}"  # the main clause decides


def write_corpus(output_dir, sizes=(3000, 500, 500), seed=7):
    """Writes train/dev/test files of `label text` lines; returns their paths."""
    os.makedirs(output_dir, exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for split, size in zip(("train", "dev", "test"), sizes):
        path = os.path.join(output_dir, f"{split}.txt")
        with open(path, "w", encoding="utf-8") as file:
            for _ in range(size):
                label, text = make_example(rng)
                file.write(f"{label} {text}\n")
        paths.append(path)
    return paths


if __name__ == "__main__":
    print("\n".join(write_corpus(sys.argv[1] if len(sys.argv) > 1 else "runs/demo/data")))
