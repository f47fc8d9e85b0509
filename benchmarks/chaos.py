"""Kills a training run with SIGKILL at random instants and checks that each recovers.

One uninterrupted tiny run (`keras-transformer train`, embedded corpus) gives the
reference: its wall time T and its optimizer steps. Then, for each of `--kills` trials,
a fresh run is started, killed with SIGKILL after a seeded random delay in [0, T), and
the same command is run again to its end. A trial recovers when the rerun exits 0 with
exactly the reference's optimizer steps, every epoch logged once, and no temporary file
left behind. Prints kills tried / recovered / optimizer steps lost or repeated.

Usage: python benchmarks/chaos.py --kills 20 --seed 0
"""

import argparse
import csv
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

EPOCHS = 3
TRAIN = [
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
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")


def command(run_dir):
    return [sys.executable, "-m", "keras_transformer.cli", "train", "--run-dir", run_dir, *TRAIN]


def finish(run_dir):
    """Runs the command to its end; returns its optimizer steps (None if it failed)."""
    result = subprocess.run(command(run_dir), env=ENV, capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stderr[-1500:], file=sys.stderr)
        return None
    return int(result.stdout.split("optimizer steps")[0].split()[-1])


def clean(run_dir):
    """Every epoch logged once and no temporary file left."""
    with open(os.path.join(run_dir, "log.csv"), newline="") as handle:
        epochs = [int(row["epoch"]) for row in csv.DictReader(handle)]
    leftovers = [
        name
        for directory in (run_dir, os.path.join(run_dir, "checkpoints"))
        for name in os.listdir(directory)
        if name.startswith(".")
    ]
    return epochs == list(range(EPOCHS)) and not leftovers


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as work:
        started = time.monotonic()
        reference = finish(os.path.join(work, "reference"))
        duration = time.monotonic() - started
        print(f"uninterrupted: {reference} optimizer steps in {duration:.1f} s", flush=True)
        recovered, lost = 0, 0
        for trial in range(args.kills):
            run_dir = os.path.join(work, f"trial_{trial}")
            delay = rng.uniform(0, duration)
            process = subprocess.Popen(
                command(run_dir), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                process.wait(timeout=delay)
                killed = False  # finished before the kill
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                killed = True
            steps = finish(run_dir)
            ok = steps == reference and clean(run_dir)
            recovered += ok
            lost += abs((steps or 0) - reference)
            print(
                f"trial {trial}: killed at {delay:5.1f} s{'' if killed else ' (had ended)'}; "
                f"rerun: {steps} steps -> {'recovered' if ok else 'FAILED'}",
                flush=True,
            )
    print(
        f"\nkills tried {args.kills}, recovered {recovered}, optimizer steps lost or "
        f"repeated {lost}"
    )
    return 0 if recovered == args.kills else 1


if __name__ == "__main__":
    sys.exit(main())
