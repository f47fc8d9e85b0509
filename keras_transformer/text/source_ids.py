"""Source ids as the encoder takes them: tokenized, cut to the model's max_length, padded."""

import tensorflow as tf

from keras_transformer.constants import PAD_ID


def padded_ids(tokens, max_length):
    """A tokenizer's ragged ids -> the encoder's input.

    Args:
        tokens: tf.RaggedTensor (batch, None) of int ids, as `tokenize` returns them.
        max_length: the model's max_length; longer rows keep their first max_length ids.

    Returns:
        int32 tf.Tensor (batch, min(longest row, max_length)), 0-padded. Pads, then cuts:
        ops that the TFLite converter takes as they are, in graphs and eagerly.

    Example:
    >>> padded_ids(tf.ragged.constant([[5, 6, 7], [8]]), 2).numpy()
    array([[5, 6],
           [8, 0]], dtype=int32)
    """
    return tf.cast(tokens.to_tensor(PAD_ID)[:, :max_length], tf.int32)
