"""Attention masks. Convention everywhere: boolean, True = may attend.

Shapes broadcast against attention logits of shape (batch, heads, query_len, key_len):

* padding mask  (batch, 1, 1, key_len): key position holds a real token (id != 0).
* causal mask   (1, 1, length, length): key position j <= query position i (§3.2.3,
  "preventing leftward information flow").
* merged        logical AND of the two.

Step-by-step decoding takes its position `step` as a scalar (every sentence of the batch
at the same step) or as (batch,) int32 (continuous batching: each sentence at its own);
`per_sentence` shapes either to broadcast against the per-sentence tensors.
"""

from keras import ops

from keras_transformer.constants import PAD_ID


def padding_mask(ids):
    """(batch, length) int ids -> (batch, 1, 1, length) bool, False at padding (id 0)."""
    # expand_dims rather than [:, None, None, :]: TFLite cannot convert the strided
    # slice that indexing emits when both dimensions are unknown.
    return ops.expand_dims(ops.not_equal(ids, PAD_ID), axis=(1, 2))


def causal_mask(length):
    """(1, 1, length, length) bool: query position i sees key positions j <= i, for the
    decoder's self-attention over a whole (teacher-forced) target. Step-by-step
    decoding masks its cache with `Decoder.self_attention_mask` instead."""
    positions = ops.arange(length)
    return ops.less_equal(positions[None, :], positions[:, None])[None, None, :, :]


def merge_masks(*masks):
    """Logical AND of the masks that are not None (None if all are)."""
    masks = [m for m in masks if m is not None]
    if not masks:
        return None
    merged = masks[0]
    for mask in masks[1:]:
        merged = ops.logical_and(merged, mask)
    return merged


def one_per_sentence(step):
    """Whether a decoding step is (batch,), a position per sentence, not a scalar."""
    return len(getattr(step, "shape", ())) == 1


def per_sentence(step, rank):
    """A decoding step that broadcasts against a (batch, ...) tensor of `rank`
    dimensions: a scalar as it is, a (batch,) vector reshaped to (batch, 1, ..., 1)."""
    if one_per_sentence(step):
        return ops.reshape(step, (-1,) + (1,) * (rank - 1))
    return step
