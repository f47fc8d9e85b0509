"""Where a training step's time goes: `model.fit` on a run's real batches, timed and
profiled op by op.

Builds the model, loss, metrics and optimizer as `keras-transformer train` does for the
run directory's configuration (its tokenizers, its training files, its batching, its
precision and XLA choice), then:

1. times `--steps` steps of `model.fit` after `--steps` steps of warm-up (the same
   shuffled batches in every process, so two code versions with the same batching
   compare on equal data) and prints ms/step and target tokens/s (what two batchings
   compare by);
2. with `--profile DIR`, records `--profile-steps` more steps with `tf.profiler` and
   prints the op time per step by op type and the slowest ops. `--inter-op 1` runs one
   op at a time, so that each op's time is its own: with two inter-op threads an op's
   time includes the waits for a core that the other thread holds.

Usage:

    python benchmarks/real_data.py --pairs fr --budget 300     # makes a run to profile
    python benchmarks/train_profile.py --run-dir runs/real_data/en-fr/library --steps 30
    python benchmarks/train_profile.py --run-dir ... --steps 20 --inter-op 1 \\
        --profile /tmp/train_profile
"""

import argparse
import collections
import glob
import os
import time

import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from keras_transformer import distribute
from keras_transformer.data import make_dataset
from keras_transformer.data.sources import load_corpus
from keras_transformer.model import Transformer
from keras_transformer.runs import read_config
from keras_transformer.text import load_tokenizer
from keras_transformer.training.losses import (
    LabelSmoothedCrossEntropy,
    MaskedAccuracy,
    TargetTokens,
)
from keras_transformer.training.schedule import NoamSchedule, paper_adam


def build(run_dir):
    """The model and the repeated training dataset of `run_dir`, as `train` makes them."""
    model_config, settings, data = read_config(run_dir)
    corpus = load_corpus(data)
    source = load_tokenizer(os.path.join(run_dir, "tokenizers", "source"))
    target = load_tokenizer(os.path.join(run_dir, "tokenizers", "target"))
    precision = distribute.resolve_precision(settings.precision)
    model = distribute.build_in_scope(
        distribute.make_strategy(settings.strategy),
        model_fn=lambda: Transformer(**model_config.to_dict()),
        optimizer_fn=lambda: paper_adam(
            NoamSchedule(model_config.d_model, settings.warmup_steps, settings.learning_rate_scale)
        ),
        loss=LabelSmoothedCrossEntropy(settings.label_smoothing),
        metrics=[MaskedAccuracy(), TargetTokens()],
        jit_compile=settings.jit_compile,
        precision=precision,
    )
    batching = settings.batching(model.jit_compile)
    dataset = make_dataset(corpus.train, source, target, batching).repeat()
    return model, dataset, precision


def op_times(profile_dir, steps):
    """{op type: ms per step} and {op name: ms per step} of the ops inside the training
    function, from the newest trace under `profile_dir`."""
    path = sorted(glob.glob(os.path.join(profile_dir, "plugins", "profile", "*", "*.xplane.pb")))[
        -1
    ]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as handle:
        space.ParseFromString(handle.read())
    by_type, by_name = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = {key: value.name for key, value in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if not name.startswith("StatefulPartitionedCall/"):
                    continue  # the runtime's own spans, not an op of the step
                ms = event.duration_ps / 1e9 / steps
                by_name[name.removeprefix("StatefulPartitionedCall/")] += ms
                by_type[name.rsplit(":", 1)[-1]] += ms
    return by_type, by_name


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, help="a run made by `keras-transformer train`")
    parser.add_argument("--steps", type=int, default=30, help="timed steps, after as many warm-up")
    parser.add_argument("--inter-op", type=int, help="TensorFlow's inter-op threads")
    parser.add_argument("--profile", help="also profile, writing the trace here")
    parser.add_argument("--profile-steps", type=int, default=10)
    parser.add_argument("--top", type=int, default=15, help="rows of each table")
    args = parser.parse_args()
    if args.inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)

    model, dataset, precision = build(args.run_dir)
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=args.steps, epochs=1, verbose=0)
    warm_up = time.perf_counter() - start
    start = time.perf_counter()
    history = model.fit(dataset, steps_per_epoch=args.steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    tokens = history.history["target_tokens"][-1]
    print(
        f"{precision}, jit_compile={model.jit_compile}: warm-up {warm_up:.1f} s, then "
        f"{1000 * seconds / args.steps:.0f} ms/step and {tokens / seconds:.0f} target "
        f"tokens/s over {args.steps} steps",
        flush=True,
    )
    if not args.profile:
        return
    tf.profiler.experimental.start(args.profile)
    model.fit(dataset, steps_per_epoch=args.profile_steps, epochs=1, verbose=0)
    tf.profiler.experimental.stop()
    by_type, by_name = op_times(args.profile, args.profile_steps)
    print(f"op time per step: {sum(by_type.values()):.0f} ms in all")
    for title, table in (("by op type", by_type), ("slowest ops", by_name)):
        print(f"\n{title}:")
        for name, ms in table.most_common(args.top):
            print(f"  {ms:8.1f} ms  {name}")


if __name__ == "__main__":
    main()
