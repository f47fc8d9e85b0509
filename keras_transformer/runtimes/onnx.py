"""Running an `export_onnx` directory with ONNX Runtime.

The directory (see `kt.export.export_onnx`) holds the step graphs encoder.onnx,
decoder_step.onnx and, for beam Translators, beam_step.onnx (`kt.export.steps`);
greedy.onnx and beam.onnx (the decoding loops as one ONNX Loop each); config.json (the
sizes and reserved ids a driver needs, and "beam": the export's beam settings) and the
tokenizers.

`OnnxTranslator` decodes with a NumPy loop over the step graphs
(`kt.runtimes.step_loops`), beam search with beam_step.onnx when the directory holds it,
greedy search otherwise; both follow `kt.decoding` step for step, so they give the same
ids. The caches are NumPy buffers bound to the session (I/O binding): the step reads
them in place and returns its rows, which the loop writes.
"""

import json
import os

import numpy as np

from keras_transformer.decoding.rules import DecodingSettings
from keras_transformer.errors import InputError, first_line
from keras_transformer.extras import import_extra
from keras_transformer.runtimes.inputs import DECODINGS, check_src_ids
from keras_transformer.runtimes.step_loops import (
    BEAM_STEP,
    ENCODER,
    GREEDY_STEP,
    beam_steps,
    cache_names,
    cache_rows,
    greedy_steps,
    layer_name,
    trim,
)
from keras_transformer.text.source_ids import padded_ids

CONFIG_FILE = "config.json"
BEAM_FILE = "beam.onnx"
BEAM_STEP_FILE = f"{BEAM_STEP}.onnx"
GREEDY_FILE = "greedy.onnx"
# 2: the decoder step's keys are transposed, (N, b, h, d_k, W) (layers/decoder.py).
# 3: one cache input and output per layer (self_keys_0, ...), no longer stacked.
# 4: the decoder step returns its keys and values (step_keys_i, step_values_i), one
#    position, and leaves the cache it reads unwritten.
# 5: the step graphs of kt.export.steps: self-attention keys untransposed, (b, h, W, d_k),
#    decoder_step returns its token and log-probability, beam_step.onnx for beam
#    Translators.
FORMAT_VERSION = 5
SOURCE_TOKENIZER_DIR = "source_tokenizer"
TARGET_TOKENIZER_DIR = "target_tokenizer"


class OnnxTranslator:
    """Decoding with ONNX Runtime over an `export_onnx` directory.

    A directory with beam_step.onnx decodes with the Translator's beam search (settings
    in config.json's "beam"), unless decoding="greedy". Both decodings run a NumPy loop
    over the step graphs that follows `kt.decoding.beam_search` or `greedy_search` step
    for step: per-row output limits (source length + 50, capped at the model's
    max_length, 0 for an empty source), [PAD] and [START] never chosen, finished rows
    padded; greedy scores are the sums of the emitted tokens' log-probabilities, beam
    scores length-penalised.

    Args:
        directory: written by `export_onnx`.
        providers: ONNX Runtime execution providers.
        use_loop: decode with the loop as one ONNX Runtime call per batch, beam.onnx
            (beam search) or greedy.onnx (greedy), instead of one call per step.
        decoding: None decodes as exported (beam search when the export has it);
            "greedy" decodes greedily even then.

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
                f"this version of keras_transformer reads {FORMAT_VERSION} (the step "
                "graphs take untransposed keys, and beam search runs beam_step.onnx): "
                "export the model again"
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
            if decoding is None and BEAM_STEP_FILE in self.config["files"]
            else None
        )
        loop_file = GREEDY_FILE if self.beam is None else BEAM_FILE
        if use_loop and loop_file not in self.config["files"]:
            raise FileNotFoundError(
                f"use_loop=True needs {loop_file}, which export_onnx did not write in "
                f"{directory}; decode with use_loop=False"
            )
        self.use_loop = use_loop
        if use_loop:
            self._loop = session(loop_file)
        else:
            graph = GREEDY_STEP if self.beam is None else BEAM_STEP
            self._steps = _OnnxSteps(
                self.config, session(f"{ENCODER}.onnx"), graph, session(f"{graph}.onnx")
            )
        self._tokenizers = None

    def translate_ids(self, src_ids, max_length=None, min_length=0):
        """Decoding of (batch, src_len) int ids, 0-padded.

        Args:
            src_ids: int array (batch, src_len).
            max_length: greedy step loop only: None for source length + 50 per row, or
                an int limit.
            min_length: greedy step loop only: [END] is forbidden before this many
                output tokens.

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
        exported = self.use_loop or self.beam is not None
        if exported and (max_length is not None or min_length != 0):
            raise InputError(
                "beam search and the loop graphs (use_loop=True) decode with the "
                "max_length they were exported with (and its min_length) only"
            )
        settings = DecodingSettings(
            **(self.beam or {"beam_size": 1, "max_length": max_length, "min_length": min_length}),
            start_id=cfg["start_id"],
            end_id=cfg["end_id"],
        ).check_sizes(cfg["max_length"], cfg["tgt_vocab_size"])
        batch = src_ids.shape[0]
        if batch == 0:
            return np.zeros((0, 0), np.int32), np.zeros((0,), np.float32)
        if src_ids.shape[1] == 0:  # only empty sources: one padding column, as in TF
            src_ids = np.zeros((batch, 1), np.int32)
        if self.use_loop:
            ids, scores = self._loop.run(["ids", "score"], {"src_ids": src_ids})
            return trim(ids), scores
        loop = greedy_steps if self.beam is None else beam_steps
        return loop(self._steps, src_ids, settings, cfg["max_length"])

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


class _OnnxSteps:
    """The `Steps` of `kt.runtimes.step_loops` over encoder.onnx and one step graph.

    The caches are NumPy buffers bound to the step's session once per decoding; ONNX
    Runtime reads bound CPU arrays in place, so the rows the loop writes between steps
    are what the next step reads."""

    def __init__(self, config, encoder, graph, step):
        self._config, self._encoder, self._graph, self._step = config, encoder, graph, step
        layers = range(config["num_layers"])
        self._encoded = ["memory_mask"] + [
            layer_name(kind, i) for kind in ("cross_keys", "cross_values") for i in layers
        ]
        self._caches = cache_names(config["num_layers"])
        rows = [row for _, row in self._caches]
        self._outputs = [output.name for output in step.get_outputs() if output.name not in rows]

    def start(self, src_ids, width, hypotheses):
        cfg = self._config
        self._width, self._hypotheses = width, hypotheses
        self._binding = binding = self._step.io_binding()
        encoded = self._encoder.run(self._encoded, {"src_ids": src_ids})
        self._inputs = dict(zip(self._encoded, encoded))
        shape = (src_ids.shape[0], cfg["num_heads"], hypotheses * width, cfg["head_dim"])
        self._inputs.update((name, np.zeros(shape, np.float32)) for name, _ in self._caches)
        for name, value in self._inputs.items():
            binding.bind_cpu_input(name, value)
        for name in self._outputs + [row for _, row in self._caches]:
            binding.bind_output(name, "cpu")
        self._position = np.zeros((), np.int32)

    def run(self, graph, step, inputs):
        if graph != self._graph:
            raise ValueError(f"this translator runs {self._graph}.onnx, not {graph}.onnx")
        binding = self._binding
        # Bound from arrays that outlive the call: ONNX Runtime reads them in place.
        self._position[...] = step
        binding.bind_cpu_input("step", self._position)
        for name, value in inputs.items():
            binding.bind_cpu_input(name, value)
        self._step.run_with_iobinding(binding)
        outputs = binding.copy_outputs_to_cpu()
        for (cache, _), rows in zip(self._caches, outputs[len(self._outputs) :]):
            cache_rows(self._inputs[cache], self._hypotheses, self._width, step)[...] = rows
        return dict(zip(self._outputs, outputs))
