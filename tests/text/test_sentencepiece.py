import pytest
import tensorflow as tf

import keras_transformer as kt
from keras_transformer.text import SentencePieceTokenizer


def _decode(strings):
    return [s.decode("utf-8") for s in strings.numpy().tolist()]


def test_reserved_ids_and_pieces(sentencepiece):
    assert sentencepiece.vocabulary[:4] == ["[PAD]", "[UNK]", "[START]", "[END]"]
    assert (
        sentencepiece.pad_id,
        sentencepiece.unk_id,
        sentencepiece.start_id,
        sentencepiece.end_id,
    ) == (0, 1, 2, 3)
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
    (seven,) = sentencepiece.tokenize(["seven"]).to_list()
    dense = tf.constant([[2] + seven + [3] + [0] * (len(seven) - 1), seven + [3] + seven])
    assert _decode(sentencepiece.detokenize(dense)) == ["seven", "seven"]


def test_inside_tf_function(sentencepiece):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(strings):
        return sentencepiece.detokenize(sentencepiece.tokenize(strings).to_tensor())

    assert _decode(round_trip(tf.constant(["eight", "zwei"]))) == ["eight", "zwei"]


def test_lower_case():
    tokenizer = SentencePieceTokenizer.train(
        ["Hello World", "hello world"] * 5, vocab_size=20, lower_case=True
    )
    assert tokenizer.detokenize(tokenizer.tokenize("HELLO World")).numpy().decode() == "hello world"


def test_bad_model_proto():
    with pytest.raises(ValueError, match="not a serialized SentencePiece model"):
        SentencePieceTokenizer(b"not a model")


def test_a_tokenizer_outlives_a_new_random_seed(sentencepiece):
    # Catches: the SentencePiece model held as a resource private to an op's kernel, which
    # TensorFlow deletes when it clears its kernel cache, as tf.random.set_seed does (so
    # keras.utils.set_random_seed, called by every training run): a tokenizer (and the
    # Translator holding it) then fails with "Resource ... does not exist".
    import keras

    tokenizer = SentencePieceTokenizer(sentencepiece.model_proto)
    traced = tf.function(lambda strings: tokenizer.tokenize(strings).to_tensor())
    before = tokenizer.tokenize(["twenty-one"]).to_list()
    traced(tf.constant(["twenty-one"]))
    keras.utils.set_random_seed(0)
    assert tokenizer.tokenize(["twenty-one"]).to_list() == before
    assert traced(tf.constant(["twenty-one"])).numpy().tolist() == before
    assert _decode(tokenizer.detokenize(tf.constant(before))) == ["twenty-one"]


@pytest.mark.parametrize("kind", ["sentencepiece", "wordpiece"])
@pytest.mark.parametrize("bad", [-2, "V", "V+5"])
def test_detokenize_refuses_ids_outside_the_vocabulary(request, kind, bad):
    # Catches: an id outside [0, vocab_size) reaching SentencePiece's or WordPiece's
    # lookup, which fails inside TensorFlow (OutOfRangeError, InvalidArgumentError).
    tokenizer = request.getfixturevalue(kind)
    bad = {"V": tokenizer.vocab_size, "V+5": tokenizer.vocab_size + 5}.get(bad, bad)
    message = (
        rf"ids in \[0, {tokenizer.vocab_size}\) \(the vocabulary\); "
        rf"got {bad} at position \(1, 2\)"
    )
    with pytest.raises(kt.errors.InputError, match=message):
        tokenizer.detokenize(tf.constant([[5, 6, 7], [5, 6, bad]]))
    with pytest.raises(kt.errors.InputError, match=f"got {bad}"):
        tokenizer.detokenize(tf.ragged.constant([[5], [6, bad]]))
