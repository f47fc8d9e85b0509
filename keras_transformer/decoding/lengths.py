"""How many tokens each sentence may decode, and the ids every decoder reserves.

The paper (§6.1) sets the maximum output length to the input length + 50. Each row gets
its own limit from its own source length, so that a sentence decodes to the same output
alone and inside a padded batch:

    limit_i = min(|x_i| + 50, model max_length)     when max_length is None
    limit_i = max_length                             when max_length is an int
    limit_i = 0                                      when x_i is empty (id 0 only)

|x_i| counts the non-padding ids of row i. Output buffers share one batch-wide width
W >= every limit_i: min(src_len + 50, model max_length) when the padded source length is
known while tracing, the model's max_length otherwise (a graph traced for any source
length). W only sizes the buffers; the limits decide the output.

A hypothesis that reaches its limit without [END] stops there, without [END].
"""

import tensorflow as tf

from keras_transformer.constants import NEG_INF, PAD_ID
from keras_transformer.errors import InputError

EXTRA_LENGTH = 50


def source_lengths(src_ids):
    """(batch, src_len) int ids -> (batch,) int32 number of non-padding ids per row."""
    return tf.reduce_sum(tf.cast(tf.not_equal(src_ids, PAD_ID), tf.int32), axis=1)


def output_limits(src_ids, max_length, model_max_length):
    """The buffer width W (a Python int) and the per-row limits (batch,) int32.

    Args:
        src_ids: (batch, src_len) int32 source ids, 0-padded.
        max_length: None for |x_i| + 50 per row, or an int limit for every row.
        model_max_length: the model's `config.max_length`, the most target positions
            its positional table and decoding cache hold.

    Example:
    >>> width, limits = output_limits(tf.constant([[5, 6, 0]]), None, 512)
    >>> width, limits.numpy()          # W = 3 + 50 columns; this row: 2 tokens + 50
    (53, array([52], dtype=int32))
    """
    if max_length is None:
        src_len = src_ids.shape[1]
        width = model_max_length if src_len is None else min(src_len + EXTRA_LENGTH,
                                                              model_max_length)
        limits = tf.minimum(source_lengths(src_ids) + EXTRA_LENGTH, width)
    else:  # an int in [1, model_max_length]: see check_lengths
        width = max_length
        limits = tf.fill(tf.shape(src_ids)[:1], max_length)
    limits = tf.where(source_lengths(src_ids) > 0, limits, 0)
    return width, limits


def check_settings(model, src_ids, max_length, min_length, start_id, end_id):
    """Validates the source ids and the settings every decoder shares; returns src_ids
    as int32."""
    src_ids = tf.convert_to_tensor(src_ids)
    if not src_ids.dtype.is_integer or src_ids.shape.rank != 2:
        raise InputError(
            f"src ids must be int32 of shape (batch, length); got {src_ids.dtype.name} "
            f"{tuple(src_ids.shape)}")
    check_lengths(model, max_length, min_length, start_id, end_id)
    return tf.cast(src_ids, tf.int32)


def check_lengths(model, max_length, min_length, start_id, end_id):
    """Validates the length bounds and reserved ids every decoder shares. The loops call
    it, and so do `greedy_search`, `beam_search` and `sample` before anything is traced,
    so that a wrong setting is an InputError and not an error inside a traced function."""
    model_max_length = model.config.max_length
    if max_length is not None:
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
            raise InputError(f"max_length must be None or a positive int; got {max_length!r}")
        if max_length > model_max_length:
            raise InputError(
                f"max_length={max_length} is longer than the model's max_length="
                f"{model_max_length} (its positional table and cache); pass at most "
                f"{model_max_length}, or None for the source length + {EXTRA_LENGTH}")
    vocab_size = model.config.tgt_vocab_size
    for name, value in (("start_id", start_id), ("end_id", end_id)):
        if not isinstance(value, int) or not 0 < value < vocab_size:
            raise InputError(
                f"{name} must be an int id in [1, {vocab_size}) (the target vocabulary, "
                f"0 is padding); got {value!r}")
    if not isinstance(min_length, int) or isinstance(min_length, bool) or min_length < 0:
        raise InputError(f"min_length must be an int >= 0; got {min_length!r}")


def forbid_tokens(log_probs, step, min_length, start_id, end_id):
    """Sets the log-probabilities of tokens that may not come next to NEG_INF.

    Padding (id 0) and [START] never belong to an output, and [END] may not come before
    `min_length` tokens were emitted (output position `step` < min_length).

    Args:
        log_probs: (..., vocab) float32.
        step: scalar int32, the output position being chosen (0 = first token).
    """
    vocab = log_probs.shape[-1]
    banned = tf.reduce_any(tf.one_hot([PAD_ID, start_id], vocab, on_value=True,
                                      off_value=False), axis=0)
    if min_length > 0:
        banned = banned | (tf.one_hot(end_id, vocab, on_value=True, off_value=False)
                           & (step < min_length))
    return tf.where(banned, NEG_INF, log_probs)


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
