import types

import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_well_formed, strip, teacher_forced_log_prob

from keras_transformer import decoding
from keras_transformer.decoding.beam import length_penalty, top_k_by_blocks

A, B, END = 4, 5, 3


class ScriptedModel:
    """A stand-in "model" whose next-token distribution depends only on the last token
    and the step, so the length penalty's effect can be computed by hand:

        from [START]:        END 0.50   A 0.45   B 0.05
        from A, step < 5:    A 0.99     END 0.01
        from A, step 5:      END 0.99   A 0.01

    The short hypothesis [END] has log p = log 0.5 = -0.69; the long one
    [A A A A A END] has log p = log 0.45 + 5 log 0.99 = -0.85 but length 6, so with
    α = 0.6 it scores -0.85 / lp(6) = -0.59 and wins, while α = 0 keeps [END].
    """

    def __init__(self):
        self.config = types.SimpleNamespace(max_length=16, src_vocab_size=8, tgt_vocab_size=6)
        self.steps = 0

    def encode(self, src_ids, training=None):
        return tf.zeros(tf.concat([tf.shape(src_ids), [1]], 0)), src_ids[:, None, None, :] > 0

    def init_cache(self, memory, max_length, beam_size=1):
        return {"ancestry": tf.zeros([tf.shape(memory)[0], beam_size, max_length], tf.int32)}

    def decode_step(self, tgt_ids, step, cache, memory_mask):
        self.steps += 1
        probs = np.full((3, 6), 1e-6, np.float32)  # rows: [START], A before 5, A at 5
        probs[0, [END, A, B]] = [0.5, 0.45, 0.05]
        probs[1, [A, END]] = [0.99, 0.01]
        probs[2, [END, A]] = [0.99, 0.01]
        row = tf.where(tf.equal(tgt_ids, 2), 0, tf.where(step < 5, 1, 2))
        return tf.math.log(tf.gather(tf.constant(probs), row)), cache


def test_the_length_penalty_changes_the_winner():
    src = np.array([[7, 7]], np.int32)
    short, short_score = decoding.beam_search(
        ScriptedModel(), src, beam_size=2, alpha=0.0, jit_compile=False
    )
    assert strip(short[0]) == [END]
    np.testing.assert_allclose(short_score[0], np.log(0.5), rtol=1e-4)
    long, long_score = decoding.beam_search(
        ScriptedModel(), src, beam_size=2, alpha=0.6, jit_compile=False
    )
    assert strip(long[0]) == [A] * 5 + [END]
    expected = (np.log(0.45) + 5 * np.log(0.99)) / ((5 + 6) / 6) ** 0.6
    np.testing.assert_allclose(long_score[0], expected, rtol=1e-4)
    greedy, _ = decoding.greedy_search(ScriptedModel(), src, jit_compile=False)
    assert strip(greedy[0]) == [END]


def test_search_stops_once_no_live_beam_can_win():
    model = ScriptedModel()
    decoding.beam_loop(
        model, tf.constant([[7, 7]]), decoding.DecodingSettings(beam_size=2, alpha=0.0)
    )
    # After step 0, [END] (-0.69) beats every live beam (at most log 0.45): stop.
    assert model.steps == 1
    model = ScriptedModel()
    decoding.beam_loop(
        model, tf.constant([[7, 7]]), decoding.DecodingSettings(beam_size=2, alpha=0.6)
    )
    assert model.steps < 16


def test_length_penalty_is_gnmts():
    np.testing.assert_allclose(length_penalty(1, 0.6), 1.0)
    np.testing.assert_allclose(length_penalty(10, 0.6), (15 / 6) ** 0.6, rtol=1e-6)
    np.testing.assert_allclose(length_penalty(10, 0.0), 1.0)


def test_beam_of_one_without_penalty_is_greedy(tiny_model, sources):
    ids, scores = decoding.greedy_search(tiny_model, sources, jit_compile=False)
    beam_ids, beam_scores = decoding.beam_search(
        tiny_model, sources, beam_size=1, alpha=0.0, jit_compile=False
    )
    np.testing.assert_array_equal(beam_ids, ids)
    np.testing.assert_allclose(beam_scores, scores, atol=1e-5)


def test_n_best_lists_are_sorted_and_scored(tiny_model, sources):
    ids, scores = decoding.beam_search(
        tiny_model, sources[:3], beam_size=4, num_return=3, jit_compile=False
    )
    assert ids.shape[:2] == (3, 3) and scores.shape == (3, 3)
    assert_well_formed(ids)
    assert (np.diff(scores.numpy(), axis=1) <= 0).all()
    for i in range(3):
        assert len({tuple(strip(h)) for h in ids[i]}) == 3
        lengths = (ids[i].numpy() != 0).sum(axis=1)
        log_probs = teacher_forced_log_prob(tiny_model, np.repeat(sources[i : i + 1], 3, 0), ids[i])
        np.testing.assert_allclose(scores[i], log_probs / length_penalty(lengths, 0.6), atol=1e-3)
    best, best_scores = decoding.beam_search(
        tiny_model, sources[:3], beam_size=4, jit_compile=False
    )
    np.testing.assert_allclose(best_scores, scores[:, 0], atol=1e-5)


def test_batched_equals_one_by_one(tiny_model, sources):
    ids, scores = decoding.beam_search(tiny_model, sources, jit_compile=False)
    assert strip(ids[3]) == [] and scores[3] == 0.0
    for i, row in enumerate(sources[:3]):
        alone, alone_score = decoding.beam_search(
            tiny_model, row[None, : (row != 0).sum()], jit_compile=False
        )
        assert strip(alone[0]) == strip(ids[i])
        np.testing.assert_allclose(alone_score[0], scores[i], atol=1e-4)


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(beam_size=0), "beam_size"),
        (dict(beam_size=11), "half the target vocabulary"),
        (dict(beam_size=2, num_return=3), "num_return"),
        (dict(alpha=-1.0), "alpha"),
    ],
)
def test_bad_settings_are_refused(tiny_model, settings, message):
    with pytest.raises(ValueError, match=message):
        decoding.beam_search(tiny_model, [[5, 6]], jit_compile=False, **settings)


@pytest.mark.parametrize("shape", [(3, 5, 8000), (2, 7999), (4, 300), (2, 40)])
def test_top_k_by_blocks_equals_top_k_ties_included(shape):
    # Integer values from a small range: many ties, also at the k-th place.
    values = tf.constant(np.random.default_rng(0).integers(0, 50, size=shape), tf.float32)
    expected = tf.math.top_k(values, 8)
    for jit_compile in (False, True):
        top, indices = tf.function(top_k_by_blocks, jit_compile=jit_compile)(values, 8)
        np.testing.assert_array_equal(indices, expected.indices)
        np.testing.assert_array_equal(top, expected.values)
