"""Trains the tiny English -> French numbers translator of the export tests.

kt.data.numbers_corpus with French targets ("huit mille cent soixante et un"): targets
of several words, so that BLEU means something. Two layers of d_model 64 learn it in
well under a minute on two CPU cores. benchmarks/export_latency.py times the same model.
"""

import keras
import tensorflow as tf

import keras_transformer as kt
from keras_transformer.data import numbers_corpus
from keras_transformer.text import WordPieceTokenizer


def train_numbers_model(epochs, train_size=2500, dev_size=100):
    """Returns (model, tokenizer, dev pairs), one WordPiece vocabulary for both sides."""
    keras.utils.set_random_seed(0)
    corpus = numbers_corpus(
        "fr", train_size=train_size, dev_size=dev_size, test_size=0, max_number=9999
    )
    sources = [source for source, _ in corpus.train]
    targets = [target for _, target in corpus.train]
    tokenizer = WordPieceTokenizer.train(sources + targets, vocab_size=200)
    src = tokenizer.tokenize(sources).to_tensor(0).numpy()
    tgt = tokenizer.tokenize(targets)
    rows = tgt.nrows()
    tgt = (
        tf.concat(
            [tf.fill([rows, 1], tokenizer.start_id), tgt, tf.fill([rows, 1], tokenizer.end_id)],
            axis=1,
        )
        .to_tensor(0)
        .numpy()
    )
    vocab_size = tokenizer.vocab_size
    model = kt.Transformer(
        num_layers=2,
        d_model=64,
        num_heads=4,
        d_ff=128,
        src_vocab_size=vocab_size,
        tgt_vocab_size=vocab_size,
        dropout=0.0,
        max_length=48,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3), loss=kt.training.LabelSmoothedCrossEntropy(0.0)
    )
    model.fit((src, tgt[:, :-1]), tgt[:, 1:], batch_size=64, epochs=epochs, verbose=0)
    return model, tokenizer, corpus.dev
