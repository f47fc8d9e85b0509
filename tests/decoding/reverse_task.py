"""A tiny Transformer trained to reverse sequences, shared by the decoding and
Translator tests (trained once per test session: `train_reverse_model` is cached)."""

import functools

import keras
import numpy as np

import keras_transformer as kt

VOCAB_SIZE = 16
START_ID, END_ID = 2, 3


def reverse_examples(count, rng, min_length=3, max_length=7):
    """Random sequences of ids 4..VOCAB_SIZE-1 and their reversals, 0-padded."""
    src = np.zeros((count, max_length), np.int32)
    tgt = np.zeros((count, max_length + 2), np.int32)
    for i in range(count):
        length = rng.integers(min_length, max_length + 1)
        seq = rng.integers(4, VOCAB_SIZE, size=length)
        src[i, :length] = seq
        tgt[i, : length + 2] = [START_ID, *seq[::-1], END_ID]
    return src, tgt


@functools.cache
def train_reverse_model(num_examples=6000, epochs=6, batch_size=32, seed=0):
    """A 2+2 layer, d_model 64 model that reverses its input (~30 s on 2 CPU cores)."""
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = kt.Transformer(
        num_layers=2,
        d_model=64,
        num_heads=4,
        d_ff=128,
        src_vocab_size=VOCAB_SIZE,
        tgt_vocab_size=VOCAB_SIZE,
        dropout=0.0,
        max_length=64,
    )
    src, tgt = reverse_examples(num_examples, rng)
    # Decaying to 0 settles the last few percent of sequences that a constant rate
    # keeps flipping.
    learning_rate = keras.optimizers.schedules.CosineDecay(
        1e-3, decay_steps=epochs * (num_examples // batch_size)
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=kt.training.LabelSmoothedCrossEntropy(0.0),
        jit_compile=True,
    )
    model.fit((src, tgt[:, :-1]), tgt[:, 1:], batch_size=batch_size, epochs=epochs, verbose=0)
    return model
