"""Prepared corpora: sharded TFRecord files of token ids, their manifest, and the
tf.data pipeline that streams them into training batches with bounded memory.

    DIR/
      manifest.json           written last (see `prepare`): the shards with their pairs,
                              tokens, bytes and CRC-32, the length histogram, the
                              tokenizers' fingerprints, the settings, the counts of
                              dropped, truncated and skipped pairs
      shard-00000.tfrecord    tf.train.Example records: "src" and "tgt", the int32 ids
      shard-00001.tfrecord    (little-endian bytes) of one pair, without [START]/[END]
      tokenizers/source/, tokenizers/target/   the tokenizers that made the ids

`shard_dataset` gives the batches `make_dataset` gives for the same pairs (the same
`((src, tgt_in), tgt_out)` elements, the same token-budget buckets, every kept pair
once per epoch), but reads them from the shards as it goes: the shard order is
reshuffled every epoch, a few shards are read interleaved, and pairs pass through a
shuffle buffer of a fixed size, so memory depends on the buffers, not on the corpus.
With several workers each reads its own shards (sharding by file): no worker reads
the whole corpus.

Example (`prepare` writes the directory):

>>> corpus = kt.data.numbers_corpus("de", train_size=100, dev_size=0, test_size=0)
>>> with open("train.tsv", "w", encoding="utf-8") as f:
...     _ = f.write("".join(f"{s}\\t{t}\\n" for s, t in corpus.train))
>>> manifest = kt.data.prepare("prepared", "train.tsv", tokenizer="wordpiece",
...                            vocab_size=200, pairs_per_shard=40, progress=False)
>>> len(manifest["shards"]), manifest["pairs"]
(3, 100)
>>> dataset = shard_dataset("prepared", tokens_per_batch=2048)
>>> (src, tgt_in), tgt_out = next(iter(dataset))
>>> src.dtype
tf.int32
"""

import json
import os
import zlib

import numpy as np
import tensorflow as tf

from keras_transformer.data.batch_settings import BatchSettings
from keras_transformer.data.pipeline import DatasetStats, batch_by_tokens, logger
from keras_transformer.errors import InputError

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1
# Shards read at once, interleaved a pair at a time: enough to mix neighbouring shards,
# few enough that the open files and their read buffers stay small.
INTERLEAVED_SHARDS = 4
# Batches that one shuffle buffer holds, to spread the partial batches that bucketing
# flushes last (make_dataset can hold them all; a stream cannot).
BATCH_SHUFFLE_BUFFER = 256


def shard_name(index):
    """The file name of shard `index`."""
    return f"shard-{index:05d}.tfrecord"


def encode_pair(src_ids, tgt_ids):
    """One serialized record of a pair of id sequences (1-D int arrays)."""
    feature = {
        side: tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[np.asarray(ids, "<i4").tobytes()])
        )
        for side, ids in (("src", src_ids), ("tgt", tgt_ids))
    }
    # Deterministic: a protobuf map's order otherwise follows the process's hash seed,
    # and the same pairs would give shards of other bytes (and CRC) on every run.
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(
        deterministic=True
    )


_RECORD_FEATURES = {
    "src": tf.io.FixedLenFeature([], tf.string),
    "tgt": tf.io.FixedLenFeature([], tf.string),
}


def _decode_pair(record):
    """A serialized record -> (src ids (length,), tgt ids (length,)), int32."""
    fields = tf.io.parse_single_example(record, _RECORD_FEATURES)
    return (
        tf.io.decode_raw(fields["src"], tf.int32, little_endian=True),
        tf.io.decode_raw(fields["tgt"], tf.int32, little_endian=True),
    )


def file_checksum(path):
    """The CRC-32 of a file's bytes, read a megabyte at a time."""
    checksum = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            checksum = zlib.crc32(block, checksum)
    return checksum


def read_manifest(directory):
    """The manifest of a prepared directory, as a dict; InputError naming the file when
    it is missing or not a manifest."""
    path = os.path.join(os.fspath(directory), MANIFEST_FILE)
    if not os.path.isfile(path):
        raise InputError(
            f"{directory} is not a prepared corpus: {path} is missing (write one with "
            "`keras-transformer prepare`; an interrupted prepare resumes when run again)"
        )
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as error:
        raise InputError(f"{path} is not a valid manifest: {error}") from error
    required = ("format", "pairs", "shards", "tokenizers", "settings")
    if not isinstance(manifest, dict) or any(key not in manifest for key in required):
        raise InputError(
            f"{path} is not a valid manifest: expected an object with {', '.join(required)}"
        )
    if manifest["format"] != FORMAT_VERSION:
        raise InputError(
            f"{path} has format {manifest['format']!r}; this version reads "
            f"format {FORMAT_VERSION}: prepare the corpus again"
        )
    return manifest


def check_fingerprints(directory, manifest, source_tokenizer, target_tokenizer):
    """InputError naming the manifest when its tokenizers are not the given ones."""
    recorded = manifest["tokenizers"]
    given = {"source": source_tokenizer.fingerprint, "target": target_tokenizer.fingerprint}
    if recorded != given:
        raise InputError(
            f"{os.path.join(os.fspath(directory), MANIFEST_FILE)} was tokenized with "
            f"tokenizers of fingerprints {recorded}, not those given ({given}): its ids "
            "would mean other tokens. Prepare the corpus with these tokenizers, or train "
            "with the prepared directory's own (its tokenizers/ folder)"
        )


def check_shard(directory, entry):
    """InputError naming the shard when its file is missing, truncated or changed since
    `prepare` recorded its size and CRC-32 (`entry`, from the manifest)."""
    path = os.path.join(os.fspath(directory), entry["file"])
    if not os.path.isfile(path):
        raise InputError(f"shard {path} is missing; prepare the corpus again")
    size = os.path.getsize(path)
    if size != entry["bytes"]:
        raise InputError(
            f"shard {path} holds {size} bytes where the manifest records "
            f"{entry['bytes']}: it is truncated or damaged; prepare the corpus "
            "again"
        )
    if file_checksum(path) != entry["crc32"]:
        raise InputError(
            f"shard {path} is corrupt (its CRC-32 differs from the "
            "manifest's); prepare the corpus again"
        )
    return path


def shard_dataset(
    directory,
    source_tokenizer=None,
    target_tokenizer=None,
    batching: BatchSettings | None = None,
    *,
    shuffle_buffer: int = 10_000,
    num_workers: int = 1,
    worker_index: int = 0,
    return_stats: bool = False,
    **batching_args,
) -> "tf.data.Dataset | tuple[tf.data.Dataset, DatasetStats]":
    """Returns a `tf.data.Dataset` of `((src, tgt_in), tgt_out)` int32 batches streamed
    from a prepared directory (see `make_dataset` for the batches).

    Args:
        directory: what `prepare` wrote.
        source_tokenizer, target_tokenizer: the run's tokenizers, if any; a manifest of
            other fingerprints is refused.
        batching: a `BatchSettings`, or its fields as keyword arguments, as for
            `make_dataset`. Pairs longer than `max_length` are dropped here too (a
            shorter `max_length` than `prepare`'s drops more; the manifest's length
            histogram makes the count exact). `shuffle` reshuffles the shard order,
            and the pairs in a buffer, every epoch.
        shuffle_buffer: pairs the shuffle buffer holds.
        num_workers, worker_index: read only every `num_workers`-th shard from
            `worker_index` on (multi-worker training, sharded by file).
        return_stats: also return a `DatasetStats` of this worker's pairs.

    Raises:
        InputError: no manifest, other fingerprints, fewer shards than workers, or a
            shard missing, truncated or corrupt (naming the file).
    """
    batching = BatchSettings.from_arguments(batching, batching_args)
    max_length, shuffle, seed = batching.max_length, batching.shuffle, batching.seed
    manifest = read_manifest(directory)
    if source_tokenizer is not None or target_tokenizer is not None:
        check_fingerprints(
            directory, manifest, source_tokenizer, target_tokenizer or source_tokenizer
        )
    shards = manifest["shards"]
    if not (isinstance(num_workers, int) and 0 <= worker_index < num_workers):
        raise InputError(
            f"worker_index must be in 0..num_workers-1; got worker {worker_index} of {num_workers}"
        )
    if len(shards) < num_workers:
        raise InputError(
            f"{directory} holds {len(shards)} shard(s), fewer than the {num_workers} "
            "workers, and each worker reads its own shards: prepare it again with "
            f"pairs_per_shard small enough for at least {num_workers} shards"
        )
    own = shards[worker_index::num_workers]
    paths = [check_shard(directory, entry) for entry in own]

    kept = dropped = 0
    for entry in own:
        for length, count in entry["length_histogram"].items():
            if int(length) <= max_length:
                kept += count
            else:
                dropped += count
    if dropped:
        logger.warning(
            "dropped %d of %d prepared pairs longer than max_length=%d tokens",
            dropped,
            kept + dropped,
            max_length,
        )
    if kept == 0:
        raise InputError(
            f"{directory} holds no pairs of at most max_length={max_length} "
            f"tokens for worker {worker_index} of {num_workers}"
        )
    boundaries, batch_sizes = batching.buckets()
    stats = DatasetStats(
        num_pairs=kept,
        num_dropped=manifest.get("dropped", 0) + dropped,
        num_truncated=manifest.get("truncated", 0),
        bucket_boundaries=tuple(boundaries),
        bucket_batch_sizes=tuple(batch_sizes),
    )

    files = tf.data.Dataset.from_tensor_slices(paths)
    if shuffle:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    dataset = files.interleave(
        tf.data.TFRecordDataset, cycle_length=min(INTERLEAVED_SHARDS, len(paths)), block_length=1
    )
    dataset = dataset.map(_decode_pair)
    if dropped:
        dataset = dataset.filter(
            lambda src, tgt: tf.logical_and(
                tf.shape(src)[0] <= max_length, tf.shape(tgt)[0] + 1 <= max_length
            )
        )
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed + 1, reshuffle_each_iteration=True)
    dataset = batch_by_tokens(
        dataset,
        batching,
        batch_shuffle_buffer=BATCH_SHUFFLE_BUFFER if shuffle else 0,
        seed=seed + 2,
    )
    return (dataset, stats) if return_stats else dataset
