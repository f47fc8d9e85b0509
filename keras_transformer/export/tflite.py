"""TFLite / LiteRT export: the Translator's decoding, ids in, ids out: as one signature,
and as the step graphs of a loop outside the graph.

    export_tflite(translator, "translator.tflite")                       # float32
    export_tflite(translator, "translator_int8.tflite", quantization="int8")
    export_tflite(translator, "translator_text.tflite", text=True)       # + text in/out
    export_tflite(translator, "translator_greedy.tflite", decoding="greedy")

The signature `translate_ids` runs the encoder once and the Translator's decoding loop
as a TFLite WHILE op, with TFLite builtin ops only: beam search
(`kt.decoding.beam_loop` with the Translator's beam_size, α, max_length and
min_length) when its beam_size is above 1, the cached greedy loop
(`kt.decoding.greedy_loop`) when it is 1 or with decoding="greedy" (the smaller
and faster graph):

    src_ids int32 (batch, src_len)  ->  ids int32 (batch, length), score float32 (batch,)

`ids` hold no [START], end with [END] (unless a row hit its length limit) then
padding. Beam search: `ids` is the best finished hypothesis of each sentence and
`score` its length-penalised log-probability, log p(Y | x) / lp(Y), as
`kt.decoding.beam_search` returns them. Greedy: `score` is the sum of the
log-probabilities of the emitted tokens, as `kt.decoding.greedy_search` returns it.
Batch and source length may change from one call to the next. The beam loop converts
as it runs in TensorFlow (TOPK_V2, GATHER with batch dimensions, SELECT_V2 on the
loop state, all builtins): no op needed replacing.

The same file holds the step graphs of `kt.export.steps`, sharing the weights: the
signatures `encoder`, `decoder_step` (greedy) or `beam_step` (beam search), and
`decoding_settings` (() -> the settings and cache sizes a loop needs).
`kt.runtimes.TFLiteTranslator` decodes with them, a loop outside the graph that writes
the caches in place (`kt.runtimes.step_loops`): the WHILE op copies every loop-carried
cache at every iteration. Both decode to the same ids.

TFLite has no assert op, so the graph cannot name a bad id: it maps every id outside
[0, V) to V, which GATHER refuses ("index out of bounds"; without that, GATHER would
read a negative id as counted from the end of the table), and a row longer than the
model's max_length fails inside a SLICE kernel. The signature `input_limits` (no inputs
-> src_vocab_size, max_length int32 scalars) says what the ids signature accepts;
`kt.runtimes.TFLiteTranslator` checks ids against it before running and names the value.

Quantization: "float16" stores the weights as float16 (computation stays float32 on
CPU, half the file); "int8" is dynamic-range quantization: int8 weights, activations
quantized on the fly, about a quarter of the weights' bytes.

`text=True` adds a signature `translate` (text string (batch,) -> translation string
(batch,), score float32 (batch,)) that tokenizes and detokenizes with tensorflow-text's
FastWordpiece kernels. Those are TFLite custom ops: the interpreter needs them
registered (`kt.runtimes.TFLiteTranslator` does it; the README's "LiteRT (TFLite)"
section shows how on a phone). This variant needs a
`WordPieceTokenizer` without lower-casing on both sides, and differs from the
TensorFlow Translator in where it puts spaces: FastWordpiece splits words on
whitespace and punctuation alone (no CJK rule) and joins words with single spaces,
without the English spacing rules of `WordPieceTokenizer.detokenize` ("a , b" stays
"a , b").
"""

import os
import tempfile

import tensorflow as tf

from keras_transformer.constants import PAD_ID
from keras_transformer.decoding.buffers import trim_padding
from keras_transformer.errors import InputError
from keras_transformer.export.common import (
    SRC_IDS_SPEC,
    check_new_path,
    decoding_settings,
    model_of,
    refused_by_gather,
    tokenizers_of,
)
from keras_transformer.export.steps import StepGraphs
from keras_transformer.files import atomic_path
from keras_transformer.layers.attention import cache_writes
from keras_transformer.runtimes.step_loops import BEAM_STEP, GREEDY_STEP
from keras_transformer.runtimes.tflite import (
    ENCODER_SIGNATURE,
    IDS_SIGNATURE,
    LIMITS_SIGNATURE,
    SETTINGS_SIGNATURE,
    TEXT_SIGNATURE,
)
from keras_transformer.text.source_ids import padded_ids
from keras_transformer.translator import best_hypothesis

QUANTIZATIONS = (None, "float16", "int8")


class _TFLiteModule(StepGraphs):
    """The ids-level functions converted to TFLite (see the module docstring); `settings`:
    the `DecodingSettings` they decode with (see `decoding_settings`)."""

    def __init__(self, model, settings):
        super().__init__(model, settings, name="translator_tflite")

    def _decode(self, src_ids):
        """src_ids (batch, src_len) -> ids (batch, W), scores (batch,)."""
        return best_hypothesis(self.model, src_ids, self._settings)

    @tf.function(input_signature=[SRC_IDS_SPEC])
    def translate_ids(self, src_ids):
        src_ids = refused_by_gather(src_ids, self.model.config.src_vocab_size)
        ids, scores = self._decode(src_ids)
        return {"ids": trim_padding(ids), "score": scores}

    @tf.function(input_signature=[])
    def input_limits(self):
        config = self.model.config
        return {
            "src_vocab_size": tf.constant(config.src_vocab_size, tf.int32),
            "max_length": tf.constant(config.max_length, tf.int32),
        }

    @tf.function(input_signature=[])
    def decoding_settings(self):
        config, settings = self.model.config, self._settings
        values = {
            "beam_size": settings.beam_size,
            "max_length": settings.max_length or 0,
            "min_length": settings.min_length,
            "start_id": settings.start_id,
            "end_id": settings.end_id,
            "num_layers": config.num_layers,
            "num_heads": config.num_heads,
            "head_dim": config.d_model // config.num_heads,
        }
        return {name: tf.constant(value, tf.int32) for name, value in values.items()} | {
            "alpha": tf.constant(settings.alpha, tf.float32)
        }


class _TFLiteTextModule(_TFLiteModule):
    """Adds `translate`, text in and text out through FastWordpiece custom ops."""

    def __init__(self, model, settings, src_vocabulary, tgt_vocabulary):
        import tensorflow_text as tf_text

        super().__init__(model, settings)
        # no_pretokenization=False: FastWordpiece splits words itself, inside its
        # kernel, so no regex op (absent from TFLite) runs before it.
        self._src_wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=src_vocabulary,
            suffix_indicator="##",
            unknown_token="[UNK]",
            token_out_type=tf.int32,
            no_pretokenization=False,
        )
        self._tgt_wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=tgt_vocabulary,
            suffix_indicator="##",
            unknown_token="[UNK]",
            token_out_type=tf.int32,
            no_pretokenization=False,
            support_detokenization=True,
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def translate(self, text):
        src_ids = padded_ids(self._src_wordpiece.tokenize(text), self.model.config.max_length)
        ids, scores = self._decode(src_ids)
        # Outputs are tokens, [END], then padding: turning [END] into padding leaves
        # only trailing padding, which from_tensor drops.
        ids = tf.where(tf.equal(ids, self._settings.end_id), PAD_ID, ids)
        words = tf.RaggedTensor.from_tensor(ids, padding=PAD_ID)
        return {"translation": self._tgt_wordpiece.detokenize(words), "score": scores}


def _wordpiece_vocabularies(translator):
    src_tokenizer, tgt_tokenizer = tokenizers_of(translator)
    for side, tokenizer in (("source", src_tokenizer), ("target", tgt_tokenizer)):
        if getattr(tokenizer, "kind", None) != "wordpiece" or tokenizer.lower_case:
            raise InputError(
                "text=True needs WordPieceTokenizers without lower_case on both sides "
                f"(TFLite has FastWordpiece kernels but no lower-casing or regex ops); the "
                f"{side} tokenizer is {type(tokenizer).__name__}"
                f"{' with lower_case=True' if getattr(tokenizer, 'lower_case', False) else ''}. "
                "Export with text=False and tokenize outside the model"
            )
    return src_tokenizer.vocabulary, tgt_tokenizer.vocabulary


def export_tflite(translator, path, quantization=None, text=False, overwrite=False, decoding=None):
    """Writes the translator's model and decoding as a .tflite file.

    Args:
        translator: a `kt.Translator` (or a bare `Transformer` when text=False).
        path: the .tflite file to write; its directory is created.
        quantization: None (float32), "float16" or "int8" (dynamic range).
        text: also add the `translate` signature, text in and text out (custom ops).
        overwrite: replace an existing file.
        decoding: None decodes as the translator does (beam search with its settings
            when its beam_size is above 1, greedy when 1; a bare Transformer: greedy);
            "greedy" forces greedy search, the smallest and fastest graph.

    Returns:
        `path`.

    Example:
    >>> tok = kt.text.WordPieceTokenizer.train(["a dog ran", "ein hund lief"], vocab_size=40)
    >>> model = kt.Transformer.from_preset("tiny", src_vocab_size=tok.vocab_size,
    ...                                    tgt_vocab_size=tok.vocab_size)
    >>> model.build()                          # untrained here; trained with fit() in practice
    >>> translator = kt.Translator(model, tok, tok)
    >>> kt.export.export_tflite(translator, "saved_models/en_de.tflite", quantization="int8")
    'saved_models/en_de.tflite'
    """
    if quantization not in QUANTIZATIONS:
        raise InputError(f"quantization must be one of {QUANTIZATIONS}; got {quantization!r}")
    path = os.fspath(path)
    check_new_path(path, overwrite)
    model = model_of(translator)
    settings = decoding_settings(translator, decoding)
    if text:
        module = _TFLiteTextModule(model, settings, *_wordpiece_vocabularies(translator))
    else:
        module = _TFLiteModule(model, settings)
    # LiteRT updates the decoding cache in place only through DYNAMIC_UPDATE_SLICE.
    with cache_writes("slices"):
        step = BEAM_STEP if settings.beam_size > 1 else GREEDY_STEP
        signatures = {
            IDS_SIGNATURE: module.translate_ids.get_concrete_function(),
            LIMITS_SIGNATURE: module.input_limits.get_concrete_function(),
            SETTINGS_SIGNATURE: module.decoding_settings.get_concrete_function(),
            ENCODER_SIGNATURE: module.function(ENCODER_SIGNATURE).get_concrete_function(),
            step: module.function(step).get_concrete_function(),
        }
        if text:
            signatures[TEXT_SIGNATURE] = module.translate.get_concrete_function()

    # Through a SavedModel: it names the signatures (from_concrete_functions names them
    # only in some cases) and the converter finds the weights held by the module.
    with tempfile.TemporaryDirectory() as saved_model_dir:
        tf.saved_model.save(module, saved_model_dir, signatures=signatures)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            saved_model_dir, signature_keys=list(signatures)
        )
        flatbuffer = _convert(converter, quantization, text)

    with atomic_path(path) as temporary, open(temporary, "wb") as f:
        f.write(flatbuffer)
    return path


def _convert(converter, quantization, text):
    # Builtins only: the pip LiteRT runtime has no Flex delegate for TF ops.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = text
    if quantization is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()
