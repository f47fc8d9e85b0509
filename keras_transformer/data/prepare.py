"""prepare: a parallel corpus of any size -> the sharded token ids `shard_dataset`
streams (the directory's layout is in `shards.py`).

    TSV or aligned files ──stream──▶ [seeded sample ──▶ learn tokenizers]
        ──chunks of pairs_per_shard──▶ tokenize (a process per core) ──▶ filter or
        truncate to max_length ──▶ shard-NNNNN.tfrecord + its counts ──▶ manifest.json

The files are read a line at a time, twice when the tokenizers are learned: once to
draw a seeded reservoir sample of `sample_size` pairs to learn them from (memory
bounded by the sample, whatever the corpus), once to tokenize. Chunks are tokenized
by a pool of processes, at most two chunks per process in flight, so memory stays
bounded by the chunks too.

Every file is written whole or not at all (`keras_transformer.files`): a shard, then
the record of its counts (shard-NNNNN.json), and the manifest last, which lists only
shards whose counts were recorded. Interrupted and run again with the same inputs and
settings, `prepare` keeps the shards already written and writes the rest; with other
inputs or settings (recorded in prepare.json) it starts over.

Example:

>>> with open("train.tsv", "w", encoding="utf-8") as f:
...     _ = f.write("one\\teins\\ntwo\\tzwei\\nthree\\tdrei\\n" * 20)
>>> manifest = prepare("prepared", "train.tsv", tokenizer="wordpiece", vocab_size=60,
...                    pairs_per_shard=25, progress=False)
>>> [shard["pairs"] for shard in manifest["shards"]], manifest["tokenizer_sample"]
([25, 25, 10], {'pairs': 60, 'of': 60, 'seed': 0})
"""

import collections
import concurrent.futures
import json
import multiprocessing
import os
import random
import shutil

import numpy as np
import tensorflow as tf

from keras_transformer.constants import END_ID, PAD_ID, START_ID
from keras_transformer.data.readers import iter_parallel
from keras_transformer.data.shards import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    encode_pair,
    file_checksum,
    read_manifest,
    shard_name,
)
from keras_transformer.errors import InputError
from keras_transformer.files import atomic_path, atomic_write_text, remove_temporaries
from keras_transformer.text.learning import learn_tokenizers
from keras_transformer.text.loading import load_tokenizer
from keras_transformer.text.tokenizer import METADATA_FILE

PLAN_FILE = "prepare.json"
TOKENIZER_DIRS = {
    "source": os.path.join("tokenizers", "source"),
    "target": os.path.join("tokenizers", "target"),
}


def prepare(
    output_dir: str,
    path: str,
    target_path: str | None = None,
    tokenizers: tuple | None = None,
    tokenizer: str = "sentencepiece",
    vocab_size: int = 8000,
    shared_vocabulary: bool = True,
    sample_size: int = 100_000,
    max_length: int = 128,
    truncate: bool = False,
    pairs_per_shard: int = 100_000,
    workers: int = 1,
    seed: int = 0,
    skip_bad_lines: bool = False,
    progress: bool = True,
) -> dict:
    """Tokenizes a parallel corpus into shards; returns the manifest (a dict).

    Args:
        output_dir: the directory to write (created if needed).
        path, target_path: a TSV file, or aligned source and target files (see
            `read_parallel`).
        tokenizers: (source, target) tokenizers to use; None learns them.
        tokenizer, vocab_size, shared_vocabulary: what to learn (as in
            `TrainingSettings`).
        sample_size: the most pairs the tokenizers are learned from: a seeded
            uniform sample of the corpus.
        max_length, truncate: as in `make_dataset`: longer pairs are dropped, or cut.
        pairs_per_shard: pairs read into each shard (fewer once too long ones are
            dropped); multi-worker training needs at least one shard per worker.
        workers: processes that tokenize (each loads TensorFlow: worth it for
            corpora of many shards only).
        seed: seed of the sample.
        skip_bad_lines: skip malformed lines (counted in the manifest) instead of
            stopping at the first.
        progress: show a progress bar (pairs and pairs/s) on stderr.

    Returns:
        The manifest: "pairs", "source_tokens", "target_tokens", "dropped",
        "truncated", "skipped_lines", "length_histogram" (max(len(src),
        len(tgt) + 1) -> pairs), "tokenizers" (fingerprints), "tokenizer_sample"
        (pairs learned from, of how many, seed; None with given tokenizers),
        "settings" and "shards" (each: file, pairs, tokens, dropped, truncated, its
        length histogram, bytes, crc32).
    """
    output_dir = os.fspath(output_dir)
    for name, value, least in (
        ("max_length", max_length, 2),
        ("pairs_per_shard", pairs_per_shard, 1),
        ("workers", workers, 1),
        ("sample_size", sample_size, 1),
        ("vocab_size", vocab_size, 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise InputError(f"{name} must be an int of at least {least}; got {value!r}")
    inputs = [path] if target_path is None else [path, target_path]
    for name in inputs:
        if not os.path.isfile(name):
            raise FileNotFoundError(f"parallel corpus file not found: {os.fspath(name)}")
    plan = {
        "inputs": [
            {
                "path": os.path.abspath(name),
                "bytes": os.path.getsize(name),
                "mtime_ns": os.stat(name).st_mtime_ns,
            }
            for name in inputs
        ],
        "aligned": target_path is not None,
        "max_length": max_length,
        "truncate": truncate,
        "pairs_per_shard": pairs_per_shard,
        "skip_bad_lines": skip_bad_lines,
        "tokenizer": (
            {"given": [t.fingerprint for t in tokenizers]}
            if tokenizers
            else {
                "kind": tokenizer,
                "vocab_size": vocab_size,
                "shared_vocabulary": shared_vocabulary,
                "sample_size": sample_size,
                "seed": seed,
            }
        ),
    }
    os.makedirs(output_dir, exist_ok=True)
    remove_temporaries(output_dir)
    plan_path = os.path.join(output_dir, PLAN_FILE)
    if _read_json(plan_path) != plan:
        _start_over(output_dir)
        atomic_write_text(plan_path, json.dumps(plan, indent=2))
    elif os.path.isfile(os.path.join(output_dir, MANIFEST_FILE)):
        return read_manifest(output_dir)

    skipped = collections.Counter()

    def pairs(count_skipped=False):
        for _, pair, _ in iter_parallel(path, target_path, skip_bad_lines):
            if pair is not None:
                yield pair
            elif count_skipped:
                skipped["lines"] += 1

    source_tokenizer, target_tokenizer, sample = _tokenizers(
        output_dir, tokenizers, pairs(), plan["tokenizer"]
    )
    for side, tok in (("source", source_tokenizer), ("target", target_tokenizer)):
        if (tok.pad_id, tok.start_id, tok.end_id) != (PAD_ID, START_ID, END_ID):
            raise InputError(
                f"the {side} tokenizer must use [PAD]=0, [START]=2, [END]=3 "
                f"(the model's input format); it uses {tok.pad_id}, "
                f"{tok.start_id}, {tok.end_id}"
            )

    shards = _write_shards(
        output_dir,
        _chunks(pairs(count_skipped=True), pairs_per_shard),
        (source_tokenizer, target_tokenizer),
        max_length,
        truncate,
        workers,
        total=sample and sample["of"],
        progress=progress,
    )
    histogram = collections.Counter()
    for shard in shards:
        histogram.update({int(k): v for k, v in shard["length_histogram"].items()})
    manifest = {
        "format": FORMAT_VERSION,
        "pairs": sum(s["pairs"] for s in shards),
        "source_tokens": sum(s["source_tokens"] for s in shards),
        "target_tokens": sum(s["target_tokens"] for s in shards),
        "dropped": sum(s["dropped"] for s in shards),
        "truncated": sum(s["truncated"] for s in shards),
        "skipped_lines": skipped["lines"],
        "length_histogram": {str(k): histogram[k] for k in sorted(histogram)},
        "tokenizers": {
            "source": source_tokenizer.fingerprint,
            "target": target_tokenizer.fingerprint,
        },
        "tokenizer_sample": sample,
        "settings": plan,
        "shards": shards,
    }
    if manifest["pairs"] == 0:
        raise InputError(
            f"{os.fspath(path)}: every pair is longer than max_length="
            f"{max_length} tokens, or there is none; raise max_length or "
            "pass truncate=True"
        )
    atomic_write_text(os.path.join(output_dir, MANIFEST_FILE), json.dumps(manifest, indent=1))
    return manifest


def _read_json(path):
    """A JSON file's content, or None when it is missing or not JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _start_over(output_dir):
    """Removes what an earlier prepare of other inputs or settings wrote (its files
    only)."""
    for name in os.listdir(output_dir):
        if name == MANIFEST_FILE or (
            name.startswith("shard-") and name.endswith((".tfrecord", ".json"))
        ):
            os.remove(os.path.join(output_dir, name))
    shutil.rmtree(os.path.join(output_dir, "tokenizers"), ignore_errors=True)


def _tokenizers(output_dir, given, pairs, spec):
    """(source, target, sample description): the given tokenizers, those an earlier
    run saved, or new ones learned on a seeded reservoir sample of `pairs`."""
    directories = {side: os.path.join(output_dir, d) for side, d in TOKENIZER_DIRS.items()}
    saved = all(os.path.isfile(os.path.join(d, METADATA_FILE)) for d in directories.values())
    sample = None
    if given:
        source, target = given
    elif saved:
        source, target = (load_tokenizer(directories[side]) for side in ("source", "target"))
    else:
        draw = random.Random(spec["seed"])
        reservoir, count = [], 0
        for count, pair in enumerate(pairs, start=1):
            if len(reservoir) < spec["sample_size"]:
                reservoir.append(pair)
            else:
                slot = draw.randrange(count)
                if slot < spec["sample_size"]:
                    reservoir[slot] = pair
        if not reservoir:
            raise InputError("the corpus holds no sentence pairs to learn tokenizers from")
        source, target = learn_tokenizers(
            reservoir, spec["kind"], spec["vocab_size"], spec["shared_vocabulary"]
        )
        sample = {"pairs": len(reservoir), "of": count, "seed": spec["seed"]}
    sample_path = os.path.join(output_dir, "tokenizers", "sample.json")
    if sample is not None:
        # Before the tokenizers, whose tokenizer.json (written last) marks them saved: a
        # rerun that loads them finds the sample they were learned from.
        atomic_write_text(sample_path, json.dumps(sample))
    elif not given:
        sample = _read_json(sample_path)
    if not saved:
        source.save(directories["source"])
        target.save(directories["target"])
    return source, target, sample


def _chunks(pairs, size):
    chunk = []
    for pair in pairs:
        chunk.append(pair)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _written_shard(output_dir, index):
    """The counts of shard `index` if an earlier run wrote it whole, else None."""
    counts = _read_json(os.path.join(output_dir, shard_name(index)[: -len(".tfrecord")] + ".json"))
    path = os.path.join(output_dir, shard_name(index))
    if (
        isinstance(counts, dict)
        and os.path.isfile(path)
        and os.path.getsize(path) == counts.get("bytes")
    ):
        return counts
    return None


def _write_shards(output_dir, chunks, tokenizers, max_length, truncate, workers, total, progress):
    """Writes a shard per chunk (those not written already); returns their counts in
    order."""
    from tqdm.auto import tqdm

    shards, pending = {}, []
    with tqdm(
        total=total, unit="pair", desc="preparing", disable=not progress, smoothing=0.1
    ) as bar:
        executor = None
        if workers > 1:
            executor = concurrent.futures.ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_load_tokenizers_in_worker,
                initargs=(output_dir,),
            )

        def collect(job):
            index, size, future = job
            try:
                shards[index] = future.result()
            except concurrent.futures.process.BrokenProcessPool as error:
                raise ChildProcessError(
                    f"a tokenizing worker process died (killed, or out of memory?) before "
                    f"shard {index} of {output_dir} was written; every shard written whole "
                    "is kept: run the same command again to resume, with fewer workers if "
                    "memory is short"
                ) from error
            bar.update(size)

        try:
            for index, chunk in enumerate(chunks):
                written = _written_shard(output_dir, index)
                if written is not None:
                    shards[index] = written
                    bar.update(len(chunk))
                elif executor is None:
                    shards[index] = write_shard(
                        output_dir, index, chunk, *tokenizers, max_length, truncate
                    )
                    bar.update(len(chunk))
                else:
                    pending.append(
                        (
                            index,
                            len(chunk),
                            executor.submit(
                                _write_shard_in_worker,
                                output_dir,
                                index,
                                chunk,
                                max_length,
                                truncate,
                            ),
                        )
                    )
                    while len(pending) >= 2 * workers:
                        collect(pending.pop(0))
            while pending:
                collect(pending.pop(0))
        finally:
            if executor is not None:
                executor.shutdown(cancel_futures=True)
    return [shards[index] for index in sorted(shards)]


_worker_tokenizers = None


def _load_tokenizers_in_worker(output_dir):
    global _worker_tokenizers
    _worker_tokenizers = tuple(
        load_tokenizer(os.path.join(output_dir, TOKENIZER_DIRS[side]))
        for side in ("source", "target")
    )


def _write_shard_in_worker(output_dir, index, pairs, max_length, truncate):
    return write_shard(output_dir, index, pairs, *_worker_tokenizers, max_length, truncate)


def write_shard(output_dir, index, pairs, source_tokenizer, target_tokenizer, max_length, truncate):
    """Tokenizes `pairs` into shard `index` of `output_dir`, then records its counts
    beside it; returns them (a dict, as in the manifest's "shards")."""
    src = source_tokenizer.tokenize(tf.constant([s for s, _ in pairs]))
    tgt = target_tokenizer.tokenize(tf.constant([t for _, t in pairs]))
    src_ids, src_splits = src.flat_values.numpy(), src.row_splits.numpy()
    tgt_ids, tgt_splits = tgt.flat_values.numpy(), tgt.row_splits.numpy()
    # Lengths count the [END] (or [START]) the target gets, as in make_dataset.
    too_long = (np.diff(src_splits) > max_length) | (np.diff(tgt_splits) + 1 > max_length)
    histogram = collections.Counter()
    source_tokens = target_tokens = 0
    path = os.path.join(output_dir, shard_name(index))
    with atomic_path(path) as temporary:
        with tf.io.TFRecordWriter(temporary) as writer:
            for row in np.flatnonzero(~too_long | truncate):
                source = src_ids[src_splits[row] : src_splits[row + 1]][:max_length]
                target = tgt_ids[tgt_splits[row] : tgt_splits[row + 1]][: max_length - 1]
                writer.write(encode_pair(source, target))
                histogram[max(len(source), len(target) + 1)] += 1
                source_tokens += len(source)
                target_tokens += len(target)
    num_too_long = int(too_long.sum())
    counts = {
        "file": shard_name(index),
        "pairs": sum(histogram.values()),
        "source_tokens": source_tokens,
        "target_tokens": target_tokens,
        "dropped": 0 if truncate else num_too_long,
        "truncated": num_too_long if truncate else 0,
        "length_histogram": {str(k): histogram[k] for k in sorted(histogram)},
        "bytes": os.path.getsize(path),
        "crc32": file_checksum(path),
    }
    atomic_write_text(path[: -len(".tfrecord")] + ".json", json.dumps(counts))
    return counts
