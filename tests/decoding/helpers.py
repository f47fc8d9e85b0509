"""Checks shared by the decoding tests."""

import numpy as np
import tensorflow as tf

START_ID, END_ID = 2, 3


def teacher_forced_log_prob(model, src_ids, ids):
    """Σ log p(y_t | y_<t, x) of each output row `ids` (batch, t), from the full
    (uncached) model: the score greedy search should report."""
    ids = np.asarray(ids)
    start = np.full((ids.shape[0], 1), START_ID, np.int32)
    logits = model((np.asarray(src_ids), np.concatenate([start, ids[:, :-1]], 1)), training=False)
    log_probs = tf.nn.log_softmax(logits).numpy()
    picked = np.take_along_axis(log_probs, ids[..., None], axis=-1)[..., 0]
    return (picked * (ids != 0)).sum(axis=1)


def assert_well_formed(ids):
    """No [START], no padding before the end, nothing but padding after [END]."""
    for row in np.asarray(ids).reshape(-1, np.shape(ids)[-1]):
        assert START_ID not in row
        length = (row != 0).sum()
        assert (row[:length] != 0).all(), row
        ends = np.flatnonzero(row == END_ID)
        if len(ends):
            assert ends[0] == length - 1, row


def strip(row):
    """A row's tokens without the padding."""
    row = np.asarray(row)
    return row[row != 0].tolist()
