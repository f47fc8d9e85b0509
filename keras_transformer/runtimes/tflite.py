"""Running an exported .tflite file with the LiteRT interpreter (`ai_edge_litert`).

`kt.export.export_tflite` writes the file; its signatures:

    translate_ids       src_ids int32 (batch, src_len) -> ids int32 (batch, length),
                        score float32 (batch,): the whole decoding, its loop one WHILE op
    encoder, decoder_step or beam_step
                        the step graphs of `kt.export.steps`, for a loop outside the
                        graph (`kt.runtimes.step_loops`)
    decoding_settings   () -> beam_size, max_length (0: source length + 50), min_length,
                        start_id, end_id, num_layers, num_heads, head_dim int32 scalars,
                        alpha float32: what the step loop needs
    input_limits        () -> src_vocab_size, max_length int32 scalars: what translate_ids
                        accepts (the graph itself cannot name a bad id)
    translate           text string (batch,) -> translation string (batch,), score float32
                        (batch,); only with text=True, through tensorflow-text's
                        FastWordpiece custom ops

See the README's "LiteRT (TFLite)" section for running it on a phone.

`TFLiteTranslator.translate_ids` runs the step loop: a WHILE op carries the
self-attention caches from one iteration to the next and copies each of them at every
step, where the step graphs read caches that the loop writes in place (README, "Beside
CTranslate2"). The interpreter runs the graphs through an XNNPACK delegate that
`TFLiteTranslator` adds itself, with XNNPACK's latest operators (LiteRT's
`experimental_default_delegate_latest_features`): it takes the step graphs and the body
of the WHILE op, which the delegate LiteRT applies by default leaves to the builtin
kernels.
"""

import os

import numpy as np

from keras_transformer.decoding.rules import DecodingSettings
from keras_transformer.errors import InputError, first_line
from keras_transformer.extras import import_extra
from keras_transformer.runtimes.inputs import check_src_ids
from keras_transformer.runtimes.step_loops import (
    BEAM_STEP,
    ENCODER,
    GREEDY_STEP,
    beam_steps,
    cache_names,
    cache_rows,
    greedy_steps,
)
from keras_transformer.startup_logs import honour_log_level

IDS_SIGNATURE = "translate_ids"
TEXT_SIGNATURE = "translate"
LIMITS_SIGNATURE = "input_limits"
SETTINGS_SIGNATURE = "decoding_settings"
ENCODER_SIGNATURE = ENCODER


class TFLiteTranslator:
    """Runs an exported .tflite file with the LiteRT interpreter (`ai_edge_litert`).

    Registers the tensorflow-text custom ops when the file needs them, refuses the ids
    the graph cannot (see the module docstring), and answers an empty batch itself (the
    LiteRT Python API cannot read back zero-sized outputs).

    Args:
        path: a file written by `kt.export.export_tflite`.
        num_threads: the interpreter's threads (None: LiteRT's default).
        use_loop: decode ids with the `translate_ids` signature, the loop as one WHILE
            op, instead of the step loop over the step signatures. A file without the
            step signatures (written before they existed) decodes that way too.

    Attributes:
        step_signature: the signature `translate_ids` runs at every step
            ("decoder_step" or "beam_step"), or "translate_ids" for the WHILE op.

    Example:
    >>> tok = kt.text.WordPieceTokenizer.train(["a dog ran", "ein hund lief"], vocab_size=40)
    >>> model = kt.Transformer.from_preset("tiny", src_vocab_size=tok.vocab_size,
    ...                                    tgt_vocab_size=tok.vocab_size)
    >>> model.build()                          # untrained here; trained with fit() in practice
    >>> translator = kt.Translator(model, tok, tok)
    >>> path = kt.export.export_tflite(translator, "translator_text.tflite", text=True)
    >>> tflite = TFLiteTranslator(path)
    >>> ids, scores = tflite.translate_ids(np.array([[5, 6, 7]], np.int32))
    >>> scores.shape
    (1,)
    >>> translations, scores = tflite(["a dog ran"])     # text in, text out: text=True only
    >>> len(translations)
    1
    """

    def __init__(self, path, num_threads=None, use_loop=False):
        import tensorflow_text as tf_text

        litert = import_extra("ai_edge_litert.interpreter", "export")

        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} is not a file; write one with kt.export.export_tflite")
        # Registering the tensorflow-text kernels costs nothing for files without them.
        try:
            with honour_log_level(always_filter=True):
                self.interpreter = litert.InterpreterWithCustomOps(
                    model_path=os.fspath(path),
                    num_threads=num_threads,
                    custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS,
                    experimental_default_delegate_latest_features=True,
                )
        except ValueError as error:  # LiteRT's error for a file that is not a model
            raise InputError(
                f"{path} is not a readable .tflite model ({first_line(error)}); "
                "write it again with kt.export.export_tflite"
            ) from error
        signatures = self.interpreter.get_signature_list()
        missing = [name for name in (IDS_SIGNATURE, LIMITS_SIGNATURE) if name not in signatures]
        if missing:
            raise InputError(
                f"{path} has no {' or '.join(map(repr, missing))} signature (it has "
                f"{sorted(signatures)}); write it with kt.export.export_tflite"
            )
        limits = self.interpreter.get_signature_runner(LIMITS_SIGNATURE)()
        self.src_vocab_size = int(limits["src_vocab_size"])
        self.max_length = int(limits["max_length"])
        self.has_text = TEXT_SIGNATURE in signatures
        self._ids_runner = self.interpreter.get_signature_runner(IDS_SIGNATURE)
        self._steps = None
        self.step_signature = IDS_SIGNATURE
        if not use_loop and SETTINGS_SIGNATURE in signatures:
            outputs = self.interpreter.get_signature_runner(SETTINGS_SIGNATURE)()
            config = {name: value.item() for name, value in outputs.items()}
            self._settings = DecodingSettings(
                beam_size=config["beam_size"],
                alpha=config["alpha"],
                max_length=config["max_length"] or None,
                min_length=config["min_length"],
                start_id=config["start_id"],
                end_id=config["end_id"],
            )
            self.step_signature = BEAM_STEP if self._settings.beam_size > 1 else GREEDY_STEP
            self._steps = _TFLiteSteps(self.interpreter, self.step_signature, config)
        self._text_runner = (
            self.interpreter.get_signature_runner(TEXT_SIGNATURE) if self.has_text else None
        )

    def translate_ids(self, src_ids):
        """(batch, src_len) int ids -> (ids (batch, length) int32, scores (batch,) float32)."""
        src_ids = check_src_ids(src_ids, self.src_vocab_size, self.max_length)
        batch = src_ids.shape[0]
        if batch == 0:
            return np.zeros((0, 0), np.int32), np.zeros((0,), np.float32)
        if self._steps is None:
            out = self._ids_runner(src_ids=src_ids)
            return out["ids"], out["score"]
        if src_ids.shape[1] == 0:  # only empty sources: one padding column, as in TF
            src_ids = np.zeros((batch, 1), np.int32)
        loop = greedy_steps if self._settings.beam_size == 1 else beam_steps
        return loop(self._steps, src_ids, self._settings, self.max_length)

    def __call__(self, texts):
        """list of str -> (list of str, scores (batch,) float32); text=True exports only."""
        if not self.has_text:
            raise InputError(
                "this .tflite has no text signature; export it with text=True, or call "
                "translate_ids with token ids"
            )
        if isinstance(texts, str):
            raise InputError("expected a list of strings; got one str, wrap it in a list")
        if len(texts) == 0:
            return [], np.zeros((0,), np.float32)
        out = self._text_runner(text=np.array(list(texts), dtype=object))
        return [t.decode("utf-8") for t in out["translation"]], out["score"]


class _TFLiteSteps:
    """The `Steps` of `kt.runtimes.step_loops` over a file's encoder signature and one
    step signature.

    The step signature's own input tensors are the caches: the loop writes each step's
    rows into them in place, through NumPy views taken after every invoke (an invoke may
    move the tensors; a view never outlives the write it serves). LiteRT's public
    `Interpreter.tensor()` reaches the first subgraph only, so this uses the
    interpreter's wrapper (`Interpreter._interpreter`), as LiteRT's own SignatureRunner
    does, for subgraph-aware resizing, setting, invoking and views."""

    def __init__(self, interpreter, signature, config):
        self._wrapper = interpreter._interpreter
        self._encoder = interpreter.get_signature_runner(ENCODER_SIGNATURE)
        runner = interpreter.get_signature_runner(signature)
        self._inputs = {name: d["index"] for name, d in runner.get_input_details().items()}
        self._outputs = {name: d["index"] for name, d in runner.get_output_details().items()}
        self._subgraph = self._wrapper.GetSubgraphIndexFromSignature(signature)
        self._graph = signature
        self._caches = cache_names(config["num_layers"])
        self._heads, self._head_dim = config["num_heads"], config["head_dim"]

    def start(self, src_ids, width, hypotheses):
        self._width, self._hypotheses = width, hypotheses
        self._encoded = self._encoder(src_ids=src_ids)
        self._cache_shape = (src_ids.shape[0], self._heads, hypotheses * width, self._head_dim)
        self._allocated = False

    def _allocate(self, step_inputs):
        """Sizes every input for this decoding, sets the encoder's outputs once and zeroes
        the caches."""
        shapes = {name: value.shape for name, value in {**self._encoded, **step_inputs}.items()}
        shapes.update((name, self._cache_shape) for name, _ in self._caches)
        for name, shape in shapes.items():
            self._wrapper.ResizeInputTensor(
                self._inputs[name], np.array(shape, np.int32), False, self._subgraph
            )
        self._wrapper.AllocateTensors(self._subgraph)
        for name, value in self._encoded.items():
            self._wrapper.SetTensor(self._inputs[name], value, self._subgraph)
        for name, _ in self._caches:
            self._view(name)[...] = 0.0
        self._allocated = True

    def _view(self, name):
        return self._wrapper.tensor(self._wrapper, self._inputs[name], self._subgraph)

    def run(self, graph, step, inputs):
        if graph != self._graph:
            raise ValueError(f"this file's step loop runs {self._graph}, not {graph}")
        inputs = {"step": np.array(step, np.int32), **inputs}
        if not self._allocated:
            self._allocate(inputs)
        for name, value in inputs.items():
            self._wrapper.SetTensor(self._inputs[name], value, self._subgraph)
        self._wrapper.Invoke(self._subgraph)
        outputs = {
            name: self._wrapper.GetTensor(index, self._subgraph)
            for name, index in self._outputs.items()
        }
        for cache, rows in self._caches:
            cache_rows(self._view(cache), self._hypotheses, self._width, step)[...] = outputs.pop(
                rows
            )
        return outputs
