import os
import sys
import warnings

import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.translator import TranslationDetails, Translator

# The reverse-task model is trained once per session and shared with tests/decoding.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "decoding"))
from reverse_task import VOCAB_SIZE, train_reverse_model  # noqa: E402

RESERVED = ["[PAD]", "[UNK]", "[START]", "[END]"]
WORDS = [chr(ord("a") + i) for i in range(VOCAB_SIZE - 4)]  # ids 4.. are "a", "b", ...


class StandInTokenizer(tf.Module):
    """A whitespace tokenizer with the API of keras_transformer.text tokenizers."""

    def __init__(self, words):
        super().__init__()
        self.vocabulary = RESERVED + list(words)
        self.vocab_size = len(self.vocabulary)
        self.pad_id, self.unk_id, self.start_id, self.end_id = 0, 1, 2, 3
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                list(words), tf.range(4, self.vocab_size, dtype=tf.int32)
            ),
            default_value=1,
        )
        self._tokens = tf.constant(self.vocabulary)

    def tokenize(self, strings):
        return tf.ragged.map_flat_values(self._table.lookup, tf.strings.split(strings))

    def detokenize(self, ids):
        ids = tf.cast(ids, tf.int32)
        before_end = tf.cumsum(tf.cast(ids == self.end_id, tf.int32), axis=1) == 0
        kept = tf.ragged.boolean_mask(ids, before_end & (ids != 0) & (ids != self.start_id))
        return tf.strings.reduce_join(tf.gather(self._tokens, kept), axis=-1, separator=" ")


@pytest.fixture(scope="module")
def translator():
    tokenizer = StandInTokenizer(WORDS)
    return Translator(train_reverse_model(), tokenizer, tokenizer)


def test_translates_lists_and_single_strings(translator):
    assert translator(["a b c", "l k j i h"]) == ["c b a", "h i j k l"]
    assert translator("d e f") == "f e d"


def test_graph_translate_matches_eager(translator):
    result = translator.translate(tf.constant(["a b c", "g h"]))
    assert [s.decode() for s in result["translation"].numpy()] == ["c b a", "h g"]
    assert result["score"].shape == (2,)
    np.testing.assert_array_equal(result["ids"][1], [11, 10, 3, 0])  # h g [END]
    in_graph = tf.function(lambda text: translator(text))(tf.constant(["a b c"]))
    assert in_graph.numpy().tolist() == [b"c b a"]


def test_translate_ids(translator):
    result = translator.translate_ids(tf.constant([[4, 5, 6, 7], [7, 8, 9, 0]]))
    assert result["ids"].numpy().tolist() == [[7, 6, 5, 4, 3], [9, 8, 7, 3, 0]]


def test_empty_inputs(translator):
    assert translator([]) == []
    assert translator(["", "a b"]) == ["", "b a"]
    assert translator([""]) == [""]
    empty = translator.translate(tf.constant([], tf.string))
    assert empty["translation"].shape == (0,)


def test_unknown_words_become_unk(translator):
    details = translator.translate_with_details(["a zzz b"])
    assert details.source_tokens[0] == ["a", "[UNK]", "b"]
    assert isinstance(details.translations[0], str)


def test_long_inputs_are_truncated_with_a_warning_or_refused_when_strict(translator):
    too_long = " ".join(["a"] * 70)  # the model's max_length is 64
    with pytest.warns(UserWarning, match="truncated"):
        details = translator.translate_with_details([too_long, "a b"])
    assert len(details.source_ids[0]) == 64 and details.translations[1] == "b a"
    strict = Translator(
        translator.model, translator.source_tokenizer, translator.target_tokenizer, strict=True
    )
    with pytest.raises(ValueError, match="max_length=64"):
        strict([too_long])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert strict(["a b"]) == ["b a"]


def test_details_hold_ids_scores_tokens_and_attention(translator):
    details = translator.translate_with_details(["a b c", "d e"])
    assert isinstance(details, TranslationDetails)
    assert details.translations == ["c b a", "e d"]
    assert details.target_tokens[0] == ["c", "b", "a", "[END]"]
    np.testing.assert_array_equal(details.ids[1], [8, 7, 3])
    assert details.attention[0].shape == (4, 4, 3) and details.attention[1].shape == (4, 3, 2)
    np.testing.assert_allclose(details.attention[0].sum(axis=-1), 1.0, atol=1e-5)
    assert details.scores[0] <= 0.0


def test_greedy_translator_and_bad_arguments(translator):
    greedy = Translator(
        translator.model, translator.source_tokenizer, translator.target_tokenizer, beam_size=1
    )
    assert greedy(["a b c"]) == ["c b a"]
    with pytest.raises(ValueError, match="iterable of str"):
        translator([1, 2])
    with pytest.raises(ValueError, match="iterable of str"):
        translator(5)
    # A generator is read once, not consumed by the check and then found empty.
    assert translator(s for s in ["a b c", "a"]) == translator(["a b c", "a"])
    with pytest.raises(ValueError, match="beam_size"):
        Translator(
            translator.model, translator.source_tokenizer, translator.target_tokenizer, beam_size=0
        )
    # Refused when the Translator is built, not at its first decode.
    with pytest.raises(ValueError, match="alpha must be a number >= 0"):
        Translator(
            translator.model, translator.source_tokenizer, translator.target_tokenizer, alpha=-1
        )
    with pytest.raises(ValueError, match="at most half the target vocabulary"):
        Translator(
            translator.model,
            translator.source_tokenizer,
            translator.target_tokenizer,
            beam_size=1000,
        )
    with pytest.raises(ValueError, match="target tokenizer has"):
        Translator(translator.model, translator.source_tokenizer, StandInTokenizer(WORDS[:3]))


def test_with_the_wordpiece_tokenizer(translator):
    text = pytest.importorskip("keras_transformer.text")
    tokenizer = text.WordPieceTokenizer(RESERVED + WORDS)
    wordpiece = Translator(translator.model, tokenizer, tokenizer)
    assert wordpiece(["a b c", ""]) == ["c b a", ""]
    assert wordpiece.translate_with_details(["a ü"]).source_tokens[0] == ["a", "[UNK]"]


@pytest.mark.parametrize("beam_size, program", [(1, (4, 16)), (4, (8, 16))])
def test_a_stream_of_batches_compiles_one_program_per_width(translator, beam_size, program):
    # Catches: greedy translate_many not letting its short last batch reuse the full
    # batches' program (fill_up_to dropped), and beam search's queue not going as one
    # (5 sentences, filled to 8 rows, 4 slots): either compiled a second program, about
    # 2 s for beam search on CPU, for a test set whose size is not a multiple of batch_size.
    from keras_transformer.decoding import compiled

    translator = Translator(
        translator.model,
        translator.source_tokenizer,
        translator.target_tokenizer,
        beam_size=beam_size,
    )
    functions = compiled._FUNCTIONS.setdefault(translator.model, {})
    functions.clear()
    sentences = [" ".join(WORDS[i : i + 3]) for i in range(5)]
    expected = [translator([s])[0] for s in sentences]
    functions.clear()
    assert translator.translate_many(sentences, batch_size=4) == expected
    assert [shape for *_, shape, _ in functions] == [program]
