"""Training throughput per precision, and the cost of MirroredStrategy, on this machine.

`kt.Transformer` at the core benchmark configuration (2 + 2 layers, d_model 256, 4
heads, d_ff 1024, vocabulary 8000, batch 32, source and target length 64, dropout 0.1)
is built and compiled by `keras_transformer.distribute.build_in_scope` (so the loss is
`GlobalTokenMean(LabelSmoothedCrossEntropy(0.1))`, the optimizer Adam 1e-4) and trained
with `model.fit` on one synthetic batch repeated (random ids in [1, vocab), no padding).

Configurations, each in its own subprocess (the dtype policy, logical devices and
compiled state never leak between them):

* float32, mixed_bfloat16, mixed_float16 on one device, with XLA (jit_compile=True);
* float32 on one device without XLA, the baseline of the next row;
* float32 under MirroredStrategy over two logical CPU devices (split_logical_cpus(2)),
  XLA requested: on CPU devices it fails (XLA cannot reach the other device's
  variables), `build_in_scope` falls back to jit_compile=False and says so, so this row
  is compared with the no-XLA single-device row.

Throughput is target tokens per second, batch · tgt_len / step time; the step time is
the wall time of `model.fit(steps_per_epoch=steps)` after a warm-up fit that compiles,
divided by `steps`; the table gives the median over repeats, the spread (max - min) /
median, and ratios against float32 with XLA on one device measured in the same run.

Two logical CPU devices share the machine's cores, so the mirrored row measures the
cost of splitting each batch and all-reducing the gradients, not a speed-up; on GPUs
each replica has its own device.

Usage:
    python benchmarks/distribute_throughput.py              # everything, ~7 min on 2 shared cores
    python benchmarks/distribute_throughput.py --steps 10 --repeats 3
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings

# The core benchmark's configuration, defined once in train_throughput.py (this
# folder is on sys.path when a benchmark runs as a script).
from train_throughput import (  # noqa: E402
    BATCH,
    D_FF,
    D_MODEL,
    DROPOUT,
    NUM_HEADS,
    NUM_LAYERS,
    RESULT_PREFIX,
    SRC_LEN,
    TGT_LEN,
    VOCAB,
)

# (label, precision, strategy, replicas, jit requested)
CONFIGURATIONS = (
    ("float32 XLA", "float32", "default", 1, True),
    ("mixed_bfloat16 XLA", "mixed_bfloat16", "default", 1, True),
    ("mixed_float16 XLA", "mixed_float16", "default", 1, True),
    ("float32 no XLA", "float32", "default", 1, False),
    ("float32 mirrored x2", "float32", "mirrored", 2, True),
)


def run_worker(precision, strategy_name, replicas, jit, steps, repeats, warmup):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_transformer import distribute

    if replicas > 1:
        distribute.split_logical_cpus(replicas)
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_transformer as kt

    distribute.set_precision(precision)
    keras.utils.set_random_seed(0)
    strategy = distribute.make_strategy(strategy_name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = distribute.build_in_scope(
            strategy,
            lambda: kt.Transformer(
                num_layers=NUM_LAYERS,
                d_model=D_MODEL,
                num_heads=NUM_HEADS,
                d_ff=D_FF,
                src_vocab_size=VOCAB,
                tgt_vocab_size=VOCAB,
                dropout=DROPOUT,
            ),
            lambda: keras.optimizers.Adam(1e-4, beta_2=0.98, epsilon=1e-9),
            kt.training.LabelSmoothedCrossEntropy(0.1),
            jit_compile=jit,
            precision=precision,
        )
    notes = [str(w.message) for w in caught if "jit_compile" in str(w.message)]
    for note in notes:
        print(f"  note: {note}", flush=True)

    rng = np.random.default_rng(0)
    src = rng.integers(1, VOCAB, size=(BATCH, SRC_LEN), dtype=np.int32)
    tgt = rng.integers(1, VOCAB, size=(BATCH, TGT_LEN + 1), dtype=np.int32)
    dataset = tf.data.Dataset.from_tensors(((src, tgt[:, :-1]), tgt[:, 1:])).repeat()

    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=warmup, verbose=0)
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        history = model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
        times.append((time.perf_counter() - start) / steps)
        loss = history.history["loss"][-1]
        if not np.isfinite(loss):
            raise RuntimeError(f"diverged: loss {loss}")
        print(f"  {times[-1] * 1e3:.0f} ms/step, loss {loss:.3f}", flush=True)
    print(
        RESULT_PREFIX
        + json.dumps(
            dict(
                times=times,
                compile_s=compile_s,
                jit=bool(model.jit_compile),
                notes=notes,
                replicas=strategy.num_replicas_in_sync,
                optimizer=type(model.optimizer).__name__,
            )
        ),
        flush=True,
    )


def run_child(arguments, timeout):
    """Runs this script with `arguments` in a fresh interpreter; streams its progress
    lines and returns the parsed RESULT line (or None, with the error printed)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    result, tail = None, []
    deadline = time.monotonic() + timeout
    try:
        for line in process.stdout:
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX) :])
            elif line.startswith("  ") and ("ms/step" in line or "note:" in line):
                print(line, end="", flush=True)
            else:
                tail = (tail + [line])[-30:]
            if time.monotonic() > deadline:
                process.kill()
                print(f"  timed out after {timeout} s", flush=True)
                break
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode != 0 or result is None:
        print("  FAILED:\n" + "".join(tail), flush=True)
        return None
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="training steps per timed fit")
    parser.add_argument("--repeats", type=int, default=3, help="timed fits per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="steps of the untimed first fit")
    parser.add_argument("--timeout", type=int, default=240, help="seconds per configuration")
    parser.add_argument(
        "--worker",
        nargs=4,
        metavar=("PRECISION", "STRATEGY", "REPLICAS", "JIT"),
        help=argparse.SUPPRESS,
    )
    args = parser.parse_args()
    if args.worker:
        precision, strategy, replicas, jit = args.worker
        return run_worker(
            precision, strategy, int(replicas), jit == "1", args.steps, args.repeats, args.warmup
        )

    import keras
    import tensorflow as tf

    tokens = BATCH * TGT_LEN
    print(
        f"distribute_throughput: TF {tf.__version__}, Keras {keras.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"GPUs: {len(tf.config.list_physical_devices('GPU'))}"
    )
    print(
        f"  {NUM_LAYERS}+{NUM_LAYERS} layers, d_model {D_MODEL}, {NUM_HEADS} heads, d_ff {D_FF}, "
        f"vocab {VOCAB}, batch {BATCH}, src/tgt length {SRC_LEN}/{TGT_LEN}, dropout {DROPOUT}; "
        f"{args.steps} steps x {args.repeats} repeats, warm-up {args.warmup}"
    )
    rows = {}
    for label, precision, strategy, replicas, jit in CONFIGURATIONS:
        print(
            f"running {label} ({strategy}, {replicas} device(s), jit requested {jit}) ...",
            flush=True,
        )
        result = run_child(
            [
                "--worker",
                precision,
                strategy,
                str(replicas),
                "1" if jit else "0",
                "--steps",
                str(args.steps),
                "--repeats",
                str(args.repeats),
                "--warmup",
                str(args.warmup),
            ],
            args.timeout,
        )
        if result:
            step = statistics.median(result["times"])
            rows[label] = dict(
                result,
                step=step,
                tps=tokens / step,
                spread=(max(result["times"]) - min(result["times"])) / step,
            )

    base = rows.get("float32 XLA")
    print()
    print("target tokens/s (median over repeats; ± = (max - min) / median)")
    header = (
        f"{'configuration':20s} {'replicas':>8s} {'XLA':>5s} {'optimizer':>18s} | "
        f"{'ms/step':>8s} {'tok/s':>7s} {'±':>4s} {'warm-up s':>9s} | {'vs fp32 XLA':>11s}"
    )
    print(header)
    print("-" * len(header))
    for label, *_ in CONFIGURATIONS:
        row = rows.get(label)
        if row is None:
            print(f"{label:20s} failed")
            continue
        versus = f"{row['tps'] / base['tps']:.2f}x" if base else "-"
        print(
            f"{label:20s} {row['replicas']:8d} {str(row['jit']):>5s} {row['optimizer']:>18s} | "
            f"{row['step'] * 1e3:8.0f} {row['tps']:7.0f} {row['spread']:4.0%} "
            f"{row['compile_s']:9.1f} | {versus:>11s}"
        )
    single, mirrored = rows.get("float32 no XLA"), rows.get("float32 mirrored x2")
    if single and mirrored:
        print()
        print(
            f"MirroredStrategy overhead, 2 logical CPUs vs 1 device (both float32, XLA "
            f"{mirrored['jit']}/{single['jit']}): step time ratio "
            f"{mirrored['step'] / single['step']:.2f}x "
            f"(throughput {mirrored['tps'] / single['tps']:.2f}x)"
        )
        for note in mirrored["notes"]:
            print(f"note: {note}")


if __name__ == "__main__":
    main()
