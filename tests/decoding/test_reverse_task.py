"""End to end: a tiny model trained to reverse its input decodes every test sequence
exactly, with greedy and beam search compiled by XLA, batched."""

import numpy as np
import pytest
from helpers import assert_well_formed, strip
from reverse_task import reverse_examples

from keras_transformer import decoding


@pytest.mark.slow
def test_reverse_model_decodes_every_test_sequence_exactly(reverse_model):
    src, tgt = reverse_examples(32, np.random.default_rng(2024))
    expected = [strip(row[1:]) for row in tgt]
    greedy, _ = decoding.greedy_search(reverse_model, src)
    beam, _ = decoding.beam_search(reverse_model, src, beam_size=4, alpha=0.6)
    for ids in (greedy, beam):
        assert_well_formed(ids)
        assert [strip(row) for row in ids] == expected
