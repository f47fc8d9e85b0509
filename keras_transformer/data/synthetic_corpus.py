"""write_synthetic_corpus: a parallel corpus of any size from the numbers corpus, written
to a TSV file a line at a time, for tests and benchmarks of corpora larger than memory
without downloading anything.

Each pair is a "sentence" of one to four numbers, joined by semicolons on both sides
(English number words hold commas of their own):

    twenty-one; three hundred and five	einundzwanzig; dreihundertfünf

Numbers are drawn uniformly from 0..999,999 by a seeded `random.Random`, so a seed and a
size give the same file every time; pairs repeat no more than chance makes them.

Example:

>>> write_synthetic_corpus("big.tsv", 1000, seed=1)
1000
>>> with open("big.tsv", encoding="utf-8") as f:
...     print(sum(1 for line in f if line.count("\\t") == 1))
1000
"""

import random

import num2words

from keras_transformer.data.numbers_corpus import SOURCE_LANG
from keras_transformer.errors import InputError
from keras_transformer.files import atomic_path

MAX_NUMBER = 999_999
MOST_NUMBERS_PER_PAIR = 4


def write_synthetic_corpus(path, num_pairs, target_lang="de", seed=0):
    """Writes `num_pairs` (English, `target_lang`) pairs to the TSV file `path` (whole or
    not at all); returns `num_pairs`."""
    if not isinstance(num_pairs, int) or isinstance(num_pairs, bool) or num_pairs < 1:
        raise InputError(f"num_pairs must be an int of at least 1; got {num_pairs!r}")
    if target_lang not in num2words.CONVERTER_CLASSES:
        raise InputError(f"num2words does not support target_lang {target_lang!r}")
    draw = random.Random(seed)
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            for _ in range(num_pairs):
                numbers = [
                    draw.randint(0, MAX_NUMBER)
                    for _ in range(draw.randint(1, MOST_NUMBERS_PER_PAIR))
                ]
                handle.write(
                    "; ".join(num2words.num2words(n, lang=SOURCE_LANG) for n in numbers)
                    + "\t"
                    + "; ".join(num2words.num2words(n, lang=target_lang) for n in numbers)
                    + "\n"
                )
    return num_pairs
