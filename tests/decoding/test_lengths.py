import types

import numpy as np
import pytest
import tensorflow as tf

from keras_transformer import decoding
from keras_transformer.constants import END_ID, NEG_INF, START_ID
from keras_transformer.decoding.lengths import (
    check_lengths, forbid_tokens, output_limits, trim_padding, write_column)
from keras_transformer.errors import InputError


def test_limits_are_source_length_plus_50_per_row_capped_and_0_when_empty():
    src = tf.constant([[5, 6, 7, 0], [5, 0, 0, 0], [0, 0, 0, 0]])
    width, limits = output_limits(src, None, 512)
    assert width == 54
    np.testing.assert_array_equal(limits, [53, 51, 0])
    width, limits = output_limits(src, None, 52)
    assert width == 52
    np.testing.assert_array_equal(limits, [52, 51, 0])


def test_an_int_max_length_applies_to_every_non_empty_row():
    width, limits = output_limits(tf.constant([[5, 6], [0, 0]]), 7, 64)
    assert width == 7
    np.testing.assert_array_equal(limits, [7, 0])


def test_unknown_source_length_sizes_buffers_for_the_model_max_length():
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def width_of(src):
        width, limits = output_limits(src, None, 64)
        return tf.constant(width), limits

    width, limits = width_of(tf.constant([[5, 6, 0]]))
    assert int(width) == 64 and limits.numpy().tolist() == [52]


@pytest.mark.parametrize("max_length", [0, 65, 2.5, True])
def test_bad_max_length_is_refused(max_length):
    # Catches: a max_length beyond the model's positional table and cache, or not a
    # positive int, accepted (output_limits trusts check_lengths, which every loop calls).
    model = types.SimpleNamespace(config=types.SimpleNamespace(max_length=64,
                                                               tgt_vocab_size=10))
    with pytest.raises(InputError, match="max_length"):
        check_lengths(model, max_length, 0, START_ID, END_ID)


def test_forbid_tokens_bans_padding_start_and_early_end():
    log_probs = tf.zeros((1, 6))
    early = forbid_tokens(log_probs, tf.constant(1), 2, 2, 3).numpy()[0]
    np.testing.assert_array_equal(early == NEG_INF, [1, 0, 1, 1, 0, 0])
    late = forbid_tokens(log_probs, tf.constant(2), 2, 2, 3).numpy()[0]
    np.testing.assert_array_equal(late == NEG_INF, [1, 0, 1, 0, 0, 0])


def test_write_column_and_trim_padding():
    ids = write_column(tf.zeros((2, 5), tf.int32), tf.constant(1), tf.constant([7, 0]))
    np.testing.assert_array_equal(ids, [[0, 7, 0, 0, 0], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(trim_padding(ids), [[0, 7], [0, 0]])
    assert trim_padding(tf.zeros((3, 2, 4), tf.int32)).shape == (3, 2, 0)


def test_each_row_reaches_its_own_limit_end_to_end(tiny_model):
    """With [END] forbidden throughout (min_length beyond every limit), greedy and beam
    search run every row to exactly min(its source length + 50, the model's max_length=64),
    not to the longest row's limit."""
    src = np.array([[5, 6, 7] + [0] * 11, [4] + [0] * 13, list(range(4, 18)), [0] * 14],
                   np.int32)
    limits = [53, 51, 64, 0]
    greedy, _ = decoding.greedy_search(tiny_model, src, min_length=100, jit_compile=False)
    np.testing.assert_array_equal((greedy.numpy() != 0).sum(axis=1), limits)
    beams, _ = decoding.beam_search(tiny_model, src, beam_size=2, num_return=2,
                                    min_length=100, jit_compile=False)
    for hypothesis in range(2):
        np.testing.assert_array_equal((beams.numpy()[:, hypothesis] != 0).sum(axis=1), limits)
    assert END_ID not in greedy.numpy() and END_ID not in beams.numpy()
