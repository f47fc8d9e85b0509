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

from keras_transformer.errors import InputError
from keras_transformer.layers.block_settings import BlockSettings, check_bools, check_positive_ints

PRESETS = {
    "tiny": dict(num_layers=2, d_model=64, num_heads=4, d_ff=256, dropout=0.1),
    "small": dict(num_layers=3, d_model=256, num_heads=4, d_ff=1024, dropout=0.1),
    "base": dict(num_layers=6, d_model=512, num_heads=8, d_ff=2048, dropout=0.1),
    "big": dict(num_layers=6, d_model=1024, num_heads=16, d_ff=4096, dropout=0.3),
}


@dataclasses.dataclass(frozen=True)
class TransformerConfig(BlockSettings):
    """Every constructor argument of `Transformer`: the fields of `BlockSettings`
    (d_model, num_heads, d_ff, dropout, attention_dropout, norm_first, activation,
    layer_norm_epsilon), which every encoder and decoder layer shares, and:

    Args:
        num_layers: N, the number of encoder layers and of decoder layers.
        src_vocab_size: source vocabulary size (id 0 is padding).
        tgt_vocab_size: target vocabulary size (id 0 is padding).
        max_length: longest sequence the positional table covers.
        share_embeddings: one embedding matrix for source and target (§3.4;
            needs equal vocabularies).
        tie_output: the pre-softmax projection reuses the target embedding (§3.4).
    """

    num_layers: int = 6
    src_vocab_size: int = 37000
    tgt_vocab_size: int = 37000
    max_length: int = 512
    share_embeddings: bool = True
    tie_output: bool = True

    def __post_init__(self):
        check_positive_ints(self, ("num_layers", "src_vocab_size", "tgt_vocab_size", "max_length"))
        check_bools(self, ("share_embeddings", "tie_output"))
        super().__post_init__()
        if self.d_model % 2:
            raise InputError(
                f"d_model must be even (the positional encodings pair sin and cos "
                f"columns); got {self.d_model}"
            )
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise InputError(
                "share_embeddings=True needs one shared vocabulary; got "
                f"src_vocab_size={self.src_vocab_size}, tgt_vocab_size={self.tgt_vocab_size}. "
                "Pass share_embeddings=False for separate vocabularies."
            )

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "TransformerConfig":
        """The preset `name` ("tiny", "base" or "big") with `overrides` applied."""
        if name not in PRESETS:
            raise InputError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise InputError(f"unknown model settings {unknown}; known: {sorted(fields)}")
        values = dict(PRESETS[name])
        values.update(overrides)
        if values.get("src_vocab_size", cls.src_vocab_size) != values.get(
            "tgt_vocab_size", cls.tgt_vocab_size
        ):
            values.setdefault("share_embeddings", False)
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
