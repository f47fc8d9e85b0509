import numpy as np
import pytest
from reverse_task import train_reverse_model

import keras_transformer as kt

VOCAB_SIZE = 20


@pytest.fixture(scope="session")
def tiny_model():
    """An untrained 2+2 layer model: random but deterministic outputs."""
    import keras

    keras.utils.set_random_seed(1)
    model = kt.Transformer(
        num_layers=2,
        d_model=32,
        num_heads=4,
        d_ff=64,
        src_vocab_size=VOCAB_SIZE,
        tgt_vocab_size=VOCAB_SIZE,
        dropout=0.0,
        max_length=64,
    )
    ids = np.ones((1, 3), np.int32)
    model((ids, ids), training=False)
    return model


@pytest.fixture(scope="session")
def reverse_model():
    return train_reverse_model()


@pytest.fixture
def sources():
    """Three sources of different lengths, 0-padded, and one empty row."""
    return np.array(
        [[5, 6, 7, 0, 0, 0], [9, 10, 11, 12, 13, 14], [4, 8, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]],
        np.int32,
    )
