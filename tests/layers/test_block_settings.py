"""The shared arguments of the encoder and decoder layers (BlockSettings), the
initializer clone, and the model handing its config down to every layer."""

import dataclasses

import keras
import numpy as np
import pytest

import keras_transformer as kt
from keras_transformer.errors import InputError
from keras_transformer.layers import Decoder, DecoderLayer, Encoder, EncoderLayer
from keras_transformer.layers.block_settings import BlockSettings
from keras_transformer.layers.initializers import clone_initializer


@pytest.mark.parametrize("layer_class", [EncoderLayer, DecoderLayer])
@pytest.mark.parametrize(
    "bad,match",
    [
        (dict(dropout=1.5), r"dropout must be in \[0, 1\)"),
        (dict(d_model=8, num_heads=3), "d_model must be divisible by num_heads"),
        (dict(activation="tanh"), "activation must be one of"),
    ],
)
def test_layers_validate_their_settings(layer_class, bad, match):
    """Catches: the range check on dropout dropped from BlockSettings.__post_init__
    (an encoder layer built with dropout=1.5 would drop everything at train time)."""
    with pytest.raises(InputError, match=match):
        layer_class(**dict(dict(d_model=8, num_heads=2, d_ff=16), **bad))


def test_layer_defaults_are_the_configs():
    """Catches: a default restated in a layer (EncoderLayer or TransformerConfig) that
    drifts from BlockSettings', e.g. TransformerConfig.dropout = 0.2."""
    layer = EncoderLayer()
    assert layer.settings == BlockSettings() == kt.TransformerConfig().block_settings()
    assert layer.get_config()["dropout"] == 0.1 and layer.get_config()["num_heads"] == 8


def test_the_model_hands_its_config_to_every_layer():
    """Catches: Transformer building its stacks from anything but its own config (e.g.
    stack_args without the block settings, so every layer gets the defaults)."""
    model = kt.Transformer(
        num_layers=2,
        d_model=8,
        num_heads=2,
        d_ff=16,
        src_vocab_size=11,
        tgt_vocab_size=11,
        dropout=0.2,
        attention_dropout=0.1,
        norm_first=True,
        activation="gelu",
        layer_norm_epsilon=1e-5,
    )
    settings = model.config.block_settings()
    layers = model.encoder.encoder_layers + model.decoder.decoder_layers
    assert [layer.settings for layer in layers] == [settings] * 4
    assert model.encoder.settings == model.decoder.settings == settings
    assert layers[-1].feed_forward_add_norm.epsilon == 1e-5
    assert layers[-1].cross_attention.dropout == 0.1 and layers[0].feed_forward.activation == "gelu"


def test_stacks_round_trip_every_setting():
    """Catches: SettingsLayer.get_config leaving out the settings (a reloaded stack
    would silently take the paper's defaults)."""
    decoder = Decoder(num_layers=1, d_model=8, num_heads=2, d_ff=16, layer_norm_epsilon=1e-3)
    clone = Decoder.from_config(decoder.get_config())
    assert clone.settings == decoder.settings and clone.num_layers == 1
    assert clone.get_config().keys() >= {f.name for f in dataclasses.fields(BlockSettings)}
    assert Encoder.from_config(Encoder(num_layers=1, norm_first=True).get_config()).final_norm


def test_clone_initializer_copies_and_offsets_the_seed():
    """Catches: clone_initializer ignoring seed_offset (W^Q, W^K, W^V and W^O of a
    seeded attention layer would start equal)."""
    seeded = keras.initializers.GlorotUniform(seed=7)
    first = np.asarray(clone_initializer(seeded)((4, 4)))
    assert clone_initializer(seeded) is not seeded
    np.testing.assert_array_equal(np.asarray(clone_initializer(seeded)((4, 4))), first)
    assert not np.allclose(np.asarray(clone_initializer(seeded, 1)((4, 4))), first)
    assert clone_initializer(seeded, 1).get_config()["seed"] == 8
    unseeded = clone_initializer(keras.initializers.Zeros(), 3)
    assert isinstance(unseeded, keras.initializers.Zeros)
