"""The learning-curve plot of a run (matplotlib, an optional dependency)."""


def plot_learning_curves(history, path):
    """Saves loss and accuracy per epoch (train and dev) as a PNG.

    Args:
        history: rows of `run_directory.read_history`, one per epoch.
        path: the PNG file to write; nothing is written for an empty history.
    """
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(row["epoch"]) + 1 for row in history]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        axis.plot(epochs, [row[metric] for row in history], marker="o", label="train")
        axis.plot(epochs, [row[f"val_{metric}"] for row in history], marker="o", label="dev")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle("MTSA learning curves")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
