"""TransformerConfig: the hyper-parameters of the paper's model, with presets.

Table 3 of "Attention Is All You Need" (Vaswani et al., 2017):

| preset | N | d_model | d_ff | h | dropout |
|--------|---|---------|------|---|---------|
| base   | 6 | 512     | 2048 | 8 | 0.1     |
| big    | 6 | 1024    | 4096 | 16| 0.3     |

`tiny` is ours: small enough to train in seconds on a CPU, for tests and the demo.
`small` is ours too: N = 3, d_model 256, h = 4, d_ff 1024, for corpora of tens of
thousands of sentences trained for half an hour on a few CPU cores (benchmarks/real_data.py).
"""

import dataclasses
import math

from keras_transformer.constants import ACTIVATIONS
from keras_transformer.errors import InputError

PRESETS = {
    "tiny": dict(num_layers=2, d_model=64, num_heads=4, d_ff=256, dropout=0.1),
    "small": dict(num_layers=3, d_model=256, num_heads=4, d_ff=1024, dropout=0.1),
    "base": dict(num_layers=6, d_model=512, num_heads=8, d_ff=2048, dropout=0.1),
    "big": dict(num_layers=6, d_model=1024, num_heads=16, d_ff=4096, dropout=0.3),
}


@dataclasses.dataclass
class TransformerConfig:
    """Every constructor argument of `Transformer`.

    Args:
        num_layers: N, the number of encoder layers and of decoder layers.
        d_model: width of every sub-layer's input and output.
        num_heads: h; each head has d_k = d_v = d_model / h.
        d_ff: inner width of the position-wise feed-forward network.
        src_vocab_size: source vocabulary size (id 0 is padding).
        tgt_vocab_size: target vocabulary size (id 0 is padding).
        dropout: P_drop on every residual branch and on the embedding sums.
        attention_dropout: dropout on the attention weights (the paper uses none).
        max_length: longest sequence the positional table covers.
        share_embeddings: one embedding matrix for source and target (§3.4;
            needs equal vocabularies).
        tie_output: the pre-softmax projection reuses the target embedding (§3.4).
        norm_first: pre-norm `x + Sublayer(LayerNorm(x))` instead of the paper's
            post-norm `LayerNorm(x + Sublayer(x))`.
        activation: the feed-forward non-linearity, "relu" (paper) or "gelu".
        layer_norm_epsilon: epsilon of every LayerNorm.
    """

    num_layers: int = 6
    d_model: int = 512
    num_heads: int = 8
    d_ff: int = 2048
    src_vocab_size: int = 37000
    tgt_vocab_size: int = 37000
    dropout: float = 0.1
    attention_dropout: float = 0.0
    max_length: int = 512
    share_embeddings: bool = True
    tie_output: bool = True
    norm_first: bool = False
    activation: str = "relu"
    layer_norm_epsilon: float = 1e-6

    def __post_init__(self):
        for name in ("num_layers", "d_model", "num_heads", "d_ff", "src_vocab_size",
                     "tgt_vocab_size", "max_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be a positive int; got {value!r}")
        for name in ("share_embeddings", "tie_output", "norm_first"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise InputError(f"{name} must be true or false; got {value!r}")
        for name in ("dropout", "attention_dropout", "layer_norm_epsilon"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise InputError(f"{name} must be a number; got {value!r}")
        if not 0 < self.layer_norm_epsilon < math.inf:
            raise InputError(
                f"layer_norm_epsilon must be positive and finite; got "
                f"{self.layer_norm_epsilon!r}")
        if self.d_model % 2:
            raise InputError(
                f"d_model must be even (the positional encodings pair sin and cos "
                f"columns); got {self.d_model}")
        if self.d_model % self.num_heads:
            raise InputError(
                f"d_model must be divisible by num_heads so that d_k = d_model / h is "
                f"whole; got d_model={self.d_model}, num_heads={self.num_heads}")
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise InputError(f"{name} must be in [0, 1); got {value!r}")
        if self.activation not in ACTIVATIONS:
            raise InputError(f"activation must be one of {ACTIVATIONS}; got {self.activation!r}")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise InputError(
                "share_embeddings=True needs one shared vocabulary; got "
                f"src_vocab_size={self.src_vocab_size}, tgt_vocab_size={self.tgt_vocab_size}. "
                "Pass share_embeddings=False for separate vocabularies.")

    @classmethod
    def from_preset(cls, name, **overrides):
        """The preset `name` ("tiny", "base" or "big") with `overrides` applied."""
        if name not in PRESETS:
            raise InputError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise InputError(f"unknown model settings {unknown}; known: {sorted(fields)}")
        values = dict(PRESETS[name])
        values.update(overrides)
        if values.get("src_vocab_size", 37000) != values.get("tgt_vocab_size", 37000):
            values.setdefault("share_embeddings", False)
        return cls(**values)

    def to_dict(self):
        return dataclasses.asdict(self)

    @property
    def head_dim(self):
        """d_k = d_v = d_model / h."""
        return self.d_model // self.num_heads
