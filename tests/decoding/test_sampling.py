import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_well_formed

from keras_transformer import decoding
from keras_transformer.constants import NEG_INF


def test_a_seed_reproduces_and_different_seeds_differ(tiny_model, sources):
    first = decoding.sample(tiny_model, sources, seed=1, jit_compile=False)
    again = decoding.sample(tiny_model, sources, seed=1, jit_compile=False)
    other = decoding.sample(tiny_model, sources, seed=2, jit_compile=False)
    np.testing.assert_array_equal(first, again)
    assert first.shape != other.shape or (first.numpy() != other.numpy()).any()
    assert_well_formed(first)


def test_top_k_of_one_is_greedy(tiny_model, sources):
    greedy, _ = decoding.greedy_search(tiny_model, sources, jit_compile=False)
    sampled = decoding.sample(tiny_model, sources, top_k=1, seed=3, jit_compile=False)
    np.testing.assert_array_equal(sampled, greedy)


def kept(logits):
    return (logits.numpy() > NEG_INF / 2).astype(int).tolist()


def test_top_k_keeps_the_k_most_probable():
    log_probs = tf.math.log([[0.1, 0.4, 0.2, 0.3]])
    assert kept(decoding.filter_logits(log_probs, top_k=2)) == [[0, 1, 0, 1]]
    assert kept(decoding.filter_logits(log_probs, top_k=10)) == [[1, 1, 1, 1]]


def test_top_p_keeps_the_smallest_set_reaching_p():
    log_probs = tf.math.log([[0.1, 0.4, 0.2, 0.3], [0.97, 0.01, 0.01, 0.01]])
    assert kept(decoding.filter_logits(log_probs, top_p=0.6)) == [[0, 1, 0, 1], [1, 0, 0, 0]]
    assert kept(decoding.filter_logits(log_probs, top_p=0.75)) == [[0, 1, 1, 1], [1, 0, 0, 0]]


def test_temperature_divides_the_log_probabilities():
    log_probs = tf.math.log([[0.25, 0.75]])
    np.testing.assert_allclose(decoding.filter_logits(log_probs, temperature=0.5), log_probs / 0.5)


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(temperature=0.0), "temperature"),
        (dict(top_k=-1), "top_k"),
        (dict(top_p=0.0), "top_p"),
        (dict(seed=1.5), "seed"),
    ],
)
def test_bad_settings_are_refused(tiny_model, settings, message):
    with pytest.raises(ValueError, match=message):
        decoding.sample(tiny_model, [[5, 6]], jit_compile=False, **settings)
