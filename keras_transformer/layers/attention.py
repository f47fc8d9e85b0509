"""Scaled dot-product and multi-head attention (§3.2 of the paper).

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V                                   (1)
    MultiHead(Q, K, V) = Concat(head_1, …, head_h) W^O
        head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)

with W_i^Q, W_i^K ∈ R^{d_model×d_k}, W_i^V ∈ R^{d_model×d_v}, W^O ∈ R^{h·d_v×d_model}
and d_k = d_v = d_model / h.
"""

import contextlib
import contextvars
import math

import keras
from keras import ops

from keras_transformer.constants import NEG_INF
from keras_transformer.errors import InputError
from keras_transformer.layers.initializers import clone_initializer
from keras_transformer.layers.masks import one_per_sentence, per_sentence

CACHE_WRITES = ("scatter", "slices", "returned")
_cache_writes = contextvars.ContextVar("cache_writes", default="scatter")


@contextlib.contextmanager
def cache_writes(mode):
    """How `MultiHeadAttention.call_cached` writes a step's keys and values into the
    decoding cache, for the graphs traced inside the block:

    - "scatter" (the default): one scatter of the k new rows of V and columns of Kᵀ. It
      runs in plain TensorFlow (a SavedModel served without XLA) and converts to ONNX's
      ScatterND, but LiteRT's converter turns it into scatters into zeros and a select
      over the whole cache: every step rewrites every buffer.
    - "slices": one dynamic-update-slice per hypothesis, done in place under XLA (about
      a quarter cheaper than the scatter there) and in LiteRT (DYNAMIC_UPDATE_SLICE).
      It needs XLA or LiteRT to run, and tf2onnx has no converter for it.

    - "returned": the step writes nothing. The self-attention cache holds K
      untransposed, (batch, h, k·W, d_k) like V, and for k hypotheses per sentence at
      a scalar position t, rows j·W + t are still zero. Each hypothesis attends over
      the cache and its own key and value (`_attend_returned`), and the step returns
      the k new rows (K and V, each (batch, h, k, d_k)) in place of the cache, for the
      caller to write at j·W + t. LiteRT's WHILE and ONNX Runtime copy a whole tensor
      for every write into a loop-carried or input tensor; the step loops of
      `kt.runtimes` write the rows into their own buffers instead (and a row of K is
      contiguous where a column of Kᵀ is not).

    The compiled decoding loops trace with "slices" when XLA compiles them,
    `export_tflite` traces its WHILE loop with it, and the step graphs of both exports
    (`kt.export.steps`) trace with "returned".
    """
    if mode not in CACHE_WRITES:
        raise ValueError(f"cache writes must be one of {CACHE_WRITES}; got {mode!r}")
    token = _cache_writes.set(mode)
    try:
        yield
    finally:
        _cache_writes.reset(token)


def scaled_dot_product_attention(
    query, key, value, mask=None, dropout=None, training=None, keys_transposed=False
):
    """softmax(Q Kᵀ / √d_k) V, equation (1).

    Args:
        query: (..., query_len, d_k).
        key: (..., key_len, d_k), or Kᵀ (..., d_k, key_len) with `keys_transposed`.
        value: (..., key_len, d_v).
        mask: bool, broadcastable to (..., query_len, key_len); True = may attend.
        dropout: optional callable `(weights, training) -> weights` applied to the
            attention weights before they weight the values.
        training: passed to `dropout`.
        keys_transposed: `key` is Kᵀ. The decoding caches keep their keys so: Q Kᵀ is
            then a plain matrix product, which XLA runs several times faster on CPU for
            the few queries of a decoding step than one against a transposed operand.

    Returns:
        (output, weights): output (..., query_len, d_v) in the query's dtype, weights
        (..., query_len, key_len) in float32. Rows sum to 1; masked weights are exactly 0;
        a fully masked row gives zero weights and a zero output, never NaN.

    Example:
    >>> q = k = v = keras.random.normal((2, 5, 16))
    >>> out, w = scaled_dot_product_attention(q, k, v)
    >>> tuple(out.shape), tuple(w.shape)
    ((2, 5, 16), (2, 5, 5))
    """
    d_k = ops.shape(query)[-1]
    query = query * ops.cast(1.0 / math.sqrt(d_k), query.dtype)
    if keys_transposed:
        logits = ops.matmul(query, key)
    else:
        logits = ops.einsum("...qd,...kd->...qk", query, key)
    logits = ops.cast(logits, "float32")
    if mask is not None:
        logits = ops.where(mask, logits, NEG_INF)
    weights = ops.softmax(logits, axis=-1)
    if mask is not None:
        # exp(NEG_INF - max) already underflows to 0 in float32; this zeroes the
        # rows where every key was masked (softmax would spread them uniformly).
        weights = ops.where(mask, weights, 0.0)
    attended = weights if dropout is None else dropout(weights, training=training)
    output = ops.matmul(ops.cast(attended, value.dtype), value)
    return output, weights


@keras.saving.register_keras_serializable(package="keras_transformer")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention with h heads of width d_k = d_v = d_model / h (§3.2.2).

    Projections are stored as W^Q (d_model, h, d_k), a fused W^{KV} (d_model, 2, h, d_k)
    and W^O (h, d_k, d_model), each with a bias. For self-attention (no `key_value`)
    the three input projections run as one matmul, for cross-attention W^Q and W^{KV}
    run as two. Unlike `keras.layers.MultiHeadAttention` as the TensorFlow tutorial
    uses it (key_dim = d_model), the total width over all heads is d_model.

    Args:
        num_heads: h.
        d_model: model width; must be divisible by num_heads.
        dropout: dropout rate on the attention weights.
        kernel_initializer, bias_initializer: for every projection.

    Call arguments:
        query: (batch, query_len, d_model).
        key_value: (batch, key_len, d_model), or None for self-attention.
        attention_mask: bool, broadcastable to (batch, h, query_len, key_len); True =
            may attend.
        training: enables dropout.
        return_attention_scores: also return the weights (batch, h, query_len, key_len).

    Returns:
        (batch, query_len, d_model), or (output, weights).

    Incremental decoding uses `call_cached` with keys and values of shape
    (batch, h, length, d_k): either computed once by `compute_key_value` (cross-attention
    over the encoder output) or a fixed-size self-attention cache written one step at a
    time, so the loop keeps fixed shapes under XLA, TFLite and ONNX.

    Example:
    >>> mha = MultiHeadAttention(num_heads=8, d_model=512)
    >>> y = mha(keras.random.normal((2, 10, 512)))            # self-attention
    >>> tuple(y.shape)
    (2, 10, 512)
    """

    def __init__(
        self,
        num_heads,
        d_model,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if d_model % num_heads:
            raise InputError(
                f"d_model must be divisible by num_heads so that d_k = d_model / h is whole; "
                f"got d_model={d_model}, num_heads={num_heads}"
            )
        self.num_heads = num_heads
        self.d_model = d_model
        self.head_dim = d_model // num_heads
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.attention_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def _kernel_initializer(self, count, first):
        """`count` square d_model × d_model matrices, stacked on axis 1 and reshaped to
        the storage shape, so Glorot sees the fan-in and fan-out of the paper's dense
        matrices rather than of the 3-D/4-D storage. Each matrix gets its own clone of
        the initializer (a Keras initializer repeats its values when called twice); a
        seed, if any, is offset by the matrix's number (`first` + i: 0 for W^Q, 1 and 2
        for W^K and W^V, 3 for W^O) so that the four differ."""
        d = self.d_model

        def matrix(i, dtype):
            return clone_initializer(self.kernel_initializer, first + i)((d, d), dtype=dtype)

        def init(shape, dtype=None):
            return ops.reshape(ops.stack([matrix(i, dtype) for i in range(count)], axis=1), shape)

        return init

    def _check_width(self, shape, name):
        if shape[-1] is not None and shape[-1] != self.d_model:
            raise InputError(
                f"{name} must have shape (batch, length, d_model={self.d_model}); "
                f"got {tuple(shape)}"
            )

    def build(self, query_shape, key_value_shape=None):
        self._check_width(query_shape, "query")
        h, d_k, d = self.num_heads, self.head_dim, self.d_model
        self.query_kernel = self.add_weight(
            name="query_kernel", shape=(d, h, d_k), initializer=self._kernel_initializer(1, 0)
        )
        self.query_bias = self.add_weight(
            name="query_bias", shape=(h, d_k), initializer=clone_initializer(self.bias_initializer)
        )
        self.key_value_kernel = self.add_weight(
            name="key_value_kernel",
            shape=(d, 2, h, d_k),
            initializer=self._kernel_initializer(2, 1),
        )
        self.key_value_bias = self.add_weight(
            name="key_value_bias",
            shape=(2, h, d_k),
            initializer=clone_initializer(self.bias_initializer),
        )
        self.output_kernel = self.add_weight(
            name="output_kernel", shape=(h, d_k, d), initializer=self._kernel_initializer(1, 3)
        )
        self.output_bias = self.add_weight(
            name="output_bias", shape=(d,), initializer=clone_initializer(self.bias_initializer)
        )
        self.built = True

    @staticmethod
    def _project(x, kernel, bias):
        """x (batch, len, d_model) · kernel (d_model, n, h, d_k) + bias (n, h, d_k) ->
        n × (batch, h, len, d_k).

        The bias is added before the heads move in front of the positions: its gradient
        then sums over the leading (batch, len) axes, one pass, where a bias broadcast
        into (n, batch, h, len, d_k) had its gradient reduced over scattered axes (4 %
        of a 2-core training step). The result is unstacked, not indexed: an index's
        gradient writes a zero tensor of the whole projection per slice, an unstack's
        is one stack."""
        projected = ops.einsum("bld,dnhk->blnhk", x, kernel) + bias
        return ops.unstack(ops.transpose(projected, (2, 0, 3, 1, 4)), kernel.shape[1], axis=0)

    def _project_query(self, query):
        (projected,) = self._project(query, self.query_kernel[:, None], self.query_bias[None])
        return projected

    def compute_key_value(self, key_value):
        """(batch, key_len, d_model) -> keys, values, each (batch, h, key_len, d_k)."""
        keys, values = self._project(key_value, self.key_value_kernel, self.key_value_bias)
        return keys, values

    def compute_cache(self, key_value):
        """(batch, key_len, d_model) -> the cache `call_cached` reads for fixed keys and
        values: Kᵀ (batch, h, d_k, key_len) and V (batch, h, key_len, d_k)."""
        keys, values = self.compute_key_value(key_value)
        return ops.transpose(keys, (0, 1, 3, 2)), values

    def _project_self(self, x):
        """One matmul for Q, K and V: (batch, len, d_model) -> 3 × (batch, h, len, d_k)."""
        kernel = ops.concatenate([self.query_kernel[:, None], self.key_value_kernel], axis=1)
        bias = ops.concatenate([self.query_bias[None], self.key_value_bias], axis=0)
        query, key, value = self._project(x, kernel, bias)
        return query, key, value

    def _attend(self, query, key, value, mask, training, keys_transposed=False):
        heads, weights = scaled_dot_product_attention(
            query,
            key,
            value,
            mask=mask,
            dropout=self.attention_dropout,
            training=training,
            keys_transposed=keys_transposed,
        )
        return self._combine_heads(heads), weights

    def _combine_heads(self, heads):
        """Concat(head_1, …, head_h) W^O + b^O: (batch, h, len, d_k) -> (batch, len, d_model)."""
        return ops.einsum("bhlk,hkd->bld", heads, self.output_kernel) + self.output_bias

    def call(
        self,
        query,
        key_value=None,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
    ):
        if key_value is None:
            q, k, v = self._project_self(query)
        else:
            self._check_width(key_value.shape, "key_value")
            q = self._project_query(query)
            k, v = self.compute_key_value(key_value)
        output, weights = self._attend(q, k, v, attention_mask, training)
        if return_attention_scores:
            return output, weights
        return output

    def call_cached(self, query, cache, attention_mask=None, cache_index=None, training=None):
        """Attention for incremental decoding.

        Args:
            query: (batch, q_len, d_model). With `cache_index`, the q_len queries are k
                hypotheses of one sentence at the same position (k = 1 for greedy).
            cache: (Kᵀ (batch, h, d_k, cache_len), V (batch, h, cache_len, d_k)); the
                keys transposed (see `scaled_dot_product_attention`).
            attention_mask: bool, broadcastable to (batch, h, q_len, cache_len).
            cache_index: None for fixed keys and values (cross-attention over the
                encoder output, from `compute_cache`). For self-attention, the
                position t the queries' own keys and values are written to before
                attending: the cache holds k blocks of W = cache_len / k positions, and
                hypothesis j writes position j·W + t. A scalar for the whole batch, or
                (batch,) int32, one position per sentence (continuous batching, where
                sentences start at different steps; always written by scatter).
                Positions never written must be masked out by `attention_mask`.

        Returns:
            (output (batch, q_len, d_model), (Kᵀ, V), weights (batch, h, q_len, cache_len)).
        """
        keys, values = cache
        if cache_index is None:
            query = self._project_query(query)
        elif _cache_writes.get() == "returned":
            return self._attend_returned(query, keys, values, attention_mask, cache_index)
        else:
            query, new_key, new_value = self._project_self(query)
            # Written in place (see `cache_writes`): rewriting the whole cache each step
            # costs a share of decoding that grows with the cache (README, "Decoding").
            slices = _cache_writes.get() == "slices" and not one_per_sentence(cache_index)
            write = self._write_slices if slices else self._write_scatter
            keys, values = write(keys, values, new_key, new_value, cache_index)
        output, weights = self._attend(
            query, keys, values, attention_mask, training, keys_transposed=True
        )
        return output, (keys, values), weights

    def _attend_returned(self, query, keys, values, mask, position):
        """`call_cached` for the "returned" cache writes (see `cache_writes`): k queries
        per sentence (batch, k, d_model), hypothesis j's at position j·W + t (t a scalar)
        of K and V (batch, h, k·W, d_k), rows that are still zero.

            logits = q_j Kᵀ / √d_k, and logits[j·W + t] = q_j · k_j / √d_k   (the zero row's 0)
            output = softmax(logits) V + softmax(logits)[j·W + t] v_j          (the zero row's 0)

        Returns (output, (k_j, v_j) each (batch, h, k, d_k), weights)."""
        if one_per_sentence(position):
            raise ValueError(
                'cache_writes("returned") decodes every sentence at one scalar position; '
                f"got a position of shape {tuple(position.shape)}"
            )
        hypotheses = query.shape[1]  # static: the beam size the cache was made for
        query, new_key, new_value = self._project_self(query)
        query = query * ops.cast(1.0 / math.sqrt(self.head_dim), query.dtype)
        # (k, k·W) one-hot of each hypothesis's own row, against the cache's zero rows.
        rows = ops.shape(values)[2]
        own_row = ops.arange(hypotheses) * (rows // hypotheses) + position
        at = ops.cast(ops.equal(ops.arange(rows)[None, :], own_row[:, None]), "float32")
        # A transposed operand, not an einsum: ONNX Runtime and LiteRT fold the
        # transpose into their matmul kernels, and run Einsum as a slow generic op.
        logits = ops.cast(ops.matmul(query, ops.transpose(keys, (0, 1, 3, 2))), "float32")
        logits = logits + at * ops.cast(ops.sum(query * new_key, axis=-1, keepdims=True), "float32")
        logits = ops.where(mask, logits, NEG_INF)
        weights = ops.where(mask, ops.softmax(logits, axis=-1), 0.0)
        own = ops.sum(weights * at, axis=-1, keepdims=True)  # (batch, h, k, 1)
        heads = ops.matmul(ops.cast(weights, values.dtype), values)
        heads = heads + ops.cast(own, values.dtype) * new_value
        output = self._combine_heads(heads)
        return output, (new_key, new_value), weights

    def _write_scatter(self, keys, values, new_key, new_value, cache_index):
        """Writes hypothesis j's key and value (new_key, new_value (batch, h, k, d_k))
        at position j·W + cache_index of Kᵀ and V, one scatter each; cache_index is a
        scalar or (batch,)."""
        batch, hypotheses = ops.shape(new_key)[0], ops.shape(new_key)[2]
        # (1, k) for a scalar index, (batch, k) for one index per sentence.
        positions = ops.arange(hypotheses)[None, :] * (ops.shape(values)[2] // hypotheses)
        positions = positions + per_sentence(cache_index, rank=2)
        shape = (batch, self.num_heads, hypotheses)
        sentence = ops.broadcast_to(ops.arange(batch)[:, None, None], shape)
        head = ops.broadcast_to(ops.arange(self.num_heads)[None, :, None], shape)
        position = ops.broadcast_to(positions[:, None, :], shape)
        values = ops.scatter_update(
            values, ops.stack([sentence, head, position], axis=-1), new_value
        )
        shape = (batch, self.num_heads, self.head_dim, hypotheses)
        keys = ops.scatter_update(
            keys,
            ops.stack(
                [
                    ops.broadcast_to(sentence[:, :, None, :], shape),
                    ops.broadcast_to(head[:, :, None, :], shape),
                    ops.broadcast_to(ops.arange(self.head_dim)[None, None, :, None], shape),
                    ops.broadcast_to(position[:, :, None, :], shape),
                ],
                axis=-1,
            ),
            ops.transpose(new_key, (0, 1, 3, 2)),
        )
        return keys, values

    def _write_slices(self, keys, values, new_key, new_value, cache_index):
        """Writes hypothesis j's key and value (new_key, new_value (batch, h, k, d_k))
        at position j·W + cache_index of Kᵀ and V, one dynamic-update-slice each."""
        hypotheses = new_key.shape[2]  # static: the beam size the cache was made for
        width = ops.shape(values)[2] // hypotheses
        new_key = ops.transpose(new_key, (0, 1, 3, 2))
        for j in range(hypotheses):
            position = j * width + cache_index
            keys = ops.slice_update(keys, (0, 0, 0, position), new_key[:, :, :, j : j + 1])
            values = ops.slice_update(values, (0, 0, position, 0), new_value[:, :, j : j + 1])
        return keys, values

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            d_model=self.d_model,
            dropout=self.dropout,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config
