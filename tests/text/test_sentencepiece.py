import pytest
import tensorflow as tf

from keras_transformer.text import SentencePieceTokenizer


def _decode(strings):
    return [s.decode("utf-8") for s in strings.numpy().tolist()]


def test_reserved_ids_and_pieces(sentencepiece):
    assert sentencepiece.vocabulary[:4] == ["[PAD]", "[UNK]", "[START]", "[END]"]
    assert (sentencepiece.pad_id, sentencepiece.unk_id, sentencepiece.start_id, sentencepiece.end_id) == (0, 1, 2, 3)
    assert sentencepiece.vocab_size == len(sentencepiece.vocabulary) <= 300


def test_round_trip_held_out(sentencepiece, numbers, held_out_prose):
    lines = [s for s, _ in numbers.test] + [t for _, t in numbers.test] + held_out_prose
    ids = sentencepiece.tokenize(lines)
    assert ids.dtype == tf.int32
    assert not tf.reduce_any(ids.flat_values <= 3), "no reserved ids, no [UNK]"
    assert _decode(sentencepiece.detokenize(ids)) == lines


def test_whitespace_is_normalized(sentencepiece):
    ids = sentencepiece.tokenize("  one   hundred ")
    assert sentencepiece.detokenize(ids).numpy().decode() == "one hundred"


def test_detokenize_dense_with_padding_start_and_end(sentencepiece):
    seven, = sentencepiece.tokenize(["seven"]).to_list()
    dense = tf.constant([[2] + seven + [3] + [0] * (len(seven) - 1), seven + [3] + seven])
    assert _decode(sentencepiece.detokenize(dense)) == ["seven", "seven"]


def test_inside_tf_function(sentencepiece):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(strings):
        return sentencepiece.detokenize(sentencepiece.tokenize(strings).to_tensor())

    assert _decode(round_trip(tf.constant(["eight", "zwei"]))) == ["eight", "zwei"]


def test_lower_case():
    tokenizer = SentencePieceTokenizer.train(["Hello World", "hello world"] * 5, vocab_size=20, lower_case=True)
    assert tokenizer.detokenize(tokenizer.tokenize("HELLO World")).numpy().decode() == "hello world"


def test_bad_model_proto():
    with pytest.raises(ValueError, match="not a serialized SentencePiece model"):
        SentencePieceTokenizer(b"not a model")
