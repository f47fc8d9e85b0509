"""What the three exporters share: argument checks and the module that holds the weights."""

import dataclasses
import os

import tensorflow as tf

from keras_transformer.decoding.rules import DecodingSettings
from keras_transformer.errors import InputError
from keras_transformer.model import Transformer
from keras_transformer.runtimes.inputs import DECODINGS

SRC_IDS_SPEC = tf.TensorSpec([None, None], tf.int32, name="src_ids")


def model_of(translator):
    """The `Transformer` a Translator decodes with (a bare Transformer is accepted too)."""
    model = (
        translator if isinstance(translator, Transformer) else getattr(translator, "model", None)
    )
    if not isinstance(model, Transformer):
        raise TypeError(
            "expected a keras_transformer Translator (or Transformer); got "
            f"{type(translator).__name__}. Build one with kt.Translator(model, src_tokenizer, "
            "tgt_tokenizer)"
        )
    if not model.built:
        model.build()
    return model


def decoding_settings(translator, decoding=None):
    """The `DecodingSettings` an export decodes with (`translator.best_hypothesis`).

    decoding=None: as the Translator decodes (beam search with its settings when its
    beam_size > 1, greedy search when 1); a bare Transformer decodes greedily with the
    default lengths. decoding="greedy": greedy search with the same length settings (the
    smallest, fastest graph).
    """
    if decoding not in DECODINGS:
        raise InputError(
            f"decoding must be one of {DECODINGS} (None: as the translator "
            f"decodes); got {decoding!r}"
        )
    if isinstance(translator, Transformer):
        return DecodingSettings(beam_size=1)
    if decoding == "greedy":
        return dataclasses.replace(translator.settings, beam_size=1)
    return translator.settings


def tokenizers_of(translator):
    """(source_tokenizer, target_tokenizer) of a Translator, (None, None) for a bare model."""
    return (
        getattr(translator, "source_tokenizer", None),
        getattr(translator, "target_tokenizer", None),
    )


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
            f"{path} already exists; pass overwrite=True to replace it, or choose another {what}"
        )


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
