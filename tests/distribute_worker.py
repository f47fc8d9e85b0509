"""One training process for tests/test_distribute.py (not a test module itself).

Logical CPU devices and TF_CONFIG must be in place before TensorFlow initialises, so
each distributed case runs this script in a fresh interpreter:

    python tests/distribute_worker.py --strategy mirrored --cpus 2 --out weights.npz

It trains a tiny Transformer on fixed synthetic batches and saves its weights (and the
optimizer's iteration count) with np.savez for the parent to compare.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

VOCAB = 20
SRC_LEN = 7
TGT_LEN = 6


def tiny_model():
    import keras_transformer as kt

    return kt.Transformer(num_layers=1, d_model=16, num_heads=2, d_ff=32, src_vocab_size=VOCAB,
                          tgt_vocab_size=VOCAB, dropout=0.0, max_length=16)


def make_batches(sizes, seed=0):
    """Fixed ((src, tgt_in), tgt_out) batches of the given sizes. In every batch the
    first half of the rows keeps 2 target tokens and the rest keeps all TGT_LEN, so the
    replicas of a 2-way split see different numbers of non-padding tokens (as bucketed
    or trailing batches do) and a mean of per-replica means would differ from the
    global token mean."""
    import numpy as np

    rng = np.random.default_rng(seed)
    batches = []
    for size in sizes:
        src = rng.integers(1, VOCAB, size=(size, SRC_LEN), dtype=np.int32)
        tgt = rng.integers(1, VOCAB, size=(size, TGT_LEN + 1), dtype=np.int32)
        tgt[: (size + 1) // 2, 3:] = 0
        batches.append(((src, tgt[:, :-1]), tgt[:, 1:]))
    return batches


def dataset(sizes, repeat=False):
    import tensorflow as tf

    batches = make_batches(sizes)
    spec = tf.TensorSpec((None, None), tf.int32)
    ds = tf.data.Dataset.from_generator(
        lambda: iter(batches), output_signature=((spec, spec), spec))
    if repeat:
        ds = ds.repeat()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def save(model, path):
    import numpy as np

    arrays = {f"w{i:03d}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    arrays["iterations"] = np.asarray(int(model.optimizer.iterations.numpy()))
    np.savez(path, **arrays)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--strategy", default="default")
    parser.add_argument("--cpus", type=int, default=1)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--loss", choices=("global", "plain"), default="global")
    parser.add_argument("--sizes", default="8,8,3,1", help="global batch sizes, in order")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=None, help="steps per epoch (repeats)")
    parser.add_argument("--jit", action="store_true")
    parser.add_argument("--backup", help="BackupAndRestore directory")
    parser.add_argument("--csv", help="CSVLogger file (appended)")
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds after each step")
    parser.add_argument("--history", help="json file for the per-epoch losses")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    from keras_transformer import distribute

    if args.cpus > 1:
        distribute.split_logical_cpus(args.cpus)
    import keras

    import keras_transformer as kt

    distribute.set_precision(args.precision)
    keras.utils.set_random_seed(0)
    strategy = distribute.make_strategy(args.strategy)
    optimizer = (lambda: keras.optimizers.SGD(args.lr)) if args.optimizer == "sgd" else (
        lambda: keras.optimizers.Adam(args.lr))
    model = distribute.build_in_scope(
        strategy, tiny_model, optimizer, kt.training.LabelSmoothedCrossEntropy(0.1),
        jit_compile=args.jit, precision=args.precision,
        global_token_mean=args.loss == "global")

    callbacks = []
    if args.backup:
        callbacks.append(keras.callbacks.BackupAndRestore(args.backup, delete_checkpoint=False))
    if args.csv:
        callbacks.append(keras.callbacks.CSVLogger(args.csv, append=True))
    if args.sleep:
        callbacks.append(keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: time.sleep(args.sleep)))
    sizes = [int(s) for s in args.sizes.split(",")]
    history = model.fit(dataset(sizes, repeat=args.steps is not None), epochs=args.epochs,
                        steps_per_epoch=args.steps, callbacks=callbacks, verbose=0)
    if args.history:
        with open(args.history, "w") as f:
            json.dump(dict(history.history, replicas=strategy.num_replicas_in_sync,
                           optimizer=type(model.optimizer).__name__), f)
    save(model, args.out)
    print(f"done: {strategy.num_replicas_in_sync} replicas, "
          f"{int(model.optimizer.iterations.numpy())} steps", flush=True)


if __name__ == "__main__":
    sys.exit(main())
