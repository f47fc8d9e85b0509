"""The encoder (§3.1): N identical layers of self-attention and feed-forward.

x = AddNorm(x, MultiHead(x, x, x))
x = AddNorm(x, FFN(x))
"""

import dataclasses

import keras

from keras_transformer.layers.attention import MultiHeadAttention
from keras_transformer.layers.block_settings import SettingsLayer
from keras_transformer.layers.feed_forward import PositionwiseFeedForward
from keras_transformer.layers.residual import AddNorm, final_norm


@keras.saving.register_keras_serializable(package="keras_transformer")
class EncoderLayer(SettingsLayer):
    """One encoder layer: multi-head self-attention, then the feed-forward network.

    Args: the fields of `BlockSettings` (d_model, num_heads, d_ff, dropout,
    attention_dropout, norm_first, activation, layer_norm_epsilon), as keywords.

    Call arguments:
        x: (batch, src_len, d_model).
        attention_mask: bool (batch, 1, 1, src_len), True at real tokens.
        training: enables dropout.
        return_attention_scores: also return (batch, h, src_len, src_len) weights.

    Example:
    >>> from keras_transformer.layers.masks import padding_mask
    >>> src_ids = np.array([[5, 6, 7, 0]])            # 0 is padding
    >>> x = keras.random.normal((1, 4, 512))          # the embedded source
    >>> layer = EncoderLayer(d_model=512, num_heads=8, d_ff=2048)
    >>> y = layer(x, attention_mask=padding_mask(src_ids))
    >>> tuple(y.shape)
    (1, 4, 512)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        settings, policy = self.settings, self.dtype_policy
        self.self_attention = MultiHeadAttention(
            settings.num_heads,
            settings.d_model,
            dropout=settings.attention_dropout,
            dtype=policy,
            name="self_attention",
        )
        self.self_attention_add_norm = AddNorm.from_settings(
            settings, dtype=policy, name="self_attention_add_norm"
        )
        self.feed_forward = PositionwiseFeedForward(
            settings.d_model, settings.d_ff, settings.activation, dtype=policy, name="feed_forward"
        )
        self.feed_forward_add_norm = AddNorm.from_settings(
            settings, dtype=policy, name="feed_forward_add_norm"
        )

    def build(self, x_shape):
        self.self_attention.build(x_shape)
        self.self_attention_add_norm.build(x_shape)
        self.feed_forward.build(x_shape)
        self.feed_forward_add_norm.build(x_shape)
        self.built = True

    def call(self, x, attention_mask=None, training=None, return_attention_scores=False):
        attended, weights = self.self_attention(
            self.self_attention_add_norm.sublayer_input(x),
            attention_mask=attention_mask,
            training=training,
            return_attention_scores=True,
        )
        x = self.self_attention_add_norm(x, attended, training=training)
        x = self.feed_forward_add_norm(
            x, self.feed_forward(self.feed_forward_add_norm.sublayer_input(x)), training=training
        )
        return (x, weights) if return_attention_scores else x

    def compute_output_shape(self, x_shape):
        return x_shape


@keras.saving.register_keras_serializable(package="keras_transformer")
class Encoder(SettingsLayer):
    """A stack of N `EncoderLayer`s; pre-norm stacks end with a final LayerNorm.

    Args:
        num_layers: N.
        The other arguments are those of `EncoderLayer`.

    Shapes: (batch, src_len, d_model) -> (batch, src_len, d_model). With
    `return_attention_scores=True` also a list of N weights (batch, h, src_len, src_len).

    Example:
    >>> from keras_transformer.layers.masks import padding_mask
    >>> src_ids = np.array([[5, 6, 7, 0]])            # 0 is padding
    >>> embedded_src = keras.random.normal((1, 4, 512))
    >>> encoder = Encoder(num_layers=6, d_model=512, num_heads=8, d_ff=2048)
    >>> memory = encoder(embedded_src, attention_mask=padding_mask(src_ids))
    >>> tuple(memory.shape)
    (1, 4, 512)
    """

    def __init__(self, num_layers: int, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = num_layers
        self.encoder_layers = [
            EncoderLayer(
                **dataclasses.asdict(self.settings), dtype=self.dtype_policy, name=f"layer_{i}"
            )
            for i in range(num_layers)
        ]
        self.final_norm = final_norm(self.settings, self.dtype_policy)

    def build(self, x_shape):
        for layer in self.encoder_layers:
            layer.build(x_shape)
        if self.final_norm is not None:
            self.final_norm.build(x_shape)
        self.built = True

    def call(self, x, attention_mask=None, training=None, return_attention_scores=False):
        all_weights = []
        for layer in self.encoder_layers:
            x, weights = layer(
                x, attention_mask=attention_mask, training=training, return_attention_scores=True
            )
            all_weights.append(weights)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return (x, all_weights) if return_attention_scores else x

    def compute_output_shape(self, x_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(num_layers=self.num_layers)
        return config
