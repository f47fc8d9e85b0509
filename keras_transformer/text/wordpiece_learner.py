"""Learning a WordPiece vocabulary from word counts, in plain Python.

WordPiece (Schuster & Nakajima, 2012; Wu et al., 2016) spells every word with
pieces from a fixed vocabulary: a word-initial piece, then continuation pieces
written with the suffix indicator `##` ("einundzwanzig" -> "ein ##und ##zwanzig").
Tokenizing is greedy longest-match-first (done by tensorflow-text); this file only
*learns* which pieces to keep.

The vocabulary is grown by byte-pair-encoding merges, as Hugging Face's
`WordPieceTrainer` does:

1. Start from the alphabet: every character that begins a word, and `##c` for
   every character `c` seen inside a word. With the whole alphabet in the
   vocabulary, every word made of seen characters can be spelled. When the alphabet
   alone would overflow `vocab_size` (a script of thousands of characters), only its
   most frequent symbols are kept; words that need a dropped one are [UNK] to the
   tokenizer, so no merge is learned from them. Words longer than the tokenizer
   reads (`max_bytes_per_word` UTF-8 bytes; longer ones are [UNK]) are skipped too,
   so no piece is ever longer than that.
2. Repeat until the vocabulary is full: count adjacent symbol pairs over all words
   (weighted by word frequency), merge the most frequent pair `(a, ##b)` into the
   new piece `ab` everywhere, and add it.

Pair counts are updated incrementally (only words containing the merged pair are
touched) and the best pair is found through a heap with lazy deletion, so a merge
costs time in proportion to the words it changes, not to the corpus.

Why not `tensorflow_text.tools.wordpiece_vocab.bert_vocab_from_dataset`: it is
orders of magnitude slower (on 2 CPU cores: over 16 minutes, unfinished, for
40,000 numbers-corpus lines, which this learner handles in seconds; measured by
`benchmarks/pipeline.py --vocab-learners N`), and the tokenizer that runs is
tensorflow-text's either way.

Example:

>>> vocabulary = learn_wordpiece_vocabulary({"low": 5, "lower": 2, "newest": 6}, 20)
>>> vocabulary[4:12]  # the alphabet
['##e', '##o', '##r', '##s', '##t', '##w', 'l', 'n']
>>> vocabulary[12:]  # merges, most frequent pair first
['##we', 'lo', '##ewe', '##ewes', '##ewest', 'newest', 'low', '##wer']
"""

import collections
import heapq

from keras_transformer.errors import InputError
from keras_transformer.text.vocabulary import RESERVED_TOKENS

SUFFIX_INDICATOR = "##"
# Longer words are [UNK] to the tokenizer (tensorflow-text's max_bytes_per_word).
MAX_BYTES_PER_WORD = 100


def learn_wordpiece_vocabulary(
    word_counts,
    vocab_size,
    reserved_tokens=RESERVED_TOKENS,
    min_frequency=2,
    max_bytes_per_word=MAX_BYTES_PER_WORD,
):
    """Returns a WordPiece vocabulary: reserved tokens, alphabet, merged pieces.

    Args:
        word_counts: mapping word (str, already split on whitespace and
            punctuation, already lower-cased if wanted) -> count.
        vocab_size: the largest vocabulary to return. An alphabet too large for it
            keeps its most frequent symbols.
        reserved_tokens: tokens placed first, at ids 0, 1, ...
        min_frequency: merges of pairs seen fewer times than this stop learning
            early; a smaller vocabulary is returned.
        max_bytes_per_word: words longer than this (UTF-8 bytes) are skipped.

    Returns:
        list of str: reserved tokens, then the alphabet sorted, then merged
        pieces in the order they were learned.
    """
    if vocab_size <= len(reserved_tokens):
        raise InputError(
            f"vocab_size must exceed the {len(reserved_tokens)} reserved tokens; got {vocab_size}"
        )
    # Each distinct word as a mutable list of symbols, with its corpus count.
    words = []
    for word, count in word_counts.items():
        if word and count > 0 and len(word.encode("utf-8")) <= max_bytes_per_word:
            words.append(([word[0]] + [SUFFIX_INDICATOR + c for c in word[1:]], count))

    symbol_counts = collections.Counter()
    for symbols, count in words:
        for symbol in symbols:
            symbol_counts[symbol] += count
    room = vocab_size - len(reserved_tokens)
    # Most frequent first, ties on the text, so the result does not depend on dict order.
    alphabet = sorted(sorted(symbol_counts), key=lambda s: -symbol_counts[s])[:room]
    if len(alphabet) < len(symbol_counts):
        kept = set(alphabet)
        words = [(symbols, count) for symbols, count in words if kept.issuperset(symbols)]
    vocabulary = list(reserved_tokens) + sorted(alphabet)
    known = set(vocabulary)

    pairs = _PairStatistics(words)
    # Ties break on the pair's text, so the result does not depend on dict order.
    heap = [(-count, pair) for pair, count in pairs.counts.items()]
    heapq.heapify(heap)

    while len(vocabulary) < vocab_size and heap:
        negative_count, pair = heapq.heappop(heap)
        if pairs.counts.get(pair, 0) != -negative_count:
            continue  # stale entry: the count changed and a fresh one was pushed
        if -negative_count < min_frequency:
            break
        first, second = pair
        piece = first + second[len(SUFFIX_INDICATOR) :]
        if piece not in known:  # another merge order may have built it already
            known.add(piece)
            vocabulary.append(piece)
        for changed in pairs.merge(words, pair, piece):
            heapq.heappush(heap, (-pairs.counts[changed], changed))
    return vocabulary


class _PairStatistics:
    """Counts of adjacent symbol pairs over all words, and which words hold them.

    `words[i]` is (symbols, count). `where[pair]` may list words that no longer
    hold `pair` (they are skipped cheaply); it never misses one that does.
    """

    def __init__(self, words):
        self.counts = collections.Counter()
        self.where = collections.defaultdict(set)
        for index, (symbols, count) in enumerate(words):
            for pair in zip(symbols, symbols[1:]):
                self.counts[pair] += count
                self.where[pair].add(index)

    def merge(self, words, pair, piece):
        """Replaces `pair` by `piece` in every word; returns the pairs whose
        count changed and is still positive."""
        changed = set()
        for index in self.where.pop(pair):
            symbols, count = words[index]
            words[index] = (self._merge_word(symbols, count, index, pair, piece, changed), count)
        del self.counts[pair]
        changed.discard(pair)
        return [other for other in changed if self.counts[other] > 0]

    def _merge_word(self, symbols, count, index, pair, piece, changed):
        # Only pairs next to a merge change (as in subword-nmt), so only those
        # counts move. list.index jumps to the next `first` at C speed: most
        # symbols of a long word are copied in slices, never looked at in Python.
        first, second = pair
        merged = []
        i = 0
        while True:
            try:
                j = symbols.index(first, i)
            except ValueError:
                merged.extend(symbols[i:])
                return merged
            if j + 1 == len(symbols) or symbols[j + 1] != second:
                merged.extend(symbols[i : j + 1])
                i = j + 1
                continue
            merged.extend(symbols[i:j])
            if merged:
                # merged[-1] may be `piece` from this same word ("##a ##b ##a
                # ##b"); its pair with `first` was counted a step earlier.
                left = merged[-1]
                self._shift((left, first), (left, piece), count, index, changed)
            if j + 2 < len(symbols):
                right = symbols[j + 2]
                self._shift((second, right), (piece, right), count, index, changed)
            merged.append(piece)
            i = j + 2

    def _shift(self, old, new, count, index, changed):
        """Moves `count` occurrences from pair `old` to pair `new` in word `index`."""
        self.counts[old] -= count
        self.counts[new] += count
        self.where[new].add(index)
        changed.update((old, new))
