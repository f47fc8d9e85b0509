"""The step cap of the loops and the two-pass decoding of many sentences (stragglers).

An untrained model rarely emits [END], so most of its rows run to their length limit
(source + 50): with a first pass of a few steps, nearly every row is a straggler and
is decoded twice. The results must still equal one uncapped decoding of each row.
"""

import numpy as np
import pytest
from helpers import END_ID, START_ID, strip

from keras_transformer.decoding import DecodingSettings, compiled, stragglers
from keras_transformer.decoding.beam import beam_loop
from keras_transformer.decoding.greedy import greedy_loop

SETTINGS = dict(max_length=None, min_length=0, start_id=START_ID, end_id=END_ID)
LOOPS = [(greedy_loop, dict(beam_size=1)), (beam_loop, dict(beam_size=3, alpha=0.6))]


@pytest.mark.parametrize("loop, extra", LOOPS, ids=["greedy", "beam"])
def test_capped_rows_that_are_done_equal_the_uncapped_ones(tiny_model, sources, loop, extra):
    """Catches: done set for a row that was cut (its output would be taken as final),
    or a cap that changes the rows it did not cut."""
    settings = (DecodingSettings(**SETTINGS, **extra),)
    full_ids, full_scores = compiled.decode_in_buckets(
        loop, tiny_model, sources, settings, jit_compile=False
    )
    lengths = [len(strip(row)) for row in np.reshape(full_ids, (len(sources), -1))]
    for cap in (0, 3, 8):
        ids, scores, done = compiled.decode_in_buckets(
            loop, tiny_model, sources, settings, jit_compile=False, max_steps=cap
        )
        done = np.asarray(done)
        assert done[3]  # the empty source has nothing to decode
        for i in range(3):
            if loop is greedy_loop:  # greedy: done iff its output fits the cap
                assert done[i] == (lengths[i] <= cap), (i, cap)
            if done[i]:
                np.testing.assert_array_equal(ids[i], full_ids[i])
                np.testing.assert_allclose(scores[i], full_scores[i], atol=1e-5)
    uncapped = compiled.decode_in_buckets(
        loop,
        tiny_model,
        sources,
        settings,
        jit_compile=False,
        max_steps=tiny_model.config.max_length,
    )
    assert np.all(uncapped[2])
    np.testing.assert_array_equal(uncapped[0], full_ids)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_two_passes_equal_one_uncapped_pass(tiny_model, monkeypatch, beam_size):
    """Catches: stragglers returned as cut, not decoded again; results put back in the
    wrong order; the second pass capped too."""
    from keras_transformer.translator import best_hypothesis

    rng = np.random.default_rng(0)
    sources = [rng.integers(4, 20, size=n).astype(np.int32) for n in (5, 0, 2, 9, 3, 7, 1)]
    settings = (DecodingSettings(**SETTINGS, beam_size=beam_size, alpha=0.6),)
    capped_calls = []

    def decode(src_ids, steps):
        capped_calls.append(steps)
        return compiled.decode_in_buckets(
            best_hypothesis, tiny_model, src_ids, settings, jit_compile=False, max_steps=steps
        )

    monkeypatch.setattr(stragglers, "FIRST_PASS_SCALE", 0)
    monkeypatch.setattr(stragglers, "FIRST_PASS_EXTRA", 2)
    finals = []
    ids, scores = stragglers.decode_in_two_passes(decode, sources, 3, 64, finals.append)
    assert capped_calls[:3] == [2, 2, 2] and capped_calls[3:] == [64] * (len(capped_calls) - 3)
    assert len(capped_calls) > 3  # there were stragglers
    assert sum(finals) == len(sources)
    for source, row, score in zip(sources, ids, scores):
        alone_ids, alone_score = compiled.decode_in_buckets(
            best_hypothesis, tiny_model, source[None, :], settings, jit_compile=False
        )
        assert row.tolist() == strip(alone_ids[0])
        np.testing.assert_allclose(score, alone_score[0], atol=1e-4)
