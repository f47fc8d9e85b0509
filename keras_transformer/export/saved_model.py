"""SavedModel export in the layout TF Serving loads: <directory>/<version>/.

    export_saved_model(translator, "saved_models/en_de", version=1)

writes

    saved_models/en_de/1/
      saved_model.pb, variables/     tag "serve"
      assets/source_vocab.txt        the vocabularies, one token per line (line i = id i)
      assets/target_vocab.txt
      assets.extra/tf_serving_warmup_requests   PredictionLog records TF Serving replays
                                                at load time (tensorflow-serving-api)

with two signatures:

| signature | inputs | outputs |
|---|---|---|
| serving_default | text string (batch,) | translation string (batch,), score float32 (batch,) |
| translate_ids | src_ids int32 (batch, src_len) | ids int32 (batch, t), score float32 (batch,) |

Both decode as the Translator does (its beam size, α, length limits, truncation of long
sources). The decoding loop is traced without XLA: TF Serving disables XLA:CPU JIT by
default, and a function marked jit_compile would fail there on its first request.

Loading needs the tensorflow-text ops registered: `import tensorflow_text` before
`tf.saved_model.load` in Python; TF Serving links them in its stock builds.
"""

import os
import shutil
import tempfile

import tensorflow as tf

from keras_transformer.errors import InputError
from keras_transformer.export.common import (
    SRC_IDS_SPEC,
    Untracked,
    WeightsModule,
    check_new_path,
    model_of,
)
from keras_transformer.extras import import_extra
from keras_transformer.translator import Translator

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
DEFAULT_SIGNATURE = "serving_default"
IDS_SIGNATURE = "translate_ids"
DEFAULT_WARMUP_TEXTS = (("",), ("a short sentence.", "a somewhat longer sentence, to translate."))


class _ServingModule(WeightsModule):
    """What the SavedModel holds: the model's variables, the tokenizers, the
    vocabularies, and signatures calling a non-XLA copy of the Translator."""

    def __init__(self, translator, vocabulary_files):
        super().__init__(translator.model, name="translator_serving")
        # The Translator holds the model; it stays untracked like the model (see
        # WeightsModule) while the tokenizers and their resources are tracked here.
        self._translator = Untracked(translator)
        self.source_tokenizer = translator.source_tokenizer
        self.target_tokenizer = translator.target_tokenizer
        self.source_vocabulary = tf.saved_model.Asset(vocabulary_files[0])
        self.target_vocabulary = tf.saved_model.Asset(vocabulary_files[1])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        out = self._translator.value.translate(text)
        return {"translation": out["translation"], "score": out["score"]}

    @tf.function(input_signature=[SRC_IDS_SPEC])
    def translate_ids(self, src_ids):
        return self._translator.value.translate_ids(src_ids)


def _without_xla(translator):
    """The same Translator, decoding without jit_compile (see the module docstring)."""
    return Translator(
        model_of(translator),
        translator.source_tokenizer,
        translator.target_tokenizer,
        beam_size=translator.beam_size,
        alpha=translator.alpha,
        max_length=translator.max_length,
        min_length=translator.min_length,
        strict=translator.strict,
        jit_compile=False,
    )


def _write_vocabulary(path, tokens):
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(token + "\n" for token in tokens))
    return path


def export_saved_model(
    translator,
    directory,
    version=1,
    overwrite=False,
    warmup_texts=DEFAULT_WARMUP_TEXTS,
    model_name=None,
):
    """Writes `translator` as version `version` of a TF Serving model directory.

    Args:
        translator: a `kt.Translator`.
        directory: the model's base directory (TF Serving's --model_base_path); the
            export goes to `directory/<version>`.
        version: a positive int; TF Serving serves the highest version it finds.
        overwrite: replace an existing `directory/<version>`.
        warmup_texts: batches (sequences of str) written as warmup requests for
            serving_default; () writes no warmup file.
        model_name: model_spec.name of the warmup requests (default: the base name
            of `directory`, what TF Serving's MODEL_NAME usually is).

    Returns:
        The version directory written.

    Raises:
        FileExistsError: the version directory exists and overwrite is False.
        ValueError: a version that is not a positive int.

    Example:
    >>> tok = kt.text.WordPieceTokenizer.train(["a dog ran", "ein hund lief"], vocab_size=40)
    >>> model = kt.Transformer.from_preset("tiny", src_vocab_size=tok.vocab_size,
    ...                                    tgt_vocab_size=tok.vocab_size)
    >>> model.build()                          # untrained here; trained with fit() in practice
    >>> translator = kt.Translator(model, tok, tok)
    >>> kt.export.export_saved_model(translator, "saved_models/en_de", version=2)
    'saved_models/en_de/2'
    """
    if not isinstance(translator, Translator):
        raise TypeError(
            f"export_saved_model expects a kt.Translator; got {type(translator).__name__}. "
            "Wrap the model: kt.Translator(model, source_tokenizer, target_tokenizer)"
        )
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(
            f"version must be a positive int (TF Serving reads numeric version "
            f"directories); got {version!r}"
        )
    directory = os.fspath(directory)
    export_dir = os.path.join(directory, str(version))
    check_new_path(export_dir, overwrite, what="version")
    model_name = model_name or os.path.basename(os.path.normpath(directory))

    serving_translator = _without_xla(translator)
    parent = os.path.dirname(os.path.abspath(export_dir))
    os.makedirs(parent, exist_ok=True)
    # Written beside the target, then moved into place: a failed export never leaves
    # a half-written version directory that TF Serving would try to load.
    staging = tempfile.mkdtemp(prefix=f".{version}.", dir=parent)
    try:
        vocabulary_files = (
            _write_vocabulary(
                os.path.join(staging, "source_vocab.txt"), translator.source_tokenizer.vocabulary
            ),
            _write_vocabulary(
                os.path.join(staging, "target_vocab.txt"), translator.target_tokenizer.vocabulary
            ),
        )
        module = _ServingModule(serving_translator, vocabulary_files)
        staged_export = os.path.join(staging, "export")
        tf.saved_model.save(
            module,
            staged_export,
            signatures={
                DEFAULT_SIGNATURE: module.serve.get_concrete_function(),
                IDS_SIGNATURE: module.translate_ids.get_concrete_function(),
            },
        )
        if warmup_texts:
            write_warmup_requests(staged_export, warmup_texts, model_name)
        if os.path.exists(export_dir):
            shutil.rmtree(export_dir)
        os.replace(staged_export, export_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return export_dir


def write_warmup_requests(export_dir, batches, model_name):
    """Writes `batches` of text as serving_default PredictRequests to
    export_dir/assets.extra/tf_serving_warmup_requests; returns its path."""
    predict_pb2 = import_extra("tensorflow_serving.apis.predict_pb2", "serving")
    prediction_log_pb2 = import_extra("tensorflow_serving.apis.prediction_log_pb2", "serving")

    path = os.path.join(export_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for batch in batches:
            if isinstance(batch, str):
                raise InputError(
                    f"warmup_texts must be a sequence of batches of str; got the str "
                    f"{batch!r} as a batch, wrap it: [[{batch!r}]]"
                )
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = DEFAULT_SIGNATURE
            request.inputs["text"].CopyFrom(tf.make_tensor_proto(list(batch), dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(export_dir):
    """The warmup requests of an export, as (signature_name, {input: tf.Tensor}) pairs,
    for replaying them the way TF Serving does at load time."""
    prediction_log_pb2 = import_extra("tensorflow_serving.apis.prediction_log_pb2", "serving")

    requests = []
    for record in tf.data.TFRecordDataset(os.path.join(export_dir, WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        inputs = {
            name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()
        }
        requests.append((request.model_spec.signature_name or DEFAULT_SIGNATURE, inputs))
    return requests
