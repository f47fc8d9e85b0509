"""make_dataset: sentence pairs -> batches the Transformer trains on.

    pairs ──tokenize (once, up front)──▶ filter/truncate to max_length
          ──shuffle (seeded)──▶ add [START]/[END] ──bucket by length, (sort each
          bucket's pools by length,) batch by token budget, 0-pad──▶ shuffle the epoch's
          batches ──▶ prefetch

Each element is `((src, tgt_in), tgt_out)`, all int32 and 0-padded:

    src     = tokens(source)                  (batch, src_length)
    tgt_in  = [START] + tokens(target)        (batch, tgt_length)
    tgt_out = tokens(target) + [END]          (batch, tgt_length)

`tgt_in` is the decoder input "shifted right" (paper, section 3.1) and `tgt_out`
the labels. The source gets neither `[START]` nor `[END]`: the encoder sees the whole
sentence at once and the padding mask marks its end, and this is the form every
runtime gets from the tokenizer alone (Translator, TFLite, ONNX), so training and
inference feed the encoder the same ids.

Lengths count the added token: a pair is too long when `len(src)` or `len(tgt_out)`
exceeds `max_length`. Too long pairs are dropped, or with `truncate=True` cut to
`max_length` source tokens and `max_length - 1` target tokens plus `[END]`; either way
they are counted in `DatasetStats` and reported by one logging warning.

Batches follow `bucketing.token_budget_buckets`: within each batch,
batch × src_length <= tokens_per_batch and batch × tgt_length <= tokens_per_batch.
Every kept pair appears exactly once per epoch (unless `drop_remainder=True`,
which drops each bucket's last partial batch).

Tokenizing happens once, up front, as a single batched call per side: the
benchmark (benchmarks/pipeline.py) measures it against tokenizing inside
`Dataset.map`, and knowing the lengths before building the dataset is what
lets the dropped/truncated counts be exact and reported at once.

Example:

>>> corpus = kt.data.numbers_corpus("de", train_size=100, dev_size=0, test_size=0)
>>> tok = kt.text.WordPieceTokenizer.train([s for pair in corpus.train for s in pair],
...                                        vocab_size=200)
>>> dataset, stats = make_dataset(corpus.train, tok, tok, tokens_per_batch=2048,
...                               return_stats=True)
>>> stats.num_pairs, stats.num_dropped
(100, 0)
>>> (src, tgt_in), tgt_out = next(iter(dataset))
>>> bool(np.all(tgt_in[:, 0] == START_ID)), src.dtype
(True, tf.int32)
"""

import dataclasses
import logging

import tensorflow as tf

from keras_transformer.constants import END_ID, PAD_ID, START_ID
from keras_transformer.data.batch_settings import BatchSettings
from keras_transformer.errors import InputError

logger = logging.getLogger("keras_transformer.data")
PREFETCH_BATCHES = 2


@dataclasses.dataclass(frozen=True)
class DatasetStats:
    """What `make_dataset` did to the pairs it was given.

    Attributes:
        num_pairs: pairs in the dataset (one epoch).
        num_dropped: pairs dropped for exceeding `max_length`.
        num_truncated: pairs cut to `max_length` (with `truncate=True`).
        bucket_boundaries: see `token_budget_buckets`.
        bucket_batch_sizes: see `token_budget_buckets`.
    """

    num_pairs: int
    num_dropped: int
    num_truncated: int
    bucket_boundaries: tuple
    bucket_batch_sizes: tuple


def make_dataset(
    pairs: list[tuple[str, str]],
    src_tokenizer,
    tgt_tokenizer,
    batching: BatchSettings | None = None,
    *,
    truncate: bool = False,
    return_stats: bool = False,
    **batching_args,
) -> "tf.data.Dataset | tuple[tf.data.Dataset, DatasetStats]":
    """Returns a `tf.data.Dataset` of `((src, tgt_in), tgt_out)` int32 batches.

    Args:
        pairs: list of (source str, target str).
        src_tokenizer, tgt_tokenizer: `keras_transformer.text` tokenizers; may
            be the same object (shared vocabulary).
        batching: a `BatchSettings` (tokens_per_batch, max_length, shuffle, seed,
            drop_remainder, pad_to_bucket); its fields may also be given as keyword
            arguments, which override it.
        truncate: cut too long pairs instead of dropping them.
        return_stats: also return a `DatasetStats`.

    Returns:
        The dataset, or `(dataset, stats)` with `return_stats=True`.
    """
    batching = BatchSettings.from_arguments(batching, batching_args)
    max_length, seed = batching.max_length, batching.seed
    pairs = list(pairs)
    if not pairs:
        raise InputError("make_dataset needs at least one (source, target) pair; got none")
    for index, pair in enumerate(pairs):
        if (
            not isinstance(pair, (tuple, list))
            or len(pair) != 2
            or not all(isinstance(side, str) for side in pair)
        ):
            raise InputError(
                f"make_dataset expects pairs of (source str, target str); got {pair!r:.80} "
                f"at index {index}"
            )
    boundaries, batch_sizes = batching.buckets()
    for tokenizer in (src_tokenizer, tgt_tokenizer):
        if (tokenizer.pad_id, tokenizer.start_id, tokenizer.end_id) != (
            PAD_ID,
            START_ID,
            END_ID,
        ):
            raise InputError(
                f"tokenizers must use [PAD]=0, [START]=2, [END]=3 (the model's "
                f"input format); {type(tokenizer).__name__} uses "
                f"{tokenizer.pad_id}, {tokenizer.start_id}, {tokenizer.end_id}"
            )

    src_ids = src_tokenizer.tokenize(tf.constant([src for src, _ in pairs]))
    tgt_ids = tgt_tokenizer.tokenize(tf.constant([tgt for _, tgt in pairs]))
    # +1 for the [END] (or [START]) the target gets.
    too_long = (src_ids.row_lengths() > max_length) | (tgt_ids.row_lengths() + 1 > max_length)
    num_too_long = int(tf.reduce_sum(tf.cast(too_long, tf.int32)))
    if truncate:
        src_ids = src_ids[:, :max_length]
        tgt_ids = tgt_ids[:, : max_length - 1]
    else:
        keep = tf.logical_not(too_long)
        src_ids = tf.ragged.boolean_mask(src_ids, keep)
        tgt_ids = tf.ragged.boolean_mask(tgt_ids, keep)
    stats = DatasetStats(
        num_pairs=len(pairs) - (0 if truncate else num_too_long),
        num_dropped=0 if truncate else num_too_long,
        num_truncated=num_too_long if truncate else 0,
        bucket_boundaries=tuple(boundaries),
        bucket_batch_sizes=tuple(batch_sizes),
    )
    if num_too_long:
        logger.warning(
            "%s %d of %d pairs longer than max_length=%d tokens",
            "truncated" if truncate else "dropped",
            num_too_long,
            len(pairs),
            max_length,
        )
    if stats.num_pairs == 0:
        raise InputError(
            f"all {len(pairs)} pairs are longer than max_length={max_length}; "
            f"raise max_length or pass truncate=True"
        )

    dataset = tf.data.Dataset.from_tensor_slices((src_ids, tgt_ids))
    if batching.shuffle:
        dataset = dataset.shuffle(stats.num_pairs, seed=seed, reshuffle_each_iteration=True)
    dataset = batch_by_tokens(
        dataset,
        batching,
        batch_shuffle_buffer=stats.num_pairs if batching.shuffle else 0,
        seed=seed + 1,
    )
    return (dataset, stats) if return_stats else dataset


def batch_by_tokens(dataset, batching, batch_shuffle_buffer, seed):
    """(src ids, tgt ids) pairs -> prefetched `((src, tgt_in), tgt_out)` batches.

    Adds [START] and [END] to the target and batches by the buckets of `batching` (a
    `BatchSettings`), 0-padded: each bucket gathers a pool of `batching.pool_batches`
    batches' pairs (or what is left at the end of the input), sorts it by (source
    length, target length) and cuts it into batches (`_batch_pools`). Then it shuffles
    the batches in a buffer of `batch_shuffle_buffer` batches (0: no shuffling) seeded
    by `seed`, and prefetches `PREFETCH_BATCHES`.
    """
    dataset = dataset.map(_add_start_and_end_to_target)
    dataset = _batch_pools(dataset, batching)
    if batch_shuffle_buffer:
        # Buckets fill at different rates and the partial ones are flushed last, in
        # length order: left as they come, every epoch would end on a run of small
        # batches of ever longer pairs. Shuffling the epoch's batches (make_dataset's
        # buffer holds them all: fewer batches than pairs) spreads them like a shuffled
        # batch list.
        dataset = dataset.shuffle(batch_shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    # No tf.data autotuning: its model thread sleeps in waits that grow to a minute, and
    # destroying an iterator (Keras drops the dev iterator at each validation) waits for
    # that thread, which left whole epochs with idle CPU (README, "No tf.data
    # autotuning"). The pipeline is cheap next to the model: two batches ahead are enough.
    options = tf.data.Options()
    options.autotune.enabled = False
    dataset = dataset.prefetch(PREFETCH_BATCHES).with_options(options)
    return dataset


def _batch_pools(dataset, batching):
    """Groups `((src, tgt_in), tgt_out)` examples into 0-padded batches, by bucket.

    A pair's bucket is set by max(len(src), len(tgt_out)), so within a bucket one side
    is about the bucket's length and the other anything shorter: batched as they come,
    a batch pads every source to its longest one. Each bucket collects

        pool = batching.pool_batches × batch_size

    pairs, sorts them by (len(src), len(tgt_out)) (stable: pairs of equal lengths keep
    their shuffled order) and cuts the sorted pool into batches of batch_size, each
    padded to its own longest source and target (or, with `pad_to_bucket`, to the
    bucket's upper length). A pool of one batch is plain bucketing. On the gettext
    French corpus a pool of 16 batches cut the source padding from 31 % to 11 % of the
    source positions and the matmul work per real token by 9 %, but the model learned
    less per step (README, "Sorted pools").
    """
    boundaries, batch_sizes = batching.buckets()
    pad_to_bucket, pool_batches = batching.pad_to_bucket, batching.pool_batches
    boundaries_t = tf.constant(boundaries, tf.int32)
    batch_sizes_t = tf.constant(batch_sizes, tf.int64)
    # The padded length of bucket i's batches with pad_to_bucket (its longest pair).
    uppers_t = tf.constant([upper - 1 for upper in boundaries] + [boundaries[-1]], tf.int64)

    def bucket_of(inputs, tgt_out):
        length = _pair_length(inputs, tgt_out)
        return tf.cast(tf.searchsorted(boundaries_t, [length], side="right")[0], tf.int64)

    def batches_of_pool(bucket, pool):
        batch_size = batch_sizes_t[bucket]
        if pad_to_bucket:
            shape = tf.reshape(uppers_t[bucket], [1])
        else:
            shape = tf.TensorShape([None])
        shapes = ((shape, shape), shape)
        if pool_batches == 1:  # plain bucketing: nothing to sort, already cut to size
            return pool.padded_batch(batch_size, shapes, drop_remainder=batching.drop_remainder)
        pool = pool.padded_batch(pool_batches * batch_size, padded_shapes=shapes)
        batches = pool.map(_sort_by_lengths).unbatch().batch(batch_size, batching.drop_remainder)
        return batches if pad_to_bucket else batches.map(_cut_padding)

    return dataset.group_by_window(
        key_func=bucket_of,
        reduce_func=batches_of_pool,
        window_size_func=lambda bucket: pool_batches * batch_sizes_t[bucket],
    )


def _sort_by_lengths(inputs, tgt_out):
    """A padded pool's rows in order of (source length, target length); stable."""
    src, tgt_in = inputs
    src_lengths = tf.math.count_nonzero(src, axis=1, dtype=tf.int64)  # ids are never 0
    tgt_lengths = tf.math.count_nonzero(tgt_out, axis=1, dtype=tf.int64)
    order = tf.argsort(
        src_lengths * (tf.shape(tgt_out, tf.int64)[1] + 1) + tgt_lengths, stable=True
    )
    return (tf.gather(src, order), tf.gather(tgt_in, order)), tf.gather(tgt_out, order)


def _cut_padding(inputs, tgt_out):
    """A batch cut from a pool, without the columns that are padding in every row."""
    src, tgt_in = inputs
    src_length = tf.reduce_max(tf.math.count_nonzero(src, axis=1, dtype=tf.int32))
    tgt_length = tf.reduce_max(tf.math.count_nonzero(tgt_out, axis=1, dtype=tf.int32))
    return (src[:, :src_length], tgt_in[:, :tgt_length]), tgt_out[:, :tgt_length]


def _add_start_and_end_to_target(src_tokens, tgt_tokens):
    tgt_in = tf.concat([tf.constant([START_ID], tf.int32), tgt_tokens], axis=0)
    tgt_out = tf.concat([tgt_tokens, tf.constant([END_ID], tf.int32)], axis=0)
    return (src_tokens, tgt_in), tgt_out


def _pair_length(inputs, tgt_out):
    src, _ = inputs
    return tf.maximum(tf.shape(src)[0], tf.shape(tgt_out)[0])
