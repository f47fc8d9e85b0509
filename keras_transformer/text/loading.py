"""load_tokenizer: rebuilds a tokenizer written by `Tokenizer.save`.

The Python object is rebuilt from vocab.txt (WordPiece) or sentencepiece.model
(SentencePiece) and tokenizer.json; the SavedModel beside them is for runtimes
without this package and is not read here. The vocabulary read back must hash to
the fingerprint recorded at save time, which catches a vocab.txt swapped in from
another run.

Example:

>>> tok = WordPieceTokenizer.train(["hello world", "hello there"], vocab_size=40)
>>> tok.save("tok")
'tok'
>>> loaded = load_tokenizer("tok", expected_fingerprint=tok.fingerprint)
>>> loaded.vocabulary == tok.vocabulary
True
"""

import json
import os

from keras_transformer.errors import InputError
from keras_transformer.text import tokenizer as tokenizer_lib
from keras_transformer.text import vocabulary as vocab_lib
from keras_transformer.text.sentencepiece_tokenizer import SentencePieceTokenizer
from keras_transformer.text.wordpiece import WordPieceTokenizer

_KINDS = {cls.kind: cls for cls in (WordPieceTokenizer, SentencePieceTokenizer)}


def load_tokenizer(directory, expected_fingerprint=None):
    """Returns the WordPieceTokenizer or SentencePieceTokenizer saved in `directory`.

    Args:
        directory: a directory written by `tokenizer.save(directory)`.
        expected_fingerprint: if given, the fingerprint the vocabulary must have,
            e.g. the one recorded with a trained model.

    Raises:
        FileNotFoundError: `directory` or a file it should hold is missing.
        ValueError: corrupt metadata, a vocabulary that does not match the
            recorded fingerprint, or one that differs from `expected_fingerprint`.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"no tokenizer directory at {directory!r}; expected a directory "
            f"written by tokenizer.save(directory)"
        )
    metadata_path = os.path.join(directory, tokenizer_lib.METADATA_FILE)
    metadata = _read_metadata(metadata_path)
    cls = _KINDS[metadata["kind"]]
    files = metadata["files"]

    if cls is WordPieceTokenizer:
        # One token per "\n"-ended line; other line separators (U+2028...) are token text.
        with open(_existing(directory, files["vocabulary"]), encoding="utf-8", newline="\n") as f:
            vocabulary = f.read().split("\n")[:-1]
    else:
        with open(_existing(directory, files["model"]), "rb") as f:
            tokenizer = SentencePieceTokenizer(f.read(), **metadata["options"])
        vocabulary = tokenizer.vocabulary
    vocabulary_fingerprint = vocab_lib.vocabulary_fingerprint(vocabulary)
    if vocabulary_fingerprint != metadata["fingerprint"]:
        raise InputError(
            f"the vocabulary in {directory!r} has fingerprint "
            f"{vocabulary_fingerprint} but {metadata_path} records "
            f"{metadata['fingerprint']}: the vocabulary file belongs to another "
            f"vocabulary. Save the tokenizer again, or restore its own files."
        )
    if cls is WordPieceTokenizer:
        tokenizer = WordPieceTokenizer(vocabulary, **metadata["options"])
    if expected_fingerprint is not None and tokenizer.fingerprint != expected_fingerprint:
        raise InputError(
            f"the tokenizer in {directory!r} has vocabulary fingerprint "
            f"{tokenizer.fingerprint}, expected {expected_fingerprint}: it belongs "
            f"to another vocabulary than the one the model was trained with"
        )
    return tokenizer


def _read_metadata(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"missing {path}; a directory written by tokenizer.save(directory) "
            f"holds it (was the save interrupted?)"
        )
    try:
        with open(path, encoding="utf-8") as f:
            metadata = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"corrupt tokenizer metadata in {path}: {error}") from error
    required = {"kind": str, "fingerprint": str, "options": dict, "files": dict}
    for key, expected_type in required.items():
        if not isinstance(metadata, dict) or not isinstance(metadata.get(key), expected_type):
            raise InputError(
                f"corrupt tokenizer metadata in {path}: expected key {key!r} of "
                f"type {expected_type.__name__}"
            )
    if metadata["kind"] not in _KINDS:
        raise InputError(
            f"corrupt tokenizer metadata in {path}: kind {metadata['kind']!r} is "
            f"not one of {sorted(_KINDS)}"
        )
    if metadata.get("format_version") != tokenizer_lib.FORMAT_VERSION:
        raise InputError(
            f"{path} has format_version {metadata.get('format_version')!r}; this "
            f"version of keras_transformer reads {tokenizer_lib.FORMAT_VERSION}"
        )
    return metadata


def _existing(directory, name):
    """The file `name` lists, which must be a plain name inside `directory`."""
    if not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", ".."):
        raise InputError(
            f"corrupt tokenizer metadata in {directory!r}: file {name!r} is not a plain file "
            "name inside the tokenizer's directory"
        )
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"missing {path}, listed in the tokenizer metadata")
    return path
