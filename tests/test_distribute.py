"""Data-parallel training (tf.distribute) and mixed precision.

Logical CPU devices and TF_CONFIG must exist before TensorFlow initialises its devices,
so every multi-replica case trains in fresh interpreters running
tests/distribute_worker.py and the weights they save are compared here.
"""

import csv
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_transformer as kt
from keras_transformer import distribute

WORKER = os.path.join(os.path.dirname(__file__), "distribute_worker.py")
TIMEOUT = 240

# SGD with lr 0.5, 4 steps on batches of 8, 8, 3 and 1 rows: measured max |Δw| 1.2e-7.
# (Adam, lr 0.01, same batches: 3.3e-5, since Adam's m/√v amplifies float round-off
# in near-zero gradients; SGD measures the gradients themselves.)
WEIGHT_TOLERANCE = 1e-5


def worker_command(out, *args):
    return [sys.executable, WORKER, "--out", str(out), *args]


def start(out, *args, env=None):
    return subprocess.Popen(
        worker_command(out, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, **(env or {})),
    )


def finish(process, timeout=TIMEOUT):
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"worker timed out after {timeout} s:\n{output[-3000:]}")
    assert process.returncode == 0, f"worker failed ({process.returncode}):\n{output[-3000:]}"
    return output


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_two_workers(tmp_path, worker_args=lambda index: []):
    """Two multiworker processes on free 127.0.0.1 ports; worker i writes its weights to
    tmp_path/worker{i}.npz and gets the flags `worker_args(i)`."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    return [
        start(
            tmp_path / f"worker{i}.npz",
            "--strategy",
            "multiworker",
            *worker_args(i),
            env={
                "TF_CONFIG": json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": i}}
                )
            },
        )
        for i in range(2)
    ]


def finish_all(processes):
    """Every process's output (see `finish`); any still running when one fails is killed."""
    try:
        return [finish(p) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()


def weights(path):
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def max_difference(a, b):
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max()) for k in a if k != "iterations")


@pytest.mark.slow
def test_mirrored_two_cpus_matches_one_device(tmp_path):
    # Global batches of 8, 8, 3 and 1 rows; in each the first half of the rows has 2 target
    # tokens and the rest 5, so the two replicas hold different token counts and the
    # batch of 1 leaves replica 1 empty.
    sizes = ["--sizes", "8,8,3,1"]
    runs = {
        "one": start(tmp_path / "one.npz", *sizes),
        "two": start(tmp_path / "two.npz", "--strategy", "mirrored", "--cpus", "2", *sizes),
        "plain": start(
            tmp_path / "plain.npz",
            "--strategy",
            "mirrored",
            "--cpus",
            "2",
            "--loss",
            "plain",
            *sizes,
        ),
    }
    outputs = {name: finish(process) for name, process in runs.items()}
    assert "2 replicas" in outputs["two"] and "1 replicas" in outputs["one"]
    one, two, plain = (weights(tmp_path / f"{n}.npz") for n in ("one", "two", "plain"))
    assert max_difference(one, two) < WEIGHT_TOLERANCE
    # Without GlobalTokenMean, Keras does not divide the scalar token-mean loss by the
    # replica count and the replicas' means are averaged unweighted: clearly different.
    assert max_difference(one, plain) > 1e-2


# Adam's m/√v amplifies float round-off in near-zero gradients (see above).
ADAM_WEIGHT_TOLERANCE = 1e-4


@pytest.mark.slow
@pytest.mark.parametrize(
    "optimizer,lr,tolerance",
    [("sgd", "0.5", WEIGHT_TOLERANCE), ("adam", "0.01", ADAM_WEIGHT_TOLERANCE)],
)
def test_multiworker_two_processes_match_one_device(tmp_path, optimizer, lr, tolerance):
    # Catches what comparing the two workers with each other cannot (synchronous
    # all-reduce makes them identical whatever it computes): a loss scaled by the wrong
    # replica count, each worker training on the whole batch instead of its share, a
    # gradient summed instead of averaged.
    training = ["--optimizer", optimizer, "--lr", lr, "--steps", "3", "--sizes", "8,3"]
    processes = start_two_workers(tmp_path, lambda index: training)
    processes.append(start(tmp_path / "one.npz", *training))  # the same global batches
    outputs = finish_all(processes)
    assert all("2 replicas, 3 steps" in out for out in outputs[:2]), outputs
    assert "1 replicas, 3 steps" in outputs[2]
    first, second, one = (
        weights(tmp_path / f"{name}.npz") for name in ("worker0", "worker1", "one")
    )
    assert max_difference(first, second) == 0.0
    assert max_difference(first, one) < tolerance
    untrained = tmp_path / "untrained.npz"
    finish(start(untrained, "--lr", "0", "--sizes", "8"))
    assert max_difference(one, weights(untrained)) > 1e-3  # it did train


def csv_epochs(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.mark.slow
def test_killed_worker_resumes_from_backup(tmp_path):
    epochs, steps = 6, 2
    common = [
        "--strategy",
        "mirrored",
        "--cpus",
        "2",
        "--sizes",
        "8",
        "--epochs",
        str(epochs),
        "--steps",
        str(steps),
    ]
    backup, log = tmp_path / "backup", tmp_path / "log.csv"
    reference = start(tmp_path / "reference.npz", *common)
    victim = start(
        tmp_path / "never.npz",
        *common,
        "--backup",
        str(backup),
        "--csv",
        str(log),
        "--sleep",
        "1.0",
    )
    deadline = time.monotonic() + TIMEOUT
    try:
        # BackupAndRestore precedes CSVLogger, so a logged epoch is already backed up.
        while len(csv_epochs(log)) < 2:
            assert victim.poll() is None, f"worker ended early:\n{victim.communicate()[0]}"
            assert time.monotonic() < deadline, "worker logged no epochs in time"
            time.sleep(0.2)
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    assert victim.returncode == -signal.SIGKILL
    done_before = csv_epochs(log)
    assert 2 <= len(done_before) < epochs and not (tmp_path / "never.npz").exists()

    finish(start(tmp_path / "resumed.npz", *common, "--backup", str(backup), "--csv", str(log)))
    finish(reference)
    assert csv_epochs(log) == list(range(epochs))  # each epoch ran once, none repeated
    resumed, full = weights(tmp_path / "resumed.npz"), weights(tmp_path / "reference.npz")
    assert int(resumed["iterations"]) == epochs * steps  # optimizer state was restored
    # Every step sees the same batch, so an interrupted run must end where a full one does.
    assert max_difference(resumed, full) < WEIGHT_TOLERANCE


def reverse_batches():
    rng = np.random.default_rng(0)
    src = rng.integers(3, 20, size=(16, 6), dtype=np.int32)
    tgt = np.concatenate([np.ones((16, 1), np.int32), src[:, ::-1]], axis=1)
    return ((src, tgt[:, :-1]), tgt[:, 1:])


@pytest.mark.parametrize("precision", distribute.PRECISIONS)
def test_each_precision_trains(precision):
    distribute.set_precision(precision)
    assert keras.mixed_precision.global_policy().name == precision
    keras.utils.set_random_seed(0)
    model = distribute.build_in_scope(
        distribute.make_strategy("default"),
        lambda: kt.Transformer(
            num_layers=1,
            d_model=16,
            num_heads=2,
            d_ff=32,
            src_vocab_size=20,
            tgt_vocab_size=20,
            dropout=0.0,
            max_length=16,
        ),
        lambda: keras.optimizers.Adam(1e-2),
        kt.training.LabelSmoothedCrossEntropy(0.1),
        precision=precision,
    )
    assert model.compute_dtype == precision.removeprefix("mixed_")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (
        precision == "mixed_float16"
    )
    batch = reverse_batches()
    before = float(model.evaluate(*batch, verbose=0))
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(30), epochs=1, verbose=0)
    after = float(model.evaluate(*batch, verbose=0))
    assert np.isfinite(after) and after < 0.7 * before, (before, after)


def test_the_private_keras_method_build_in_scope_replaces_is_keras_own():
    """build_in_scope replaces Keras's private TensorFlowTrainer._maybe_symbolic_build on
    the model (setup.cfg pins the Keras minor version it was written against). The
    replacement must take what Keras passes it, and fit must still call it.

    Catches: the replacement's parameters drifting from Keras's (a Keras release that
    renames `iterator` or `data_batch`, or a lambda written with other names), which
    fails fit only under a strategy, at the first epoch."""
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    model = distribute.build_in_scope(
        distribute.make_strategy("default"),
        lambda: kt.Transformer(
            num_layers=1,
            d_model=8,
            num_heads=2,
            d_ff=16,
            src_vocab_size=10,
            tgt_vocab_size=10,
            max_length=8,
        ),
        lambda: keras.optimizers.Adam(1e-3),
        kt.training.LabelSmoothedCrossEntropy(0.1),
    )
    replacement = vars(model)["_maybe_symbolic_build"]
    original = inspect.signature(TensorFlowTrainer._maybe_symbolic_build)
    assert list(inspect.signature(replacement).parameters) == list(original.parameters)[1:]
    assert "self._maybe_symbolic_build(" in inspect.getsource(TensorFlowTrainer.fit)


def test_wrap_optimizer_only_for_float16():
    sgd = keras.optimizers.SGD()
    assert distribute.wrap_optimizer(sgd, "float32") is sgd
    assert distribute.wrap_optimizer(sgd, "mixed_bfloat16") is sgd
    wrapped = distribute.wrap_optimizer(sgd, "mixed_float16")
    assert isinstance(wrapped, keras.optimizers.LossScaleOptimizer)
    assert distribute.wrap_optimizer(wrapped, "mixed_float16") is wrapped


def test_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="unknown strategy 'gpu'.*default, mirrored"):
        distribute.make_strategy("gpu")
    with pytest.raises(ValueError, match="unknown precision 'float16'.*mixed_float16"):
        distribute.set_precision("float16")
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        distribute.wrap_optimizer(keras.optimizers.SGD(), "fp16")


@pytest.mark.parametrize(
    "value, message",
    [
        (None, "TF_CONFIG environment variable, which is not set"),
        ("{not json", "not valid JSON"),
        ('{"cluster": {}}', "non-empty 'worker' list"),
        (
            '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}',
            "index': 0..0",
        ),
    ],
)
def test_multiworker_needs_a_valid_tf_config(monkeypatch, value, message):
    if value is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ValueError, match=message):
        distribute.make_strategy("multiworker")


def test_tpu_without_a_tpu_fails_clearly():
    with pytest.raises(RuntimeError, match="no TPU found"):
        distribute.make_strategy("tpu")


def test_split_logical_cpus_too_late():
    tf.constant(1.0)  # devices are initialised by now
    have = len(tf.config.list_logical_devices("CPU"))
    with pytest.raises(RuntimeError, match="already initialised"):
        distribute.split_logical_cpus(have + 1)
    with pytest.raises(ValueError, match="positive int"):
        distribute.split_logical_cpus(0)


@pytest.mark.slow
def test_multiworker_workers_read_their_own_shards_of_a_prepared_corpus(tmp_path):
    """Two workers on 127.0.0.1 training from a prepared corpus of 5 shards: each reads
    its own shards (3 and 2), together they see every pair once, and the epoch runs until
    the longer share is used up (the other worker waits). Keras splits each batch it is
    given across the 2 replicas as a global batch (the token budget is the global
    batch's, as with `make_dataset`), so that share's b batches take 2b steps, a few more
    where a batch of an odd number of rows splits unevenly.

    Catches: TensorFlow's auto-sharding left on over the file-sharded dataset (each
    worker would keep half of its own half), and sharding by the task index alone
    without the worker count (`worker_count_and_index` returning (1, 0))."""
    pairs = kt.data.numbers_corpus("de", train_size=300, dev_size=0, test_size=0, seed=2).train
    tsv = tmp_path / "train.tsv"
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    manifest = kt.data.prepare(
        tmp_path / "p",
        tsv,
        tokenizer="wordpiece",
        vocab_size=100,
        max_length=40,
        pairs_per_shard=70,
        progress=False,
    )
    assert [s["pairs"] for s in manifest["shards"]] == [70, 70, 70, 70, 20]
    outputs = finish_all(
        start_two_workers(
            tmp_path,
            lambda index: [
                "--prepared",
                str(tmp_path / "p"),
                "--pairs-out",
                str(tmp_path / f"pairs{index}.json"),
            ],
        )
    )
    assert all("2 replicas" in out for out in outputs), outputs
    read = [json.loads((tmp_path / f"pairs{i}.json").read_text()) for i in range(2)]
    longest = max(r["batches"] for r in read)
    steps = {int(out.split("2 replicas, ")[1].split()[0]) for out in outputs}
    assert len(steps) == 1 and 2 * longest <= steps.pop() < 3 * longest, (
        [r["batches"] for r in read],
        outputs,
    )
    seen = [sorted(map(json.dumps, r["pairs"])) for r in read]
    assert (len(seen[0]), len(seen[1])) == (160, 140)
    every = []
    for (src, _), tgt_out in kt.data.shard_dataset(tmp_path / "p", max_length=40, shuffle=False):
        for s, t in zip(src.numpy().tolist(), tgt_out.numpy().tolist()):
            every.append(json.dumps([[i for i in s if i], [i for i in t if i]]))
    assert sorted(seen[0] + seen[1]) == sorted(every)
