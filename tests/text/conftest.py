import pytest

from keras_transformer.data import numbers_corpus
from keras_transformer.text import SentencePieceTokenizer, WordPieceTokenizer

# Sentences that follow the spacing conventions WordPieceTokenizer restores.
PROSE = [
    "Hello, world!",
    "The cat sat on the mat.",
    "Where are you going?",
    "I don't know; maybe home.",
    "She said (quietly) that it's fine.",
    "Twenty-one students read 1,000 pages: a record!",
    "Is it 3.14 or 22/7?",
    "We're here, they're there, and you'll see.",
    "Prices rose 5% in [May] and {June}.",
    "Zebras, quails and vultures jump over xylophones.",
    "Kiwis, yaks and geese queue by the fjord.",
]
HELD_OUT_PROSE = [
    "Hello there, students!",
    "Where don't you sit?",
    "Where is the mat (and the record)?",
    "The geese read 22 pages; it's 5% of 1,000.",
]


@pytest.fixture(scope="session")
def held_out_prose():
    return list(HELD_OUT_PROSE)


@pytest.fixture(scope="session")
def numbers():
    return numbers_corpus("de", train_size=1500, dev_size=0, test_size=100, seed=1)


@pytest.fixture(scope="session")
def wordpiece(numbers):
    lines = [s for s, _ in numbers.train] + [t for _, t in numbers.train] + PROSE * 3
    return WordPieceTokenizer.train(lines, vocab_size=400)


@pytest.fixture(scope="session")
def sentencepiece(numbers):
    lines = [s for s, _ in numbers.train] + [t for _, t in numbers.train] + PROSE * 3
    return SentencePieceTokenizer.train(lines, vocab_size=300)
