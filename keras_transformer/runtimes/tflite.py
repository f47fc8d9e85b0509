"""Running an exported .tflite file with the LiteRT interpreter (`ai_edge_litert`).

`kt.export.export_tflite` writes the file; its signatures:

    translate_ids   src_ids int32 (batch, src_len) -> ids int32 (batch, length),
                    score float32 (batch,)
    input_limits    () -> src_vocab_size, max_length int32 scalars: what translate_ids
                    accepts (the graph itself cannot name a bad id)
    translate       text string (batch,) -> translation string (batch,), score float32
                    (batch,); only with text=True, through tensorflow-text's
                    FastWordpiece custom ops

See the README's "LiteRT (TFLite)" section for running it on a phone.

The interpreter runs the graph through an XNNPACK delegate that `TFLiteTranslator` adds
itself, with XNNPACK's latest operators (LiteRT's
`experimental_default_delegate_latest_features`): it takes the encoder and the body of
the decoding loop's WHILE op. The delegate LiteRT applies by default leaves the loop's
body to the builtin kernels, about 3× slower (FULLY_CONNECTED onto the 8,000-token
vocabulary: 7.2 ms there, 1.3 ms in XNNPACK; README, "Beside CTranslate2").
"""

import os

import numpy as np

from keras_transformer.errors import InputError, first_line
from keras_transformer.extras import import_extra
from keras_transformer.runtimes.inputs import check_src_ids
from keras_transformer.startup_logs import honour_log_level

IDS_SIGNATURE = "translate_ids"
TEXT_SIGNATURE = "translate"
LIMITS_SIGNATURE = "input_limits"


class TFLiteTranslator:
    """Runs an exported .tflite file with the LiteRT interpreter (`ai_edge_litert`).

    Registers the tensorflow-text custom ops when the file needs them, refuses the ids
    the graph cannot (see the module docstring), and answers an empty batch itself (the
    LiteRT Python API cannot read back zero-sized outputs).

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

    def __init__(self, path, num_threads=None):
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
        self._text_runner = (
            self.interpreter.get_signature_runner(TEXT_SIGNATURE) if self.has_text else None
        )

    def translate_ids(self, src_ids):
        """(batch, src_len) int ids -> (ids (batch, length) int32, scores (batch,) float32)."""
        src_ids = check_src_ids(src_ids, self.src_vocab_size, self.max_length)
        if src_ids.shape[0] == 0:
            return np.zeros((0, 0), np.int32), np.zeros((0,), np.float32)
        out = self._ids_runner(src_ids=src_ids)
        return out["ids"], out["score"]

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
