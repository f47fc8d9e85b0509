"""Corpus scale benchmark: `prepare` and the streaming pipeline on synthetic corpora of
increasing size (`kt.data.write_synthetic_corpus`, nothing downloaded).

For each size (default 200,000 and 2,000,000 pairs), each measurement in a fresh
process, so that its peak resident memory is its own:

1. prepare: pairs/s, and peak RSS;
2. stream: one pass of `shard_dataset` (or `--stream-batches` batches): target tokens/s
   delivered, and peak RSS.

Then, on the largest corpus:

3. fit: the target tokens/s that `model.fit` consumes for the base model on this
   machine, fed from the shards (after its first step);
4. launch to first step: seconds from starting a process to the end of its first
   training step, fed from the shards against today's in-memory path (`read_parallel`
   and `make_dataset` on the TSV file), both with the prepared tokenizers.

Printed as ratios: peak RSS of the largest corpus / the smallest (the issue asks for at
most 1.5), streamed / consumed tokens/s (at least 10), and in-memory / shards time to
the first step.

Usage:

    python benchmarks/corpus_scale.py [--sizes 200000 2000000] [--workers CORES] [--vocab-size 8000]
                                      [--fit-steps 10] [--stream-batches 0]
                                      [--workdir /tmp/corpus_scale]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import keras
import tensorflow as tf

TOKENS_PER_BATCH = 4096


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def phase_prepare(args):
    from keras_transformer.data import prepare

    start = time.perf_counter()
    manifest = prepare(
        args.prepared,
        args.tsv,
        tokenizer="sentencepiece",
        vocab_size=args.vocab_size,
        workers=args.workers,
        progress=False,
    )
    seconds = time.perf_counter() - start
    return {
        "pairs": manifest["pairs"],
        "seconds": seconds,
        "pairs_per_s": manifest["pairs"] / seconds,
        "tokenizer_sample": manifest["tokenizer_sample"],
    }


def phase_stream(args):
    from keras_transformer.data import shard_dataset

    dataset = shard_dataset(args.prepared, tokens_per_batch=TOKENS_PER_BATCH)
    if args.stream_batches:
        dataset = dataset.take(args.stream_batches)
    tokens = 0
    start = time.perf_counter()
    for _, tgt_out in dataset:
        tokens += int((tgt_out.numpy() != 0).sum())
    seconds = time.perf_counter() - start
    return {"target_tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def _base_model(prepared):
    """The base model (compiled as `train` compiles it, on one device) and the prepared
    directory's tokenizers."""
    from keras_transformer import Transformer
    from keras_transformer.config import TransformerConfig
    from keras_transformer.text import load_tokenizer
    from keras_transformer.training import LabelSmoothedCrossEntropy, paper_optimizer

    source, target = (
        load_tokenizer(os.path.join(prepared, "tokenizers", side)) for side in ("source", "target")
    )
    config = TransformerConfig.from_preset(
        "base", src_vocab_size=source.vocab_size, tgt_vocab_size=target.vocab_size
    )
    model = Transformer(**config.to_dict())
    model.compile(optimizer=paper_optimizer(config.d_model), loss=LabelSmoothedCrossEntropy(0.1))
    return model, source, target


class StepClock(keras.callbacks.Callback):
    """The end time of each training batch."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())


def phase_fit(args):
    from keras_transformer.data import shard_dataset

    model, source, target = _base_model(args.prepared)
    dataset = shard_dataset(args.prepared, source, target, tokens_per_batch=TOKENS_PER_BATCH)
    # The batches are read before fit, so that fit's rate is the model's alone.
    batches = list(dataset.take(args.fit_steps + 1))
    tokens = [int((tgt_out.numpy() != 0).sum()) for _, tgt_out in batches]
    clock = StepClock()
    model.fit(
        tf.data.Dataset.from_generator(
            lambda: iter(batches),
            output_signature=(
                (tf.TensorSpec((None, None), tf.int32),) * 2,
                tf.TensorSpec((None, None), tf.int32),
            ),
        ),
        epochs=1,
        verbose=0,
        callbacks=[clock],
    )
    seconds = clock.times[-1] - clock.times[0]  # after the first step, which traces
    return {"steps": len(clock.times) - 1, "tokens_per_s": sum(tokens[1:]) / seconds}


def phase_first_step(args):
    from keras_transformer.data import make_dataset, read_parallel, shard_dataset

    model, source, target = _base_model(args.prepared)
    if args.path == "shards":
        dataset = shard_dataset(args.prepared, source, target, tokens_per_batch=TOKENS_PER_BATCH)
    else:
        dataset = make_dataset(
            read_parallel(args.tsv), source, target, tokens_per_batch=TOKENS_PER_BATCH
        )
    model.fit(dataset.take(1), epochs=1, verbose=0)
    return {"seconds_to_first_step": time.time() - args.launched}


PHASES = {
    "prepare": phase_prepare,
    "stream": phase_stream,
    "fit": phase_fit,
    "first_step": phase_first_step,
}


def _child(phase, **options):
    """Runs a phase in a new process; returns its result with its peak RSS."""
    command = [sys.executable, __file__, "--phase", phase, "--launched", str(time.time())]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    result = subprocess.run(
        command, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    )
    if result.returncode:
        sys.exit(f"{phase} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 2_000_000])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--fit-steps", type=int, default=10)
    parser.add_argument("--stream-batches", type=int, default=0, help="0: a whole pass")
    parser.add_argument("--workdir", default="/tmp/corpus_scale")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--launched", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--tsv", help=argparse.SUPPRESS)
    parser.add_argument("--prepared", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        result = PHASES[args.phase](args)
        print(json.dumps(dict(result, peak_rss_mib=_peak_rss_mib())))
        return

    from keras_transformer.data import write_synthetic_corpus

    os.makedirs(args.workdir, exist_ok=True)
    common = dict(
        workers=args.workers,
        vocab_size=args.vocab_size,
        fit_steps=args.fit_steps,
        stream_batches=args.stream_batches,
    )
    results = {}
    for size in sorted(args.sizes):
        tsv = os.path.join(args.workdir, f"synthetic_{size}.tsv")
        prepared = os.path.join(args.workdir, f"prepared_{size}")
        if not os.path.isfile(tsv):
            write_synthetic_corpus(tsv, size, seed=size)
        results[size] = {
            phase: _child(phase, tsv=tsv, prepared=prepared, **common)
            for phase in ("prepare", "stream")
        }
        for phase, result in results[size].items():
            print(
                f"{size:>10,} pairs  {phase:<8} "
                + ", ".join(
                    f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in result.items()
                )
            )
    smallest, largest = min(results), max(results)
    for phase in ("prepare", "stream"):
        ratio = results[largest][phase]["peak_rss_mib"] / results[smallest][phase]["peak_rss_mib"]
        print(
            f"peak RSS of {phase}, {largest:,} / {smallest:,} pairs: {ratio:.2f} "
            "(issue 15: at most 1.5)"
        )

    tsv = os.path.join(args.workdir, f"synthetic_{largest}.tsv")
    prepared = os.path.join(args.workdir, f"prepared_{largest}")
    fit = _child("fit", tsv=tsv, prepared=prepared, **common)
    streamed = results[largest]["stream"]["tokens_per_s"]
    print(
        f"base model.fit consumes {fit['tokens_per_s']:,.0f} target tokens/s; the stream "
        f"delivers {streamed:,.0f}: {streamed / fit['tokens_per_s']:.1f}× (issue 15: at "
        "least 10×)"
    )
    first = {
        path: _child("first_step", tsv=tsv, prepared=prepared, path=path, **common)
        for path in ("shards", "memory")
    }
    print(
        f"launch to first step, {largest:,} pairs: shards "
        f"{first['shards']['seconds_to_first_step']:.1f} s, in memory "
        f"{first['memory']['seconds_to_first_step']:.1f} s (peak RSS "
        f"{first['shards']['peak_rss_mib']:,.0f} against "
        f"{first['memory']['peak_rss_mib']:,.0f} MiB)"
    )


if __name__ == "__main__":
    main()
