"""AddNorm, the feed-forward network, encoder and decoder layers and stacks."""

import keras
import numpy as np
import pytest

from keras_transformer.layers import (
    AddNorm,
    Decoder,
    DecoderLayer,
    Encoder,
    EncoderLayer,
    PositionwiseFeedForward,
    causal_mask,
    merge_masks,
    padding_mask,
)


def layer_norm(x, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def test_add_norm_post_norm_equals_formula():
    rng = np.random.default_rng(0)
    x, y = (
        rng.normal(size=(2, 3, 8)).astype("float32"),
        rng.normal(size=(2, 3, 8)).astype("float32"),
    )
    add_norm = AddNorm(dropout=0.5)
    np.testing.assert_allclose(
        np.asarray(add_norm(x, y, training=False)), layer_norm(x + y), atol=1e-5
    )
    np.testing.assert_array_equal(np.asarray(add_norm.sublayer_input(x)), x)


def test_add_norm_pre_norm_equals_formula():
    rng = np.random.default_rng(1)
    x, y = (
        rng.normal(size=(2, 3, 8)).astype("float32"),
        rng.normal(size=(2, 3, 8)).astype("float32"),
    )
    add_norm = AddNorm(dropout=0.0, norm_first=True)
    np.testing.assert_allclose(np.asarray(add_norm(x, y)), x + y, atol=1e-6)
    np.testing.assert_allclose(np.asarray(add_norm.sublayer_input(x)), layer_norm(x), atol=1e-5)


def test_add_norm_applies_dropout_to_the_sublayer_only():
    x = np.ones((1, 100, 8), "float32")
    y = np.ones((1, 100, 8), "float32")
    out = np.asarray(AddNorm(dropout=0.5, norm_first=True)(x, y, training=True))
    assert set(np.unique(out)) == {1.0, 3.0}  # x + 0 or x + y / (1 - p)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_feed_forward_equals_formula(activation):
    rng = np.random.default_rng(2)
    ffn = PositionwiseFeedForward(d_model=8, d_ff=32, activation=activation)
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    out = np.asarray(ffn(x))
    w1, b1 = (np.asarray(w) for w in ffn.inner.weights)
    w2, b2 = (np.asarray(w) for w in ffn.outer.weights)
    hidden = x @ w1 + b1
    hidden = (
        np.maximum(0, hidden)
        if activation == "relu"
        else np.asarray(keras.activations.gelu(hidden))
    )
    np.testing.assert_allclose(out, hidden @ w2 + b2, atol=1e-5)
    assert ffn.count_params() == 8 * 32 + 32 + 32 * 8 + 8


def test_masks():
    ids = np.array([[5, 6, 0]])
    np.testing.assert_array_equal(np.asarray(padding_mask(ids)), [[[[True, True, False]]]])
    np.testing.assert_array_equal(np.asarray(causal_mask(3))[0, 0], np.tril(np.ones((3, 3), bool)))
    merged = np.asarray(merge_masks(causal_mask(3), padding_mask(ids)))
    assert merged.shape == (1, 1, 3, 3) and not merged[0, 0, 2, 2] and merged[0, 0, 2, 1]
    assert merge_masks(None, None) is None


def test_pre_norm_stacks_end_with_a_final_layer_norm():
    post = Encoder(num_layers=2, d_model=8, num_heads=2, d_ff=16)
    pre = Encoder(num_layers=2, d_model=8, num_heads=2, d_ff=16, norm_first=True)
    post.build((None, None, 8))
    pre.build((None, None, 8))
    assert post.final_norm is None and pre.final_norm is not None
    assert pre.count_params() == post.count_params() + 2 * 8


LAYERS = [
    AddNorm(dropout=0.2, norm_first=True, epsilon=1e-5),
    PositionwiseFeedForward(d_model=8, d_ff=16, activation="gelu"),
    EncoderLayer(d_model=8, num_heads=2, d_ff=16, dropout=0.2, norm_first=True),
    DecoderLayer(d_model=8, num_heads=2, d_ff=16, attention_dropout=0.1),
    Encoder(num_layers=3, d_model=8, num_heads=2, d_ff=16),
    Decoder(num_layers=2, d_model=8, num_heads=4, d_ff=16, activation="gelu"),
]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    config = layer.get_config()
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer) and clone.get_config() == config


def test_decoder_shapes_and_cross_attention_weights():
    decoder = Decoder(num_layers=2, d_model=8, num_heads=2, d_ff=16)
    x = np.zeros((3, 4, 8), "float32")
    memory = np.zeros((3, 6, 8), "float32")
    y, weights = decoder(x, memory, self_mask=causal_mask(4), return_attention_scores=True)
    assert y.shape == (3, 4, 8) and len(weights) == 2 and weights[0].shape == (3, 2, 4, 6)
