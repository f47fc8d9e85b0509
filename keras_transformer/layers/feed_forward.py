"""Position-wise feed-forward network (§3.3).

FFN(x) = max(0, x W₁ + b₁) W₂ + b₂,   W₁ ∈ R^{d_model×d_ff}, W₂ ∈ R^{d_ff×d_model}
"""

import keras

from keras_transformer.constants import ACTIVATIONS
from keras_transformer.errors import InputError
from keras_transformer.layers.initializers import clone_initializer


@keras.saving.register_keras_serializable(package="keras_transformer")
class PositionwiseFeedForward(keras.layers.Layer):
    """Two linear maps with a non-linearity between, applied to each position alike.

    Args:
        d_model: input and output width.
        d_ff: inner width (2048 in the base model).
        activation: "relu" (the paper's max(0, ·)) or "gelu".
        kernel_initializer, bias_initializer: for both linear maps.

    Shapes: (batch, length, d_model) -> (batch, length, d_model).

    Example:
    >>> ffn = PositionwiseFeedForward(d_model=512, d_ff=2048)
    >>> y = ffn(keras.random.normal((2, 10, 512)))
    >>> tuple(y.shape)
    (2, 10, 512)
    """

    def __init__(
        self,
        d_model,
        d_ff,
        activation="relu",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise InputError(f"activation must be one of {ACTIVATIONS}; got {activation!r}")
        self.d_model = d_model
        self.d_ff = d_ff
        self.activation = activation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

        def dense(units, activation, name):
            return keras.layers.Dense(
                units,
                activation=activation,
                name=name,
                dtype=self.dtype_policy,
                kernel_initializer=clone_initializer(self.kernel_initializer),
                bias_initializer=clone_initializer(self.bias_initializer),
            )

        self.inner = dense(d_ff, activation, "inner")
        self.outer = dense(d_model, None, "outer")

    def build(self, inputs_shape):
        self.inner.build(inputs_shape)
        self.outer.build(tuple(inputs_shape[:-1]) + (self.d_ff,))
        self.built = True

    def call(self, x):
        return self.outer(self.inner(x))

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape[:-1]) + (self.d_model,)

    def get_config(self):
        config = super().get_config()
        config.update(
            d_model=self.d_model,
            d_ff=self.d_ff,
            activation=self.activation,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config
