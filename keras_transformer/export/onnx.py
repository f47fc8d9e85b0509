"""ONNX export through tf2onnx, and a decoder that runs it with ONNX Runtime.

`export_onnx(translator, directory)` writes, from ids to ids (tokenizers stay outside:
tf2onnx has no converter for tensorflow-text's FastWordpiece ops):

| file | inputs | outputs |
|---|---|---|
| forward.onnx | src_ids (b, s), tgt_in_ids (b, t) int32 | logits (b, t, V) float32 |
| encoder.onnx | src_ids (b, s) int32 | memory (b, s, d_model), memory_mask (b, 1, 1, s) bool, cross_keys, cross_values (N, b, h, s, d_k) |
| decoder_step.onnx | tgt_ids (b, 1) int32, step () int32, self_keys, self_values (N, b, h, W, d_k), cross_keys, cross_values, memory_mask | logits (b, V) float32, new_self_keys, new_self_values |
| greedy.onnx | src_ids (b, s) int32 | ids (b, W) int32, score (b,) float32 |
| beam.onnx | src_ids (b, s) int32 | ids (b, W) int32, score (b,) float32 (beam Translators only) |
| config.json | the sizes a driver needs (N, h, d_k, max_length, reserved ids), and "beam": the beam settings of beam.onnx |

The decoder step is `Transformer.decode_step` for one hypothesis per sentence, with the
model's per-layer cache lists stacked (N first): it writes the token's keys and values
at position `step` of the fixed-size self-attention cache (W positions, zeros to start)
and returns the cache for the next step. greedy.onnx is `kt.decoding.greedy_loop` as
one ONNX Loop, W = the model's max_length; it is written only when the loop converts
to a valid ONNX graph (see `export_onnx`). beam.onnx is the Translator's beam search
(`kt.decoding.beam_loop` with its beam_size, α, max_length and min_length) as one ONNX
Loop: `ids` is the best finished hypothesis of each sentence and `score` its
length-penalised log-probability, as `kt.decoding.beam_search` returns them. It is
written when the Translator's beam_size is above 1 (and decoding is not "greedy"); the
loop converts as it runs in TensorFlow (TopK, GatherND for the gathers with batch
dimensions, inside one Loop): no op needed replacing.

`OnnxTranslator(directory)` decodes as the export does: with beam.onnx when the
directory holds it, else greedily, a NumPy loop over decoder_step.onnx that follows
`kt.decoding.greedy_search` step for step, so both give the same ids.
"""

import contextlib
import json
import logging
import os
import warnings

import numpy as np
import tensorflow as tf

from keras_transformer.decoding import greedy_loop
from keras_transformer.decoding.lengths import EXTRA_LENGTH
from keras_transformer.constants import END_ID, NEG_INF, START_ID
from keras_transformer.errors import InputError, first_line
from keras_transformer.export.common import (
    DECODINGS, SRC_IDS_SPEC, WeightsModule, check_new_path, check_src_ids, decoding_settings,
    model_of, refused_by_gather, tokenizers_of)
from keras_transformer.constants import PAD_ID
from keras_transformer.translator import best_hypothesis

OPSET = 17
CONFIG_FILE = "config.json"
FILES = ("forward.onnx", "encoder.onnx", "decoder_step.onnx", "greedy.onnx")
BEAM_FILE = "beam.onnx"
STEP_OUTPUTS = ["logits", "new_self_keys", "new_self_values"]
SOURCE_TOKENIZER_DIR = "source_tokenizer"
TARGET_TOKENIZER_DIR = "target_tokenizer"


class _OnnxModule(WeightsModule):
    """The functions converted to ONNX, one file each (see the module docstring);
    `settings` are `best_hypothesis`'s for beam.onnx (see `decoding_settings`)."""

    def __init__(self, model, settings):
        super().__init__(model, name="translator_onnx")
        self._settings = settings
        config = model.config
        head_dim = config.d_model // config.num_heads
        cache = tf.TensorSpec([config.num_layers, None, config.num_heads, None, head_dim],
                              tf.float32)
        mask = tf.TensorSpec([None, 1, 1, None], tf.bool, name="memory_mask")
        self.signatures = {
            "forward": [SRC_IDS_SPEC, tf.TensorSpec([None, None], tf.int32, name="tgt_in_ids")],
            "encoder": [SRC_IDS_SPEC],
            "decoder_step": [
                tf.TensorSpec([None, 1], tf.int32, name="tgt_ids"),
                tf.TensorSpec([], tf.int32, name="step"),
                *[tf.TensorSpec(cache.shape, cache.dtype, name=name) for name in
                  ("self_keys", "self_values", "cross_keys", "cross_values")],
                mask],
            "greedy": [SRC_IDS_SPEC],
            "beam": [SRC_IDS_SPEC],
        }

    def forward(self, src_ids, tgt_in_ids):
        config = self.model.config
        src_ids = refused_by_gather(src_ids, config.src_vocab_size)
        tgt_in_ids = refused_by_gather(tgt_in_ids, config.tgt_vocab_size)
        return {"logits": self.model((src_ids, tgt_in_ids), training=False)}

    def encoder(self, src_ids):
        src_ids = refused_by_gather(src_ids, self.model.config.src_vocab_size)
        memory, memory_mask = self.model.encode(src_ids, training=False)
        # The self-attention part of the cache is the driver's zeros; only the
        # cross-attention keys and values depend on the source.
        cache = self.model.init_cache(memory, 1)
        return {"memory": memory, "memory_mask": memory_mask,
                "cross_keys": tf.stack(cache["cross_keys"]),
                "cross_values": tf.stack(cache["cross_values"])}

    def decoder_step(self, tgt_ids, step, self_keys, self_values, cross_keys, cross_values,
                     memory_mask):
        # The graph's cache tensors stack the model's per-layer lists (N first); one
        # hypothesis per sentence, so the ancestry is all zeros.
        shape = tf.shape(self_keys)
        cache = {name: tf.unstack(value, num=self.model.config.num_layers)
                 for name, value in (("self_keys", self_keys), ("self_values", self_values),
                                     ("cross_keys", cross_keys), ("cross_values", cross_values))}
        cache["ancestry"] = tf.zeros([shape[1], 1, shape[3]], tf.int32)
        logits, cache = self.model.decode_step(tgt_ids, step, cache, memory_mask)
        # Output names must differ from the input names in ONNX.
        return {"logits": logits[:, 0], "new_self_keys": tf.stack(cache["self_keys"]),
                "new_self_values": tf.stack(cache["self_values"])}

    def greedy(self, src_ids):
        src_ids = refused_by_gather(src_ids, self.model.config.src_vocab_size)
        ids, scores = greedy_loop(self.model, src_ids)
        return {"ids": ids, "score": scores}

    def beam(self, src_ids):
        src_ids = refused_by_gather(src_ids, self.model.config.src_vocab_size)
        ids, scores = best_hypothesis(self.model, src_ids, **self._settings)
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


def _convert(module, name, path):
    """Converts `module.<name>` to ONNX at `path`; returns the onnx.checker error or None."""
    import onnx
    import tf2onnx

    specs = module.signatures[name]
    function = tf.function(getattr(module, name), input_signature=specs)
    with _quiet_tf2onnx():
        model_proto, _ = tf2onnx.convert.from_function(
            function, input_signature=specs, opset=OPSET)
    try:
        # tf2onnx copies ops it cannot convert into the graph instead of failing.
        onnx.checker.check_model(model_proto)
    except onnx.checker.ValidationError as error:
        return error
    onnx.save(model_proto, path)
    return None


def export_onnx(translator, directory, overwrite=False, decoding=None):
    """Writes the translator's model as ONNX graphs (see the module docstring).

    Args:
        translator: a `kt.Translator`, or a bare `Transformer`.
        directory: created; must not exist unless `overwrite`.
        overwrite: replace the files of an earlier export in `directory`.
        decoding: None also writes beam.onnx, the Translator's beam search, when its
            beam_size is above 1; "greedy" writes the greedy graphs only.

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
    ['beam.onnx', 'config.json', 'decoder_step.onnx', 'encoder.onnx', 'forward.onnx',
     'greedy.onnx', 'source_tokenizer', 'target_tokenizer']
    >>> onnx_translator = OnnxTranslator("saved_models/en_de_onnx")
    >>> ids, scores = onnx_translator.translate_ids(np.array([[5, 6, 7]], np.int32))
    >>> translations, scores = onnx_translator(["a dog ran"])   # with the saved tokenizers
    >>> len(translations), scores.shape
    (1, (1,))
    """
    directory = os.fspath(directory)
    check_new_path(directory, overwrite, what="directory")
    model = model_of(translator)
    settings = decoding_settings(translator, decoding)
    module = _OnnxModule(model, settings)
    beam = settings["beam_size"] > 1
    os.makedirs(directory, exist_ok=True)
    if not beam and os.path.exists(os.path.join(directory, BEAM_FILE)):
        os.remove(os.path.join(directory, BEAM_FILE))  # from an earlier, overwritten export
    written = []
    for file in FILES + ((BEAM_FILE,) if beam else ()):
        name = file[: -len(".onnx")]
        path = os.path.join(directory, file)
        error = _convert(module, name, path)
        if error is None:
            written.append(path)
        elif name == "greedy":
            if os.path.exists(path):
                os.remove(path)
            warnings.warn(
                f"greedy.onnx was not written: tf2onnx made an invalid ONNX Loop of "
                f"kt.decoding.greedy_loop ({str(error).splitlines()[0]}). Decode with "
                "OnnxTranslator over decoder_step.onnx instead", stacklevel=2)
        elif name == "beam":
            raise RuntimeError(f"beam.onnx did not convert to valid ONNX: {error}. Export "
                               "with decoding='greedy' for the greedy graphs only")
        else:
            raise RuntimeError(f"{file} did not convert to valid ONNX: {error}")

    config = model.config
    with open(os.path.join(directory, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump({
            "opset": OPSET,
            "num_layers": config.num_layers,
            "num_heads": config.num_heads,
            "head_dim": config.d_model // config.num_heads,
            "max_length": config.max_length,
            "src_vocab_size": config.src_vocab_size,
            "tgt_vocab_size": config.tgt_vocab_size,
            "pad_id": PAD_ID, "start_id": START_ID, "end_id": END_ID,
            "extra_length": EXTRA_LENGTH,
            "files": [os.path.basename(p) for p in written],
            **({"beam": {key: settings[key] for key in
                         ("beam_size", "alpha", "max_length", "min_length")}}
               if beam else {}),
        }, f, indent=2)
        f.write("\n")
    written.append(os.path.join(directory, CONFIG_FILE))

    src_tokenizer, tgt_tokenizer = tokenizers_of(translator)
    for tokenizer, subdirectory in ((src_tokenizer, SOURCE_TOKENIZER_DIR),
                                    (tgt_tokenizer, TARGET_TOKENIZER_DIR)):
        if tokenizer is not None:
            written.append(tokenizer.save(os.path.join(directory, subdirectory)))
    return written


def _log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class OnnxTranslator:
    """Decoding with ONNX Runtime over an `export_onnx` directory.

    A directory with beam.onnx decodes with it, the Translator's beam search as one
    ONNX Runtime call (settings in config.json's "beam"), unless decoding="greedy".
    Otherwise greedy decoding follows `kt.decoding.greedy_search` step for step: per-row
    output limits (source length + 50, capped at the model's max_length, 0 for an empty
    source), [PAD] and [START] never chosen, finished rows padded, scores the sums of the
    emitted tokens' log-probabilities.

    Args:
        directory: written by `export_onnx`.
        providers: ONNX Runtime execution providers.
        use_loop: decode greedily with greedy.onnx, the whole loop in one ONNX Runtime
            call, instead of one call per step (needs greedy.onnx in `directory`).
        decoding: None decodes as exported (beam.onnx when present); "greedy" decodes
            greedily even when beam.onnx is there.

    Example: see `export_onnx`, which writes the directory and then translates with it.
    """

    def __init__(self, directory, providers=("CPUExecutionProvider",), use_loop=False,
                 decoding=None):
        import onnxruntime as ort

        directory = os.fspath(directory)
        config_path = os.path.join(directory, CONFIG_FILE)
        if not os.path.exists(config_path):
            raise FileNotFoundError(
                f"{config_path} is missing; is {directory} a directory written by "
                "kt.export.export_onnx?")
        try:
            with open(config_path, encoding="utf-8") as f:
                self.config = json.load(f)
        except ValueError as error:  # not JSON, or not UTF-8
            raise InputError(f"{config_path} is damaged ({first_line(error)}); export the "
                             "model again with kt.export.export_onnx") from error
        self.directory = directory
        providers = list(providers)

        def session(file):
            path = os.path.join(directory, file)
            try:
                return ort.InferenceSession(path, providers=providers)
            except Exception as error:  # ONNX Runtime's own kinds: NoSuchFile, InvalidGraph…
                raise InputError(f"{path} is missing or damaged ({first_line(error)}); "
                                 "export the model again with kt.export.export_onnx") from error

        if decoding not in DECODINGS:
            raise InputError(f"decoding must be one of {DECODINGS} (None: as exported); got "
                             f"{decoding!r}")
        self.beam = (self.config.get("beam") if decoding is None
                     and BEAM_FILE in self.config["files"] else None)
        if self.beam is not None:
            if use_loop:
                raise InputError(f"{directory} decodes with beam search (beam.onnx); "
                                 "use_loop=True is greedy.onnx: pass decoding='greedy' too")
            self._beam = session(BEAM_FILE)
        if use_loop and "greedy.onnx" not in self.config["files"]:
            raise FileNotFoundError(
                f"use_loop=True needs greedy.onnx, which export_onnx did not write in "
                f"{directory}; decode with use_loop=False")
        self.use_loop = use_loop
        if use_loop:
            self._greedy = session("greedy.onnx")
        elif self.beam is None:
            self._encoder = session("encoder.onnx")
            self._step = session("decoder_step.onnx")
        self._tokenizers = None

    def translate_ids(self, src_ids, max_length=None):
        """Decoding of (batch, src_len) int ids, 0-padded.

        Args:
            src_ids: int array (batch, src_len).
            max_length: greedy decoding over decoder_step.onnx only: None for source
                length + 50 per row, or an int limit.

        Returns:
            ids (batch, t) int32 without [START], ending with [END] then padding;
            scores (batch,) float32 (beam search: length-penalised log-probabilities).
        """
        cfg = self.config
        src_ids = check_src_ids(src_ids, cfg["src_vocab_size"], cfg["max_length"])
        if max_length is not None and not 1 <= max_length <= cfg["max_length"]:
            raise InputError(
                f"max_length must be None or an int in [1, {cfg['max_length']}]; got "
                f"{max_length!r}")
        batch = src_ids.shape[0]
        if batch == 0:
            return np.zeros((0, 0), np.int32), np.zeros((0,), np.float32)
        if src_ids.shape[1] == 0:  # only empty sources: one padding column, as in TF
            src_ids = np.zeros((batch, 1), np.int32)
        if self.use_loop or self.beam is not None:
            if max_length is not None:
                raise InputError("the loop graphs (use_loop=True, beam.onnx) decode with the "
                                 "max_length they were exported with only")
            graph = self._greedy if self.use_loop else self._beam
            ids, scores = graph.run(["ids", "score"], {"src_ids": src_ids})
            return _trim(ids), scores

        lengths = (src_ids != cfg["pad_id"]).sum(axis=1)
        limits = (np.minimum(lengths + cfg["extra_length"], cfg["max_length"])
                  if max_length is None else np.full([batch], max_length))
        limits = np.where(lengths > 0, limits, 0)
        width = max(int(limits.max()), 1)

        memory_mask, cross_keys, cross_values = self._encoder.run(
            ["memory_mask", "cross_keys", "cross_values"], {"src_ids": src_ids})
        shape = (cfg["num_layers"], batch, cfg["num_heads"], width, cfg["head_dim"])
        self_keys = np.zeros(shape, np.float32)
        self_values = np.zeros(shape, np.float32)
        tokens = np.full([batch], cfg["start_id"], np.int32)
        ids = np.zeros([batch, width], np.int32)
        scores = np.zeros([batch], np.float32)
        finished = np.zeros([batch], bool)
        rows = np.arange(batch)
        for step in range(width):
            active = ~finished & (step < limits)
            if not active.any():
                break
            logits, self_keys, self_values = self._step.run(STEP_OUTPUTS, {
                "tgt_ids": tokens[:, None], "step": np.array(step, np.int32),
                "self_keys": self_keys, "self_values": self_values,
                "cross_keys": cross_keys, "cross_values": cross_values,
                "memory_mask": memory_mask})
            log_probs = _log_softmax(logits)
            allowed = log_probs.copy()
            allowed[:, [cfg["pad_id"], cfg["start_id"]]] = NEG_INF
            tokens = np.where(active, allowed.argmax(axis=-1), cfg["pad_id"]).astype(np.int32)
            scores += np.where(active, log_probs[rows, tokens], 0.0).astype(np.float32)
            ids[:, step] = tokens
            finished |= ~active | (tokens == cfg["end_id"])
        return _trim(ids), scores

    def __call__(self, texts):
        """list of str -> (list of str, scores); needs the tokenizers export_onnx saved."""
        if isinstance(texts, str):
            raise InputError("expected a list of strings; got one str, wrap it in a list")
        src_tokenizer, tgt_tokenizer = self._load_tokenizers()
        if len(texts) == 0:
            return [], np.zeros((0,), np.float32)
        src_ids = src_tokenizer.tokenize(list(texts)).to_tensor(PAD_ID).numpy()
        src_ids = src_ids[:, : self.config["max_length"]]
        ids, scores = self.translate_ids(src_ids)
        return [t.decode("utf-8") for t in tgt_tokenizer.detokenize(ids).numpy()], scores

    def _load_tokenizers(self):
        if self._tokenizers is None:
            from keras_transformer.text import load_tokenizer

            paths = [os.path.join(self.directory, d)
                     for d in (SOURCE_TOKENIZER_DIR, TARGET_TOKENIZER_DIR)]
            if not all(os.path.isdir(p) for p in paths):
                raise FileNotFoundError(
                    f"{self.directory} holds no tokenizers (exported from a bare model?); "
                    "tokenize yourself and call translate_ids")
            self._tokenizers = tuple(load_tokenizer(p) for p in paths)
        return self._tokenizers


def _trim(ids):
    """Drops the trailing columns that are padding in every row."""
    used = (ids != PAD_ID).any(axis=0)
    return ids[:, : (np.flatnonzero(used)[-1] + 1 if used.any() else 0)]
