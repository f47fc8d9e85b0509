import types

import numpy as np
import pytest
import tensorflow as tf

from keras_transformer import decoding
from keras_transformer.constants import END_ID, NEG_INF, START_ID
from keras_transformer.decoding.buffers import trim_padding, write_column
from keras_transformer.decoding.rules import DecodingSettings
from keras_transformer.errors import InputError


def output_limits(src_ids, max_length, model_max_length):
    """The buffer width and the per-row limits, as the loops take them."""
    settings = DecodingSettings(max_length=max_length)
    return (
        settings.width(src_ids.shape[1], model_max_length),
        settings.limits(src_ids, model_max_length),
    )


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
    # positive int, accepted (the limits trust DecodingSettings.check, which every loop
    # calls).
    model = types.SimpleNamespace(config=types.SimpleNamespace(max_length=64, tgt_vocab_size=10))
    with pytest.raises(InputError, match="max_length"):
        DecodingSettings(max_length=max_length, start_id=START_ID, end_id=END_ID).check(model)


def test_forbid_tokens_bans_padding_start_and_early_end():
    log_probs = tf.zeros((1, 6))
    settings = DecodingSettings(min_length=2, start_id=2, end_id=3)
    early = settings.forbid_tokens(log_probs, tf.constant(1)).numpy()[0]
    np.testing.assert_array_equal(early == NEG_INF, [1, 0, 1, 1, 0, 0])
    late = settings.forbid_tokens(log_probs, tf.constant(2)).numpy()[0]
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
    src = np.array([[5, 6, 7] + [0] * 11, [4] + [0] * 13, list(range(4, 18)), [0] * 14], np.int32)
    limits = [53, 51, 64, 0]
    greedy, _ = decoding.greedy_search(tiny_model, src, min_length=100, jit_compile=False)
    np.testing.assert_array_equal((greedy.numpy() != 0).sum(axis=1), limits)
    beams, _ = decoding.beam_search(
        tiny_model, src, beam_size=2, num_return=2, min_length=100, jit_compile=False
    )
    for hypothesis in range(2):
        np.testing.assert_array_equal((beams.numpy()[:, hypothesis] != 0).sum(axis=1), limits)
    assert END_ID not in greedy.numpy() and END_ID not in beams.numpy()


TWIN_CASES = [  # (max_length, min_length, start_id, end_id)
    (None, 0, START_ID, END_ID),
    (None, 3, START_ID, END_ID),
    (7, 0, START_ID, END_ID),
    (7, 5, 5, 4),
    (None, 100, START_ID, END_ID),
]


@pytest.mark.parametrize("max_length, min_length, start_id, end_id", TWIN_CASES)
def test_tensorflow_and_numpy_follow_the_same_rules(max_length, min_length, start_id, end_id):
    """The rules applied to tensors (the loops, the exports) and to NumPy arrays (the
    ONNX Runtime step loop): the same limits, the same banned tokens at every step
    (min_length included), the same rows decoding and finishing. Catches: a NumPy side
    off by one on the limit, or one that forgets min_length or a banned id."""
    settings = DecodingSettings(
        max_length=max_length, min_length=min_length, start_id=start_id, end_id=end_id
    )
    model_max_length = 53  # caps the longest row only
    src = np.array([[5, 6, 7, 0], [5, 0, 0, 0], [0, 0, 0, 0], [4, 5, 6, 7]], np.int32)
    np_limits = settings.limits(src, model_max_length)
    tf_limits = settings.limits(tf.constant(src), model_max_length)
    assert isinstance(np_limits, np.ndarray) and tf.is_tensor(tf_limits)
    np.testing.assert_array_equal(np_limits, tf_limits.numpy())

    rng = np.random.default_rng(0)
    finished = np.array([False, True, False, False])
    for step in range(model_max_length + 1):
        log_probs = rng.normal(size=(4, 8)).astype(np.float32)
        np_allowed = settings.forbid_tokens(log_probs, step)
        tf_allowed = settings.forbid_tokens(tf.constant(log_probs), tf.constant(step))
        np.testing.assert_array_equal(np_allowed, tf_allowed.numpy())
        np_active = settings.still_decoding(finished, step, np_limits)
        tf_active = settings.still_decoding(tf.constant(finished), tf.constant(step), tf_limits)
        np.testing.assert_array_equal(np_active, tf_active.numpy())
        tokens = np.where(np_active, np_allowed.argmax(axis=-1), 0).astype(np.int32)
        np_finished = settings.finished_after(finished, np_active, tokens)
        tf_finished = settings.finished_after(tf.constant(finished), tf_active, tf.constant(tokens))
        np.testing.assert_array_equal(np_finished, tf_finished.numpy())
        finished = np_finished
