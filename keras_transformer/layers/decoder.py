"""The decoder (§3.1): N identical layers of masked self-attention, attention over the
encoder output ("memory"), and feed-forward.

    x = AddNorm(x, MultiHead(x, x, x, causal mask))
    x = AddNorm(x, MultiHead(x, memory, memory, padding mask))
    x = AddNorm(x, FFN(x))

For incremental decoding, every layer's self-attention keys and values live in a
fixed-size cache and the cross-attention keys and values are computed once per source.
A step decodes k hypotheses per sentence at one position (k = 1 for greedy search, the
beam for beam search); the cache is a dict of per-layer lists:

    self_keys                 N × Kᵀ (batch, h, d_k, k·W), self_values N × (batch, h,
                              k·W, d_k): hypothesis j's W positions at j·W ... j·W + W - 1
    cross_keys, cross_values  N × Kᵀ (batch, h, d_k, src_len) and (batch, h, src_len,
                              d_k): once per sentence, shared by its k hypotheses
    ancestry                  (batch, k, W) int32: which of the k blocks holds
                              position t of hypothesis j

Beam search reorders hypotheses by gathering `ancestry` alone: a hypothesis that extends
beam i inherits i's row of the table, so no key or value is ever copied, and hypothesis j
attends to position t in block ancestry[j, t]. The cross-attention reads each sentence's
memory once for all k hypotheses. Keys are kept transposed, so that Q Kᵀ is a plain
matrix product (`scaled_dot_product_attention`).
"""

import dataclasses

import keras
from keras import ops

from keras_transformer.layers.attention import MultiHeadAttention
from keras_transformer.layers.block_settings import SettingsLayer
from keras_transformer.layers.feed_forward import PositionwiseFeedForward
from keras_transformer.layers.masks import per_sentence
from keras_transformer.layers.residual import AddNorm, final_norm


@keras.saving.register_keras_serializable(package="keras_transformer")
class DecoderLayer(SettingsLayer):
    """One decoder layer: masked self-attention, cross-attention, feed-forward.

    Args: as `EncoderLayer`.

    Call arguments:
        x: (batch, tgt_len, d_model).
        memory: encoder output (batch, src_len, d_model).
        self_mask: bool, broadcastable to (batch, h, tgt_len, tgt_len); causal (and
            padding) mask.
        memory_mask: bool (batch, 1, 1, src_len), True at real source tokens.
        training: enables dropout.
        return_attention_scores: also return the cross-attention weights
            (batch, h, tgt_len, src_len).

    Example:
    >>> from keras_transformer.layers.masks import causal_mask, padding_mask
    >>> src_ids = np.array([[5, 6, 7, 0]])            # 0 is padding
    >>> memory = keras.random.normal((1, 4, 512))     # the encoder's output for src_ids
    >>> x = keras.random.normal((1, 3, 512))          # three embedded target tokens
    >>> layer = DecoderLayer(d_model=512, num_heads=8, d_ff=2048)
    >>> y = layer(x, memory, self_mask=causal_mask(3), memory_mask=padding_mask(src_ids))
    >>> tuple(y.shape)
    (1, 3, 512)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        settings, policy = self.settings, self.dtype_policy

        def attention(name):
            return MultiHeadAttention(
                settings.num_heads,
                settings.d_model,
                dropout=settings.attention_dropout,
                dtype=policy,
                name=name,
            )

        self.self_attention = attention("self_attention")
        self.self_attention_add_norm = AddNorm.from_settings(
            settings, dtype=policy, name="self_attention_add_norm"
        )
        self.cross_attention = attention("cross_attention")
        self.cross_attention_add_norm = AddNorm.from_settings(
            settings, dtype=policy, name="cross_attention_add_norm"
        )
        self.feed_forward = PositionwiseFeedForward(
            settings.d_model, settings.d_ff, settings.activation, dtype=policy, name="feed_forward"
        )
        self.feed_forward_add_norm = AddNorm.from_settings(
            settings, dtype=policy, name="feed_forward_add_norm"
        )

    def build(self, x_shape, memory_shape=None):
        memory_shape = memory_shape or x_shape
        self.self_attention.build(x_shape)
        self.self_attention_add_norm.build(x_shape)
        self.cross_attention.build(x_shape, memory_shape)
        self.cross_attention_add_norm.build(x_shape)
        self.feed_forward.build(x_shape)
        self.feed_forward_add_norm.build(x_shape)
        self.built = True

    def _feed_forward(self, x, training):
        return self.feed_forward_add_norm(
            x, self.feed_forward(self.feed_forward_add_norm.sublayer_input(x)), training=training
        )

    def call(
        self,
        x,
        memory,
        self_mask=None,
        memory_mask=None,
        training=None,
        return_attention_scores=False,
    ):
        attended = self.self_attention(
            self.self_attention_add_norm.sublayer_input(x),
            attention_mask=self_mask,
            training=training,
        )
        x = self.self_attention_add_norm(x, attended, training=training)
        attended, weights = self.cross_attention(
            self.cross_attention_add_norm.sublayer_input(x),
            memory,
            attention_mask=memory_mask,
            training=training,
            return_attention_scores=True,
        )
        x = self.cross_attention_add_norm(x, attended, training=training)
        x = self._feed_forward(x, training)
        return (x, weights) if return_attention_scores else x

    def call_cached(self, x, self_cache, cross_cache, step, self_mask, memory_mask, training=None):
        """One decoding step at position `step` for k hypotheses per sentence.

        Args:
            x: (batch, k, d_model), the embedded tokens at position `step`.
            self_cache: (Kᵀ (batch, h, d_k, k·W), V (batch, h, k·W, d_k)).
            cross_cache: (Kᵀ, V) of the memory, (batch, h, d_k, src_len) and
                (batch, h, src_len, d_k).
            step: scalar int, the position written into `self_cache`, or (batch,)
                int32, one per sentence.
            self_mask: bool (batch, 1, k, k·W) from `Decoder.self_attention_mask`.
            memory_mask: bool (batch, 1, 1, src_len).

        Returns:
            (x (batch, k, d_model), updated self_cache, cross-attention weights
            (batch, h, k, src_len)).
        """
        attended, self_cache, _ = self.self_attention.call_cached(
            self.self_attention_add_norm.sublayer_input(x),
            self_cache,
            attention_mask=self_mask,
            cache_index=step,
            training=training,
        )
        x = self.self_attention_add_norm(x, attended, training=training)
        attended, _, weights = self.cross_attention.call_cached(
            self.cross_attention_add_norm.sublayer_input(x),
            cross_cache,
            attention_mask=memory_mask,
            training=training,
        )
        x = self.cross_attention_add_norm(x, attended, training=training)
        return self._feed_forward(x, training), self_cache, weights

    def compute_output_shape(self, x_shape, memory_shape=None):
        return x_shape


@keras.saving.register_keras_serializable(package="keras_transformer")
class Decoder(SettingsLayer):
    """A stack of N `DecoderLayer`s; pre-norm stacks end with a final LayerNorm.

    Args:
        num_layers: N.
        The other arguments are those of `DecoderLayer`.

    Shapes: x (batch, tgt_len, d_model), memory (batch, src_len, d_model) ->
    (batch, tgt_len, d_model); with `return_attention_scores=True` also a list of N
    cross-attention weights (batch, h, tgt_len, src_len).

    Example:
    >>> from keras_transformer.layers.masks import causal_mask, padding_mask
    >>> src_ids = np.array([[5, 6, 7, 0]])            # 0 is padding
    >>> memory = keras.random.normal((1, 4, 512))     # the encoder's output for src_ids
    >>> embedded_tgt = keras.random.normal((1, 3, 512))
    >>> decoder = Decoder(num_layers=6, d_model=512, num_heads=8, d_ff=2048)
    >>> y, weights = decoder(embedded_tgt, memory, self_mask=causal_mask(3),
    ...                      memory_mask=padding_mask(src_ids), return_attention_scores=True)
    >>> tuple(y.shape), len(weights), tuple(weights[0].shape)
    ((1, 3, 512), 6, (1, 8, 3, 4))
    >>> float(np.max(weights[0][..., 3]))              # nothing attends to the padding
    0.0
    """

    def __init__(self, num_layers: int, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = num_layers
        self.decoder_layers = [
            DecoderLayer(
                **dataclasses.asdict(self.settings), dtype=self.dtype_policy, name=f"layer_{i}"
            )
            for i in range(num_layers)
        ]
        self.final_norm = final_norm(self.settings, self.dtype_policy)

    def build(self, x_shape, memory_shape=None):
        for layer in self.decoder_layers:
            layer.build(x_shape, memory_shape)
        if self.final_norm is not None:
            self.final_norm.build(x_shape)
        self.built = True

    def _final(self, x):
        return x if self.final_norm is None else self.final_norm(x)

    def call(
        self,
        x,
        memory,
        self_mask=None,
        memory_mask=None,
        training=None,
        return_attention_scores=False,
    ):
        all_weights = []
        for layer in self.decoder_layers:
            x, weights = layer(
                x,
                memory,
                self_mask=self_mask,
                memory_mask=memory_mask,
                training=training,
                return_attention_scores=True,
            )
            all_weights.append(weights)
        x = self._final(x)
        return (x, all_weights) if return_attention_scores else x

    def init_cache(self, memory, max_length, beam_size=1):
        """The decoding cache for `memory` (batch, src_len, d_model) and `beam_size`
        hypotheses per sentence: cross-attention keys and values of every layer, zeroed
        self-attention buffers of `max_length` positions per hypothesis, and a zero
        ancestry (see the module docstring)."""
        cross = self.cross_cache(memory)
        batch = ops.shape(memory)[0]
        h, d_k = self.settings.num_heads, self.settings.head_dim
        width = beam_size * max_length
        empty_keys = ops.zeros((batch, h, d_k, width), dtype=cross[0][0].dtype)
        empty_values = ops.zeros((batch, h, width, d_k), dtype=cross[0][0].dtype)
        return {
            "self_keys": [empty_keys] * self.num_layers,
            "self_values": [empty_values] * self.num_layers,
            "cross_keys": [k for k, _ in cross],
            "cross_values": [v for _, v in cross],
            "ancestry": ops.zeros((batch, beam_size, max_length), dtype="int32"),
        }

    def cross_cache(self, memory):
        """Every layer's cross-attention (Kᵀ (batch, h, d_k, src_len), V (batch, h,
        src_len, d_k)) of `memory` (batch, src_len, d_model), computed once per source."""
        return [layer.cross_attention.compute_cache(memory) for layer in self.decoder_layers]

    def self_attention_mask(self, ancestry, step):
        """Which cache positions each hypothesis attends to at position `step`.

        Args:
            ancestry: (batch, k, W) int32, already holding j at [:, j, step].
            step: scalar int, or (batch,) int32 with a position per sentence.

        Returns:
            bool (batch, 1, k, k·W): hypothesis j may attend to position i·W + t iff
            t <= step and ancestry[j, t] = i.
        """
        batch, hypotheses, width = ops.shape(ancestry)
        block = ops.arange(hypotheses)[None, None, :, None]
        seen = ops.less_equal(ops.arange(width), per_sentence(step, rank=4))
        # expand_dims, not [:, :, None, :]: LiteRT's converter has no builtin for that
        # strided slice where both batch and width are unknown (the step graphs).
        mask = ops.equal(ops.expand_dims(ancestry, 2), block) & seen
        return ops.reshape(mask, (batch, 1, hypotheses, hypotheses * width))

    def call_cached(self, x, cache, step, memory_mask, training=None):
        """One decoding step through every layer.

        Args:
            x: (batch, k, d_model), the embedded tokens of k hypotheses at position `step`.
            cache: dict from `init_cache` (or a previous step).
            step: scalar int position, or (batch,) int32: a position per sentence.
            memory_mask: bool (batch, 1, 1, src_len).

        Returns:
            (x (batch, k, d_model), updated cache, list of N cross-attention weights
            (batch, h, k, src_len)).
        """
        ancestry = cache["ancestry"]
        _, hypotheses, width = ops.shape(ancestry)
        own = ops.broadcast_to(ops.arange(hypotheses)[None, :, None], ops.shape(ancestry))
        ancestry = ops.where(
            ops.equal(ops.arange(width), per_sentence(step, rank=3)), own, ancestry
        )
        self_mask = self.self_attention_mask(ancestry, step)
        new_keys, new_values, all_weights = [], [], []
        for i, layer in enumerate(self.decoder_layers):
            x, (keys, values), weights = layer.call_cached(
                x,
                (cache["self_keys"][i], cache["self_values"][i]),
                (cache["cross_keys"][i], cache["cross_values"][i]),
                step,
                self_mask,
                memory_mask,
                training=training,
            )
            new_keys.append(keys)
            new_values.append(values)
            all_weights.append(weights)
        cache = dict(cache, self_keys=new_keys, self_values=new_values, ancestry=ancestry)
        return self._final(x), cache, all_weights

    def compute_output_shape(self, x_shape, memory_shape=None):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(num_layers=self.num_layers)
        return config
