"""What the three exporters share: argument checks and the module that holds the weights."""

import os

import numpy as np
import tensorflow as tf

from keras_transformer.constants import END_ID, START_ID
from keras_transformer.errors import InputError
from keras_transformer.model import Transformer, check_id_range

SRC_IDS_SPEC = tf.TensorSpec([None, None], tf.int32, name="src_ids")


def model_of(translator):
    """The `Transformer` a Translator decodes with (a bare Transformer is accepted too)."""
    model = translator if isinstance(translator, Transformer) else getattr(
        translator, "model", None)
    if not isinstance(model, Transformer):
        raise TypeError(
            "expected a keras_transformer Translator (or Transformer); got "
            f"{type(translator).__name__}. Build one with kt.Translator(model, src_tokenizer, "
            "tgt_tokenizer)")
    if not model.built:
        model.build()
    return model


DECODINGS = (None, "greedy")


def decoding_settings(translator, decoding=None):
    """The keyword arguments of `keras_transformer.translator.best_hypothesis` that an
    export decodes with.

    decoding=None: as the Translator decodes (beam search with its beam_size, alpha,
    max_length, min_length and reserved ids when beam_size > 1, greedy search when 1); a
    bare Transformer decodes greedily with the default lengths. decoding="greedy": greedy
    search with the same length settings (the smallest, fastest graph).

    Returns a dict: beam_size, alpha, max_length, min_length, start_id, end_id.
    """
    if decoding not in DECODINGS:
        raise InputError(f"decoding must be one of {DECODINGS} (None: as the translator "
                         f"decodes); got {decoding!r}")
    if isinstance(translator, Transformer):
        settings = dict(beam_size=1, alpha=0.0, max_length=None, min_length=0,
                        start_id=START_ID, end_id=END_ID)
    else:
        tokenizer = translator.target_tokenizer
        settings = dict(beam_size=translator.beam_size, alpha=translator.alpha,
                        max_length=translator.max_length, min_length=translator.min_length,
                        start_id=tokenizer.start_id, end_id=tokenizer.end_id)
    if decoding == "greedy":
        settings["beam_size"] = 1
    return settings


def tokenizers_of(translator):
    """(source_tokenizer, target_tokenizer) of a Translator, (None, None) for a bare model."""
    return (getattr(translator, "source_tokenizer", None),
            getattr(translator, "target_tokenizer", None))


def check_src_ids(src_ids, src_vocab_size, max_length):
    """What a runtime checks before running an exported graph that cannot refuse bad ids
    itself (TFLite and ONNX have no assert op, and their Gather counts a negative id
    from the end of the embedding table): an integer array (batch,
    src_len), ids in [0, src_vocab_size), src_len <= max_length. Returns it as int32,
    or raises InputError naming the offending value."""
    src_ids = np.asarray(src_ids)
    if not np.issubdtype(src_ids.dtype, np.integer) or src_ids.ndim != 2:
        raise InputError(
            f"src ids must be int32 of shape (batch, length); got {src_ids.dtype} "
            f"{src_ids.shape}")
    # Before the int32 cast, which would wrap an int64 id into a valid one.
    check_id_range(src_ids, "src", src_vocab_size)
    if src_ids.shape[1] > max_length:
        raise InputError(
            f"src ids have length {src_ids.shape[1]}, longer than the model's "
            f"max_length={max_length}; truncate the input")
    return src_ids.astype(np.int32)


def refused_by_gather(ids, vocab_size):
    """In an exported graph: every id outside [0, vocab_size) becomes vocab_size, an index
    that the runtime's own embedding Gather refuses (LiteRT: "GATHER index out of
    bounds"; ONNX Runtime: "indices element out of data bounds, idx=V"). Neither runtime
    has an assert op, and both read a negative index as counted from the end of the
    table, so without this a bare .tflite or .onnx file translates id -1 silently as the
    vocabulary's last token. The wrappers (TFLiteTranslator, OnnxTranslator) check first
    and name the value (`check_src_ids`); this is what remains when a graph runs alone.

    ids: int32 (batch, length) -> int32 (batch, length)."""
    inside = (ids >= 0) & (ids < vocab_size)
    return tf.where(inside, ids, tf.constant(vocab_size, ids.dtype))


def check_new_path(path, overwrite, what="file"):
    """Refuses to replace an existing `path` unless `overwrite`."""
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(
            f"{path} already exists; pass overwrite=True to replace it, or choose another "
            f"{what}")


class Untracked:
    """Holds an object outside TensorFlow's object graph (tf.Module tracks attributes)."""

    def __init__(self, value):
        self.value = value


class WeightsModule(tf.Module):
    """A tf.Module over a model that tf.saved_model.save and the converters can take.

    The Keras model itself stays out of the saved object graph: saving would trace the
    default serving function Keras 3 gives every model, which for a subclassed model
    that has been called (e.g. by `fit`) feeds float32 inputs to `call` and fails on
    the ids check. Its variables are tracked instead, as the plain tf.Variables under
    the Keras ones (`v.value`): the TFLite converter only freezes those, and given
    Keras 3 variables it silently leaves VAR_HANDLE ops with no initializer, so the
    .tflite reads garbage or fails inside the WHILE loop.
    """

    def __init__(self, model, name=None):
        super().__init__(name=name)
        self._model = Untracked(model)
        self.tf_vars = [v.value for v in model.variables]

    @property
    def model(self):
        return self._model.value
