"""Transformer: the encoder-decoder model of "Attention Is All You Need" (Figure 1).

    memory = Encoder(Dropout(E_src[src] · √d_model + PE))
    y      = Decoder(Dropout(E_tgt[tgt_in] · √d_model + PE), memory)
    logits = y E_tgtᵀ        (tied, §3.4)    or    y W + b    (untied)

Id 0 is padding: it is masked in every attention over the source, and the causal mask
keeps every target position from seeing later ones.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_transformer.config import TransformerConfig
from keras_transformer.errors import InputError
from keras_transformer.layers.block_settings import split_fields
from keras_transformer.layers.decoder import Decoder
from keras_transformer.layers.embedding import SinusoidalPositionalEncoding, TokenEmbedding
from keras_transformer.layers.encoder import Encoder
from keras_transformer.layers.masks import causal_mask, merge_masks, padding_mask


def check_id_range(ids, name, vocab_size):
    """Raises ValueError naming the first of the integer NumPy `ids` outside
    [0, vocab_size): compiled gathers would clamp or wrap it into a wrong token."""
    bad = (ids < 0) | (ids >= vocab_size)
    if bad.any():
        position = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            f"{name} ids must be in [0, {vocab_size}) (the {name} vocabulary, 0 = padding); "
            f"got {int(ids[position])} at position {position}"
        )


@keras.saving.register_keras_serializable(package="keras_transformer")
class Transformer(keras.Model):
    """The paper's encoder-decoder Transformer as a subclassed `keras.Model`.

    Args: the fields of `TransformerConfig` as keywords (num_layers, d_model, num_heads,
    d_ff, src_vocab_size, ...), each defaulting to the config's (the base model), and
    `keras.Model`'s own (name, dtype, ...). The config validates them.

    Call arguments:
        inputs: (src_ids, tgt_in_ids), int (batch, src_len) and (batch, tgt_len).
        training: enables dropout.

    Returns:
        float32 logits (batch, tgt_len, tgt_vocab_size).

    Example:
    >>> model = Transformer.from_preset("base", src_vocab_size=37000, tgt_vocab_size=37000)
    >>> model.build()
    >>> model.count_params()               # the paper's base model (its Table 3: 65 M)
    63082496
    >>> src_ids = np.array([[5, 6, 7, 0]])              # 0-padded
    >>> tgt_in_ids = np.array([[2, 8, 9]])              # [START] = 2, then the target
    >>> logits = model((src_ids, tgt_in_ids), training=False)
    >>> tuple(logits.shape)
    (1, 3, 37000)
    """

    def __init__(self, **kwargs):
        config, model_kwargs = split_fields(TransformerConfig, kwargs)
        super().__init__(**model_kwargs)
        self.config = config
        policy = self.dtype_policy
        d_model, dropout = config.d_model, config.dropout
        stack_args = dict(
            num_layers=config.num_layers,
            dtype=policy,
            **dataclasses.asdict(config.block_settings()),
        )
        self.target_embedding = TokenEmbedding(
            config.tgt_vocab_size, d_model, dtype=policy, name="target_embedding"
        )
        self.source_embedding = (
            self.target_embedding
            if config.share_embeddings
            else (
                TokenEmbedding(
                    config.src_vocab_size, d_model, dtype=policy, name="source_embedding"
                )
            )
        )
        self.positional_encoding = SinusoidalPositionalEncoding(
            config.max_length, dtype=policy, name="positional_encoding"
        )
        self.source_dropout = keras.layers.Dropout(dropout, dtype=policy, name="source_dropout")
        self.target_dropout = keras.layers.Dropout(dropout, dtype=policy, name="target_dropout")
        self.encoder = Encoder(**stack_args, name="encoder")
        self.decoder = Decoder(**stack_args, name="decoder")
        self.output_projection = (
            None
            if config.tie_output
            else keras.layers.Dense(config.tgt_vocab_size, dtype=policy, name="output_projection")
        )

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "Transformer":
        """A model of preset `name` ("tiny", "base", "big") with `overrides` applied."""
        return cls(**TransformerConfig.from_preset(name, **overrides).to_dict())

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_config(self):
        config = super().get_config()
        config.update(self.config.to_dict())
        return config

    def build(self, input_shape=None):
        d = self.config.d_model
        sequence = (None, None, d)
        self.source_embedding.build()
        if self.target_embedding is not self.source_embedding:
            self.target_embedding.build()
        self.positional_encoding.build(sequence)
        self.encoder.build(sequence)
        self.decoder.build(sequence, sequence)
        if self.output_projection is not None:
            self.output_projection.build(sequence)
        self.built = True

    def _check_ids(self, ids, name, vocab_size):
        """Validates int ids (batch, length) and returns them as int32."""
        if not hasattr(ids, "dtype"):
            ids = np.asarray(ids)
        dtype = keras.backend.standardize_dtype(ids.dtype)
        shape = tuple(ids.shape)
        if "int" not in dtype or len(shape) != 2:
            raise InputError(
                f"{name} ids must be int32 of shape (batch, length); got {dtype} {shape}"
            )
        if shape[1] is not None and shape[1] > self.config.max_length:
            raise InputError(
                f"{name} ids have length {shape[1]}, longer than the model's max_length="
                f"{self.config.max_length}; truncate the input or build with a larger max_length"
            )
        if tf.executing_eagerly():
            # Before the cast, which would wrap int64 values beyond 2^31 into valid ids.
            check_id_range(ops.convert_to_numpy(ids), name, vocab_size)
        return ops.cast(ids, "int32")

    def _embed(self, ids, embedding, dropout, training):
        x = embedding(ids)
        x = x + self.positional_encoding(x)
        return dropout(x, training=training)

    def encode(
        self,
        src_ids: "tf.Tensor | np.ndarray",
        training: bool | None = None,
        return_attention_scores: bool = False,
    ) -> tuple:
        """src_ids (batch, src_len) -> (memory (batch, src_len, d_model), memory_mask
        (batch, 1, 1, src_len) bool); with `return_attention_scores`, also the encoder's
        per-layer self-attention weights."""
        src_ids = self._check_ids(src_ids, "src", self.config.src_vocab_size)
        memory_mask = padding_mask(src_ids)
        x = self._embed(src_ids, self.source_embedding, self.source_dropout, training)
        memory, weights = self.encoder(
            x, attention_mask=memory_mask, training=training, return_attention_scores=True
        )
        if return_attention_scores:
            return memory, memory_mask, weights
        return memory, memory_mask

    def project(self, x: tf.Tensor) -> tf.Tensor:
        """Decoder output (..., d_model) -> float32 logits (..., tgt_vocab_size)."""
        if self.output_projection is None:
            logits = self.target_embedding.attend(x)
        else:
            logits = self.output_projection(x)
        return ops.cast(logits, "float32")

    def decode(
        self,
        tgt_in_ids: "tf.Tensor | np.ndarray",
        memory: tf.Tensor,
        memory_mask: tf.Tensor,
        training: bool | None = None,
        return_attention_scores: bool = False,
    ) -> "tf.Tensor | tuple":
        """Teacher-forced decoder: tgt_in_ids (batch, tgt_len) -> float32 logits
        (batch, tgt_len, tgt_vocab_size); with `return_attention_scores`, also the
        per-layer cross-attention weights (batch, h, tgt_len, src_len)."""
        tgt_in_ids = self._check_ids(tgt_in_ids, "tgt", self.config.tgt_vocab_size)
        length = ops.shape(tgt_in_ids)[1]
        self_mask = merge_masks(causal_mask(length), padding_mask(tgt_in_ids))
        x = self._embed(tgt_in_ids, self.target_embedding, self.target_dropout, training)
        y, weights = self.decoder(
            x,
            memory,
            self_mask=self_mask,
            memory_mask=memory_mask,
            training=training,
            return_attention_scores=True,
        )
        logits = self.project(y)
        return (logits, weights) if return_attention_scores else logits

    def call(self, inputs, training=None):
        if not isinstance(inputs, (tuple, list)) or len(inputs) != 2:
            raise InputError(
                "Transformer expects inputs (src_ids, tgt_in_ids), two int32 tensors of shape "
                f"(batch, length); got {type(inputs).__name__}"
            )
        src_ids, tgt_in_ids = inputs
        memory, memory_mask = self.encode(src_ids, training=training)
        return self.decode(tgt_in_ids, memory, memory_mask, training=training)

    def init_cache(self, memory: tf.Tensor, max_length: int, beam_size: int = 1) -> dict:
        """The fixed-size decoding cache for `max_length` target positions and
        `beam_size` hypotheses per sentence (see `layers/decoder.py`): per-layer lists of
        self_keys Kᵀ (batch, h, d_k, beam_size·max_length) and self_values
        (batch, h, beam_size·max_length, d_k) zeroed, cross_keys Kᵀ (batch, h, d_k,
        src_len) and cross_values (batch, h, src_len, d_k) computed from `memory`, and
        the ancestry (batch, beam_size, max_length)."""
        if max_length > self.config.max_length:
            raise InputError(
                f"cannot decode {max_length} positions: the model's max_length is "
                f"{self.config.max_length}"
            )
        return self.decoder.init_cache(memory, max_length, beam_size)

    def decode_step(
        self,
        tgt_ids: tf.Tensor,
        step,
        cache: dict,
        memory_mask: tf.Tensor,
        return_attention_scores: bool = False,
    ) -> tuple:
        """One incremental decoding step of k hypotheses per sentence.

        Args:
            tgt_ids: (batch, k) int32, each hypothesis' token at position `step`
                (k = 1 for greedy search; k = the beam_size the cache was made for).
            step: scalar int32 position (0 for the [START] token), or (batch,) int32,
                one position per sentence (`decoding.continuous`).
            cache: from `init_cache` or the previous step.
            memory_mask: (batch, 1, 1, src_len) bool from `encode`.

        Returns:
            (logits (batch, k, tgt_vocab_size) float32, updated cache), plus the list of
            per-layer cross-attention weights (batch, h, k, src_len) on request.
        """
        x = self.target_embedding(tgt_ids)
        # Every hypothesis of a sentence is at the same position: one row of the table
        # (per sentence for a (batch,) step), broadcast over the k hypotheses.
        x = x + self.positional_encoding(x[:, :1], start_index=step)
        y, cache, weights = self.decoder.call_cached(x, cache, step, memory_mask)
        logits = self.project(y)
        return (logits, cache, weights) if return_attention_scores else (logits, cache)
