"""Figures: attention heat maps, the learning-rate schedule and a run's loss curves.

matplotlib comes with the [plots] extra and is imported at the first figure. The figures
are `matplotlib.figure.Figure` objects saved straight to PNG files (Agg renders them),
without pyplot: no backend is chosen and no global figure state is touched, so plotting
leaves a notebook's or a GUI's matplotlib setup as it was.
"""

import csv
import os

import numpy as np

from keras_transformer.errors import InputError
from keras_transformer.extras import import_extra
from keras_transformer.files import atomic_path


def _figure(rows=1, columns=1, **figure_args):
    """(a new Figure, its axes as a (rows, columns) array)."""
    figure = import_extra("matplotlib.figure", "plots").Figure(**figure_args)
    return figure, figure.subplots(rows, columns, squeeze=False)


def _save(figure, path):
    """Writes `figure` to the PNG file `path` whole (temporary name, then rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100, bbox_inches="tight")
    return path


def plot_attention(weights, source_tokens, target_tokens, path, title=None):
    """Heat map of attention weights, one panel per head.

    Args:
        weights: (heads, target_len, source_len) array (or (target_len, source_len)).
        source_tokens: labels across (length source_len).
        target_tokens: labels down (length target_len).
        path: PNG file to write.

    Returns the path written.
    """
    weights = np.asarray(weights, dtype=np.float32)
    if weights.ndim == 2:
        weights = weights[None]
    if weights.ndim != 3 or weights.shape[1:] != (len(target_tokens), len(source_tokens)):
        raise InputError(
            f"weights must have shape (heads, {len(target_tokens)}, {len(source_tokens)}) for "
            f"{len(target_tokens)} target and {len(source_tokens)} source tokens; got "
            f"{weights.shape}"
        )
    heads = weights.shape[0]
    columns = min(heads, 4)
    rows = -(-heads // columns)
    cell = 0.35
    figure, axes = _figure(
        rows,
        columns,
        figsize=(
            max(3.0, cell * len(source_tokens) + 1.5) * columns,
            max(2.5, cell * len(target_tokens) + 1.5) * rows,
        ),
    )
    for head, axis in enumerate(axes.flat):
        if head >= heads:
            axis.axis("off")
            continue
        axis.imshow(weights[head], cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        axis.set_xticks(range(len(source_tokens)), source_tokens, rotation=90, fontsize=8)
        axis.set_yticks(range(len(target_tokens)), target_tokens, fontsize=8)
        axis.set_title(f"head {head + 1}", fontsize=9)
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def plot_learning_rate(schedule, steps, path):
    """The schedule's learning rate over `steps` optimizer steps."""
    step = np.arange(steps)
    rates = np.asarray(schedule(step))
    figure, ((axis,),) = _figure(figsize=(6, 3.5))
    axis.plot(step, rates)
    axis.set_xlabel("step")
    axis.set_ylabel("learning rate")
    axis.grid(alpha=0.3)
    return _save(figure, path)


def read_log(path):
    """A Keras CSVLogger file as {column: list of floats}."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"training log {path} does not exist; train a run first")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise InputError(f"training log {path} has no epochs yet")
    return {key: [float(row[key]) for row in rows] for key in rows[0]}


def plot_loss_curves(log_path, path):
    """Training and validation loss per epoch from a run's CSV log."""
    log = read_log(log_path)
    figure, ((axis,),) = _figure(figsize=(6, 3.5))
    epochs = [e + 1 for e in log["epoch"]]
    for key in ("loss", "val_loss"):
        if key in log:
            axis.plot(epochs, log[key], marker="o", label=key)
    axis.set_xlabel("epoch")
    axis.set_ylabel("label-smoothed cross-entropy")
    axis.legend()
    axis.grid(alpha=0.3)
    return _save(figure, path)
