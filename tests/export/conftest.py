"""A tiny English -> French numbers translator, trained once and shared by the export tests.

kt.data.numbers_corpus with French targets ("huit mille cent soixante et un"): targets
of several words, so that BLEU means something. Two layers of d_model 64 learn it in
well under a minute on two CPU cores.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_transformer as kt
from keras_transformer.data import numbers_corpus
from keras_transformer.text import WordPieceTokenizer
from keras_transformer.translator import Translator

TRAIN_SIZE = 2500
DEV_SIZE = 100
EPOCHS = 6


class Trained:
    """The trained model, its tokenizer, translators and the dev split."""

    def __init__(self, model, tokenizer, dev):
        self.model = model
        self.tokenizer = tokenizer
        self.dev_sources = [source for source, _ in dev]
        self.dev_references = [reference for _, reference in dev]
        # jit_compile=False: XLA compilation would cost more than these tiny batches.
        self.beam_translator = Translator(model, tokenizer, tokenizer, jit_compile=False)
        self.greedy_translator = Translator(model, tokenizer, tokenizer, beam_size=1,
                                            jit_compile=False)

    def src_ids(self, sentences):
        return self.tokenizer.tokenize(sentences).to_tensor(0).numpy().astype(np.int32)


@pytest.fixture(scope="session")
def trained():
    keras.utils.set_random_seed(0)
    corpus = numbers_corpus("fr", train_size=TRAIN_SIZE, dev_size=DEV_SIZE, test_size=0,
                            max_number=9999)
    sources = [source for source, _ in corpus.train]
    targets = [target for _, target in corpus.train]
    tokenizer = WordPieceTokenizer.train(sources + targets, vocab_size=200)
    src = tokenizer.tokenize(sources).to_tensor(0).numpy()
    tgt = tokenizer.tokenize(targets)
    rows = tgt.nrows()
    tgt = tf.concat([tf.fill([rows, 1], tokenizer.start_id), tgt,
                     tf.fill([rows, 1], tokenizer.end_id)], axis=1).to_tensor(0).numpy()
    vocab_size = tokenizer.vocab_size
    model = kt.Transformer(num_layers=2, d_model=64, num_heads=4, d_ff=128,
                           src_vocab_size=vocab_size, tgt_vocab_size=vocab_size,
                           dropout=0.0, max_length=48)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=kt.training.LabelSmoothedCrossEntropy(0.0))
    model.fit((src, tgt[:, :-1]), tgt[:, 1:], batch_size=64, epochs=EPOCHS, verbose=0)
    return Trained(model, tokenizer, corpus.dev)
