"""Checkpoint averaging (§6.1): the base models were evaluated on "a single model
obtained by averaging the last 5 checkpoints".

    θ̄ = (1 / K) Σ_k θ_k      over the K checkpoints, weight by weight

Averaging pays once training has settled, as after the paper's 100,000 steps. In a short
run the last epochs still differ much (the loss falls by a tenth per epoch in the first
half hour on 26,000 sentences), and their average is worse than the last checkpoint.
`best_average` therefore tries the averages of the last 1, 2, ..., K checkpoints and
keeps the one with the lowest loss on held-out data.
"""

import contextlib
import os

import numpy as np

from keras_transformer.errors import InputError


def average_checkpoints(model, checkpoint_paths):
    """Sets `model`'s weights to the element-wise mean of the weight files in
    `checkpoint_paths` (files written by `model.save_weights`, e.g. by
    `keras.callbacks.ModelCheckpoint(save_weights_only=True)`), and returns the model.

    The model must be built with the architecture the checkpoints were saved from. A
    checkpoint that cannot be read raises InputError and leaves the model's weights as
    they were.
    """
    checkpoint_paths = list(checkpoint_paths)
    if not checkpoint_paths:
        raise InputError("average_checkpoints needs at least one checkpoint path; got none")
    for path in checkpoint_paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint {path} does not exist")
    total = None
    with _weights_kept_on_error(model):
        for path in checkpoint_paths:
            weights = _load(model, path)
            total = weights if total is None else [t + w for t, w in zip(total, weights)]
    model.set_weights([t / len(checkpoint_paths) for t in total])
    return model


@contextlib.contextmanager
def _weights_kept_on_error(model):
    """Puts `model`'s weights back as they were if the block raises: loading checkpoint
    after checkpoint into the model, a bad one would otherwise leave it holding the last
    good one's weights."""
    weights = model.get_weights()
    try:
        yield
    except BaseException:
        model.set_weights(weights)
        raise


def last_checkpoints(directory, count=5, suffix=".weights.h5"):
    """The last `count` checkpoint files in `directory` in name order, which is epoch
    order for the zero-padded names a run writes (`epoch_003.weights.h5`)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InputError(f"count must be an int >= 1 (checkpoints to take); got {count!r}")
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"checkpoint directory {directory} does not exist")
    # Names starting with "." are the temporary files of writes still in progress.
    names = sorted(n for n in os.listdir(directory) if n.endswith(suffix) and not n.startswith("."))
    if not names:
        raise FileNotFoundError(f"no *{suffix} checkpoints in {directory}")
    return [os.path.join(directory, n) for n in names[-count:]]


def _load(model, path):
    try:
        model.load_weights(path)
    except Exception as error:
        raise InputError(
            f"cannot load checkpoint {path} into the model: {error}. Checkpoints must "
            "come from a model of the same configuration"
        ) from error
    return [np.asarray(w, dtype=np.float64) for w in model.get_weights()]


def best_average(model, checkpoint_paths, dataset):
    """Sets `model`'s weights to the average of the last k of `checkpoint_paths` (in
    order, oldest first) for the k in 1..K whose average has the lowest loss on
    `dataset` (`model.evaluate`, the compiled loss), and returns (k, {k: loss}).

    Each checkpoint is read once: the average of the last k is the running sum of the
    newest k divided by k.
    """
    checkpoint_paths = list(checkpoint_paths)
    if not checkpoint_paths:
        raise InputError("best_average needs at least one checkpoint path; got none")
    total, losses, best = None, {}, None
    with _weights_kept_on_error(model):
        for k, path in enumerate(reversed(checkpoint_paths), 1):
            weights = _load(model, path)
            total = weights if total is None else [t + w for t, w in zip(total, weights)]
            average = [t / k for t in total]
            model.set_weights(average)
            losses[k] = float(model.evaluate(dataset, verbose=0, return_dict=True)["loss"])
            if best is None or losses[k] < losses[best[0]]:
                best = (k, average)
    model.set_weights(best[1])
    return best[0], losses
