"""Our exported runtimes beside CTranslate2 on the same weights, each engine in its own process.

Config (the decode benchmark of benchmarks/decode_latency.py): 2+2 layers, d_model 256,
4 heads, d_ff 1024, vocabulary 8,000, random weights (seeded), a batch of 32 sources of
64 tokens, 64 output tokens forced ([END] forbidden before 64 tokens, at most 64), so
every engine does the same number of steps whatever the weights. Rows, greedy and beam 4:

    tf-xla                kt.decoding.greedy_search / beam_search: the reference ids
    tflite-float32        export_tflite, TFLiteTranslator: the step loop over the
                          file's decoder_step / beam_step signatures
    tflite-int8           the same, dynamic-range int8 weights
    tflite-float32-while  the float32 file's translate_ids: the loop as one WHILE op
    onnx                  export_onnx, OnnxTranslator: the step loop over
                          decoder_step.onnx / beam_step.onnx
    onnx-int8             the same, export_onnx(quantization="int8")
    onnx-loop             beam.onnx, the beam loop as one ONNX Loop (beam only:
                          greedy.onnx has no min_length to force the 64 tokens)
    ctranslate2-float32   our weights converted by benchmarks/ctranslate2_model.py
    ctranslate2-int8      the same model loaded with compute_type="int8"

Each row runs in a fresh process with 2 threads: it loads its artifact, decodes once (a
warm-up, which also gives the ids), then times --repeats decodings. The rows run in turns
(every row once, then again) so that a change in the machine's load falls on all of them.
A float32 engine must give the reference's ids (CTranslate2's length penalty differs from
ours, but with the length forced every hypothesis has the same one); int8 rows report the
share of ids they agree on. Prints the median per row, its ratio to CTranslate2
float32 of the same decoding and the range of its runs, then what int8 weights buy each
engine (its float32 median over its int8 one).

    python benchmarks/engines.py [--repeats 5] [--rounds 2] [--work DIR]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from real_data import measure_peak

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH, SOURCE_LENGTH, OUTPUT_LENGTH, VOCAB_SIZE = 32, 64, 64, 8000
THREADS = 2
ENGINES = (
    "tf-xla",
    "tflite-float32",
    "tflite-int8",
    "tflite-float32-while",
    "onnx",
    "onnx-int8",
    "onnx-loop",
    "ctranslate2-float32",
    "ctranslate2-int8",
)
# The rows an engine has no decoding for.
NOT_RUN = {("onnx-loop", "greedy")}
DECODINGS = ("greedy", "beam4")


def _paths(work):
    return {
        "model": os.path.join(work, "model.keras"),
        "src": os.path.join(work, "src_ids.npy"),
        "tflite-float32": os.path.join(work, "{decoding}_float32.tflite"),
        "tflite-int8": os.path.join(work, "{decoding}_int8.tflite"),
        "tflite-float32-while": os.path.join(work, "{decoding}_float32.tflite"),
        "onnx": os.path.join(work, "onnx"),
        "onnx-int8": os.path.join(work, "onnx_int8"),
        "onnx-loop": os.path.join(work, "onnx"),
        "ctranslate2": os.path.join(work, "ctranslate2"),
    }


def _translator(model, beam_size):
    from ctranslate2_model import token_names

    import keras_transformer as kt

    tokenizer = kt.text.WordPieceTokenizer(token_names(VOCAB_SIZE))
    return kt.Translator(
        model,
        tokenizer,
        tokenizer,
        beam_size=beam_size,
        alpha=0.6,
        max_length=OUTPUT_LENGTH,
        min_length=OUTPUT_LENGTH,
    )


def prepare(work):
    """Builds the seeded model and the sources, and writes every artifact once."""
    import keras
    from ctranslate2_model import convert
    from decode_latency import build_model

    from keras_transformer.export import export_onnx, export_tflite

    paths = _paths(work)
    if os.path.isfile(os.path.join(paths["ctranslate2"], "model.bin")):
        return
    keras.utils.set_random_seed(0)
    model = build_model()
    model.save(paths["model"])
    rng = np.random.default_rng(0)
    np.save(paths["src"], rng.integers(4, VOCAB_SIZE, (BATCH, SOURCE_LENGTH), dtype=np.int32))
    greedy, beam = _translator(model, 1), _translator(model, 4)
    for decoding, translator in (("greedy", greedy), ("beam4", beam)):
        for quantization in ("float32", "int8"):
            export_tflite(
                translator,
                paths[f"tflite-{quantization}"].format(decoding=decoding),
                quantization=None if quantization == "float32" else quantization,
                overwrite=True,
            )
    export_onnx(beam, paths["onnx"], overwrite=True)
    export_onnx(beam, paths["onnx-int8"], overwrite=True, quantization="int8")
    convert(model, paths["ctranslate2"])


def _decoder(engine, decoding, work):
    """A function () -> (batch, 64) int32 ids of the benchmark's sources, for one row."""
    paths = _paths(work)
    src_ids = np.load(paths["src"])
    beam_size = 1 if decoding == "greedy" else 4
    if engine == "tf-xla":
        import keras

        import keras_transformer as kt

        model = keras.saving.load_model(paths["model"])
        search = kt.decoding.greedy_search if beam_size == 1 else kt.decoding.beam_search
        options = {} if beam_size == 1 else {"beam_size": 4, "alpha": 0.6}
        return lambda: np.asarray(
            search(model, src_ids, max_length=OUTPUT_LENGTH, min_length=OUTPUT_LENGTH, **options)[0]
        )
    if engine.startswith("tflite"):
        from keras_transformer.runtimes import TFLiteTranslator

        runner = TFLiteTranslator(
            paths[engine].format(decoding=decoding),
            num_threads=THREADS,
            use_loop=engine.endswith("-while"),
        )
        return lambda: runner.translate_ids(src_ids)[0]
    if engine.startswith("onnx"):
        from keras_transformer.runtimes import OnnxTranslator

        if beam_size == 1:
            runner = OnnxTranslator(paths[engine], decoding="greedy")
            return lambda: runner.translate_ids(
                src_ids, max_length=OUTPUT_LENGTH, min_length=OUTPUT_LENGTH
            )[0]
        runner = OnnxTranslator(paths[engine], use_loop=engine == "onnx-loop")
        return lambda: runner.translate_ids(src_ids)[0]
    import ctranslate2
    from ctranslate2_model import ids_to_tokens, tokens_to_ids

    translator = ctranslate2.Translator(
        paths["ctranslate2"],
        device="cpu",
        compute_type=engine.split("-")[1],
        inter_threads=1,
        intra_threads=THREADS,
    )
    tokens = ids_to_tokens(src_ids)

    def run():
        results = translator.translate_batch(
            tokens,
            beam_size=beam_size,
            length_penalty=0.6,
            min_decoding_length=OUTPUT_LENGTH,
            max_decoding_length=OUTPUT_LENGTH,
            # Ours never emits padding or [START]; neither may CTranslate2 here.
            suppress_sequences=[["[PAD]"], ["[START]"]],
            max_batch_size=0,
        )
        return np.stack([tokens_to_ids(result.hypotheses[0]) for result in results])

    return run


def worker(engine, decoding, work, repeats):
    """One row in this process: prints {"times": [...]} and saves its ids."""
    decode = _decoder(engine, decoding, work)
    ids = decode()
    np.save(os.path.join(work, f"ids_{engine}_{decoding}.npy"), ids)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        decode()
        times.append(time.perf_counter() - start)
    print(json.dumps({"times": times}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed decodings per process")
    parser.add_argument("--rounds", type=int, default=2, help="processes per row, in turns")
    parser.add_argument("--work", default=None, help="artifact directory (default: temporary)")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--worker", nargs=2, metavar=("ENGINE", "DECODING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="engines_")
    if args.worker:
        worker(*args.worker, work, args.repeats)
        return
    os.makedirs(work, exist_ok=True)
    prepare(work)
    peaks = [measure_peak()]
    rows = [
        (engine, decoding)
        for decoding in DECODINGS
        for engine in args.engines
        if (engine, decoding) not in NOT_RUN
    ]
    times = {row: [] for row in rows}
    environment = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="3",
        OMP_NUM_THREADS=str(THREADS),
        PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    for _ in range(args.rounds):
        for engine, decoding in rows:
            output = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--work",
                    work,
                    "--repeats",
                    str(args.repeats),
                    "--worker",
                    engine,
                    decoding,
                ],
                check=True,
                capture_output=True,
                text=True,
                env=environment,
            ).stdout
            times[engine, decoding] += json.loads(output.strip().splitlines()[-1])["times"]
    peaks.append(measure_peak())
    print(
        f"{BATCH} sources of {SOURCE_LENGTH} tokens, {OUTPUT_LENGTH} output tokens forced, "
        f"{THREADS} threads; median of {args.rounds} x {args.repeats} runs per row; "
        f"float32 matmul peak {peaks[0]:.0f} GFLOP/s before, {peaks[1]:.0f} after "
        "(a loaded machine shows here)"
    )
    print(f"{'row':<28} {'ms':>8} {'vs CT2 f32':>11} {'same ids':>9} {'range ms':>14}")
    for decoding in DECODINGS:
        reference = np.load(os.path.join(work, f"ids_tf-xla_{decoding}.npy"))
        engines = [e for e in args.engines if (e, decoding) in times]
        medians = {e: 1000 * statistics.median(times[e, decoding]) for e in engines}
        baseline = medians.get("ctranslate2-float32")
        for engine in engines:
            ids = np.load(os.path.join(work, f"ids_{engine}_{decoding}.npy"))
            same = float(np.mean(ids == reference)) if ids.shape == reference.shape else 0.0
            ratio = f"{medians[engine] / baseline:10.2f}x" if baseline else f"{'-':>11}"
            runs = times[engine, decoding]
            spread = f"{1000 * min(runs):.0f}-{1000 * max(runs):.0f}"
            print(
                f"{engine + ' ' + decoding:<28} {medians[engine]:8.1f} {ratio} {same:9.1%} "
                f"{spread:>14}"
            )
            if "int8" not in engine and same < 1.0:
                print(
                    f"  {engine} {decoding} does not give the reference ids: not the same "
                    "computation, its time is not comparable"
                )
        # What int8 weights buy each engine: its float32 time over its int8 time.
        for int8 in (e for e in engines if e.endswith("-int8")):
            float32 = int8.replace("-int8", "-float32" if int8 != "onnx-int8" else "")
            if float32 in medians:
                speedup = medians[float32] / medians[int8]
                print(f"  {int8} {decoding}: {speedup:.2f}x the speed of {float32}")


if __name__ == "__main__":
    main()
