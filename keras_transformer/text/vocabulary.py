"""Reserved tokens and the vocabulary fingerprint.

The model's input format is fixed by the core: token ids are int32 and id 0 is
padding. Every tokenizer of this package therefore starts its vocabulary with the
same four reserved tokens, `[PAD]`, `[UNK]`, `[START]`, `[END]`, at the ids that
`keras_transformer.constants` gives them (0, 1, 2, 3).

A vocabulary's *fingerprint* is a short hash of its tokens in id order. Two
tokenizers with the same fingerprint map every string to the same ids, so a model
saved with one can be used with the other; a model trained on ids from another
vocabulary produces garbage without any error, which the fingerprint catches.

Example:

>>> vocabulary_fingerprint(RESERVED_TOKENS + ["hello", "world"])
'26f9d313dca88e12'
"""

import hashlib

from keras_transformer.errors import InputError

PAD, UNK, START, END = "[PAD]", "[UNK]", "[START]", "[END]"
RESERVED_TOKENS = [PAD, UNK, START, END]


def vocabulary_fingerprint(vocabulary):
    """Returns 16 hex digits of SHA-256 over the tokens joined by newlines.

    Tokens never contain newlines (both tokenizers split on whitespace first), so
    the join is unambiguous.
    """
    return hashlib.sha256("\n".join(vocabulary).encode("utf-8")).hexdigest()[:16]


def check_reserved_tokens(vocabulary):
    """Raises ValueError unless `vocabulary` starts with `RESERVED_TOKENS` and every
    token is one non-empty line (vocab.txt holds one token per line)."""
    for token in vocabulary:
        if not isinstance(token, str) or not token or "\n" in token or "\r" in token:
            raise InputError(
                f"every token must be a non-empty str without line breaks (vocab.txt holds "
                f"one token per line); got {token!r}"
            )
    head = list(vocabulary[: len(RESERVED_TOKENS)])
    if head != RESERVED_TOKENS:
        raise InputError(
            f"a vocabulary must start with the reserved tokens {RESERVED_TOKENS} "
            f"(ids 0..3, fixed by the model's input format); got {head}"
        )
