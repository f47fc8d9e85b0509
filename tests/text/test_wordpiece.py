import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.text import RESERVED_TOKENS, WordPieceTokenizer


def _decode(strings):
    return [s.decode("utf-8") for s in strings.numpy().tolist()]


def test_reserved_ids(wordpiece):
    assert wordpiece.vocabulary[:4] == ["[PAD]", "[UNK]", "[START]", "[END]"]
    assert (wordpiece.pad_id, wordpiece.unk_id, wordpiece.start_id, wordpiece.end_id) == (
        0,
        1,
        2,
        3,
    )
    assert wordpiece.vocab_size == len(wordpiece.vocabulary) <= 400
    assert len(wordpiece.fingerprint) == 16


def test_round_trip_held_out_numbers(wordpiece, numbers):
    for side in (0, 1):
        lines = [pair[side] for pair in numbers.test]
        ids = wordpiece.tokenize(lines)
        assert ids.dtype == tf.int32
        assert not tf.reduce_any(ids.flat_values <= 3), "no reserved ids, no [UNK]"
        assert _decode(wordpiece.detokenize(ids)) == lines


def test_round_trip_held_out_prose(wordpiece, held_out_prose):
    assert _decode(wordpiece.detokenize(wordpiece.tokenize(held_out_prose))) == held_out_prose


def test_punctuation_is_split_and_spacing_restored():
    words = [
        "hello",
        ",",
        "world",
        "!",
        "twenty",
        "-",
        "one",
        "don",
        "'",
        "t",
        "(",
        "a",
        ")",
        "1",
        "000",
    ]
    tokenizer = WordPieceTokenizer(RESERVED_TOKENS + words)
    ids = tokenizer.tokenize(["hello , world !", "hello,world!"])
    assert ids.to_list() == [[4, 5, 6, 7]] * 2
    ids = tokenizer.tokenize(["twenty - one", "don ' t", "( a )", "1 , 000"])
    assert _decode(tokenizer.detokenize(ids)) == ["twenty-one", "don't", "(a)", "1,000"]


def test_lower_case():
    tokenizer = WordPieceTokenizer.train(
        ["Fünf ÄPFEL", "fünf äpfel"], vocab_size=50, lower_case=True
    )
    assert tokenizer.lower_case
    assert (
        tokenizer.tokenize("FÜNF Äpfel").numpy().tolist()
        == tokenizer.tokenize("fünf äpfel").numpy().tolist()
    )
    assert _decode(tokenizer.detokenize(tokenizer.tokenize(["FÜNF Äpfel"]))) == ["fünf äpfel"]


def test_unknown_characters_become_unk(wordpiece):
    ids = wordpiece.tokenize("one ☃ two").numpy().tolist()
    assert ids[1] == wordpiece.unk_id
    assert wordpiece.detokenize(ids).numpy().decode() == "one [UNK] two"


def test_detokenize_dense_with_padding_start_and_end(wordpiece):
    ids = wordpiece.tokenize(["one hundred", "two"])
    one_hundred, two = ids.to_list()
    rows = [
        [2] + one_hundred + [3],
        two + [3] + one_hundred,  # everything after [END] is ignored
        [2, 3] + two,  # empty sentence
    ]
    width = max(map(len, rows)) + 2
    dense = tf.constant([row + [0] * (width - len(row)) for row in rows], tf.int64)
    assert _decode(wordpiece.detokenize(dense)) == ["one hundred", "two", ""]
    ragged = tf.ragged.constant([[2] + two + [3], one_hundred])
    assert _decode(wordpiece.detokenize(ragged)) == ["two", "one hundred"]
    assert wordpiece.detokenize(np.array(two + [3, 0])).numpy().decode() == "two"


def test_inside_tf_function_and_dataset_map(wordpiece):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(strings):
        ids = wordpiece.tokenize(strings)
        return wordpiece.detokenize(ids.to_tensor())

    assert _decode(round_trip(tf.constant(["seven", "one thousand"]))) == ["seven", "one thousand"]
    dataset = (
        tf.data.Dataset.from_tensor_slices(["seven", "eight"]).batch(2).map(wordpiece.tokenize)
    )
    assert next(iter(dataset)).to_list() == wordpiece.tokenize(["seven", "eight"]).to_list()


def test_bad_inputs(wordpiece):
    with pytest.raises(ValueError, match="tokenize expects strings .*got int32"):
        wordpiece.tokenize(tf.constant([1, 2]))
    with pytest.raises(ValueError, match=r"shape \(\) or \(batch,\); got shape \(1, 1\)"):
        wordpiece.tokenize([["one"]])
    with pytest.raises(ValueError, match="integer token ids .*got float32"):
        wordpiece.detokenize(tf.constant([[4.0, 5.0]]))
    with pytest.raises(ValueError, match=r"got shape \(1, 1, 2\)"):
        wordpiece.detokenize(tf.zeros([1, 1, 2], tf.int32))
    with pytest.raises(ValueError, match=r"must start with the reserved tokens"):
        WordPieceTokenizer(["a", "b"])


def test_a_megabyte_word_trains_and_tokenizes_as_unknown():
    # Catches: the learner keeping a piece longer than tensorflow-text's 256-byte limit
    # (the tokenizer then fails to build with a RuntimeError).
    tokenizer = WordPieceTokenizer.train(["a" * 1_000_000, "hello world", "hello"] * 2, 60)
    ids = tokenizer.tokenize(tf.constant(["hello " + "a" * 1_000_000])).to_list()[0]
    unk = RESERVED_TOKENS.index("[UNK]")
    assert len(ids) >= 2 and ids[-1] == unk and unk not in ids[:-1]
