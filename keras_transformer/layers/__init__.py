"""The paper's building blocks as Keras 3 layers.

May import from keras_transformer: constants, errors.
Third-party: keras, numpy. Nothing above the layers (config, model, training): the
model is built from them, never the other way round.
"""

from keras_transformer.layers.attention import MultiHeadAttention, scaled_dot_product_attention
from keras_transformer.layers.decoder import Decoder, DecoderLayer
from keras_transformer.layers.embedding import (
    SinusoidalPositionalEncoding,
    TokenEmbedding,
    sinusoidal_table,
)
from keras_transformer.layers.encoder import Encoder, EncoderLayer
from keras_transformer.layers.feed_forward import PositionwiseFeedForward
from keras_transformer.layers.masks import causal_mask, merge_masks, padding_mask
from keras_transformer.layers.residual import AddNorm
