"""AddNorm: the residual connection around every sub-layer (§3.1, §5.4).

    post-norm (the paper):  LayerNorm(x + Dropout(Sublayer(x)))
    pre-norm:               x + Dropout(Sublayer(LayerNorm(x)))

A pre-norm stack ends with one more LayerNorm (see `Encoder` and `Decoder`).
"""

import keras

from keras_transformer.layers.block_settings import BlockSettings


@keras.saving.register_keras_serializable(package="keras_transformer")
class AddNorm(keras.layers.Layer):
    """Residual connection, dropout and layer normalisation around one sub-layer.

    Args:
        dropout: P_drop applied to the sub-layer's output.
        norm_first: pre-norm instead of the paper's post-norm.
        epsilon: LayerNorm epsilon.

    Use:
        h = add_norm.sublayer_input(x)       # LayerNorm(x) for pre-norm, else x
        x = add_norm(x, sublayer(h))         # (batch, length, d_model) both

    LayerNorm computes in float32 under mixed precision.

    Example:
    >>> add_norm = AddNorm(dropout=0.1)
    >>> feed_forward = keras.layers.Dense(16)        # any sub-layer
    >>> x = keras.random.normal((2, 5, 16))
    >>> x = add_norm(x, feed_forward(add_norm.sublayer_input(x)), training=True)
    >>> bool(np.allclose(np.mean(x, axis=-1), 0.0, atol=1e-5))   # post-norm: normalised
    True
    """

    def __init__(
        self,
        dropout: float = 0.0,
        norm_first: bool = False,
        epsilon: float = BlockSettings.layer_norm_epsilon,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dropout = dropout
        self.norm_first = norm_first
        self.epsilon = epsilon
        self.residual_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=epsilon, dtype=self.dtype_policy, name="layer_norm"
        )

    @classmethod
    def from_settings(cls, settings: BlockSettings, **kwargs) -> "AddNorm":
        """The AddNorm of an encoder or decoder layer with `settings`."""
        return cls(settings.dropout, settings.norm_first, settings.layer_norm_epsilon, **kwargs)

    def build(self, residual_shape, sublayer_output_shape=None):
        self.layer_norm.build(residual_shape)
        self.built = True

    def sublayer_input(self, x):
        """The sub-layer's input: LayerNorm(x) when pre-norm, x itself when post-norm."""
        return self.layer_norm(x) if self.norm_first else x

    def call(self, residual, sublayer_output, training=None):
        summed = residual + self.residual_dropout(sublayer_output, training=training)
        return summed if self.norm_first else self.layer_norm(summed)

    def compute_output_shape(self, residual_shape, sublayer_output_shape=None):
        return residual_shape

    def get_config(self):
        config = super().get_config()
        config.update(dropout=self.dropout, norm_first=self.norm_first, epsilon=self.epsilon)
        return config


def final_norm(settings: BlockSettings, dtype) -> keras.layers.LayerNormalization | None:
    """The LayerNorm that ends a pre-norm stack (its last residual sum is otherwise
    never normalised); None for post-norm, whose every sum is."""
    if not settings.norm_first:
        return None
    return keras.layers.LayerNormalization(
        epsilon=settings.layer_norm_epsilon, dtype=dtype, name="final_norm"
    )
