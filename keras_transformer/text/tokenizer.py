"""What every tokenizer of this package shares: reserved ids, id clean-up, saving.

A tokenizer turns strings into int32 token ids and back:

    tokenize:   strings (batch,)            -> ids  tf.RaggedTensor (batch, (tokens))
    detokenize: ids (batch, length), dense  -> strings (batch,)
                or (batch, (length)) ragged

`tokenize` adds no `[START]`/`[END]`; the data pipeline and the Translator add them
where the model wants them. `detokenize` accepts what a model or a batch holds:
0-padding, a leading `[START]`, an `[END]` followed by anything (decoding loops keep
writing after `[END]` in fixed-size buffers). It drops `[PAD]` and `[START]`, and
stops at the first `[END]`. `[UNK]` is kept and rendered, so a reader sees where a
word was lost instead of a silently shorter sentence.

Both methods only use TensorFlow ops, so they run eagerly, inside a `tf.function`,
inside `tf.data.Dataset.map`, and inside a SavedModel of any `tf.Module` that holds
the tokenizer as an attribute (the tokenizer is itself a `tf.Module`, so its tables
are tracked and saved with it).

`save(directory)` writes:

    directory/
      tokenizer.json   kind, vocab size, fingerprint, options (written last)
      vocab.txt        one token per line, line i = id i
      <model files>    the subclass's own (e.g. sentencepiece.model)
      saved_model/     a tf.Module SavedModel for runtimes without this package:
                       signatures "tokenize" (strings -> {"ids": 0-padded int32,
                       "lengths"}) and "detokenize" (int32 ids -> strings)

`keras_transformer.text.load_tokenizer(directory)` rebuilds the Python object.
"""

import json
import os

import numpy as np
import tensorflow as tf

from keras_transformer.constants import END_ID, PAD_ID, START_ID, UNK_ID
from keras_transformer.errors import InputError
from keras_transformer.files import atomic_write_text
from keras_transformer.text import vocabulary as vocab_lib

METADATA_FILE = "tokenizer.json"
VOCABULARY_FILE = "vocab.txt"
SAVED_MODEL_DIR = "saved_model"
FORMAT_VERSION = 1


class Tokenizer(tf.Module):
    """Base class; subclasses implement `_tokenize`, `_detokenize`, `_write_model`.

    Args:
        vocabulary: list of str, token i has id i; must start with
            `RESERVED_TOKENS`.
        name: name of the tf.Module.
    """

    kind = None  # written to tokenizer.json; load_tokenizer dispatches on it

    def __init__(self, vocabulary, name=None):
        super().__init__(name=name)
        vocab_lib.check_reserved_tokens(vocabulary)
        # A tuple, not a list: tf.Module would wrap a list for tracking, which
        # strings do not need.
        self._tokens = tuple(vocabulary)
        self._fingerprint = vocab_lib.vocabulary_fingerprint(self._tokens)

    @property
    def vocabulary(self):
        """The tokens as a list of str; token i has id i."""
        return list(self._tokens)

    @property
    def vocab_size(self):
        return len(self._tokens)

    @property
    def fingerprint(self):
        """16 hex digits identifying the vocabulary; see `vocabulary_fingerprint`."""
        return self._fingerprint

    @property
    def pad_id(self):
        """0: `[PAD]`, the padding id."""
        return PAD_ID

    @property
    def unk_id(self):
        """1: `[UNK]`, a word the vocabulary cannot spell."""
        return UNK_ID

    @property
    def start_id(self):
        """2: `[START]`, the first decoder input."""
        return START_ID

    @property
    def end_id(self):
        """3: `[END]`, end of sentence."""
        return END_ID

    @property
    def options(self):
        """Constructor options besides the vocabulary, as JSON-friendly values."""
        return {}

    def tokenize(self, strings: "str | list[str] | tf.Tensor") -> tf.Tensor:
        """Splits strings into token ids.

        Args:
            strings: a str, a list of str, or a tf.string tensor of rank 0 or 1.

        Returns:
            For rank 1 input, a `tf.RaggedTensor` of int32 ids of shape
            (batch, (tokens)); for a single string, a dense int32 tensor (tokens,).
            No `[START]` or `[END]` is added.
        """
        strings = tf.convert_to_tensor(strings)
        if strings.dtype != tf.string:
            raise InputError(
                f"tokenize expects strings (tf.string) of shape () or (batch,); "
                f"got {strings.dtype.name} {strings.shape}"
            )
        rank = strings.shape.rank
        if rank == 0:
            return self._tokenize(strings[tf.newaxis])[0]
        if rank == 1:
            return self._tokenize(strings)
        raise InputError(
            f"tokenize expects strings of shape () or (batch,); got shape "
            f"{strings.shape}. Reshape to (batch,) first."
        )

    def detokenize(self, ids: "tf.Tensor | list") -> tf.Tensor:
        """Turns token ids back into text.

        Args:
            ids: int tensor of shape (length,) or (batch, length), 0-padded, or a
                `tf.RaggedTensor` (batch, (length)). May hold `[START]` and
                `[END]`; everything from the first `[END]` on is ignored.

        Returns:
            A tf.string tensor of shape () or (batch,).
        """
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.convert_to_tensor(ids)
        if not ids.dtype.is_integer:
            raise InputError(
                f"detokenize expects integer token ids of shape (length,) or "
                f"(batch, length); got {ids.dtype.name} {ids.shape}"
            )
        rank = ids.shape.rank
        if rank == 1 and not isinstance(ids, tf.RaggedTensor):
            return self.detokenize(ids[tf.newaxis])[0]
        if rank != 2:
            raise InputError(
                f"detokenize expects ids of shape (length,) or (batch, length); "
                f"got shape {ids.shape}"
            )
        if tf.executing_eagerly():
            self._check_id_range(ids.flat_values if isinstance(ids, tf.RaggedTensor) else ids)
        return self._detokenize(_content_ids(ids))

    def _check_id_range(self, ids):
        """Raises InputError naming the first id outside [0, vocab_size), which the
        tokenizer's lookup would fail on with an error from inside TensorFlow."""
        ids = ids.numpy()
        bad = np.argwhere((ids < 0) | (ids >= self.vocab_size))
        if len(bad):
            position = tuple(int(i) for i in bad[0])
            raise InputError(
                f"detokenize expects ids in [0, {self.vocab_size}) (the vocabulary); got "
                f"{int(ids[position])} at position {position}"
            )

    def _tokenize(self, strings):
        """(batch,) tf.string -> RaggedTensor (batch, (tokens)) int32."""
        raise NotImplementedError

    def _detokenize(self, ids):
        """RaggedTensor (batch, (tokens)) int32 without reserved ids but [UNK]
        -> (batch,) tf.string."""
        raise NotImplementedError

    def _write_model(self, directory):
        """Writes the subclass's model files beside vocab.txt; returns
        {role: file name} for tokenizer.json."""
        return {}

    def save(self, directory: str) -> None:
        """Writes vocab.txt, model files, a SavedModel and tokenizer.json.

        Args:
            directory: created if missing; files of a previous save are
                overwritten.

        Returns:
            `directory`.
        """
        os.makedirs(directory, exist_ok=True)
        vocabulary_path = os.path.join(directory, VOCABULARY_FILE)
        atomic_write_text(vocabulary_path, "".join(token + "\n" for token in self._tokens))
        files = {"vocabulary": VOCABULARY_FILE, **self._write_model(directory)}

        export = _TokenizerExport(self, vocabulary_path)
        tf.saved_model.save(
            export,
            os.path.join(directory, SAVED_MODEL_DIR),
            signatures={
                "tokenize": export.tokenize_padded,
                "detokenize": export.detokenize,
            },
        )

        metadata = {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "vocab_size": self.vocab_size,
            "fingerprint": self.fingerprint,
            "reserved_tokens": vocab_lib.RESERVED_TOKENS,
            "options": self.options,
            "files": files,
        }
        # Metadata last: a save that died half-way leaves no tokenizer.json, and
        # load_tokenizer then says so instead of loading a partial directory.
        atomic_write_text(
            os.path.join(directory, METADATA_FILE),
            json.dumps(metadata, indent=2, ensure_ascii=False) + "\n",
        )
        return directory


def _content_ids(ids):
    """Drops [PAD] and [START], and everything from the first [END] on.

    (batch, length) dense or ragged int -> RaggedTensor (batch, (tokens)) int32.
    """
    ids = tf.cast(ids, tf.int32)
    if isinstance(ids, tf.RaggedTensor):
        ids = ids.to_tensor(default_value=PAD_ID)
    # Inclusive cumsum is 0 exactly before the first [END].
    before_end = tf.cumsum(tf.cast(ids == END_ID, tf.int32), axis=1) == 0
    keep = before_end & (ids != PAD_ID) & (ids != START_ID)
    return tf.ragged.boolean_mask(ids, keep)


class _TokenizerExport(tf.Module):
    """The SavedModel written by `Tokenizer.save`, for runtimes without Python.

    Signatures take and return dense tensors only (serving signatures cannot
    return ragged tensors): "tokenize" gives 0-padded ids and their lengths.
    `tokenize` (ragged output) is kept as a plain function for Python callers of
    `tf.saved_model.load`.
    """

    def __init__(self, tokenizer, vocabulary_path):
        super().__init__(name="tokenizer_export")
        self.tokenizer = tokenizer
        # Copied into saved_model/assets/ so the SavedModel is self-contained.
        self.vocabulary_file = tf.saved_model.Asset(vocabulary_path)
        # A variable because tf.Module saves variables, not plain constants.
        self.fingerprint = tf.Variable(tokenizer.fingerprint, trainable=False)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, strings):
        return self.tokenizer.tokenize(strings)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="strings")])
    def tokenize_padded(self, strings):
        ids = self.tokenizer.tokenize(strings)
        return {
            "ids": ids.to_tensor(default_value=self.tokenizer.pad_id),
            "lengths": tf.cast(ids.row_lengths(), tf.int32),
        }

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="ids")])
    def detokenize(self, ids):
        return {"text": self.tokenizer.detokenize(ids)}
