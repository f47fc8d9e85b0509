"""Decoding latency: the cached, fixed-shape loops against re-decoding the prefix.

Config: 2+2 layers, d_model 256, 4 heads, d_ff 1024, vocabulary 8000 (random
weights), a batch of 32 sources of 64 tokens, 64 output tokens forced (END forbidden
before 64 tokens, at most 64).

    (a) baseline: the TensorFlow tutorial's Translator style: one tf.function traced
        with dynamic shapes, a growing tf.TensorArray prefix, and the whole decoder run
        on the prefix at every step (the source is encoded once);
    (a') for reference, the tutorial's loop exactly: the whole Transformer, encoder
        included, run on (source, prefix) at every step;
    (b) kt.decoding.greedy_search: cached greedy loop under XLA;
    (c) kt.decoding.beam_search, beam 4, under XLA.

After a warm-up, the runs are timed in turns (a, a', b, c, a, a', ...) so that a change
in the shared machine's load falls on all of them; prints the median and the fastest run
of each, a/b (goal >= 20x) and c/b (goal <= 3x) from the medians.

    python benchmarks/decode_latency.py [--repeats 5]
"""

import argparse
import statistics
import time

import numpy as np
import tensorflow as tf

import keras_transformer as kt
from keras_transformer import decoding

BATCH, SOURCE_LENGTH, OUTPUT_LENGTH, VOCAB_SIZE = 32, 64, 64, 8000
START_ID = 2


def build_model():
    model = kt.Transformer(
        num_layers=2,
        d_model=256,
        num_heads=4,
        d_ff=1024,
        src_vocab_size=VOCAB_SIZE,
        tgt_vocab_size=VOCAB_SIZE,
        dropout=0.0,
        max_length=128,
    )
    ids = np.ones((1, 4), np.int32)
    model((ids, ids), training=False)
    return model


def prefix_baseline(model):
    """The tutorial's loop: no cache, the decoder re-reads the whole prefix each step."""

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def translate(src_ids):
        memory, memory_mask = model.encode(src_ids, training=False)
        output = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
        output = output.write(0, tf.fill([tf.shape(src_ids)[0]], START_ID))
        for i in tf.range(OUTPUT_LENGTH):
            prefix = tf.transpose(output.stack())
            logits = model.decode(prefix, memory, memory_mask, training=False)[:, -1, :]
            output = output.write(i + 1, tf.argmax(logits, axis=-1, output_type=tf.int32))
        return tf.transpose(output.stack())[:, 1:]

    return translate


def tutorial_baseline(model):
    """The tutorial's loop exactly: the whole model, encoder included, on every prefix."""

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def translate(src_ids):
        output = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
        output = output.write(0, tf.fill([tf.shape(src_ids)[0]], START_ID))
        for i in tf.range(OUTPUT_LENGTH):
            prefix = tf.transpose(output.stack())
            logits = model((src_ids, prefix), training=False)[:, -1, :]
            output = output.write(i + 1, tf.argmax(logits, axis=-1, output_type=tf.int32))
        return tf.transpose(output.stack())[:, 1:]

    return translate


def timed_in_turns(runs, repeats):
    """{name: run} -> {name: list of seconds}, after one warm-up call of each (tracing
    and XLA compilation); the runs take turns so that load changes hit them alike."""
    for run in runs.values():
        run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            tf.nest.map_structure(lambda t: t.numpy(), run())
            times[name].append(time.perf_counter() - started)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model = build_model()
    src = tf.constant(
        np.random.default_rng(0).integers(4, VOCAB_SIZE, size=(BATCH, SOURCE_LENGTH)), tf.int32
    )
    forced = dict(max_length=OUTPUT_LENGTH, min_length=OUTPUT_LENGTH)
    baseline, tutorial = prefix_baseline(model), tutorial_baseline(model)
    runs = {
        "(a) prefix re-decoding, tf.function": lambda: baseline(src),
        "(a') tutorial loop, encoder every step": lambda: tutorial(src),
        "(b) cached greedy, XLA": lambda: decoding.greedy_search(model, src, **forced),
        "(c) cached beam 4, XLA": lambda: decoding.beam_search(model, src, beam_size=4, **forced),
    }
    ids, _ = decoding.greedy_search(model, src, **forced)
    assert ids.shape == (BATCH, OUTPUT_LENGTH), ids.shape
    np.testing.assert_array_equal(ids, baseline(src), err_msg="(a) and (b) disagree")
    print(
        f"batch {BATCH} × {SOURCE_LENGTH} source tokens -> {OUTPUT_LENGTH} output tokens; "
        f"{args.repeats} runs each after a warm-up; {tf.config.list_physical_devices()}"
    )
    times = timed_in_turns(runs, args.repeats)
    median = {name: statistics.median(seconds) for name, seconds in times.items()}
    for name, seconds in times.items():
        print(
            f"  {name:40s} median {median[name] * 1000:8.1f} ms   fastest "
            f"{min(seconds) * 1000:8.1f} ms"
        )
    a, tutorial_a, b, c = median.values()
    print(
        f"a/b = {a / b:.1f}x (goal >= 20x)    c/b = {c / b:.2f}x (goal <= 3x)    "
        f"a'/b = {tutorial_a / b:.1f}x"
    )


if __name__ == "__main__":
    main()
