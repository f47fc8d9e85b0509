"""WordPieceTokenizer: tensorflow-text's FastWordpieceTokenizer, our own learner.

Tokenizing a string, all in TensorFlow ops:

1. optional lower-casing (`tf.strings.lower`, UTF-8 aware; accents are kept);
2. splitting into words on whitespace and punctuation, BERT's basic-tokenizer
   rules ("Hello, world!" -> "Hello" "," "world" "!"; CJK characters are words of
   their own), with `tensorflow_text.regex_split`;
3. WordPiece, greedy longest-match-first, with
   `tensorflow_text.FastWordpieceTokenizer` ("einundzwanzig" -> "ein" "##und"
   "##zwanzig"). A word that cannot be spelled, or longer than 100 bytes, becomes
   `[UNK]`.

Detokenizing joins pieces ("##" glues to the previous piece), puts one space
between words, then restores the usual English spacing around punctuation with
regular expressions (`tf.strings.regex_replace`, so it runs in-graph):

| rule                                          | "a , b" style  | becomes  |
|-----------------------------------------------|----------------|----------|
| no space in numbers                           | "1 , 000"      | "1,000"  |
| no space before `. , ! ? ; : % ) ] } '`       | "hello , world !" | "hello, world!" |
| no space after `( [ {`                        | "( a )"        | "(a)"    |
| no space around `-` and `/`                   | "twenty - one" | "twenty-one" |
| no space after `'` in English contractions    | "don ' t"      | "don't"  |

So text -> ids -> text gives back the original exactly when the original follows
these conventions, up to lower-casing and runs of whitespace collapsing to one
space. Double quotes `"` cannot be told opening from closing and keep a space on
both sides.

Example:

>>> tok = WordPieceTokenizer.train(["hello, world!", "hello there"], vocab_size=60)
>>> ids = tok.tokenize(["hello, world!"])
>>> tok.detokenize(ids).numpy()
array([b'hello, world!'], dtype=object)
"""

import collections

import tensorflow as tf
import tensorflow_text as tf_text

from keras_transformer.errors import InputError
from keras_transformer.text import tokenizer as tokenizer_lib
from keras_transformer.text import vocabulary as vocab_lib
from keras_transformer.text.wordpiece_learner import (
    MAX_BYTES_PER_WORD,
    SUFFIX_INDICATOR,
    learn_wordpiece_vocabulary,
)

# BERT's basic tokenizer (tensorflow_text/python/ops/bert_tokenizer.py, private
# there): ASCII punctuation, Unicode punctuation, CJK ideographs.
_PUNCTUATION = r"[!-/]|[:-@]|[\[-`]|[{-~]|[\p{P}]"
_CJK = (
    r"[\x{4E00}-\x{9FFF}]|[\x{3400}-\x{4DBF}]|[\x{20000}-\x{2A6DF}]"
    r"|[\x{2A700}-\x{2B73F}]|[\x{2B740}-\x{2B81F}]|[\x{2B820}-\x{2CEAF}]"
    r"|[\x{F900}-\x{FAFF}]|[\x{2F800}-\x{2FA1F}]"
)
_SPLIT_PATTERN = r"\s+|" + _PUNCTUATION + "|" + _CJK
_KEEP_PATTERN = _PUNCTUATION + "|" + _CJK

# (pattern, replacement) in order; see the table in the module docstring.
_SPACING_RULES = [
    (r"(\d) ([.,]) (\d)", r"\1\2\3"),
    (r" ([.,!?;:%)\]}'])", r"\1"),
    (r"([(\[{]) ", r"\1"),
    (r" ?([-/]) ?", r"\1"),
    (r"' (s|t|d|m|re|ve|ll)\b", r"'\1"),
]

_COUNT_BATCH = 4096  # lines split per eager call while counting words


class WordPieceTokenizer(tokenizer_lib.Tokenizer):
    """WordPiece tokenizer running on tensorflow-text.

    Args:
        vocabulary: list of str starting with the reserved tokens; continuation
            pieces start with "##". Usually from `WordPieceTokenizer.train`.
        lower_case: lower-case text before splitting. The vocabulary must have
            been learned the same way.
        name: tf.Module name.

    Shapes: see `Tokenizer.tokenize` and `Tokenizer.detokenize`.
    """

    kind = "wordpiece"

    def __init__(self, vocabulary, lower_case=False, name="wordpiece_tokenizer"):
        super().__init__(vocabulary, name=name)
        self._lower_case = bool(lower_case)
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=list(self._tokens),
            suffix_indicator=SUFFIX_INDICATOR,
            max_bytes_per_word=MAX_BYTES_PER_WORD,
            token_out_type=tf.int32,
            unknown_token=vocab_lib.UNK,
            no_pretokenization=True,  # we split ourselves, exactly as train() did
        )
        # A variable, so the id -> token table is a tracked resource of this
        # module and travels with any SavedModel holding the tokenizer.
        self._id_to_token = tf.Variable(
            list(self._tokens), trainable=False, dtype=tf.string, name="id_to_token"
        )

    @classmethod
    def train(
        cls, lines, vocab_size: int = 8000, lower_case: bool = False, min_frequency: int = 2
    ) -> "WordPieceTokenizer":
        """Learns a vocabulary from `lines` and returns a tokenizer using it.

        Args:
            lines: iterable of str. For a vocabulary shared by source and target,
                pass both sides (`src_lines + tgt_lines`).
            vocab_size: upper bound on the vocabulary, reserved tokens included
                (an alphabet too large for it keeps its most frequent characters).
            lower_case: lower-case before learning and tokenizing.
            min_frequency: pieces seen fewer times are not learned.
        """
        lines = list(lines)
        if not lines:
            raise InputError("WordPieceTokenizer.train needs at least one line of text")
        word_counts = collections.Counter()
        for start in range(0, len(lines), _COUNT_BATCH):
            words = _split_words(tf.constant(lines[start : start + _COUNT_BATCH]), lower_case)
            word_counts.update(words.flat_values.numpy().tolist())
        word_counts = {word.decode("utf-8"): n for word, n in word_counts.items()}
        vocabulary = learn_wordpiece_vocabulary(
            word_counts, vocab_size, min_frequency=min_frequency
        )
        return cls(vocabulary, lower_case=lower_case)

    @property
    def lower_case(self):
        return self._lower_case

    @property
    def options(self):
        return {"lower_case": self._lower_case}

    def _tokenize(self, strings):
        words = _split_words(strings, self._lower_case)
        return self._wordpiece.tokenize(words).merge_dims(-2, -1)

    def _detokenize(self, ids):
        pieces = tf.gather(self._id_to_token, ids)
        text = tf.strings.reduce_join(pieces, axis=-1, separator=" ")
        text = tf.strings.regex_replace(text, " " + SUFFIX_INDICATOR, "")
        # A sentence cut before its first word piece starts with "##".
        text = tf.strings.regex_replace(text, "^" + SUFFIX_INDICATOR, "")
        for pattern, replacement in _SPACING_RULES:
            text = tf.strings.regex_replace(text, pattern, replacement)
        return text


def _split_words(strings, lower_case):
    """(batch,) tf.string -> RaggedTensor (batch, (words)) tf.string."""
    if lower_case:
        strings = tf.strings.lower(strings, encoding="utf-8")
    return tf_text.regex_split(strings, _SPLIT_PATTERN, _KEEP_PATTERN)
