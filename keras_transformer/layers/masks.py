"""Attention masks. Convention everywhere: boolean, True = may attend.

Shapes broadcast against attention logits of shape (batch, heads, query_len, key_len):

* padding mask  (batch, 1, 1, key_len): key position holds a real token (id != 0).
* causal mask   (1, 1, query_len, key_len): key position j <= query position i (§3.2.3,
  "preventing leftward information flow").
* merged        logical AND of the two.
"""

from keras import ops

from keras_transformer.constants import PAD_ID


def padding_mask(ids):
    """(batch, length) int ids -> (batch, 1, 1, length) bool, False at padding (id 0)."""
    # expand_dims rather than [:, None, None, :]: TFLite cannot convert the strided
    # slice that indexing emits when both dimensions are unknown.
    return ops.expand_dims(ops.not_equal(ids, PAD_ID), axis=(1, 2))


def causal_mask(query_length, key_length=None, offset=0):
    """(1, 1, query_length, key_length) bool: query i (at position offset + i) sees keys <= it.

    `offset` is the position of the first query, for step-by-step decoding where the
    queries are the newest positions of a longer key sequence.
    """
    key_length = query_length if key_length is None else key_length
    query_positions = ops.arange(query_length)[:, None] + offset
    key_positions = ops.arange(key_length)[None, :]
    return ops.less_equal(key_positions, query_positions)[None, None, :, :]


def merge_masks(*masks):
    """Logical AND of the masks that are not None (None if all are)."""
    masks = [m for m in masks if m is not None]
    if not masks:
        return None
    merged = masks[0]
    for mask in masks[1:]:
        merged = ops.logical_and(merged, mask)
    return merged
