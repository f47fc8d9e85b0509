"""learn_tokenizers: the source and target tokenizers of a parallel corpus, learned from
its pairs (one shared vocabulary, or one per language).

Example:

>>> pairs = [("twenty-one", "einundzwanzig"), ("three", "drei")] * 50
>>> source, target = learn_tokenizers(pairs, "wordpiece", vocab_size=100)
>>> source is target
True
"""

from keras_transformer.errors import InputError
from keras_transformer.text.sentencepiece_tokenizer import SentencePieceTokenizer
from keras_transformer.text.wordpiece import WordPieceTokenizer

TOKENIZERS = {"wordpiece": WordPieceTokenizer, "sentencepiece": SentencePieceTokenizer}


def learn_tokenizers(pairs, kind, vocab_size, shared_vocabulary=True):
    """The (source, target) tokenizers learned from `pairs`, a list of (str, str).

    Args:
        kind: "wordpiece" or "sentencepiece".
        vocab_size: tokens in each vocabulary.
        shared_vocabulary: learn one tokenizer from both sides and return it twice.
    """
    if kind not in TOKENIZERS:
        raise InputError(f"tokenizer must be one of {sorted(TOKENIZERS)}; got {kind!r}")
    learner = TOKENIZERS[kind]
    sources = [source for source, _ in pairs]
    targets = [target for _, target in pairs]
    if shared_vocabulary:
        shared = learner.train(sources + targets, vocab_size=vocab_size)
        return shared, shared
    return (
        learner.train(sources, vocab_size=vocab_size),
        learner.train(targets, vocab_size=vocab_size),
    )
