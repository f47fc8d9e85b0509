"""ONNX export through tf2onnx, and a decoder that runs it with ONNX Runtime.

`export_onnx(translator, directory)` writes, from ids to ids (tokenizers stay outside:
tf2onnx has no converter for tensorflow-text's FastWordpiece ops):

| file | inputs | outputs |
|---|---|---|
| forward.onnx | src_ids (b, s), tgt_in_ids (b, t) int32 | logits (b, t, V) float32 |
| encoder.onnx, decoder_step.onnx, beam_step.onnx | the step graphs of `kt.export.steps` (beam_step.onnx for beam Translators only) | |
| greedy.onnx | src_ids (b, s) int32 | ids (b, W) int32, score (b,) float32 |
| beam.onnx | src_ids (b, s) int32 | ids (b, W) int32, score (b,) float32 (beam Translators only) |
| config.json | format_version, the sizes a driver needs (N, h, d_k, max_length, reserved ids), and "beam": the beam settings of beam_step.onnx and beam.onnx |

`kt.runtimes.OnnxTranslator(directory)` decodes with a NumPy loop over the step graphs
(`kt.runtimes.step_loops`): beam_step.onnx when the directory holds it, else
decoder_step.onnx, greedily. The steps read the self-attention caches without writing
them and return their rows, which the loop writes into buffers bound to ONNX Runtime
(I/O binding): written inside a graph, every step cost a copy of each whole cache
(ONNX Runtime's ScatterND copies its input).

greedy.onnx is `kt.decoding.greedy_loop` as one ONNX Loop, W = the model's max_length;
it is written only when the loop converts to a valid ONNX graph (see `export_onnx`).
beam.onnx is the Translator's beam search (`kt.decoding.beam_loop` with its beam_size,
α, max_length and min_length) as one ONNX Loop: `ids` is the best finished hypothesis
of each sentence and `score` its length-penalised log-probability, as
`kt.decoding.beam_search` returns them. Both run with `OnnxTranslator(use_loop=True)`,
where one call per batch matters more than speed (the step loops are faster:
README, "Beside CTranslate2").

Every layer normalisation is one ONNX LayerNormalization node (`onnx_layer_norm.py`):
tf2onnx writes thirteen, which ONNX Runtime runs one by one.
"""

import contextlib
import json
import logging
import os
import warnings

import tensorflow as tf

from keras_transformer.constants import END_ID, PAD_ID, START_ID
from keras_transformer.decoding import greedy_loop
from keras_transformer.decoding.rules import EXTRA_LENGTH
from keras_transformer.errors import InputError
from keras_transformer.export.common import (
    SRC_IDS_SPEC,
    check_new_path,
    decoding_settings,
    model_of,
    refused_by_gather,
    tokenizers_of,
)
from keras_transformer.export.onnx_int8 import quantize_int8
from keras_transformer.export.onnx_layer_norm import fuse_layer_norms
from keras_transformer.export.steps import StepGraphs
from keras_transformer.extras import import_extra
from keras_transformer.files import atomic_path, atomic_write_text
from keras_transformer.runtimes.onnx import (
    BEAM_FILE,
    BEAM_STEP_FILE,
    CONFIG_FILE,
    FORMAT_VERSION,
    GREEDY_FILE,
    SOURCE_TOKENIZER_DIR,
    TARGET_TOKENIZER_DIR,
)
from keras_transformer.runtimes.step_loops import BEAM_STEP, ENCODER, GREEDY_STEP
from keras_transformer.translator import best_hypothesis

OPSET = 17
GREEDY_FILES = ("forward.onnx", f"{ENCODER}.onnx", f"{GREEDY_STEP}.onnx", GREEDY_FILE)
BEAM_FILES = (BEAM_STEP_FILE, BEAM_FILE)
# The one-Loop graphs are not quantized: an int8 export is for the step loops.
LOOP_FILES = (GREEDY_FILE, BEAM_FILE)
QUANTIZATIONS = (None, "int8")


class _OnnxModule(StepGraphs):
    """The functions converted to ONNX, one file each (see the module docstring): the
    step graphs, and the whole model and decoding loops; `settings`: the
    `DecodingSettings` of beam_step.onnx and beam.onnx (see `decoding_settings`)."""

    def __init__(self, model, settings):
        super().__init__(model, settings, name="translator_onnx")
        self.input_signatures.update(
            forward=[SRC_IDS_SPEC, tf.TensorSpec([None, None], tf.int32, name="tgt_in_ids")],
            greedy=[SRC_IDS_SPEC],
            beam=[SRC_IDS_SPEC],
        )

    def _forward(self, src_ids, tgt_in_ids):
        config = self.model.config
        src_ids = refused_by_gather(src_ids, config.src_vocab_size)
        tgt_in_ids = refused_by_gather(tgt_in_ids, config.tgt_vocab_size)
        return {"logits": self.model((src_ids, tgt_in_ids), training=False)}

    def _greedy(self, src_ids):
        src_ids = refused_by_gather(src_ids, self.model.config.src_vocab_size)
        ids, scores = greedy_loop(self.model, src_ids)
        return {"ids": ids, "score": scores}

    def _beam(self, src_ids):
        src_ids = refused_by_gather(src_ids, self.model.config.src_vocab_size)
        ids, scores = best_hypothesis(self.model, src_ids, self._settings)
        return {"ids": ids, "score": scores}


@contextlib.contextmanager
def _quiet_tf2onnx():
    # tf2onnx logs every optimizer it cannot apply (e.g. its einsum rewriter rejects
    # "..." equations, which ONNX Runtime runs as they are) and every node it cannot
    # convert with a full traceback; _convert checks the result and reports instead.
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _convert(module, name, path, quantization):
    """Converts `module.<name>` to ONNX at `path`, its weights dynamic-range int8 with
    `quantization="int8"`; returns the onnx.checker error or None."""
    onnx = import_extra("onnx", "export")
    tf2onnx = import_extra("tf2onnx", "export")

    specs = module.input_signatures[name]
    function = module.function(name)
    with _quiet_tf2onnx():
        model_proto, _ = tf2onnx.convert.from_function(function, input_signature=specs, opset=OPSET)
    fuse_layer_norms(model_proto)
    try:
        # tf2onnx copies ops it cannot convert into the graph instead of failing.
        onnx.checker.check_model(model_proto)
    except onnx.checker.ValidationError as error:
        return error
    with atomic_path(path) as temporary:
        if quantization is None:
            onnx.save(model_proto, temporary)
        else:
            quantize_int8(model_proto, temporary)
    return None


def export_onnx(translator, directory, overwrite=False, decoding=None, quantization=None):
    """Writes the translator's model as ONNX graphs (see the module docstring).

    Args:
        translator: a `kt.Translator`, or a bare `Transformer`.
        directory: created; must not exist unless `overwrite`.
        overwrite: replace the files of an earlier export in `directory`.
        decoding: None also writes beam_step.onnx and beam.onnx, the Translator's beam
            search, when its beam_size is above 1; "greedy" writes the greedy graphs
            only.
        quantization: None (float32) or "int8": dynamic-range int8 weights, about 1.3×
            faster decoding and 40 % of the bytes (README, "Beside CTranslate2"); the
            one-Loop graphs greedy.onnx and beam.onnx are then not written.

    Returns:
        The list of paths written: the .onnx files, config.json and, for a
        Translator, the source_tokenizer/ and target_tokenizer/ directories.

    Raises:
        RuntimeError: a required graph did not convert to valid ONNX.

    greedy.onnx is skipped with a warning should tf2onnx emit an invalid ONNX Loop for
    the decoding loop (it did while the loop wrote its output with an int32 one-hot);
    decoder_step.onnx with `OnnxTranslator` does the same decoding.

    Example:
    >>> tok = kt.text.WordPieceTokenizer.train(["a dog ran", "ein hund lief"], vocab_size=40)
    >>> model = kt.Transformer.from_preset("tiny", src_vocab_size=tok.vocab_size,
    ...                                    tgt_vocab_size=tok.vocab_size)
    >>> model.build()                          # untrained here; trained with fit() in practice
    >>> translator = kt.Translator(model, tok, tok)
    >>> paths = kt.export.export_onnx(translator, "saved_models/en_de_onnx")
    >>> sorted(os.path.basename(p) for p in paths)
    ['beam.onnx', 'beam_step.onnx', 'config.json', 'decoder_step.onnx', 'encoder.onnx',
     'forward.onnx', 'greedy.onnx', 'source_tokenizer', 'target_tokenizer']
    >>> onnx_translator = kt.runtimes.OnnxTranslator("saved_models/en_de_onnx")
    >>> ids, scores = onnx_translator.translate_ids(np.array([[5, 6, 7]], np.int32))
    >>> translations, scores = onnx_translator(["a dog ran"])   # with the saved tokenizers
    >>> len(translations), scores.shape
    (1, (1,))
    """
    if quantization not in QUANTIZATIONS:
        raise InputError(f"quantization must be one of {QUANTIZATIONS}; got {quantization!r}")
    directory = os.fspath(directory)
    check_new_path(directory, overwrite, what="directory")
    model = model_of(translator)
    settings = decoding_settings(translator, decoding)
    module = _OnnxModule(model, settings)
    files = GREEDY_FILES + (BEAM_FILES if settings.beam_size > 1 else ())
    if quantization is not None:
        files = tuple(file for file in files if file not in LOOP_FILES)
    os.makedirs(directory, exist_ok=True)
    for file in set(GREEDY_FILES + BEAM_FILES) - set(files):
        if os.path.exists(os.path.join(directory, file)):
            os.remove(os.path.join(directory, file))  # from an earlier, overwritten export
    written = []
    for file in files:
        name = file[: -len(".onnx")]
        path = os.path.join(directory, file)
        error = _convert(module, name, path, quantization)
        if error is None:
            written.append(path)
        elif name == "greedy":
            if os.path.exists(path):
                os.remove(path)
            warnings.warn(
                f"greedy.onnx was not written: tf2onnx made an invalid ONNX Loop of "
                f"kt.decoding.greedy_loop ({str(error).splitlines()[0]}). Decode with "
                "OnnxTranslator over decoder_step.onnx instead",
                stacklevel=2,
            )
        elif name in ("beam", BEAM_STEP):
            raise RuntimeError(
                f"{file} did not convert to valid ONNX: {error}. Export "
                "with decoding='greedy' for the greedy graphs only"
            )
        else:
            raise RuntimeError(f"{file} did not convert to valid ONNX: {error}")

    config = model.config
    atomic_write_text(
        os.path.join(directory, CONFIG_FILE),
        json.dumps(
            {
                "format_version": FORMAT_VERSION,
                "opset": OPSET,
                "quantization": quantization,
                "num_layers": config.num_layers,
                "num_heads": config.num_heads,
                "head_dim": config.d_model // config.num_heads,
                "max_length": config.max_length,
                "src_vocab_size": config.src_vocab_size,
                "tgt_vocab_size": config.tgt_vocab_size,
                "pad_id": PAD_ID,
                "start_id": START_ID,
                "end_id": END_ID,
                "extra_length": EXTRA_LENGTH,
                "files": [os.path.basename(p) for p in written],
                **(
                    {
                        "beam": {
                            key: getattr(settings, key)
                            for key in ("beam_size", "alpha", "max_length", "min_length")
                        }
                    }
                    if settings.beam_size > 1
                    else {}
                ),
            },
            indent=2,
        )
        + "\n",
    )
    written.append(os.path.join(directory, CONFIG_FILE))

    src_tokenizer, tgt_tokenizer = tokenizers_of(translator)
    for tokenizer, subdirectory in (
        (src_tokenizer, SOURCE_TOKENIZER_DIR),
        (tgt_tokenizer, TARGET_TOKENIZER_DIR),
    ):
        if tokenizer is not None:
            written.append(tokenizer.save(os.path.join(directory, subdirectory)))
    return written
