import collections
import random

import pytest

from keras_transformer.text import RESERVED_TOKENS, learn_wordpiece_vocabulary


def _reference_learner(word_counts, vocab_size, min_frequency=2):
    """Recounts every pair after every merge: slow, obviously right."""
    words = [([w[0]] + ["##" + c for c in w[1:]], n) for w, n in word_counts.items()]
    vocabulary = list(RESERVED_TOKENS) + sorted({s for symbols, _ in words for s in symbols})
    while len(vocabulary) < vocab_size:
        counts = collections.Counter()
        for symbols, n in words:
            for pair in zip(symbols, symbols[1:]):
                counts[pair] += n
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        if counts[pair] < min_frequency:
            break
        piece = pair[0] + pair[1][2:]
        if piece not in vocabulary:
            vocabulary.append(piece)
        merged_words = []
        for symbols, n in words:
            merged, i = [], 0
            while i < len(symbols):
                if tuple(symbols[i : i + 2]) == pair:
                    merged.append(piece)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            merged_words.append((merged, n))
        words = merged_words
    return vocabulary


def _random_word_counts(seed):
    rng = random.Random(seed)
    # Few letters, so pairs repeat, overlap ("abab", "aaa") and tie often.
    return {
        "".join(rng.choice("abcd") for _ in range(rng.randint(1, 9))): rng.randint(1, 5)
        for _ in range(150)
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_incremental_learner_matches_reference(seed):
    word_counts = _random_word_counts(seed)
    assert learn_wordpiece_vocabulary(word_counts, 60) == _reference_learner(word_counts, 60)


def test_vocabulary_layout():
    vocabulary = learn_wordpiece_vocabulary({"low": 5, "lower": 2, "newest": 6}, 20)
    assert vocabulary[:4] == RESERVED_TOKENS
    alphabet = ["##e", "##o", "##r", "##s", "##t", "##w", "l", "n"]
    assert vocabulary[4:12] == alphabet
    assert len(vocabulary) == 20
    assert len(set(vocabulary)) == len(vocabulary)
    assert all(piece.startswith(("l", "n", "##")) for piece in vocabulary[12:])


def test_min_frequency_stops_learning():
    vocabulary = learn_wordpiece_vocabulary({"ab": 1, "cd": 1}, 100, min_frequency=2)
    assert vocabulary == RESERVED_TOKENS + ["##b", "##d", "a", "c"]


def test_vocab_size_must_exceed_reserved_tokens():
    with pytest.raises(ValueError, match="must exceed the 4 reserved tokens; got 4"):
        learn_wordpiece_vocabulary({"a": 1}, 4)


def test_an_alphabet_too_large_for_the_vocabulary_keeps_its_most_frequent_symbols():
    # Catches: the alphabet kept whole (a line of varied Hangul asked for 100 tokens got
    # 11,204), or the rarest symbols kept instead of the most frequent.
    rng = random.Random(0)
    counts = {chr(0xAC00 + i): 1 for i in range(2000)}
    counts.update({"가나": 50, "다": 40})
    counts.update({chr(0xAC00 + rng.randrange(11172)) * 2: 1 for _ in range(100)})
    vocabulary = learn_wordpiece_vocabulary(counts, 20)
    assert len(vocabulary) == 20
    assert {"가", "##나", "다"} <= set(vocabulary)


def test_words_longer_than_the_tokenizer_reads_teach_nothing():
    # Catches: a 1 MB word learned into pieces longer than tensorflow-text accepts
    # (256 bytes: a RuntimeError when the tokenizer is built) or than it reads (100).
    vocabulary = learn_wordpiece_vocabulary({"a" * 10_000: 50, "ab": 3}, 30)
    assert max(len(piece.encode("utf-8")) for piece in vocabulary) <= 100
    assert "ab" in vocabulary and "##a" not in vocabulary
