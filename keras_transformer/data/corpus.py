"""Corpus: a parallel corpus split into train, dev and test sentence pairs.

A sentence pair is a tuple `(source, target)` of str. Readers return lists of
pairs; `Corpus` groups the three splits a training run needs.

Example:

>>> corpus = Corpus(train=[("one", "eins")], dev=[("two", "zwei")], test=[])
>>> corpus.train[0]
('one', 'eins')
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Train, dev and test lists of (source, target) str pairs."""

    train: list
    dev: list
    test: list


@dataclasses.dataclass(frozen=True)
class PreparedCorpus:
    """Directories written by `prepare`: the training pairs and, optionally, the dev
    pairs, as token ids (see `shard_dataset`)."""

    train: str
    dev: str = None
