"""The fixed-size output buffers of the decoding loops: written a column per step, trimmed
at the end."""

import tensorflow as tf

from keras_transformer.constants import PAD_ID


def write_column(buffer, step, values):
    """buffer (..., width) with `values` (...) written at column `step`.

    A select on the column index rather than a scatter or a dynamic-update-slice keeps
    the loop to ops that XLA, TFLite and ONNX all take (tf2onnx also mis-converts an
    int32 one-hot inside a loop body).
    """
    column = tf.equal(tf.range(tf.shape(buffer)[-1]), step)
    return tf.where(column, values[..., None], buffer)


def trim_padding(ids):
    """Drops the trailing columns of `ids` (..., width) that are padding in every row."""
    rank = ids.shape.rank
    used = tf.reduce_any(tf.not_equal(ids, PAD_ID), axis=list(range(rank - 1)))
    length = tf.reduce_max(tf.where(used, tf.range(1, tf.shape(ids)[-1] + 1), 0))
    return ids[..., :length]
