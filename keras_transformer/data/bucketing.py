"""Batching by a token budget: bucket boundaries and per-bucket batch sizes.

The paper batched "sentence pairs together by approximate sequence length. Each
training batch contained a set of sentence pairs containing approximately 25000
source tokens and 25000 target tokens." Fixed-size batches waste most of their
compute on padding when lengths vary; grouping pairs of similar length and giving
short pairs bigger batches keeps every batch near the same padded size.

A pair's length is max(len(src), len(tgt_out)). Pairs fall into buckets by
length; bucket i holds lengths in [lower_i, upper_i] and batches

    batch_size_i = tokens_per_batch // upper_i

pairs, so every batch, padded to its longest pair, holds at most

    batch_size_i × upper_i <= tokens_per_batch

tokens on the source side and on the target side. Boundaries grow geometrically
by `step` (10% by default, as in tensor2tensor), so the padding inside a bucket is
at most about 10% of its tokens.

Example:

>>> boundaries, batch_sizes = token_budget_buckets(64, max_length=16)
>>> boundaries
[9, 10, 11, 12, 13, 14, 15, 16, 17]
>>> batch_sizes
[8, 7, 6, 5, 5, 4, 4, 4, 4, 1]
"""

from keras_transformer.errors import InputError


def token_budget_buckets(tokens_per_batch, max_length, min_length=8, step=1.1):
    """Returns (boundaries, batch_sizes) for `tf.data.Dataset.bucket_by_sequence_length`.

    Args:
        tokens_per_batch: the most tokens (batch × padded length) a batch may
            hold, per side.
        max_length: the longest sequence the pipeline lets through.
        min_length: lengths up to this share the first bucket.
        step: each boundary is at least `step` times the one before.

    Returns:
        boundaries: increasing ints; bucket i holds lengths in
            [boundaries[i-1], boundaries[i]), the last one ends at max_length + 1.
        batch_sizes: len(boundaries) + 1 ints; the last bucket (lengths above
            max_length) is never used once long pairs are filtered out, and gets 1.
    """
    if max_length < 1:
        raise InputError(f"max_length must be at least 1; got {max_length}")
    if tokens_per_batch < max_length:
        raise InputError(
            f"tokens_per_batch ({tokens_per_batch}) must be at least max_length "
            f"({max_length}), so that a batch of one longest pair fits the budget"
        )
    if step <= 1:
        raise InputError(f"step must be greater than 1; got {step}")
    boundaries = []
    length = min(min_length, max_length)
    while length < max_length:
        boundaries.append(length + 1)
        length = max(length + 1, int(length * step))
    boundaries.append(max_length + 1)
    # Bucket i holds lengths up to boundaries[i] - 1.
    batch_sizes = [tokens_per_batch // (upper - 1) for upper in boundaries] + [1]
    return boundaries, batch_sizes
