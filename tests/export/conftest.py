"""A tiny English -> French numbers translator (`numbers_model.py`), trained once and
shared by the export tests."""

import numpy as np
import pytest

from keras_transformer.decoding import greedy_search
from keras_transformer.translator import Translator
from numbers_model import train_numbers_model

EPOCHS = 6


class Trained:
    """The trained model, its tokenizer, translators and the dev split."""

    def __init__(self, model, tokenizer, dev):
        self.model = model
        self.tokenizer = tokenizer
        self.dev_sources = [source for source, _ in dev]
        self.dev_references = [reference for _, reference in dev]
        # jit_compile=False: XLA compilation would cost more than these tiny batches.
        self.beam_translator = Translator(model, tokenizer, tokenizer, jit_compile=False)
        self.greedy_translator = Translator(model, tokenizer, tokenizer, beam_size=1,
                                            jit_compile=False)

    def src_ids(self, sentences):
        return self.tokenizer.tokenize(sentences).to_tensor(0).numpy().astype(np.int32)

    def assert_decodes_as_greedy_search(self, translate_ids, batches):
        """`translate_ids(src_ids) -> (ids, scores)` of an exported runtime gives
        greedy_search's ids and scores (within 1e-4) for every batch of sentences, and an
        empty result for an empty batch."""
        for sentences in batches:
            src_ids = self.src_ids(sentences)
            ids, scores = translate_ids(src_ids)
            expected_ids, expected_scores = greedy_search(self.model, src_ids,
                                                          jit_compile=False)
            np.testing.assert_array_equal(ids, expected_ids.numpy())
            np.testing.assert_allclose(scores, expected_scores.numpy(), atol=1e-4)
        ids, scores = translate_ids(np.zeros((0, 5), np.int32))
        assert ids.shape[0] == 0 and scores.shape == (0,)


@pytest.fixture(scope="session")
def trained():
    return Trained(*train_numbers_model(EPOCHS))
