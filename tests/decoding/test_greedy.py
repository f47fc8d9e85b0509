import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_well_formed, strip, teacher_forced_log_prob

from keras_transformer import decoding


def test_scores_are_the_models_log_probabilities(tiny_model, sources):
    ids, scores = decoding.greedy_search(tiny_model, sources, jit_compile=False)
    assert ids.dtype == tf.int32 and ids.shape[0] == 4
    assert_well_formed(ids)
    np.testing.assert_allclose(
        scores[:3], teacher_forced_log_prob(tiny_model, sources[:3], ids[:3]), atol=1e-3
    )


def test_per_row_max_length_is_source_length_plus_50(tiny_model, sources):
    ids, _ = decoding.greedy_search(tiny_model, sources, jit_compile=False)
    lengths = (ids.numpy() != 0).sum(axis=1)
    source_lengths = (sources != 0).sum(axis=1)
    assert (lengths <= np.minimum(source_lengths + 50, 64)).all()


def test_an_empty_source_decodes_to_nothing(tiny_model, sources):
    ids, scores = decoding.greedy_search(tiny_model, sources, jit_compile=False)
    assert strip(ids[3]) == [] and scores[3] == 0.0


def test_batched_equals_one_by_one(tiny_model, sources):
    ids, scores = decoding.greedy_search(tiny_model, sources, jit_compile=False)
    for i, row in enumerate(sources):
        alone, alone_score = decoding.greedy_search(
            tiny_model, row[None, : max((row != 0).sum(), 1)], jit_compile=False
        )
        assert strip(alone[0]) == strip(ids[i])
        np.testing.assert_allclose(alone_score[0], scores[i], atol=1e-4)


def test_max_and_min_length(reverse_model):
    src = np.array([[5, 6, 7]], np.int32)
    ids, _ = decoding.greedy_search(reverse_model, src, max_length=2, jit_compile=False)
    assert strip(ids[0]) == [7, 6]
    ids, _ = decoding.greedy_search(reverse_model, src, min_length=5, jit_compile=False)
    assert_well_formed(ids)
    assert 3 not in strip(ids[0])[:5] and len(strip(ids[0])) >= 5


@pytest.mark.parametrize(
    "src, message",
    [
        (np.ones((2, 3), np.float32), "int32 of shape"),
        (np.ones((3,), np.int32), "int32 of shape"),
        (np.ones((1, 65), np.int32), "max_length"),
    ],
)
def test_bad_sources_are_refused(tiny_model, src, message):
    with pytest.raises(ValueError, match=message):
        decoding.greedy_search(tiny_model, src, jit_compile=False)


def test_bad_settings_are_refused(tiny_model):
    with pytest.raises(ValueError, match="max_length"):
        decoding.greedy_search(tiny_model, [[5]], max_length=100, jit_compile=False)
    with pytest.raises(ValueError, match="end_id"):
        decoding.greedy_search(tiny_model, [[5]], end_id=20, jit_compile=False)
    with pytest.raises(ValueError, match="min_length"):
        decoding.greedy_search(tiny_model, [[5]], min_length=-1, jit_compile=False)
