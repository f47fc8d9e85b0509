"""numbers_corpus: the embedded default corpus, English number words -> another
language's, written by num2words. Nothing to download.

    ("twenty-one", "einundzwanzig")
    ("one thousand, two hundred and thirty-four",
     "eintausendzweihundertvierunddreißig")

English to German is a real, if small, translation task: German writes the whole
number as one word and says the units before the tens ("vierunddreißig", four
and thirty), so the model has to reorder, not copy word by word.

Which numbers: every split holds distinct numbers, and no number is in two splits,
so dev and test measure generalization to unseen numbers. Numbers are drawn
stratified by digit count (as equal a share for 1-, 2-, ..., 6-digit numbers as
their count allows) rather than uniformly: uniform sampling from 0..999,999 would
give 6-digit numbers 90% of the time and leave "seven" or "twenty-one" almost
never seen. With the defaults every number below 1000 is used, spread over the
three splits at random.

The draw depends only on the sizes, `max_number` and `seed` (Python's
`random.Random`), so a seed gives the same corpus on every run.

Example:

>>> corpus = numbers_corpus("de", train_size=100, dev_size=10, test_size=10)
>>> len(corpus.train), len(corpus.dev), len(corpus.test)
(100, 10, 10)
"""

import random

import num2words

from keras_transformer.data.corpus import Corpus
from keras_transformer.errors import InputError

SOURCE_LANG = "en"


def numbers_corpus(
    target_lang="de",
    train_size=50_000,
    dev_size=1_000,
    test_size=1_000,
    max_number=999_999,
    seed=0,
):
    """Returns a `Corpus` of (English words, `target_lang` words) pairs.

    Args:
        target_lang: a num2words language code ("de", "fr", "es", ...).
        train_size, dev_size, test_size: pairs per split.
        max_number: numbers are drawn from 0..max_number.
        seed: seed of the draw.

    Raises:
        ValueError: an unsupported language, a negative size, or more numbers
            asked for than 0..max_number holds.
    """
    if target_lang not in num2words.CONVERTER_CLASSES:
        raise InputError(
            f"num2words does not support target_lang {target_lang!r}; supported: "
            f"{', '.join(sorted(num2words.CONVERTER_CLASSES))}"
        )
    sizes = {"train_size": train_size, "dev_size": dev_size, "test_size": test_size}
    for name, size in sizes.items():
        if not isinstance(size, int) or size < 0:
            raise InputError(f"{name} must be an int >= 0; got {size!r}")
    if train_size == 0:
        raise InputError("train_size must be at least 1")
    total = train_size + dev_size + test_size
    if not isinstance(max_number, int) or max_number < 0:
        raise InputError(f"max_number must be an int >= 0; got {max_number!r}")
    if total > max_number + 1:
        raise InputError(
            f"train_size + dev_size + test_size = {total} distinct numbers are "
            f"needed, but 0..{max_number} holds only {max_number + 1}; lower the "
            f"sizes or raise max_number"
        )

    numbers = _draw_numbers(total, max_number, random.Random(seed))
    pairs = [
        (
            num2words.num2words(n, lang=SOURCE_LANG),
            num2words.num2words(n, lang=target_lang),
        )
        for n in numbers
    ]
    return Corpus(
        train=pairs[:train_size],
        dev=pairs[train_size : train_size + dev_size],
        test=pairs[train_size + dev_size :],
    )


def _draw_numbers(count, max_number, rng):
    """`count` distinct numbers from 0..max_number, stratified by digit count,
    in random order."""
    classes = []  # (first, last) of each digit count, capped at max_number
    first = 0
    while first <= max_number:
        last = min(max(9, first * 10 - 1), max_number)
        classes.append((first, last))
        first = last + 1

    # Water-filling: smallest classes first, each takes an equal share of what
    # is left (or all it has); the larger classes absorb the rest.
    quotas = {}
    remaining = count
    by_size = sorted(classes, key=lambda c: c[1] - c[0])
    for i, (first, last) in enumerate(by_size):
        share = -(-remaining // (len(by_size) - i))  # ceiling division
        quotas[first, last] = min(last - first + 1, share)
        remaining -= quotas[first, last]

    numbers = []
    for first, last in classes:
        numbers.extend(rng.sample(range(first, last + 1), quotas[first, last]))
    rng.shuffle(numbers)
    return numbers
