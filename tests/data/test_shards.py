"""Prepared corpora: `prepare` writes shards that `shard_dataset` streams into the very
batches' contents `make_dataset` gives, refuses what does not belong, and resumes."""

import collections
import json
import os
import re
import subprocess
import sys

import pytest

from keras_transformer.data import make_dataset, numbers_corpus, prepare, shard_dataset
from keras_transformer.errors import InputError
from keras_transformer.files import KILL_HOOK
from keras_transformer.text import WordPieceTokenizer

BUDGET = 256
MAX_LENGTH = 12


@pytest.fixture(scope="module")
def pairs():
    return numbers_corpus("de", train_size=300, dev_size=0, test_size=0, seed=7).train


@pytest.fixture(scope="module")
def tokenizers(pairs):
    """Separate source and target vocabularies."""
    return (
        WordPieceTokenizer.train([s for s, _ in pairs], vocab_size=120),
        WordPieceTokenizer.train([t for _, t in pairs], vocab_size=120),
    )


@pytest.fixture(scope="module")
def tsv(pairs, tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "train.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


def _examples(dataset):
    """The multiset of (src, tgt_in, tgt_out) of one pass, padding removed (ids are
    never 0)."""
    examples = collections.Counter()
    for (src, tgt_in), tgt_out in dataset:
        for row in zip(src.numpy().tolist(), tgt_in.numpy().tolist(), tgt_out.numpy().tolist()):
            examples[tuple(tuple(i for i in ids if i) for ids in row)] += 1
    return examples


@pytest.mark.parametrize("truncate", [False, True])
def test_streamed_shards_hold_make_datasets_pairs(pairs, tokenizers, tsv, tmp_path, truncate):
    """Catches: prepare's length rule off by one (`>=` for `>` in write_shard's too_long,
    which drops or cuts pairs of exactly max_length tokens), and a shard skipped by the
    reader (`own = shards[1:]`)."""
    manifest = prepare(
        tmp_path / "p",
        tsv,
        tokenizers=tokenizers,
        max_length=MAX_LENGTH,
        truncate=truncate,
        pairs_per_shard=70,
        progress=False,
    )
    assert len(manifest["shards"]) == 5
    reference, reference_stats = make_dataset(
        pairs,
        *tokenizers,
        tokens_per_batch=BUDGET,
        max_length=MAX_LENGTH,
        truncate=truncate,
        return_stats=True,
    )
    streamed, stats = shard_dataset(
        tmp_path / "p",
        *tokenizers,
        tokens_per_batch=BUDGET,
        max_length=MAX_LENGTH,
        shuffle_buffer=50,
        return_stats=True,
    )
    assert stats == reference_stats
    assert 0 < stats.num_dropped + stats.num_truncated < len(pairs), "the test needs both kinds"
    expected = _examples(reference)
    assert sum(expected.values()) == stats.num_pairs
    assert _examples(streamed) == expected
    assert _examples(streamed) == expected  # the second epoch too
    assert manifest["pairs"] == stats.num_pairs
    assert sum(manifest["length_histogram"].values()) == stats.num_pairs


def test_workers_read_their_own_shards_and_together_every_pair(tokenizers, tsv, tmp_path):
    """Catches: worker sharding by element of the same files, or every worker reading
    every shard (`own = shards`)."""
    prepare(
        tmp_path / "p",
        tsv,
        tokenizers=tokenizers,
        max_length=40,
        pairs_per_shard=70,
        progress=False,
    )
    every = _examples(
        shard_dataset(
            tmp_path / "p", *tokenizers, tokens_per_batch=BUDGET, max_length=40, shuffle=False
        )
    )
    parts = [
        _examples(
            shard_dataset(
                tmp_path / "p",
                *tokenizers,
                tokens_per_batch=BUDGET,
                max_length=40,
                num_workers=2,
                worker_index=i,
            )
        )
        for i in range(2)
    ]
    assert sum(every.values()) == 300
    assert parts[0] + parts[1] == every
    # Shards of 70, 70, 70, 70 and 20 pairs: worker 0 reads shards 0, 2, 4.
    assert (sum(parts[0].values()), sum(parts[1].values())) == (160, 140)
    with pytest.raises(InputError, match="5 shard.*fewer than the 6 workers"):
        shard_dataset(tmp_path / "p", *tokenizers, num_workers=6, worker_index=0)


def test_other_tokenizers_are_refused_naming_the_manifest(pairs, tokenizers, tsv, tmp_path):
    """Catches: a fingerprint check that compares only the source side."""
    prepare(
        tmp_path / "p",
        tsv,
        tokenizers=tokenizers,
        max_length=40,
        pairs_per_shard=100,
        progress=False,
    )
    other = WordPieceTokenizer.train([t for _, t in pairs[:100]], vocab_size=80)
    with pytest.raises(InputError, match=r"manifest\.json was tokenized with tokenizers"):
        shard_dataset(tmp_path / "p", tokenizers[0], other)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_shard_is_named(tokenizers, tsv, tmp_path, damage):
    """Catches: check_shard skipped (the CRC of TFRecord records alone would stop
    training mid-epoch without naming the file; a cut at a record boundary is not even
    noticed) or checking only the size (the flipped byte keeps it)."""
    prepare(
        tmp_path / "p",
        tsv,
        tokenizers=tokenizers,
        max_length=40,
        pairs_per_shard=100,
        progress=False,
    )
    shard = tmp_path / "p" / "shard-00001.tfrecord"
    data = shard.read_bytes()
    shard.write_bytes(
        data[: len(data) // 2]
        if damage == "truncate"
        else data[:100] + bytes([data[100] ^ 1]) + data[101:]
    )
    with pytest.raises(InputError, match=r"shard .*shard-00001\.tfrecord (holds|is corrupt)"):
        shard_dataset(tmp_path / "p", *tokenizers)


def test_learned_tokenizers_come_from_a_bounded_seeded_sample(tsv, tmp_path):
    """Catches: a sample that ignores the seed or grows past sample_size."""
    manifests = [
        prepare(
            tmp_path / name,
            tsv,
            tokenizer="wordpiece",
            vocab_size=100,
            sample_size=50,
            seed=seed,
            pairs_per_shard=1000,
            progress=False,
        )
        for name, seed in (("a", 1), ("b", 1), ("c", 2))
    ]
    assert manifests[0]["tokenizer_sample"] == {"pairs": 50, "of": 300, "seed": 1}
    assert manifests[0]["tokenizers"] == manifests[1]["tokenizers"]
    assert manifests[0]["tokenizers"] != manifests[2]["tokenizers"]


def _prepare_command(output, tsv):
    code = (
        "import sys; from keras_transformer.data import prepare; "
        "prepare(sys.argv[1], sys.argv[2], tokenizer='wordpiece', vocab_size=100, "
        "max_length=40, pairs_per_shard=70, progress=False)"
    )
    return [sys.executable, "-c", code, str(output), str(tsv)]


def test_killed_prepare_resumes_to_the_same_manifest(tsv, tmp_path):
    """Killed when shard 2 and when the manifest are complete under their temporary
    names, then run again: the shards already written are kept, no manifest points at a
    partial shard, and the result is the uninterrupted one.

    Catches: a rerun that starts over every time (`if True:` for the plan comparison
    in `prepare`), which rewrites the shards already written."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    output = tmp_path / "p"
    for kill in ("shard-00002.tfrecord", "manifest.json"):
        result = subprocess.run(
            _prepare_command(output, tsv),
            capture_output=True,
            env=dict(environment, **{KILL_HOOK: kill}),
            timeout=300,
        )
        assert result.returncode == -9, result.stderr[-2000:]
        assert not (output / "manifest.json").exists()
        if kill.startswith("shard"):
            assert sorted(p.name for p in output.glob("shard-*")) == [
                "shard-00000.json",
                "shard-00000.tfrecord",
                "shard-00001.json",
                "shard-00001.tfrecord",
            ]
            kept = (output / "shard-00001.tfrecord").stat().st_mtime_ns
    result = subprocess.run(
        _prepare_command(output, tsv), capture_output=True, env=environment, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (output / "shard-00001.tfrecord").stat().st_mtime_ns == kept
    assert not [p for p in output.iterdir() if ".tmp" in p.name]
    resumed = json.loads((output / "manifest.json").read_text())
    fresh = prepare(
        tmp_path / "fresh",
        tsv,
        tokenizer="wordpiece",
        vocab_size=100,
        max_length=40,
        pairs_per_shard=70,
        progress=False,
    )
    for manifest in (resumed, fresh):
        manifest["settings"].pop("inputs")
    assert resumed == fresh
    assert sum(s["pairs"] for s in resumed["shards"]) == 300


@pytest.mark.slow
def test_a_killed_worker_is_named_and_the_rerun_finishes(tsv, tmp_path):
    """A worker process of `prepare --workers 2` killed when shard 2 is complete: the
    command says so in one line (exit 2, no traceback) and keeps what was written; the
    same command then finishes.

    Catches: the pool's BrokenProcessPool left to surface as a traceback (the
    `ChildProcessError` in `_write_shards` or its place in the CLI's USER_ERRORS
    removed)."""
    command = [
        "prepare",
        "--output",
        str(tmp_path / "p"),
        "--workers",
        "2",
        "--input",
        str(tsv),
        "--tokenizer",
        "wordpiece",
        "--vocab-size",
        "100",
        "--max-length",
        "40",
        "--pairs-per-shard",
        "70",
    ]
    result = _cli(*command, environment={KILL_HOOK: "shard-00002.tfrecord"})
    assert result.returncode == 2, result.stderr[-2000:]
    # The pool breaks for every shard still pending: the first one waited for is named.
    assert re.search(
        r"a tokenizing worker process died \(killed, or out of memory\?\) "
        r"before shard [0-2] of \S+ was written",
        result.stderr,
    ), result.stderr
    assert "run the same command again to resume" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "p" / "manifest.json").exists()
    result = _cli(*command)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "5 shards, 300 pairs" in result.stdout


def _cli(*args, environment=None):
    return subprocess.run(
        [sys.executable, "-m", "keras_transformer.cli", *args],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(environment or {})),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_command_line_prepares_in_two_processes_and_trains_from_the_shards(tsv, tmp_path):
    """`prepare --workers 2` gives the shards one process gives; `train --data prepared`
    trains on them, and a run refuses shards of other tokenizers, naming the manifest.

    Catches: the run learning or keeping tokenizers other than the prepared directory's
    (`_tokenizers` learning from `corpus.train`), and the fingerprint check skipped in
    `train` (`check_fingerprints` not called)."""
    common = [
        "--input",
        str(tsv),
        "--tokenizer",
        "wordpiece",
        "--vocab-size",
        "100",
        "--max-length",
        "40",
        "--pairs-per-shard",
        "70",
    ]
    result = _cli("prepare", "--output", str(tmp_path / "p"), "--workers", "2", *common)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "learned on a seeded sample of 300 of 300 pairs (seed 0)" in result.stdout
    assert "5 shards, 300 pairs" in result.stdout
    single = prepare(
        tmp_path / "single",
        tsv,
        tokenizer="wordpiece",
        vocab_size=100,
        max_length=40,
        pairs_per_shard=70,
        progress=False,
    )
    pooled = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert pooled["shards"] == single["shards"]

    run_dir = str(tmp_path / "run")
    train = [
        "train",
        "--run-dir",
        run_dir,
        "--preset",
        "tiny",
        "--set",
        "d_model=32",
        "d_ff=64",
        "num_layers=1",
        "--tokens-per-batch",
        "512",
        "--warmup-steps",
        "20",
        "--max-length",
        "40",
        "--data",
        "prepared",
    ]
    result = _cli(*train, "--train", str(tmp_path / "p"), "--epochs", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        json.loads((tmp_path / "run" / "config.json").read_text())["tokenizers"]
        == (pooled["tokenizers"])
    )

    other = prepare(
        tmp_path / "other",
        tsv,
        tokenizer="wordpiece",
        vocab_size=90,
        max_length=40,
        pairs_per_shard=70,
        progress=False,
    )
    assert other["tokenizers"] != pooled["tokenizers"]
    (tmp_path / "run" / "model.keras").unlink()  # an unfinished run, as if interrupted
    result = _cli(*train, "--train", str(tmp_path / "other"), "--epochs", "2")
    assert result.returncode == 2
    assert f"{tmp_path / 'other' / 'manifest.json'} was tokenized with" in result.stderr


def test_aligned_files_stream_with_malformed_lines_counted(pairs, tokenizers, tmp_path):
    """Catches: skipped lines not counted (`skipped_lines` 0), and aligned files of
    different lengths accepted (`zip` for `itertools.zip_longest` in `_stream_aligned`)."""
    source, target = tmp_path / "train.en", tmp_path / "train.de"
    lines = [(s, t) for s, t in pairs[:50]] + [("", "leer")] + list(pairs[50:100])
    source.write_text("".join(f"{s}\n" for s, _ in lines), encoding="utf-8")
    target.write_text("".join(f"{t}\n" for _, t in lines), encoding="utf-8")
    with pytest.raises(InputError, match=r"train\.en: empty line at line 51"):
        prepare(tmp_path / "p", source, target, tokenizers=tokenizers, progress=False)
    manifest = prepare(
        tmp_path / "p", source, target, tokenizers=tokenizers, skip_bad_lines=True, progress=False
    )
    assert (manifest["pairs"], manifest["skipped_lines"]) == (100, 1)
    target.write_text("".join(f"{t}\n" for _, t in lines[:-1]), encoding="utf-8")
    with pytest.raises(InputError, match=r"train\.de ends after 100 lines"):
        prepare(
            tmp_path / "q",
            source,
            target,
            tokenizers=tokenizers,
            skip_bad_lines=True,
            progress=False,
        )
