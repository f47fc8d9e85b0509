"""The compiled loops give what the same loops give run eagerly, step by step."""

import numpy as np
from helpers import strip

from keras_transformer import decoding


def test_greedy_and_beam_search_under_xla_equal_eager(tiny_model, sources):
    src = sources[:, :4]
    eager_ids, eager_scores = decoding.greedy_loop(
        tiny_model, src, decoding.DecodingSettings(max_length=12)
    )
    ids, scores = decoding.greedy_search(tiny_model, src, max_length=12, jit_compile=True)
    assert [strip(r) for r in ids] == [strip(r) for r in eager_ids]
    np.testing.assert_allclose(scores, eager_scores, atol=1e-4)

    eager_ids, eager_scores = decoding.beam_loop(
        tiny_model, src, decoding.DecodingSettings(max_length=12), num_return=2
    )
    ids, scores = decoding.beam_search(
        tiny_model, src, max_length=12, num_return=2, jit_compile=True
    )
    assert [[strip(h) for h in r] for r in ids] == [[strip(h) for h in r[:2]] for r in eager_ids]
    np.testing.assert_allclose(scores, eager_scores[:, :2], atol=1e-4)
