"""The encoder (§3.1): N identical layers of self-attention and feed-forward.

    x = AddNorm(x, MultiHead(x, x, x))
    x = AddNorm(x, FFN(x))
"""

import keras

from keras_transformer.layers.attention import MultiHeadAttention
from keras_transformer.layers.feed_forward import PositionwiseFeedForward
from keras_transformer.layers.residual import AddNorm


@keras.saving.register_keras_serializable(package="keras_transformer")
class EncoderLayer(keras.layers.Layer):
    """One encoder layer: multi-head self-attention, then the feed-forward network.

    Args:
        d_model, num_heads, d_ff: widths (see `TransformerConfig`).
        dropout: residual dropout.
        attention_dropout: dropout on the attention weights.
        norm_first: pre-norm instead of the paper's post-norm.
        activation: feed-forward non-linearity.
        layer_norm_epsilon: LayerNorm epsilon.

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

    def __init__(self, d_model, num_heads, d_ff, dropout=0.1, attention_dropout=0.0,
                 norm_first=False, activation="relu", layer_norm_epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.d_model = d_model
        self.num_heads = num_heads
        self.d_ff = d_ff
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.norm_first = norm_first
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        policy = self.dtype_policy
        self.self_attention = MultiHeadAttention(
            num_heads, d_model, dropout=attention_dropout, dtype=policy, name="self_attention")
        self.self_attention_add_norm = AddNorm(
            dropout, norm_first, layer_norm_epsilon, dtype=policy, name="self_attention_add_norm")
        self.feed_forward = PositionwiseFeedForward(
            d_model, d_ff, activation, dtype=policy, name="feed_forward")
        self.feed_forward_add_norm = AddNorm(
            dropout, norm_first, layer_norm_epsilon, dtype=policy, name="feed_forward_add_norm")

    def build(self, x_shape):
        self.self_attention.build(x_shape)
        self.self_attention_add_norm.build(x_shape)
        self.feed_forward.build(x_shape)
        self.feed_forward_add_norm.build(x_shape)
        self.built = True

    def call(self, x, attention_mask=None, training=None, return_attention_scores=False):
        attended, weights = self.self_attention(
            self.self_attention_add_norm.normalize(x), attention_mask=attention_mask, training=training,
            return_attention_scores=True)
        x = self.self_attention_add_norm(x, attended, training=training)
        x = self.feed_forward_add_norm(
            x, self.feed_forward(self.feed_forward_add_norm.normalize(x)), training=training)
        return (x, weights) if return_attention_scores else x

    def compute_output_shape(self, x_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            d_model=self.d_model, num_heads=self.num_heads, d_ff=self.d_ff,
            dropout=self.dropout, attention_dropout=self.attention_dropout,
            norm_first=self.norm_first, activation=self.activation,
            layer_norm_epsilon=self.layer_norm_epsilon)
        return config


@keras.saving.register_keras_serializable(package="keras_transformer")
class Encoder(keras.layers.Layer):
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

    def __init__(self, num_layers, d_model, num_heads, d_ff, dropout=0.1, attention_dropout=0.0,
                 norm_first=False, activation="relu", layer_norm_epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = num_layers
        self.layer_args = dict(
            d_model=d_model, num_heads=num_heads, d_ff=d_ff, dropout=dropout,
            attention_dropout=attention_dropout, norm_first=norm_first, activation=activation,
            layer_norm_epsilon=layer_norm_epsilon)
        self.encoder_layers = [
            EncoderLayer(**self.layer_args, dtype=self.dtype_policy, name=f"layer_{i}")
            for i in range(num_layers)]
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy,
            name="final_norm") if norm_first else None

    def build(self, x_shape):
        for layer in self.encoder_layers:
            layer.build(x_shape)
        if self.final_norm is not None:
            self.final_norm.build(x_shape)
        self.built = True

    def call(self, x, attention_mask=None, training=None, return_attention_scores=False):
        all_weights = []
        for layer in self.encoder_layers:
            x, weights = layer(x, attention_mask=attention_mask, training=training, return_attention_scores=True)
            all_weights.append(weights)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return (x, all_weights) if return_attention_scores else x

    def compute_output_shape(self, x_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(num_layers=self.num_layers, **self.layer_args)
        return config
