"""One training process for tests/test_distribute.py (not a test module itself).

Logical CPU devices and TF_CONFIG must be in place before TensorFlow initialises, so
each distributed case runs this script in a fresh interpreter:

    python tests/distribute_worker.py --strategy mirrored --cpus 2 --out weights.npz

It trains a tiny Transformer on fixed synthetic batches and saves its weights (and the
optimizer's iteration count) with np.savez for the parent to compare. With `--prepared
DIR` it trains instead on this worker's share of a prepared corpus, as `train --data
prepared` reads it, and first writes the pairs and the number of batches of one pass
over that share to `--pairs-out` (JSON).
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


def tiny_model(vocab=VOCAB, max_length=16):
    import keras_transformer as kt

    return kt.Transformer(
        num_layers=1,
        d_model=16,
        num_heads=2,
        d_ff=32,
        src_vocab_size=vocab,
        tgt_vocab_size=vocab,
        dropout=0.0,
        max_length=max_length,
    )


PREPARED_MAX_LENGTH = 40


def prepared_dataset(directory, strategy_name, pairs_out):
    """This worker's batches of a prepared corpus (`runs._prepared_datasets`), after writing
    the (src, tgt_out) id lists of one pass over them, and the number of batches, to
    `pairs_out`."""
    import numpy as np

    from keras_transformer import runs
    from keras_transformer.data import BatchSettings, PreparedCorpus

    settings = runs.TrainingSettings(
        strategy=strategy_name, max_length=PREPARED_MAX_LENGTH, tokens_per_batch=256
    )
    train_data, _ = runs._prepared_datasets(
        PreparedCorpus(directory),
        settings,
        BatchSettings(tokens_per_batch=256, max_length=PREPARED_MAX_LENGTH),
    )
    pairs, batches = [], 0
    for (src, _), tgt_out in train_data:
        batches += 1
        for s, t in zip(np.asarray(src).tolist(), np.asarray(tgt_out).tolist()):
            pairs.append([[i for i in s if i], [i for i in t if i]])
    with open(pairs_out, "w") as f:
        json.dump({"pairs": pairs, "batches": batches}, f)
    return train_data


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
        lambda: iter(batches), output_signature=((spec, spec), spec)
    )
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
    parser.add_argument("--prepared", help="a directory `prepare` wrote")
    parser.add_argument("--pairs-out", help="with --prepared: JSON file of the pairs read")
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
    optimizer = (
        (lambda: keras.optimizers.SGD(args.lr))
        if args.optimizer == "sgd"
        else (lambda: keras.optimizers.Adam(args.lr))
    )
    model_fn = tiny_model
    if args.prepared:
        from keras_transformer.text import load_tokenizer

        vocab = load_tokenizer(os.path.join(args.prepared, "tokenizers", "source")).vocab_size
        model_fn = lambda: tiny_model(vocab, PREPARED_MAX_LENGTH + 1)  # noqa: E731
    model = distribute.build_in_scope(
        strategy,
        model_fn,
        optimizer,
        kt.training.LabelSmoothedCrossEntropy(0.1),
        jit_compile=args.jit,
        precision=args.precision,
        global_token_mean=args.loss == "global",
    )

    callbacks = []
    if args.backup:
        callbacks.append(keras.callbacks.BackupAndRestore(args.backup, delete_checkpoint=False))
    if args.csv:
        callbacks.append(keras.callbacks.CSVLogger(args.csv, append=True))
    if args.sleep:
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_train_batch_end=lambda batch, logs: time.sleep(args.sleep)
            )
        )
    sizes = [int(s) for s in args.sizes.split(",")]
    data = (
        prepared_dataset(args.prepared, args.strategy, args.pairs_out)
        if args.prepared
        else dataset(sizes, repeat=args.steps is not None)
    )
    history = model.fit(
        data, epochs=args.epochs, steps_per_epoch=args.steps, callbacks=callbacks, verbose=0
    )
    if args.history:
        with open(args.history, "w") as f:
            json.dump(
                dict(
                    history.history,
                    replicas=strategy.num_replicas_in_sync,
                    optimizer=type(model.optimizer).__name__,
                ),
                f,
            )
    save(model, args.out)
    print(
        f"done: {strategy.num_replicas_in_sync} replicas, "
        f"{int(model.optimizer.iterations.numpy())} steps",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
