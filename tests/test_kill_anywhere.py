"""A training run killed with SIGKILL at any instant, then run again, ends as if it had
never been killed: the same optimizer steps, every epoch logged once, a model that
translates.

The kills land inside every kind of write a run makes (through the test hook of
`keras_transformer.files`, which kills the process when a file's new content is complete
under its temporary name but not yet in place) and mid-epoch. A kill while the
checkpoints are averaged is the kill inside the write of training_summary.json: nothing
is written in between.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from keras_transformer.files import KILL_HOOK

pytestmark = pytest.mark.slow

EPOCHS = 3
TRAIN = [
    "train",
    "--preset",
    "tiny",
    "--set",
    "d_model=32",
    "d_ff=64",
    "num_layers=1",
    "--train-size",
    "600",
    "--vocab-size",
    "150",
    "--tokens-per-batch",
    "512",
    "--warmup-steps",
    "20",
    "--max-length",
    "40",
    "--epochs",
    str(EPOCHS),
]

# (file name, which write of it): each kind of file a run writes, at its first write,
# and the progress record at an epoch in the middle and at the finished mark.
WRITES = [
    ("config.json", 1),
    ("vocab.txt", 1),
    ("sentencepiece.model", 1),
    ("tokenizer.json", 1),
    ("tokenizer.json", 2),
    ("epoch_001.weights.h5", 1),
    ("progress.json", 1),
    ("log.csv", 2),
    ("progress.json", EPOCHS + 1),
    ("training_summary.json", 1),
    ("averaged.weights.h5", 1),
    ("model.keras", 1),
]


def command(run_dir):
    return [
        sys.executable,
        "-m",
        "keras_transformer.cli",
        *TRAIN[:1],
        "--run-dir",
        run_dir,
        *TRAIN[1:],
    ]


def environment(**extra):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1", **extra)


def train(run_dir):
    """Runs the command to its end; returns the optimizer steps it reports."""
    result = subprocess.run(
        command(run_dir), env=environment(), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return int(result.stdout.split("optimizer steps")[0].split()[-1])


def logged_epochs(run_dir):
    with open(os.path.join(run_dir, "log.csv"), newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def record(run_dir):
    try:
        with open(os.path.join(run_dir, "progress.json")) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def kill_when(run_dir, condition):
    """Starts the command and kills it with SIGKILL once `condition(run_dir)` holds."""
    process = subprocess.Popen(
        command(run_dir), env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 600
    while not condition(run_dir):
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.fixture(scope="module")
def uninterrupted_steps(tmp_path_factory):
    return train(str(tmp_path_factory.mktemp("reference") / "run"))


def check_recovered(run_dir, uninterrupted_steps):
    assert train(run_dir) == uninterrupted_steps
    for directory in (run_dir, os.path.join(run_dir, "checkpoints")):
        assert not [n for n in os.listdir(directory) if n.startswith(".")], "temporaries left"
    assert logged_epochs(run_dir) == list(range(EPOCHS))
    assert record(run_dir)["finished"] and record(run_dir)["epoch"] == EPOCHS
    translated = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_transformer.cli",
            "translate",
            "--run-dir",
            run_dir,
            "--beam-size",
            "1",
            "twenty-one",
        ],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert translated.returncode == 0 and translated.stdout.strip(), translated.stderr[-2000:]


@pytest.mark.parametrize("name,count", WRITES, ids=[f"{n}#{c}" for n, c in WRITES])
def test_a_kill_inside_a_write_resumes(tmp_path, uninterrupted_steps, name, count):
    run_dir = str(tmp_path / "run")
    killed = subprocess.run(
        command(run_dir),
        env=environment(**{KILL_HOOK: f"{name}#{count}"}),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL, (
        f"the run was not killed inside a write of {name}: {killed.stderr[-2000:]}"
    )
    check_recovered(run_dir, uninterrupted_steps)


def test_a_kill_mid_epoch_resumes(tmp_path, uninterrupted_steps):
    run_dir = str(tmp_path / "run")
    kill_when(run_dir, lambda d: record(d).get("epoch") == 1)  # in the second epoch
    check_recovered(run_dir, uninterrupted_steps)
