"""Embeddings and positional encodings (§3.4, §3.5).

    PE(pos, 2i)   = sin(pos / 10000^(2i / d_model))
    PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))

Token embeddings are multiplied by √d_model, summed with PE and passed through dropout.
With tied weights the same matrix E also gives the pre-softmax projection: logits = x Eᵀ.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_transformer.errors import InputError
from keras_transformer.layers.initializers import clone_initializer
from keras_transformer.layers.masks import one_per_sentence, per_sentence


def sinusoidal_table(length, d_model):
    """The (length, d_model) float32 table PE with sin at even and cos at odd columns."""
    positions = np.arange(length, dtype=np.float64)[:, None]
    rates = 1.0 / np.power(10000.0, np.arange(0, d_model, 2, dtype=np.float64) / d_model)
    angles = positions * rates[None, :]
    table = np.zeros((length, d_model), dtype=np.float64)
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : d_model // 2])
    return table.astype(np.float32)


@keras.saving.register_keras_serializable(package="keras_transformer")
class SinusoidalPositionalEncoding(keras.layers.Layer):
    """The fixed positional encodings PE of §3.5, interleaved sin/cos.

    Args:
        max_length: number of positions in the table.

    Call arguments:
        inputs: (batch, length, d_model) embeddings; only the shape and dtype are used.
        start_index: position of the first element (int or scalar tensor), for
            step-by-step decoding; or (batch,) int32, one per sequence, for sentences
            decoded side by side at different steps (continuous batching).

    Returns:
        (length, d_model) positional encodings PE[start_index : start_index + length],
        in the inputs' dtype, to be added to the embeddings; (batch, length, d_model)
        for a (batch,) start_index.

    Example:
    >>> pe = SinusoidalPositionalEncoding(max_length=512)
    >>> x = keras.random.normal((2, 10, 256))        # (batch, length, d_model) embeddings
    >>> x = x + pe(x)
    >>> np.asarray(pe(x))[1, :2]                     # PE(1, 0) = sin 1, PE(1, 1) = cos 1
    array([0.84147..., 0.54030...], dtype=float32)
    """

    def __init__(self, max_length, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(max_length, int) or max_length < 1:
            raise InputError(f"max_length must be a positive int; got {max_length!r}")
        self.max_length = max_length

    def build(self, inputs_shape):
        d_model = inputs_shape[-1]
        if d_model is None or d_model % 2:
            raise InputError(f"d_model must be a known even width; got {inputs_shape}")
        # A NumPy constant, not a weight: PE is fixed, so it is neither trained nor saved.
        self.table = sinusoidal_table(self.max_length, d_model)
        self.built = True

    def call(self, inputs, start_index=0):
        length = inputs.shape[1]
        if length is None:
            length = ops.shape(inputs)[1]
        elif isinstance(start_index, int) and start_index + length > self.max_length:
            raise InputError(
                f"sequence of length {length} starting at {start_index} is longer than the "
                f"positional encoding's max_length={self.max_length}; shorten the input or "
                f"build the model with a larger max_length"
            )
        table = ops.convert_to_tensor(self.table)
        if one_per_sentence(start_index):
            rows = per_sentence(start_index, rank=2) + ops.arange(length)[None, :]
            return ops.cast(ops.take(table, rows, axis=0), inputs.dtype)
        positions = ops.slice(table, (start_index, 0), (length, self.table.shape[1]))
        return ops.cast(positions, inputs.dtype)

    def compute_output_shape(self, inputs_shape):
        return (inputs_shape[1], inputs_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update(max_length=self.max_length)
        return config


@keras.saving.register_keras_serializable(package="keras_transformer")
class TokenEmbedding(keras.layers.Layer):
    """Learned token embeddings scaled by √d_model, reusable as the output projection.

    call:   ids (batch, length) int  ->  E[ids] · √d_model   (batch, length, d_model)
    attend: x (batch, length, d_model) -> x Eᵀ              (batch, length, vocab_size)

    Args:
        vocab_size: number of rows of E (id 0 is padding).
        d_model: width of each embedding.
        embeddings_initializer: defaults to N(0, d_model^-0.5), so that E·√d_model
            starts with unit variance.

    Example:
    >>> emb = TokenEmbedding(vocab_size=8000, d_model=256)
    >>> ids = np.array([[5, 6, 7]])
    >>> x = emb(ids); logits = emb.attend(x)
    >>> tuple(x.shape), tuple(logits.shape)
    ((1, 3, 256), (1, 3, 8000))
    """

    def __init__(self, vocab_size, d_model, embeddings_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.embeddings_initializer = keras.initializers.get(
            embeddings_initializer or keras.initializers.RandomNormal(stddev=d_model**-0.5)
        )

    def build(self, ids_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.vocab_size, self.d_model),
            initializer=clone_initializer(self.embeddings_initializer),
        )
        self.built = True

    def call(self, ids):
        embedded = ops.take(self.embeddings, ids, axis=0)
        return embedded * ops.cast(math.sqrt(self.d_model), embedded.dtype)

    def attend(self, x):
        """Tied pre-softmax projection x Eᵀ (§3.4)."""
        return ops.matmul(x, ops.transpose(ops.cast(self.embeddings, x.dtype)))

    def compute_output_shape(self, ids_shape):
        return tuple(ids_shape) + (self.d_model,)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            d_model=self.d_model,
            embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer),
        )
        return config
