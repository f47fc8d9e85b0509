"""A tiny English -> French numbers translator (`numbers_model.py`), trained once and
shared by the export tests."""

import functools

import numpy as np
import pytest
import sacrebleu
from numbers_model import train_numbers_model

from keras_transformer.decoding import beam_search, greedy_search
from keras_transformer.translator import Translator

EPOCHS = 6
# What an int8 export must keep of TensorFlow's greedy or beam decoding on the 100 dev
# sentences (the fixture model translates them all exactly): it may change a few
# translations, at most 5 %, and cost at most 1 BLEU.
INT8_MIN_IDENTICAL = 0.95
INT8_MAX_BLEU_LOSS = 1.0


class Trained:
    """The trained model, its tokenizer, translators and the dev split."""

    def __init__(self, model, tokenizer, dev):
        self.model = model
        self.tokenizer = tokenizer
        self.dev_sources = [source for source, _ in dev]
        self.dev_references = [reference for _, reference in dev]
        # jit_compile=False: XLA compilation would cost more than these tiny batches.
        self.beam_translator = Translator(model, tokenizer, tokenizer, jit_compile=False)
        self.greedy_translator = Translator(
            model, tokenizer, tokenizer, beam_size=1, jit_compile=False
        )

    def src_ids(self, sentences):
        return self.tokenizer.tokenize(sentences).to_tensor(0).numpy().astype(np.int32)

    @functools.cached_property
    def dev_greedy(self):
        """greedy_search's (ids, scores) for every dev sentence, as NumPy arrays."""
        ids, scores = greedy_search(self.model, self.src_ids(self.dev_sources), jit_compile=False)
        return ids.numpy(), scores.numpy()

    @functools.cached_property
    def dev_beam(self):
        """beam_search's (ids, scores) for every dev sentence with the beam translator's
        settings, as NumPy arrays."""
        return self.beam_search(self.src_ids(self.dev_sources))

    def beam_search(self, src_ids):
        """kt.decoding.beam_search as beam_translator decodes: (ids, scores) arrays."""
        translator = self.beam_translator
        ids, scores = beam_search(
            self.model,
            src_ids,
            beam_size=translator.beam_size,
            alpha=translator.alpha,
            jit_compile=False,
        )
        return ids.numpy(), scores.numpy()

    def bad_src_ids(self):
        """(ids, bad value, its position) for each kind of ids an export must not decode:
        < 0, >= the source vocabulary, an int64 beyond int32 (a cast to int32 would wrap
        it to 6, a valid id), and a row longer than max_length (value: its length,
        position: None). Past the third column, where TensorFlow's assert messages stop
        listing values."""
        vocab_size, max_length = (self.model.config.src_vocab_size, self.model.config.max_length)
        good = [5, 6, 7, 8, 9, 10]
        return [
            (np.array([good, good[:-1] + [-1]]), -1, (1, 5)),
            (np.array([good[:-1] + [vocab_size]]), vocab_size, (0, 5)),
            (np.array([good[:-1] + [2**32 + 6]], np.int64), 2**32 + 6, (0, 5)),
            (np.full([1, max_length + 1], 9, np.int32), max_length + 1, None),
        ]

    def dev_ids(self, translate_ids, expected_ids=None):
        """`translate_ids`'s (ids, scores) for every dev sentence, the ids padded to
        TensorFlow's width (that of `expected_ids`, greedy's by default)."""
        ids, scores = translate_ids(self.src_ids(self.dev_sources))
        width = (self.dev_greedy[0] if expected_ids is None else expected_ids).shape[1]
        assert ids.shape[1] <= width
        return np.pad(ids, ((0, 0), (0, width - ids.shape[1]))), scores

    def bleu(self, ids):
        """Corpus BLEU of the dev translations `ids` against the references."""
        hypotheses = [t.decode() for t in self.tokenizer.detokenize(ids).numpy()]
        return sacrebleu.corpus_bleu(hypotheses, [self.dev_references]).score

    def assert_int8_keeps(self, translate_ids, expected_ids):
        """An int8 export's dev translations: at least INT8_MIN_IDENTICAL of them those
        of TensorFlow (`expected_ids`), at most INT8_MAX_BLEU_LOSS BLEU lost."""
        ids, _ = self.dev_ids(translate_ids, expected_ids)
        identical = (ids == expected_ids).all(axis=1).mean()
        tensorflow_bleu = self.bleu(expected_ids)
        assert tensorflow_bleu > 50, "the fixture model should have learned the task"
        assert identical >= INT8_MIN_IDENTICAL, identical
        assert self.bleu(ids) >= tensorflow_bleu - INT8_MAX_BLEU_LOSS

    def assert_runtime_refuses_bad_ids(self, translate_ids):
        """A runtime wrapper (TFLiteTranslator, OnnxTranslator) raises ValueError naming
        each bad value of `bad_src_ids` and its position."""
        max_length = self.model.config.max_length
        for ids, value, position in self.bad_src_ids():
            message = (
                rf"got {value} at position \({position[0]}, {position[1]}\)"
                if position
                else rf"length {value}, longer than the model's max_length={max_length}"
            )
            with pytest.raises(ValueError, match=message):
                translate_ids(ids)

    def assert_decodes_as_greedy_search(self, translate_ids, batches):
        """`translate_ids(src_ids) -> (ids, scores)` of an exported runtime gives
        greedy_search's ids and scores (within 1e-4) for every batch of sentences, and an
        empty result for an empty batch."""
        for sentences in batches:
            src_ids = self.src_ids(sentences)
            ids, scores = translate_ids(src_ids)
            expected_ids, expected_scores = greedy_search(self.model, src_ids, jit_compile=False)
            np.testing.assert_array_equal(ids, expected_ids.numpy())
            np.testing.assert_allclose(scores, expected_scores.numpy(), atol=1e-4)
        ids, scores = translate_ids(np.zeros((0, 5), np.int32))
        assert ids.shape[0] == 0 and scores.shape == (0,)

    def assert_decodes_as_beam_search(self, translate_ids, batches):
        """As `assert_decodes_as_greedy_search`, against beam_search with the beam
        translator's settings; each batch of more than one sentence must hold outputs of
        different lengths (beams that finished at different steps)."""
        for sentences in batches:
            src_ids = self.src_ids(sentences)
            ids, scores = translate_ids(src_ids)
            expected_ids, expected_scores = self.beam_search(src_ids)
            np.testing.assert_array_equal(ids, expected_ids)
            np.testing.assert_allclose(scores, expected_scores, atol=1e-4)
            if len(sentences) > 1:
                assert len(set((expected_ids != 0).sum(axis=1))) > 1, sentences
        ids, scores = translate_ids(np.zeros((0, 5), np.int32))
        assert ids.shape[0] == 0 and scores.shape == (0,)


@pytest.fixture(scope="session")
def trained():
    return Trained(*train_numbers_model(EPOCHS))
