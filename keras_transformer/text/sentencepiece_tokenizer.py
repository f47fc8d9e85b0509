"""SentencePieceTokenizer: trained by `sentencepiece`, run by tensorflow-text.

SentencePiece (Kudo & Richardson, 2018) treats text as a raw character stream and
marks word starts with "▁", so spacing is part of the pieces: detokenizing gives
the text back exactly as it was normalized (NFKC, runs of whitespace collapsed,
lower-cased with `lower_case=True`), with no punctuation rules needed.

Training happens in memory (`model_writer=`); the serialized model proto is all
the tokenizer keeps, and `tensorflow_text.SentencepieceTokenizer` holds it as a
tracked resource, so it is saved inside any SavedModel that holds the tokenizer.
That resource is created under a name of its own (`_SharedModelResource`), so that it
outlives TensorFlow's kernel cache, which `tf.random.set_seed` clears.

The reserved tokens are SentencePiece's control symbols at the fixed ids:
`pad_id=0 "[PAD]"`, `unk_id=1 "[UNK]"`, `bos_id=2 "[START]"`, `eos_id=3 "[END]"`.
`[UNK]` detokenizes as " ⁇ ", SentencePiece's rendering of an unknown piece.

Example:

>>> tok = SentencePieceTokenizer.train(["hello world"] * 10, vocab_size=20)
>>> tok.detokenize(tok.tokenize(["hello world"])).numpy()
array([b'hello world'], dtype=object)
"""

import hashlib
import io
import os

import sentencepiece
import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow.python.trackable import resource
from tensorflow_text.python.ops.sentencepiece_tokenizer import gen_sentencepiece_tokenizer

from keras_transformer.constants import END_ID, PAD_ID, START_ID, UNK_ID
from keras_transformer.errors import InputError
from keras_transformer.files import atomic_path
from keras_transformer.text import tokenizer as tokenizer_lib
from keras_transformer.text import vocabulary as vocab_lib

MODEL_FILE = "sentencepiece.model"


class SentencePieceTokenizer(tokenizer_lib.Tokenizer):
    """SentencePiece tokenizer running on tensorflow-text.

    Args:
        model_proto: bytes, a serialized SentencePiece model whose first four
            pieces are the reserved tokens. Usually from `train`.
        name: tf.Module name.

    Shapes: see `Tokenizer.tokenize` and `Tokenizer.detokenize`.
    """

    kind = "sentencepiece"

    def __init__(self, model_proto, name="sentencepiece_tokenizer"):
        processor = sentencepiece.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(model_proto)
        except (RuntimeError, TypeError) as error:
            raise InputError(
                f"model_proto is not a serialized SentencePiece model ({error})"
            ) from error
        vocabulary = [processor.IdToPiece(i) for i in range(processor.GetPieceSize())]
        super().__init__(vocabulary, name=name)
        self._model_proto = bytes(model_proto)
        self._sentencepiece = tf_text.SentencepieceTokenizer(
            model=self._model_proto, out_type=tf.int32
        )
        self._sentencepiece._model_resource = _SharedModelResource(self._model_proto)

    @classmethod
    def train(
        cls,
        lines,
        vocab_size: int = 8000,
        lower_case: bool = False,
        model_type: str = "unigram",
        character_coverage: float = 1.0,
    ) -> "SentencePieceTokenizer":
        """Trains a SentencePiece model on `lines` and returns a tokenizer.

        Args:
            lines: iterable of str; pass source and target lines together for a
                shared vocabulary.
            vocab_size: vocabulary size, reserved tokens included. A soft limit:
                a corpus too small to fill it yields a smaller vocabulary.
            lower_case: lower-case as part of normalization (`nmt_nfkc_cf`).
            model_type: "unigram" (SentencePiece's default) or "bpe".
            character_coverage: share of characters the model must cover;
                1.0 suits small alphabets (European languages).
        """
        lines = [line for line in lines if line.strip()]
        if not lines:
            raise InputError("SentencePieceTokenizer.train needs at least one line of text")
        model = io.BytesIO()
        # The trainer logs every step to stderr; keep it out of the user's way.
        with open(os.devnull, "w") as devnull:
            sentencepiece.SentencePieceTrainer.Train(
                sentence_iterator=iter(lines),
                model_writer=model,
                logstream=devnull,
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=character_coverage,
                normalization_rule_name="nmt_nfkc_cf" if lower_case else "nmt_nfkc",
                hard_vocab_limit=False,
                pad_id=PAD_ID,
                unk_id=UNK_ID,
                bos_id=START_ID,
                eos_id=END_ID,
                pad_piece=vocab_lib.PAD,
                unk_piece=vocab_lib.UNK,
                bos_piece=vocab_lib.START,
                eos_piece=vocab_lib.END,
            )
        return cls(model.getvalue())

    @property
    def model_proto(self):
        """The serialized SentencePiece model (bytes)."""
        return self._model_proto

    def _tokenize(self, strings):
        return self._sentencepiece.tokenize(strings)

    def _detokenize(self, ids):
        return self._sentencepiece.detokenize(ids)

    def _write_model(self, directory):
        with atomic_path(os.path.join(directory, MODEL_FILE)) as temporary:
            with open(temporary, "wb") as f:
                f.write(self._model_proto)
        return {"model": MODEL_FILE}


class _SharedModelResource(resource.TrackableResource):
    """The SentencePiece model as a TensorFlow resource, under a name of its own.

    tensorflow-text creates it private to the kernel of the op that makes it, and
    TensorFlow deletes such a resource with the kernel whenever it clears its kernel
    cache, which `tf.random.set_seed` (so `keras.utils.set_random_seed`, which every
    training run calls) does: every tokenizer built before would then fail with
    "Resource ... SentencepieceResource does not exist". A resource with a shared name
    lives in the resource manager until the process ends; the name is derived from the
    model, so tokenizers of the same model (and SavedModels holding it) share one.
    """

    def __init__(self, model_proto):
        super().__init__()
        self._model_proto = model_proto
        digest = hashlib.sha256(model_proto).hexdigest()[:32]
        self._shared_name = f"keras_transformer_sentencepiece_{digest}"
        _ = self.resource_handle  # creates the resource

    def _create_resource(self):
        return gen_sentencepiece_tokenizer.sentencepiece_op(
            model=self._model_proto, shared_name=self._shared_name
        )
