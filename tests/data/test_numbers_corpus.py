import pytest
from num2words import num2words

from keras_transformer.data import Corpus, numbers_corpus


@pytest.fixture(scope="module")
def corpus():
    return numbers_corpus("de", train_size=600, dev_size=100, test_size=100, seed=3)


def test_sizes_and_pairs(corpus):
    assert isinstance(corpus, Corpus)
    assert (len(corpus.train), len(corpus.dev), len(corpus.test)) == (600, 100, 100)
    for source, target in corpus.train[:20]:
        assert isinstance(source, str) and isinstance(target, str)


def test_splits_hold_distinct_disjoint_numbers(corpus):
    splits = [
        set(source for source, _ in split) for split in (corpus.train, corpus.dev, corpus.test)
    ]
    assert [len(s) for s in splits] == [600, 100, 100], "no number twice in a split"
    assert not splits[0] & splits[1] and not splits[0] & splits[2] and not splits[1] & splits[2]


def test_deterministic_given_seed(corpus):
    again = numbers_corpus("de", train_size=600, dev_size=100, test_size=100, seed=3)
    assert again == corpus
    other = numbers_corpus("de", train_size=600, dev_size=100, test_size=100, seed=4)
    assert other.train != corpus.train


def test_small_numbers_are_covered():
    # Stratified draw: 800 numbers from 0..999,999 include every 1-digit number.
    corpus = numbers_corpus("de", train_size=700, dev_size=50, test_size=50, seed=0)
    every = {source for split in (corpus.train, corpus.dev, corpus.test) for source, _ in split}
    assert {num2words(n, lang="en") for n in range(10)} <= every


@pytest.mark.parametrize("lang", ["de", "fr"])
def test_whole_range(lang):
    corpus = numbers_corpus(lang, train_size=90, dev_size=5, test_size=5, max_number=99)
    assert sorted(corpus.train + corpus.dev + corpus.test) == sorted(
        (num2words(n, lang="en"), num2words(n, lang=lang)) for n in range(100)
    )
    if lang == "de":
        assert ("twenty-one", "einundzwanzig") in corpus.train + corpus.dev + corpus.test


def test_sizes_exceeding_the_range():
    with pytest.raises(
        ValueError, match=r"= 11 distinct numbers are needed, but 0..9 holds only 10"
    ):
        numbers_corpus(train_size=9, dev_size=1, test_size=1, max_number=9)


def test_unsupported_language():
    with pytest.raises(
        ValueError, match="num2words does not support target_lang 'xx'; supported: .*de"
    ):
        numbers_corpus("xx", train_size=1)


def test_bad_sizes():
    with pytest.raises(ValueError, match="dev_size must be an int >= 0; got -1"):
        numbers_corpus(train_size=1, dev_size=-1)
    with pytest.raises(ValueError, match="train_size must be at least 1"):
        numbers_corpus(train_size=0)


def test_synthetic_corpus_is_seeded_and_aligned(tmp_path):
    """Catches: an unseeded draw (`random.Random()`), and pairs whose sides hold other
    numbers (the target side drawn separately)."""
    from keras_transformer.data import iter_parallel, write_synthetic_corpus

    paths = [tmp_path / name for name in ("a.tsv", "b.tsv", "c.tsv")]
    for path, seed in zip(paths, (3, 3, 4)):
        assert write_synthetic_corpus(path, 200, seed=seed) == 200
    assert paths[0].read_bytes() == paths[1].read_bytes() != paths[2].read_bytes()
    pairs = [pair for _, pair, _ in iter_parallel(paths[0])]
    assert len(pairs) == 200
    for source, target in pairs:
        assert source.count(";") == target.count(";")
    assert {source.count(";") for source, _ in pairs} == {0, 1, 2, 3}
