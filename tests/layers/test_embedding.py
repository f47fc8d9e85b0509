import math

import numpy as np
import pytest

from keras_transformer.layers import SinusoidalPositionalEncoding, TokenEmbedding


def paper_formula(length, d_model):
    pe = np.zeros((length, d_model))
    for pos in range(length):
        for i in range(d_model // 2):
            pe[pos, 2 * i] = math.sin(pos / 10000 ** (2 * i / d_model))
            pe[pos, 2 * i + 1] = math.cos(pos / 10000 ** (2 * i / d_model))
    return pe


def test_positional_encoding_equals_the_papers_formula():
    layer = SinusoidalPositionalEncoding(max_length=50)
    x = np.zeros((2, 50, 16), "float32")
    np.testing.assert_allclose(np.asarray(layer(x)), paper_formula(50, 16), atol=1e-6)


def test_positional_encoding_start_offset():
    layer = SinusoidalPositionalEncoding(max_length=20)
    x = np.zeros((1, 3, 8), "float32")
    np.testing.assert_allclose(
        np.asarray(layer(x, start_index=5)), paper_formula(20, 8)[5:8], atol=1e-6
    )


def test_positional_encoding_past_max_length_is_a_clear_error():
    layer = SinusoidalPositionalEncoding(max_length=10)
    with pytest.raises(ValueError, match="max_length=10"):
        layer(np.zeros((1, 11, 8), "float32"))
    with pytest.raises(ValueError, match="starting at 8"):
        layer(np.zeros((1, 3, 8), "float32"), start_index=8)


def test_token_embedding_scales_and_ties():
    emb = TokenEmbedding(vocab_size=10, d_model=4)
    ids = np.array([[1, 2, 0]])
    x = np.asarray(emb(ids))
    table = np.asarray(emb.embeddings)
    np.testing.assert_allclose(x, table[ids] * 2.0, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(emb.attend(x)), x @ table.T, rtol=1e-5, atol=1e-6)
    # N(0, d_model^-0.5) so that E·√d_model has unit scale.
    big = TokenEmbedding(vocab_size=4000, d_model=64)
    big.build()
    assert abs(np.asarray(big.embeddings).std() - 64**-0.5) < 0.01


@pytest.mark.parametrize(
    "layer", [SinusoidalPositionalEncoding(max_length=7), TokenEmbedding(vocab_size=5, d_model=2)]
)
def test_config_round_trip(layer):
    assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()
