"""Running an `export_onnx` directory with ONNX Runtime.

The directory (see `kt.export.export_onnx`) holds encoder.onnx and decoder_step.onnx,
greedy.onnx (the greedy loop as one ONNX Loop, when it converted), beam.onnx (beam
search as one Loop, for beam Translators), config.json (the sizes and reserved ids a
driver needs, and "beam": the beam settings of beam.onnx) and the tokenizers.

`OnnxTranslator` decodes with beam.onnx when the directory holds it; otherwise greedily,
with a NumPy loop over decoder_step.onnx that follows `kt.decoding.greedy_search` step
for step: it applies the same `DecodingSettings` rules (`decoding/rules.py`) to NumPy
arrays, so both give the same ids.
"""

import json
import os

import numpy as np

from keras_transformer.constants import PAD_ID
from keras_transformer.decoding.rules import DecodingSettings
from keras_transformer.errors import InputError, first_line
from keras_transformer.extras import import_extra
from keras_transformer.runtimes.inputs import DECODINGS, check_src_ids
from keras_transformer.text.source_ids import padded_ids

CONFIG_FILE = "config.json"
BEAM_FILE = "beam.onnx"
GREEDY_FILE = "greedy.onnx"
# 2: the decoder step's keys are transposed, (N, b, h, d_k, W) (layers/decoder.py).
# 3: one cache input and output per layer (self_keys_0, ...), no longer stacked.
# 4: the decoder step returns its keys and values (step_keys_i, step_values_i), one
#    position, and leaves the cache it reads unwritten.
FORMAT_VERSION = 4
SOURCE_TOKENIZER_DIR = "source_tokenizer"
TARGET_TOKENIZER_DIR = "target_tokenizer"


def layer_name(kind, layer):
    """The name of layer `layer`'s tensor of `kind` ("self_keys", "cross_values",
    "step_keys", ...) among the ONNX graphs' inputs and outputs: one tensor per layer."""
    return f"{kind}_{layer}"


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

    Example: see `kt.export.export_onnx`, which writes the directory and then translates
    with it.
    """

    def __init__(
        self, directory, providers=("CPUExecutionProvider",), use_loop=False, decoding=None
    ):
        ort = import_extra("onnxruntime", "export")
        directory = os.fspath(directory)
        config_path = os.path.join(directory, CONFIG_FILE)
        if not os.path.exists(config_path):
            raise FileNotFoundError(
                f"{config_path} is missing; is {directory} a directory written by "
                "kt.export.export_onnx?"
            )
        try:
            with open(config_path, encoding="utf-8") as f:
                self.config = json.load(f)
        except ValueError as error:  # not JSON, or not UTF-8
            raise InputError(
                f"{config_path} is damaged ({first_line(error)}); export the "
                "model again with kt.export.export_onnx"
            ) from error
        if self.config.get("format_version", 1) != FORMAT_VERSION:
            raise InputError(
                f"{config_path} has format_version {self.config.get('format_version', 1)}; "
                f"this version of keras_transformer reads {FORMAT_VERSION} (its decoder "
                "step returns its own keys and values for the loop to write): export the "
                "model again"
            )
        self.directory = directory
        providers = list(providers)

        def session(file):
            path = os.path.join(directory, file)
            try:
                return ort.InferenceSession(path, providers=providers)
            except Exception as error:  # ONNX Runtime's own kinds: NoSuchFile, InvalidGraph…
                raise InputError(
                    f"{path} is missing or damaged ({first_line(error)}); "
                    "export the model again with kt.export.export_onnx"
                ) from error

        if decoding not in DECODINGS:
            raise InputError(
                f"decoding must be one of {DECODINGS} (None: as exported); got {decoding!r}"
            )
        self.beam = (
            self.config.get("beam")
            if decoding is None and BEAM_FILE in self.config["files"]
            else None
        )
        if self.beam is not None:
            if use_loop:
                raise InputError(
                    f"{directory} decodes with beam search (beam.onnx); "
                    "use_loop=True is greedy.onnx: pass decoding='greedy' too"
                )
            self._beam = session(BEAM_FILE)
        if use_loop and GREEDY_FILE not in self.config["files"]:
            raise FileNotFoundError(
                f"use_loop=True needs greedy.onnx, which export_onnx did not write in "
                f"{directory}; decode with use_loop=False"
            )
        self.use_loop = use_loop
        if use_loop:
            self._greedy = session(GREEDY_FILE)
        elif self.beam is None:
            self._encoder = session("encoder.onnx")
            self._step = session("decoder_step.onnx")
        self._tokenizers = None

    def translate_ids(self, src_ids, max_length=None, min_length=0):
        """Decoding of (batch, src_len) int ids, 0-padded.

        Args:
            src_ids: int array (batch, src_len).
            max_length: greedy decoding over decoder_step.onnx only: None for source
                length + 50 per row, or an int limit.
            min_length: greedy decoding over decoder_step.onnx only: [END] is
                forbidden before this many output tokens.

        Returns:
            ids (batch, t) int32 without [START], ending with [END] then padding;
            scores (batch,) float32 (beam search: length-penalised log-probabilities).
        """
        cfg = self.config
        src_ids = check_src_ids(src_ids, cfg["src_vocab_size"], cfg["max_length"])
        if max_length is not None and not 1 <= max_length <= cfg["max_length"]:
            raise InputError(
                f"max_length must be None or an int in [1, {cfg['max_length']}]; got {max_length!r}"
            )
        settings = DecodingSettings(
            beam_size=1,
            max_length=max_length,
            min_length=min_length,
            start_id=cfg["start_id"],
            end_id=cfg["end_id"],
        ).check_sizes(cfg["max_length"], cfg["tgt_vocab_size"])
        batch = src_ids.shape[0]
        if batch == 0:
            return np.zeros((0, 0), np.int32), np.zeros((0,), np.float32)
        if src_ids.shape[1] == 0:  # only empty sources: one padding column, as in TF
            src_ids = np.zeros((batch, 1), np.int32)
        if self.use_loop or self.beam is not None:
            if max_length is not None or min_length != 0:
                raise InputError(
                    "the loop graphs (use_loop=True, beam.onnx) decode with the "
                    "max_length they were exported with (and its min_length) "
                    "only"
                )
            graph = self._greedy if self.use_loop else self._beam
            ids, scores = graph.run(["ids", "score"], {"src_ids": src_ids})
            return _trim(ids), scores

        return self._greedy_steps(src_ids, settings)

    def _greedy_steps(self, src_ids, settings):
        """Greedy search over decoder_step.onnx, one ONNX Runtime call per step, with the
        rules of `settings` as `kt.decoding.greedy_loop` applies them.

        The self-attention caches are NumPy buffers that the step reads without writing
        them; it returns its own keys and values, which the loop writes at the step's
        position. Every input and output is bound to a NumPy buffer (I/O binding), so
        no cache is copied into or out of the session."""
        cfg = self.config
        batch = src_ids.shape[0]
        limits = settings.limits(src_ids, cfg["max_length"])
        width = max(int(limits.max()), 1)
        layers = range(cfg["num_layers"])
        encoder_outputs = ["memory_mask"] + [
            layer_name(kind, i) for kind in ("cross_keys", "cross_values") for i in layers
        ]
        binding = self._step.io_binding()
        for name, value in zip(
            encoder_outputs, self._encoder.run(encoder_outputs, {"src_ids": src_ids})
        ):
            binding.bind_cpu_input(name, value)
        heads, head_dim = cfg["num_heads"], cfg["head_dim"]
        # Kᵀ and V of each layer; column (keys) or row (values) t is written after step t.
        keys = [np.zeros((batch, heads, head_dim, width), np.float32) for _ in layers]
        values = [np.zeros((batch, heads, width, head_dim), np.float32) for _ in layers]
        step_keys = [np.empty((batch, heads, head_dim, 1), np.float32) for _ in layers]
        step_values = [np.empty((batch, heads, 1, head_dim), np.float32) for _ in layers]
        logits = np.empty((batch, cfg["tgt_vocab_size"]), np.float32)
        _bind_output(binding, "logits", logits)
        for i in layers:
            _bind_output(binding, layer_name("step_keys", i), step_keys[i])
            _bind_output(binding, layer_name("step_values", i), step_values[i])
        tokens = np.full([batch, 1], cfg["start_id"], np.int32)
        position = np.zeros((), np.int32)
        ids = np.zeros([batch, width], np.int32)
        scores = np.zeros([batch], np.float32)
        finished = np.zeros([batch], bool)
        rows = np.arange(batch)
        for step in range(width):
            active = settings.still_decoding(finished, step, limits)
            if not active.any():
                break
            # Bound every step (ONNX Runtime may copy a bound input or read it in
            # place), from arrays that outlive the call.
            position[...] = step
            binding.bind_cpu_input("tgt_ids", tokens)
            binding.bind_cpu_input("step", position)
            for i in layers:
                binding.bind_cpu_input(layer_name("self_keys", i), keys[i])
                binding.bind_cpu_input(layer_name("self_values", i), values[i])
            self._step.run_with_iobinding(binding)
            for i in layers:
                keys[i][:, :, :, step] = step_keys[i][:, :, :, 0]
                values[i][:, :, step] = step_values[i][:, :, 0]
            log_probs = _log_softmax(logits)
            allowed = settings.forbid_tokens(log_probs, step)
            tokens[:, 0] = np.where(active, allowed.argmax(axis=-1), PAD_ID)
            scores += np.where(active, log_probs[rows, tokens[:, 0]], 0.0).astype(np.float32)
            ids[:, step] = tokens[:, 0]
            finished = settings.finished_after(finished, active, tokens[:, 0])
        return _trim(ids), scores

    def __call__(self, texts):
        """list of str -> (list of str, scores); needs the tokenizers export_onnx saved."""
        if isinstance(texts, str):
            raise InputError("expected a list of strings; got one str, wrap it in a list")
        src_tokenizer, tgt_tokenizer = self._load_tokenizers()
        if len(texts) == 0:
            return [], np.zeros((0,), np.float32)
        src_ids = padded_ids(src_tokenizer.tokenize(list(texts)), self.config["max_length"]).numpy()
        ids, scores = self.translate_ids(src_ids)
        return [t.decode("utf-8") for t in tgt_tokenizer.detokenize(ids).numpy()], scores

    def _load_tokenizers(self):
        if self._tokenizers is None:
            from keras_transformer.text import load_tokenizer

            paths = [
                os.path.join(self.directory, d)
                for d in (SOURCE_TOKENIZER_DIR, TARGET_TOKENIZER_DIR)
            ]
            if not all(os.path.isdir(p) for p in paths):
                raise FileNotFoundError(
                    f"{self.directory} holds no tokenizers (exported from a bare model?); "
                    "tokenize yourself and call translate_ids"
                )
            self._tokenizers = tuple(load_tokenizer(p) for p in paths)
        return self._tokenizers


def _bind_output(binding, name, buffer):
    """Binds output `name` to the C-contiguous float32 NumPy `buffer`, which ONNX
    Runtime then writes in place."""
    binding.bind_output(name, "cpu", 0, np.float32, list(buffer.shape), buffer.ctypes.data)


def _trim(ids):
    """Drops the trailing columns that are padding in every row."""
    used = (ids != PAD_ID).any(axis=0)
    return ids[:, : (np.flatnonzero(used)[-1] + 1 if used.any() else 0)]
