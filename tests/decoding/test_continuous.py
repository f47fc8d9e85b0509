"""Beam search with continuous batching (`decoding.continuous`): every sentence of the
queue must decode to what `beam_loop` gives it alone, whichever slot it lands in and
whatever that slot decoded before."""

import numpy as np
import pytest
from helpers import END_ID, START_ID, strip

from keras_transformer.decoding import DecodingSettings, compiled, continuous
from keras_transformer.decoding.beam import beam_loop
from keras_transformer.errors import InputError

SETTINGS = DecodingSettings(beam_size=3, alpha=0.6, start_id=START_ID, end_id=END_ID)
LENGTHS = (5, 0, 2, 9, 3, 7, 1, 4)


def _queue(lengths, seed=0):
    rng = np.random.default_rng(seed)
    sources = [rng.integers(4, 20, size=n).astype(np.int32) for n in lengths]
    src_ids = np.zeros((len(sources), max(lengths)), np.int32)
    for row, source in enumerate(sources):
        src_ids[row, : len(source)] = source
    return sources, src_ids


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("slots, num_return", [(2, 1), (3, 2)])
def test_each_sentence_of_the_stream_decodes_as_alone(tiny_model, jit_compile, slots, num_return):
    """Catches: a slot that keeps the previous sentence's tokens (alive ids not cleared
    on refill), its finished set or scores, one position shared by all slots (the
    positional encoding, the cache write or the causal mask at the batch's step, not
    the sentence's), results written to the wrong row, a sentence never loaded."""
    sources, src_ids = _queue(LENGTHS)
    ids, scores = compiled.decode_in_buckets(
        continuous.beam_stream,
        tiny_model,
        src_ids,
        (SETTINGS, slots, num_return),
        jit_compile=jit_compile,
    )
    ids, scores = np.asarray(ids), np.asarray(scores)
    for i, source in enumerate(sources):
        alone_ids, alone_scores = compiled.decode_in_buckets(
            beam_loop, tiny_model, source[None, :], (SETTINGS, num_return), jit_compile=False
        )
        for j in range(num_return):
            assert strip(ids[i, j]) == strip(alone_ids[0, j]), (i, j)
            np.testing.assert_allclose(scores[i, j], alone_scores[0, j], atol=1e-4)
    assert strip(ids[1, 0]) == [] and scores[1, 0] == 0.0  # the empty source


@pytest.mark.parametrize("slots", [0, -1, 2.0, True])
def test_slots_must_be_a_positive_int(tiny_model, slots):
    """Catches: zero slots accepted, which decodes nothing and returns empty
    hypotheses for every source."""
    with pytest.raises(InputError, match="slots must be a positive int"):
        continuous.beam_stream(tiny_model, np.ones((2, 3), np.int32), SETTINGS, slots)


def test_queues_merge_the_widths_too_few_for_a_program():
    """Catches: a width with too few sources kept as a queue of its own (a program
    compiled for a handful of sentences), merged into a narrower queue (its sources
    would not fit), a source lost or decoded twice."""
    lengths = [3] * 9 + [20] * 2 + [40] * 3 + [70] * 8 + [5]
    sources = [np.ones(n, np.int32) for n in lengths]
    queues = continuous.queues(sources, max_length=128, slots=2)  # a queue needs 8
    assert sorted(i for queue in queues for i in queue) == list(range(len(lengths)))
    widths = [sorted({lengths[i] for i in queue}) for queue in queues]
    # 10 of width 16; 2 of 32 and 3 of 64 join 8 of 128; the largest queue first.
    assert widths == [[20, 40, 70], [3, 5]]
    assert [lengths[i] for i in queues[0]] == sorted(
        (lengths[i] for i in queues[0]), reverse=True
    )  # the longest first


def test_decode_queue_returns_every_source_in_order(tiny_model):
    """Catches: queues mapped back to the wrong sources (they go longest first, one
    per source width), a queue left out, the progress count off."""
    # 8 sources of width 16 (one empty), 8 of width 32: two queues of 2 slots.
    lengths = (3, 20, 1, 0, 17, 6, 2, 4, 5, 7) + (18,) * 6
    sources, _ = _queue(lengths, seed=1)
    assert len(continuous.queues(sources, tiny_model.config.max_length, slots=2)) == 2
    finals = []
    ids, scores = continuous.decode_queue(
        tiny_model, sources, SETTINGS, slots=2, jit_compile=False, on_final=finals.append
    )
    assert sum(finals) == len(sources)
    for source, row, score in zip(sources, ids, scores):
        alone_ids, alone_scores = compiled.decode_in_buckets(
            beam_loop, tiny_model, source[None, :], (SETTINGS,), jit_compile=False
        )
        assert row.tolist() == strip(alone_ids[0, 0])
        np.testing.assert_allclose(score, alone_scores[0, 0], atol=1e-4)
