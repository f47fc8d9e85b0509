"""BlockSettings: the arguments every encoder and decoder layer and stack shares.

The paper's defaults (Table 3, base model) are written here once: `TransformerConfig`
extends this dataclass, and `EncoderLayer`, `DecoderLayer`, `Encoder` and `Decoder`
take its fields as keyword arguments through `SettingsLayer`.
"""

import dataclasses
import math
from typing import Any

import keras

from keras_transformer.constants import ACTIVATIONS
from keras_transformer.errors import InputError


@dataclasses.dataclass(frozen=True)
class BlockSettings:
    """The widths and regularisation of one encoder or decoder layer.

    Args:
        d_model: width of every sub-layer's input and output.
        num_heads: h; each head has d_k = d_v = d_model / h.
        d_ff: inner width of the position-wise feed-forward network.
        dropout: P_drop on every residual branch (and, in `Transformer`, on the
            embedding sums).
        attention_dropout: dropout on the attention weights (the paper uses none).
        norm_first: pre-norm `x + Sublayer(LayerNorm(x))` instead of the paper's
            post-norm `LayerNorm(x + Sublayer(x))`.
        activation: the feed-forward non-linearity, "relu" (paper) or "gelu".
        layer_norm_epsilon: epsilon of every LayerNorm.
    """

    d_model: int = 512
    num_heads: int = 8
    d_ff: int = 2048
    dropout: float = 0.1
    attention_dropout: float = 0.0
    norm_first: bool = False
    activation: str = "relu"
    layer_norm_epsilon: float = 1e-6

    def __post_init__(self):
        check_positive_ints(self, ("d_model", "num_heads", "d_ff"))
        check_bools(self, ("norm_first",))
        for name in ("dropout", "attention_dropout", "layer_norm_epsilon"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise InputError(f"{name} must be a number; got {value!r}")
        if not 0 < self.layer_norm_epsilon < math.inf:
            raise InputError(
                f"layer_norm_epsilon must be positive and finite; got {self.layer_norm_epsilon!r}"
            )
        if self.d_model % self.num_heads:
            raise InputError(
                f"d_model must be divisible by num_heads so that d_k = d_model / h is "
                f"whole; got d_model={self.d_model}, num_heads={self.num_heads}"
            )
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise InputError(f"{name} must be in [0, 1); got {value!r}")
        if self.activation not in ACTIVATIONS:
            raise InputError(f"activation must be one of {ACTIVATIONS}; got {self.activation!r}")

    @property
    def head_dim(self) -> int:
        """d_k = d_v = d_model / h."""
        return self.d_model // self.num_heads

    def block_settings(self) -> "BlockSettings":
        """These settings as a plain `BlockSettings` (drops a subclass's own fields)."""
        return BlockSettings(
            **{field.name: getattr(self, field.name) for field in dataclasses.fields(BlockSettings)}
        )


def check_positive_ints(settings, names):
    """Raises InputError naming the first of `names` that is not an int >= 1."""
    for name in names:
        value = getattr(settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"{name} must be a positive int; got {value!r}")


def check_bools(settings, names):
    """Raises InputError naming the first of `names` that is not True or False."""
    for name in names:
        value = getattr(settings, name)
        if not isinstance(value, bool):
            raise InputError(f"{name} must be true or false; got {value!r}")


def split_fields(settings_class, kwargs: dict[str, Any]):
    """(settings_class(**the kwargs that are its fields), the other kwargs)."""
    names = {field.name for field in dataclasses.fields(settings_class)}
    settings = settings_class(**{k: v for k, v in kwargs.items() if k in names})
    return settings, {k: v for k, v in kwargs.items() if k not in names}


class SettingsLayer(keras.layers.Layer):
    """Base of the encoder and decoder layers and stacks: the fields of
    `BlockSettings` are keyword arguments, kept in `self.settings` and returned by
    `get_config`; every other keyword argument goes to `keras.layers.Layer`."""

    def __init__(self, **kwargs):
        settings, layer_kwargs = split_fields(BlockSettings, kwargs)
        super().__init__(**layer_kwargs)
        self.settings = settings

    def get_config(self):
        config = super().get_config()
        config.update(dataclasses.asdict(self.settings))
        return config
