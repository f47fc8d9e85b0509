"""Translation latency of one trained Translator in every runtime it exports to.

Trains the tiny English -> French numbers model of the export tests
(tests/export/numbers_model.py: 2 layers, d_model 64; about a minute on 2 CPU cores),
exports it with kt.export, then times one batch of sentences, text in and text out, per
runtime:

    TF eager Translator      translator(list of str), greedy, XLA-compiled loop
    SavedModel (loaded)      tf.saved_model.load(...).signatures["serving_default"]
    TFLite float32 / int8    TFLiteTranslator, a NumPy loop over the file's step
                             signatures (tokenized outside)
    TFLite text (float32)    LiteRT interpreter, FastWordpiece custom ops inside (the
                             loop as one WHILE op)
    ONNX Runtime greedy      OnnxTranslator, a NumPy loop over decoder_step.onnx

then the same runtimes with beam search (beam 4, α = 0.6, from a beam_size=4
Translator): TF eager, SavedModel, TFLite float32 / int8 and ONNX Runtime (their loops
over the beam_step signature and beam_step.onnx).

Greedy rows decode greedily (the exports from a beam_size=1 Translator) and beam rows
with beam 4, so the rows of a group do the same work. Prints, per runtime, the median
over --repeats runs after one warm-up call of text -> text (rows without tokenizers
inside tokenize with the TF tokenizer around them) and of ids -> ids alone, the ratios
to the TF eager row of its group, the size of the artifact (SavedModel: all its files;
ONNX greedy: all the .onnx files; ONNX beam: encoder.onnx and beam_step.onnx, all it
runs) and how many
translations equal the TF Translator's of the same decoding.

    python benchmarks/export_latency.py [--batch 16] [--repeats 20] [--epochs 4]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "export")
)

import tensorflow as tf  # noqa: E402
from numbers_model import train_numbers_model  # noqa: E402

from keras_transformer.export import (  # noqa: E402
    export_onnx,
    export_saved_model,
    export_tflite,
)
from keras_transformer.runtimes import OnnxTranslator, TFLiteTranslator  # noqa: E402
from keras_transformer.translator import Translator  # noqa: E402


def size_of(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files
    )


def median_ms(function, repeats):
    function()  # warm-up: tracing, compilation, interpreter allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", default=None, help="export directory (default: a temp dir)")
    args = parser.parse_args()

    model, tokenizer, dev = train_numbers_model(args.epochs)
    sentences = [source for source, _ in dev[: args.batch]]
    translator = Translator(model, tokenizer, tokenizer, beam_size=1)
    beam_translator = Translator(model, tokenizer, tokenizer, beam_size=4, alpha=0.6)
    out = args.out or tempfile.mkdtemp(prefix="export_latency_")

    saved_model = export_saved_model(translator, os.path.join(out, "saved_model"), overwrite=True)
    tflite32 = export_tflite(translator, os.path.join(out, "float32.tflite"), overwrite=True)
    tflite8 = export_tflite(
        translator, os.path.join(out, "int8.tflite"), quantization="int8", overwrite=True
    )
    tflite_text = export_tflite(
        translator, os.path.join(out, "text.tflite"), text=True, overwrite=True
    )
    onnx_dir = os.path.join(out, "onnx")
    onnx_files = [
        p for p in export_onnx(translator, onnx_dir, overwrite=True) if p.endswith(".onnx")
    ]
    beam_saved_model = export_saved_model(
        beam_translator, os.path.join(out, "beam_saved_model"), overwrite=True
    )
    beam_tflite32 = export_tflite(
        beam_translator, os.path.join(out, "beam_float32.tflite"), overwrite=True
    )
    beam_tflite8 = export_tflite(
        beam_translator, os.path.join(out, "beam_int8.tflite"), quantization="int8", overwrite=True
    )
    beam_onnx_dir = os.path.join(out, "beam_onnx")
    export_onnx(beam_translator, beam_onnx_dir, overwrite=True)

    serve = tf.saved_model.load(saved_model).signatures["serving_default"]
    tflite_text_runner = TFLiteTranslator(tflite_text)
    text = tf.constant(sentences)

    def strings(tensor):
        return [s.decode("utf-8") for s in tensor.numpy()]

    def ids_runtime(translate_ids):
        def run():
            ids, _ = translate_ids(tokenizer.tokenize(text).to_tensor(0).numpy())
            return strings(tokenizer.detokenize(ids))

        return run

    def tflite_text_run():
        # FastWordpiece joins words with single spaces ("vingt - sept").
        return [t.replace(" - ", "-") for t in tflite_text_runner(sentences)[0]]

    src_ids = tokenizer.tokenize(text).to_tensor(0).numpy()
    serve_ids = tf.saved_model.load(saved_model).signatures["translate_ids"]
    tflite32_runner = TFLiteTranslator(tflite32)
    tflite8_runner = TFLiteTranslator(tflite8)
    onnx_runner = OnnxTranslator(onnx_dir)
    beam_serve = tf.saved_model.load(beam_saved_model).signatures["serving_default"]
    beam_serve_ids = tf.saved_model.load(beam_saved_model).signatures["translate_ids"]
    beam_tflite32_runner = TFLiteTranslator(beam_tflite32)
    beam_tflite8_runner = TFLiteTranslator(beam_tflite8)
    beam_onnx_runner = OnnxTranslator(beam_onnx_dir)
    # (group, name, text -> text, ids -> ids or None, size in bytes or None); the first
    # row of a group is its baseline.
    greedy_rows = [
        (
            "TF eager Translator",
            lambda: translator(sentences),
            lambda: translator.translate_ids(src_ids),
            None,
        ),
        (
            "SavedModel (loaded)",
            lambda: strings(serve(text=text)["translation"]),
            lambda: serve_ids(src_ids=src_ids),
            size_of(saved_model),
        ),
        (
            "TFLite float32",
            ids_runtime(tflite32_runner.translate_ids),
            lambda: tflite32_runner.translate_ids(src_ids),
            size_of(tflite32),
        ),
        (
            "TFLite int8",
            ids_runtime(tflite8_runner.translate_ids),
            lambda: tflite8_runner.translate_ids(src_ids),
            size_of(tflite8),
        ),
        ("TFLite text float32", tflite_text_run, None, size_of(tflite_text)),
        (
            "ONNX Runtime greedy",
            ids_runtime(onnx_runner.translate_ids),
            lambda: onnx_runner.translate_ids(src_ids),
            sum(size_of(p) for p in onnx_files),
        ),
    ]
    beam_rows = [
        (
            "TF eager beam 4",
            lambda: beam_translator(sentences),
            lambda: beam_translator.translate_ids(src_ids),
            None,
        ),
        (
            "SavedModel beam 4",
            lambda: strings(beam_serve(text=text)["translation"]),
            lambda: beam_serve_ids(src_ids=src_ids),
            size_of(beam_saved_model),
        ),
        (
            "TFLite float32 beam 4",
            ids_runtime(beam_tflite32_runner.translate_ids),
            lambda: beam_tflite32_runner.translate_ids(src_ids),
            size_of(beam_tflite32),
        ),
        (
            "TFLite int8 beam 4",
            ids_runtime(beam_tflite8_runner.translate_ids),
            lambda: beam_tflite8_runner.translate_ids(src_ids),
            size_of(beam_tflite8),
        ),
        (
            "ONNX Runtime beam 4",
            ids_runtime(beam_onnx_runner.translate_ids),
            lambda: beam_onnx_runner.translate_ids(src_ids),
            sum(
                size_of(os.path.join(beam_onnx_dir, f)) for f in ("encoder.onnx", "beam_step.onnx")
            ),
        ),
    ]

    print(
        f"batch of {len(sentences)} sentences, median of {args.repeats} runs, "
        f"{os.cpu_count()} CPU cores, TF {tf.__version__}; "
        f"{model.count_params()} parameters"
    )
    print(
        f"{'runtime':<22} {'text ms':>8} {'vs TF':>7} {'ids ms':>8} {'vs TF':>7} "
        f"{'size':>9} {'same text':>10}"
    )
    for rows, reference_translator in ((greedy_rows, translator), (beam_rows, beam_translator)):
        reference = reference_translator(sentences)
        baselines = {}
        for name, text_function, ids_function, size in rows:
            cells = []
            for key, function in (("text", text_function), ("ids", ids_function)):
                if function is None:
                    cells.append(f"{'-':>8} {'-':>7}")
                    continue
                ms = median_ms(function, args.repeats)
                baselines.setdefault(key, ms)
                cells.append(f"{ms:8.1f} {ms / baselines[key]:6.2f}x")
            same = sum(a == b for a, b in zip(text_function(), reference))
            size_text = "-" if size is None else f"{size / 1024:.0f} KiB"
            print(f"{name:<22} {' '.join(cells)} {size_text:>9} {same:>7}/{len(reference)}")


if __name__ == "__main__":
    main()
