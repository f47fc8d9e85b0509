"""Hostile-input sweep (issue 12): about 180 inputs a careless or unlucky user gives the
command line, the Python API and the exported artifacts (wrong dtypes and shapes, empty
and overlong input, unknown characters, out-of-range ids, NaN and infinite settings,
missing, damaged and zero-byte files, bytes that are not UTF-8, folders where files are
expected, exports over existing paths), each with the outcome it must get, and each
classified as

    clear error    refused as expected: the documented exception naming the problem
                   (the command line: exit status 2 and the whole of stderr one line,
                   or argparse's usage error for a flag)
    handled        accepted, and the result is the right one
    traceback      an exception nobody meant (the command line: a Python traceback, or
                   an exit status other than 0 and 2)
    silent wrong   accepted when it should have been refused, or a wrong result
    lost data      a file that existed before the call changed, or a caller's model
                   whose weights a refused call replaced
    unexpected     refused, but with a message that does not name the problem (or
                   input that should have been handled refused); files written by a
                   command that was then refused; a hang

One tiny run (the tiny preset shrunk as tests/test_cli.py's TINY flags, the embedded
numbers corpus, two short epochs) and its SavedModel, TFLite and ONNX exports are built
once in a temporary directory and shared by every case; each case that damages a file
works on a copy. Command-line cases run `keras-transformer` in subprocesses (about 5 s of
imports each), the rest in this process. The read-only place is /proc: a folder without
write permission would not stop root, whom file permissions do not bind.

Prints one line per case, a table of outcomes by entry point, and exits with status 1
if any case is not "clear error" or "handled".

Usage: python benchmarks/hostile_inputs.py [--only SUBSTRING ...] [--keep]
"""

import argparse
import collections
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_transformer as kt  # noqa: E402
from keras_transformer import runs as run_lib  # noqa: E402
from keras_transformer.cli import USER_ERRORS  # noqa: E402
from keras_transformer.training import averaging  # noqa: E402

OK = ("clear error", "handled")
OUTCOMES = OK + ("traceback", "silent wrong", "lost data", "unexpected")
ENTRY_POINTS = ("cli", "api", "artifact")
# The tiny run: tests/test_cli.py's TINY flags, with a model max_length of 64 so that
# "longer than max_length" inputs stay cheap to decode.
TRAIN_SIZE = 1500
MODEL = dict(d_model=32, d_ff=64, num_layers=1, max_length=64)
SETTINGS = dict(epochs=2, tokens_per_batch=512, warmup_steps=50, max_length=40, vocab_size=200)
DATA = {"source": "embedded", "target_lang": "de", "train_size": TRAIN_SIZE, "seed": 0}
CLI_TIMEOUT = 180


@dataclasses.dataclass
class Refused:
    """The call must fail with one of `kinds` whose message contains `contains`."""

    contains: str
    kinds: tuple = USER_ERRORS
    usage: bool = False  # command line: argparse's usage error (usage line + error line)


@dataclasses.dataclass
class Handled:
    """The call must succeed and `check(result)` return True (else a string saying what
    was wrong). `what` describes the right result."""

    what: str
    check: object


@dataclasses.dataclass
class Result:
    entry: str
    name: str
    outcome: str
    detail: str


RESULTS = []
ONLY = None


def _selected(name):
    return not ONLY or any(part in name for part in ONLY)


def record(entry, name, outcome, detail=""):
    RESULTS.append(Result(entry, name, outcome, detail))
    mark = "ok " if outcome in OK else "BAD"
    print(
        f"{mark} {entry:8s} {outcome:12s} {name}" + (f"\n      {detail}" if detail else ""),
        flush=True,
    )


def _short(value, width=160):
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _first_line(error):
    """The line of an exception's message that says what went wrong (TensorFlow's
    StagingError puts it last, after "in user code:" and a stack)."""
    lines = str(error).strip().splitlines() or [""]
    return lines[-1].strip() if lines[0].endswith(":") else lines[0]


# --- what a call must not change ------------------------------------------------------


def snapshot(paths):
    """{file: sha256} of every file under `paths` (caches excluded), None for a path
    that does not exist."""
    state = {}
    for root in paths:
        if os.path.isfile(root):
            state[root] = _digest(root)
        elif os.path.isdir(root):
            state[root] = "dir"
            for directory, subdirectories, files in os.walk(root):
                subdirectories[:] = [d for d in subdirectories if d != "xla_cache"]
                for name in files:
                    path = os.path.join(directory, name)
                    state[path] = _digest(path)
        else:
            state[root] = None
    return state


def _digest(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def changed_files(before, after):
    """Files that existed before and are now changed or gone."""
    return sorted(p for p, d in before.items() if d is not None and after.get(p) != d)


def new_files(before, after):
    return sorted(p for p in after if before.get(p) is None and after[p] is not None)


# --- judging --------------------------------------------------------------------------


def judge_python(expect, result, error):
    if isinstance(expect, Refused):
        if error is None:
            return "silent wrong", f"accepted; returned {_short(result)}"
        if isinstance(error, expect.kinds):
            if expect.contains in str(error):
                return "clear error", ""
            return "unexpected", (
                f"{type(error).__name__} without {expect.contains!r}: {_short(_first_line(error))}"
            )
        return "traceback", f"{type(error).__name__}: {_short(_first_line(error))}"
    if error is not None:
        if isinstance(error, USER_ERRORS):
            return "unexpected", (
                f"refused, expected {expect.what}: {type(error).__name__}: "
                f"{_short(_first_line(error))}"
            )
        return "traceback", f"{type(error).__name__}: {_short(_first_line(error))}"
    try:
        verdict = expect.check(result)
    except Exception as check_error:  # the result is not even of the right kind
        verdict = f"{type(check_error).__name__}: {_short(_first_line(check_error))}"
    if verdict is True:
        return "handled", ""
    return "silent wrong", f"expected {expect.what}; {verdict or _short(result)}"


def api(name, thunk, expect, guard=(), entry="api", model=None):
    """Runs `thunk()` in this process. `guard`: paths that must not change; `model`: a
    model whose weights must not change."""
    if not _selected(name):
        return None
    before = snapshot(guard)
    weights = model.get_weights() if model is not None else None
    result = error = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = thunk()
        except Exception as caught:  # judged below: which kinds are right is the point
            error = caught
    outcome, detail = judge_python(expect, result, error)
    changed = changed_files(before, snapshot(guard))
    if weights is not None:
        if any(not np.array_equal(a, b) for a, b in zip(weights, model.get_weights())):
            changed.append("the model's weights")
        model.set_weights(weights)
    if changed:
        outcome, detail = "lost data", f"changed: {[os.path.basename(p) for p in changed][:4]}"
    record(entry, name, outcome, detail)
    return result


def artifact(name, thunk, expect, guard=()):
    return api(name, thunk, expect, guard=guard, entry="artifact")


def cli(name, args, expect, guard=(), fresh=None, stdin=None, cwd=None):
    """Runs `keras-transformer *args` in a subprocess. `guard`: paths that must not
    change; `fresh`: a path that a refused command must leave as it was (nothing
    written)."""
    if not _selected(name):
        return None
    before = snapshot(list(guard) + ([fresh] if fresh else []))
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])),
    )
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user runs it: the command quiets TF itself
    command = args[0]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "keras_transformer.cli", *args],
            env=env,
            input=stdin,
            capture_output=True,
            timeout=CLI_TIMEOUT,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        record("cli", name, "unexpected", f"no answer in {CLI_TIMEOUT} s")
        return None
    stdout = done.stdout.decode("utf-8", "replace")
    stderr = done.stderr.decode("utf-8", "replace")
    lines = stderr.strip().splitlines()
    prefix = f"keras-transformer {command}: error:"
    if "Traceback (most recent call last)" in stderr:
        outcome, detail = "traceback", _short(lines[-1] if lines else "")
    elif isinstance(expect, Refused):
        one_line = lines[-1:] if expect.usage else lines
        if done.returncode == 0:
            outcome, detail = "silent wrong", f"exit 0; stdout {_short(stdout)}"
        elif done.returncode != 2:
            outcome, detail = "traceback", f"exit {done.returncode}: {_short(stderr[-300:])}"
        elif (
            len(one_line) == 1
            and one_line[0].startswith(prefix)
            and expect.contains in one_line[0]
            and (expect.usage or len(lines) == 1)
        ):
            outcome, detail = "clear error", ""
        else:
            outcome, detail = (
                "unexpected",
                (
                    f"stderr ({len(lines)} lines) without "
                    f"{expect.contains!r}: {_short(stderr[-300:])}"
                ),
            )
    elif done.returncode == 0:
        verdict = expect.check(stdout)
        outcome, detail = (
            ("handled", "")
            if verdict is True
            else ("silent wrong", f"expected {expect.what}; {verdict or _short(stdout)}")
        )
    elif done.returncode == 2:
        outcome, detail = "unexpected", f"refused, expected {expect.what}: {_short(stderr)}"
    else:
        outcome, detail = "traceback", f"exit {done.returncode}: {_short(stderr[-300:])}"
    after = snapshot(list(guard) + ([fresh] if fresh else []))
    changed = changed_files(before, after)
    if changed:
        outcome, detail = "lost data", f"changed: {[os.path.basename(p) for p in changed][:4]}"
    elif fresh and isinstance(expect, Refused) and new_files(before, after):
        written = [os.path.relpath(p, fresh) for p in new_files(before, after)]
        outcome, detail = "unexpected", f"refused after writing {written[:4]}"
    record("cli", name, outcome, detail)
    return stdout


# --- the shared run and exports -------------------------------------------------------


class Fixture:
    """The tiny trained run, its exports, and files to feed the entry points."""

    def __init__(self, work):
        self.work = work
        self.run_dir = os.path.join(work, "run")
        corpus = kt.data.numbers_corpus(target_lang="de", train_size=TRAIN_SIZE, seed=0)
        self.corpus = corpus
        config = kt.TransformerConfig.from_preset("tiny", **MODEL)
        run_lib.train(
            self.run_dir, corpus, config, run_lib.TrainingSettings(**SETTINGS), data=DATA, verbose=0
        )
        loaded = run_lib.load_run(self.run_dir)
        self.model = loaded.model
        self.src_tok, self.tgt_tok = loaded.source_tokenizer, loaded.target_tokenizer
        self.V = self.src_tok.vocab_size
        self.L = self.model.config.max_length
        self.greedy = kt.Translator(self.model, self.src_tok, self.tgt_tok, beam_size=1)
        self.beam = kt.Translator(self.model, self.src_tok, self.tgt_tok)  # beam 4, α 0.6
        exports = os.path.join(work, "exports")
        self.exports = exports
        self.saved_model = kt.export.export_saved_model(
            self.beam, os.path.join(exports, "run"), version=1
        )
        self.tflite = kt.export.export_tflite(self.beam, os.path.join(exports, "run.tflite"))
        self.onnx = os.path.dirname(
            kt.export.export_onnx(self.beam, os.path.join(exports, "run_onnx"))[0]
        )

    def copy_run(self, name, remove=(), edit=None):
        """A copy of the run named `name`, without the files in `remove`, then
        `edit(directory)` applied."""
        directory = os.path.join(self.work, name)
        shutil.copytree(self.run_dir, directory, ignore=shutil.ignore_patterns("xla_cache"))
        for relative in remove:
            path = os.path.join(directory, relative)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        if edit is not None:
            edit(directory)
        return directory

    def file(self, name, content):
        """Writes `content` (str as UTF-8, or bytes) to work/files/name; returns the path."""
        path = os.path.join(self.work, "files", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    def directory(self, name):
        path = os.path.join(self.work, "dirs", name)
        os.makedirs(path, exist_ok=True)
        return path


def write(path, content):
    with open(path, "wb") as handle:
        handle.write(content.encode("utf-8") if isinstance(content, str) else content)


def truncate(path, size):
    with open(path, "r+b") as handle:
        handle.truncate(size)


def edit_json(path, change):
    with open(path, encoding="utf-8") as handle:
        value = json.load(handle)
    value = change(value)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle)


def equal(expected):
    return lambda result: result == expected or f"got {_short(result)}"


# --- the command line -----------------------------------------------------------------


def cli_cases(f):
    run_dir = f.run_dir
    fresh_runs = iter(range(1000))

    def train(name, extra, expect):
        """`train` into a new run directory, which a refused command must not create."""
        fresh = os.path.join(f.work, f"fresh_run_{next(fresh_runs)}")
        cli(
            name,
            [
                "train",
                "--run-dir",
                fresh,
                "--preset",
                "tiny",
                "--train-size",
                "200",
                "--vocab-size",
                "100",
                "--epochs",
                "1",
                *extra,
            ],
            expect,
            fresh=fresh,
        )

    train("train --set foo=1", ["--set", "foo=1"], Refused("unknown model settings ['foo']"))
    train(
        "train --set norm_first=off",
        ["--set", "norm_first=off"],
        Refused("norm_first must be true or false"),
    )
    train(
        "train --set layer_norm_epsilon=Infinity",
        ["--set", "layer_norm_epsilon=Infinity"],
        Refused("layer_norm_epsilon must be"),
    )
    train(
        "train --set d_model=63 num_heads=7",
        ["--set", "d_model=63", "num_heads=7"],
        Refused("d_model must be even"),
    )
    train(
        "train --learning-rate-scale inf",
        ["--learning-rate-scale", "inf"],
        Refused("learning_rate_scale must be"),
    )
    train("train --epochs 0", ["--epochs", "0"], Refused("epochs must be an int of at least 1"))
    train(
        "train --tokens-per-batch 10 (below --max-length 40)",
        ["--tokens-per-batch", "10", "--max-length", "40"],
        Refused("tokens_per_batch"),
    )
    train(
        "train --config holding a JSON list",
        ["--config", f.file("list.json", "[1, 2]")],
        Refused("must hold a JSON object"),
    )
    train(
        "train --config of non-UTF-8 bytes",
        ["--config", f.file("latin1.json", b'{"model": {"d_model": "\xe9"}}')],
        Refused("is not valid JSON"),
    )
    train(
        'train --config with warmup_steps "3"',
        ["--config", f.file("warmup.json", '{"training": {"warmup_steps": "3"}}')],
        Refused("warmup_steps must be an int"),
    )
    bad_tsv = f.file("bad.tsv", "one\teins\ntwo without a tab\n")
    train(
        "train --data tsv with a line without a tab",
        ["--data", "tsv", "--train", bad_tsv],
        Refused("line 2"),
    )
    latin1_tsv = f.file("latin1.tsv", "one\teins\n".encode() + b"caf\xe9\tKaffee\n")
    train(
        "train --data tsv of Latin-1 bytes",
        ["--data", "tsv", "--train", latin1_tsv],
        Refused("not valid UTF-8"),
    )
    train(
        "train --data aligned, 3 lines against 2",
        [
            "--data",
            "aligned",
            "--train",
            f.file("a.en", "one\ntwo\nthree\n"),
            f.file("a.de", "eins\nzwei\n"),
        ],
        Refused("aligned files differ in length"),
    )
    folder = f.directory("a_folder")
    train(
        "train --data tsv --train DIRECTORY", ["--data", "tsv", "--train", folder], Refused(folder)
    )
    cli(
        "train --run-dir on a finished run",
        ["train", "--run-dir", run_dir, "--preset", "tiny"],
        Refused("holds a finished run"),
        guard=[run_dir],
    )
    interrupted = f.copy_run(
        "cli_interrupted", remove=("model.keras", "averaged.weights.h5", "training_summary.json")
    )
    cli(
        "train an interrupted run with another --set d_model",
        [
            "train",
            "--run-dir",
            interrupted,
            "--preset",
            "tiny",
            "--train-size",
            str(TRAIN_SIZE),
            "--set",
            "d_model=64",
            "d_ff=64",
            "num_layers=1",
            "max_length=64",
        ],
        Refused("another model configuration"),
        guard=[interrupted],
    )
    a_file = f.file("not_a_dir", "someone's notes\n")
    cli(
        "train --run-dir in a read-only file system (/proc)",
        [
            "train",
            "--run-dir",
            "/proc/keras_transformer_run",
            "--preset",
            "tiny",
            "--train-size",
            "200",
        ],
        Refused("/proc/keras_transformer_run"),
    )
    cli(
        "train --run-dir that is a file",
        ["train", "--run-dir", a_file, "--preset", "tiny", "--train-size", "200"],
        Refused(a_file),
        guard=[a_file],
    )

    translate = ["translate", "--run-dir", run_dir, "--beam-size", "1"]
    cli(
        "translate --alpha -1",
        ["translate", "--run-dir", run_dir, "--alpha", "-1", "one"],
        Refused("alpha must be a number >= 0"),
        guard=[run_dir],
    )
    cli(
        "translate --alpha nan",
        ["translate", "--run-dir", run_dir, "--alpha", "nan", "one"],
        Refused("alpha must be"),
        guard=[run_dir],
    )
    cli(
        "translate --beam-size 1000",
        ["translate", "--run-dir", run_dir, "--beam-size", "1000", "one"],
        Refused("beam_size"),
        guard=[run_dir],
    )
    cli(
        "translate --batch-size -1",
        translate + ["--batch-size", "-1", "one"],
        Refused("expected an int >= 1", usage=True),
        guard=[run_dir],
    )
    cli(
        "translate --file DIRECTORY",
        translate + ["--file", folder],
        Refused("Is a directory"),
        guard=[run_dir],
    )
    latin1_txt = f.file("latin1.txt", b"one\ncaf\xe9\n")
    cli(
        "translate --file of Latin-1 bytes",
        translate + ["--file", latin1_txt],
        Refused(f"{latin1_txt} is not valid UTF-8"),
        guard=[run_dir, latin1_txt],
    )
    sources = ["twenty-one", "three hundred and five", "seven"]
    reference = f.greedy(sources)
    crlf = f.file("crlf_bom.txt", ("\ufeff" + "\r\n".join(sources) + "\r\n").encode("utf-8"))
    cli(
        "translate --file with a BOM and CRLF line ends",
        translate + ["--file", crlf],
        Handled(
            f"{reference}", lambda out: out.splitlines() == reference or f"got {out.splitlines()}"
        ),
    )
    cli(
        "translate stdin of Latin-1 bytes",
        translate,
        Refused("stdin is not valid UTF-8"),
        stdin=b"one\ncaf\xe9\n",
        guard=[run_dir],
    )
    garbage_averaged = f.copy_run(
        "cli_garbage_averaged",
        edit=lambda d: write(os.path.join(d, "averaged.weights.h5"), b"not an HDF5 file" * 10),
    )
    cli(
        "translate with a garbage averaged.weights.h5",
        ["translate", "--run-dir", garbage_averaged, "one"],
        Refused("averaged.weights.h5 is damaged"),
        guard=[garbage_averaged],
    )
    zero_model = f.copy_run(
        "cli_zero_model", edit=lambda d: write(os.path.join(d, "model.keras"), b"")
    )
    cli(
        "translate with a zero-byte model.keras",
        ["translate", "--run-dir", zero_model, "one"],
        Refused("model.keras is damaged"),
        guard=[zero_model],
    )
    cli(
        "evaluate --run-dir with a config.json that is not JSON",
        [
            "evaluate",
            "--run-dir",
            f.copy_run(
                "cli_bad_config",
                edit=lambda d: write(os.path.join(d, "config.json"), '{"model": {'),
            ),
        ],
        Refused("not a valid run configuration"),
    )
    truncated = f.copy_run(
        "cli_truncated_checkpoint",
        edit=lambda d: truncate(os.path.join(d, "checkpoints", "epoch_002.weights.h5"), 96),
    )
    cli(
        "average-checkpoints over a truncated checkpoint",
        ["average-checkpoints", "--run-dir", truncated, "--last", "2"],
        Refused("epoch_002.weights.h5"),
        guard=[truncated],
    )
    cli(
        "export --format onnx over an existing export",
        ["export", "--run-dir", run_dir, "--format", "onnx", "--output", f.exports],
        Refused("pass --overwrite to replace it"),
        guard=[f.onnx, run_dir],
    )
    cli(
        "export --format pdf",
        ["export", "--run-dir", run_dir, "--format", "pdf"],
        Refused("invalid choice: 'pdf'", usage=True),
        guard=[run_dir],
    )
    real = os.path.join(f.work, "someones_run")
    os.makedirs(real)
    write(os.path.join(real, "model.keras"), b"a finished run of someone's")
    cli(
        "demo --run-dir on a folder it did not create",
        ["demo", "--run-dir", real, "--export-dir", os.path.join(f.work, "demo_exports")],
        Refused("the demo did not create it"),
        guard=[real],
    )


# --- the Python API -------------------------------------------------------------------


def api_cases(f):
    model, V, L = f.model, f.V, f.L
    src = np.array([[5, 6, 7]], np.int32)
    tgt = np.array([[2, 5, 6]], np.int32)

    # Transformer
    api(
        "Transformer(d_model=63)",
        lambda: kt.Transformer(d_model=63, num_heads=7),
        Refused("d_model must be even"),
    )
    api(
        "Transformer(dropout=nan)",
        lambda: kt.Transformer.from_preset("tiny", dropout=float("nan")),
        Refused("dropout must be in [0, 1)"),
    )
    api(
        "Transformer(layer_norm_epsilon=inf)",
        lambda: kt.Transformer.from_preset("tiny", layer_norm_epsilon=float("inf")),
        Refused("layer_norm_epsilon must be"),
    )
    api(
        "Transformer(num_heads=2.0)",
        lambda: kt.Transformer.from_preset("tiny", num_heads=2.0),
        Refused("num_heads must be a positive int"),
    )
    api(
        "model((float ids, tgt))",
        lambda: model((src.astype("float32"), tgt)),
        Refused("int32 of shape (batch, length)"),
    )
    api(
        "model.encode(3-D ids)",
        lambda: model.encode(src[None]),
        Refused("int32 of shape (batch, length)"),
    )
    api(
        "model((src id = V, tgt))",
        lambda: model((np.array([[5, V]], np.int32), tgt)),
        Refused(f"got {V} at position (0, 1)"),
    )
    api(
        "model((negative src id, tgt))",
        lambda: model((np.array([[5, -1]], np.int32), tgt)),
        Refused("got -1 at position"),
    )
    api(
        "model((int64 id 2**32+10, tgt))",
        lambda: model((np.array([[2**32 + 10]], np.int64), tgt)),
        Refused(str(2**32 + 10)),
    )
    api(
        "model((src longer than max_length, tgt))",
        lambda: model((np.full([1, L + 1], 5, np.int32), tgt)),
        Refused("max_length"),
    )

    # decoding
    greedy_search, beam_search = kt.decoding.greedy_search, kt.decoding.beam_search
    api(
        "greedy_search(float ids)",
        lambda: greedy_search(model, src.astype("float32")),
        Refused("int32 of shape (batch, length)"),
    )
    api(
        "greedy_search(id = V)",
        lambda: greedy_search(model, np.array([[V]], np.int32)),
        Refused(f"got {V}"),
    )
    api(
        "greedy_search(negative id)",
        lambda: greedy_search(model, np.array([[4, -3]], np.int32)),
        Refused("got -3"),
    )
    api(
        "greedy_search(int64 id 2**32+10)",
        lambda: greedy_search(model, np.array([[2**32 + 10]], np.int64)),
        Refused(str(2**32 + 10)),
    )
    api(
        "greedy_search(rows longer than max_length)",
        lambda: greedy_search(model, np.full([1, L + 5], 5, np.int32)),
        Refused("max_length"),
    )
    api(
        "greedy_search(empty batch (0, 5))",
        lambda: greedy_search(model, np.zeros([0, 5], np.int32)),
        Handled(
            "0 rows of ids and scores",
            lambda r: (r[0].shape[0], r[1].shape[0]) == (0, 0) or f"shapes {r[0].shape}",
        ),
    )
    api(
        "greedy_search(an all-padding row)",
        lambda: greedy_search(model, np.array([[0, 0, 0], [5, 6, 0]], np.int32)),
        Handled(
            "an empty first row with score 0",
            lambda r: (
                (not r[0].numpy()[0].any() and float(r[1][0]) == 0.0)
                or f"row {r[0].numpy()[0][:8]}, score {float(r[1][0])}"
            ),
        ),
    )
    api(
        "greedy_search(max_length=0)",
        lambda: greedy_search(model, src, max_length=0),
        Refused("max_length must be"),
    )
    api(
        "greedy_search(max_length=10**6)",
        lambda: greedy_search(model, src, max_length=10**6),
        Refused("max_length"),
    )
    api(
        "greedy_search(min_length=-1)",
        lambda: greedy_search(model, src, min_length=-1),
        Refused("min_length must be"),
    )
    api(
        "beam_search(beam_size=0)",
        lambda: beam_search(model, src, beam_size=0),
        Refused("beam_size must be"),
    )
    api(
        "beam_search(beam_size above half the vocabulary)",
        lambda: beam_search(model, src, beam_size=V),
        Refused("beam_size"),
    )
    api(
        "beam_search(alpha=nan)",
        lambda: beam_search(model, src, alpha=float("nan")),
        Refused("alpha must be"),
    )
    api(
        "beam_search(num_return > beam_size)",
        lambda: beam_search(model, src, num_return=5),
        Refused("num_return"),
    )
    api(
        "beam_search(empty batch)",
        lambda: beam_search(model, np.zeros([0, 4], np.int32)),
        Handled("0 rows", lambda r: r[0].shape[0] == 0 or f"shape {r[0].shape}"),
    )

    # Translator
    Translator = kt.Translator
    api(
        "Translator(alpha=-1)",
        lambda: Translator(model, f.src_tok, f.tgt_tok, alpha=-1),
        Refused("alpha must be"),
    )
    api(
        "Translator(beam_size=2.5)",
        lambda: Translator(model, f.src_tok, f.tgt_tok, beam_size=2.5),
        Refused("beam_size must be"),
    )
    other = kt.text.WordPieceTokenizer.train(["ein kleiner test", "a small test"], vocab_size=40)
    api(
        "Translator with tokenizers of another vocabulary size",
        lambda: Translator(model, other, other),
        Refused("tokenizer has"),
    )
    g = f.greedy
    api("translator('') (an empty string)", lambda: g(""), Handled("''", equal("")))
    api("translator([]) (an empty batch)", lambda: g([]), Handled("[]", equal([])))
    one = g(["twenty-one"])
    api(
        "translator(['', 'twenty-one'])",
        lambda: g(["", "twenty-one"]),
        Handled(f"['', {one[0]!r}]", equal(["", one[0]])),
    )
    api(
        "translator(a generator of str)",
        lambda: g(s for s in ["twenty-one"]),
        Handled(f"{one}", equal(one)),
    )

    def after_seed():
        keras.utils.set_random_seed(0)  # as every training run does
        return g(["twenty-one"])

    api(
        "a Translator used after keras.utils.set_random_seed(0)",
        after_seed,
        Handled(f"{one}", equal(one)),
    )
    api("translator([None])", lambda: g([None]), Refused("iterable of str"))
    api("translator(b'bytes')", lambda: g(b"twenty-one"), Refused("iterable of str"))
    api("translator(42)", lambda: g(42), Refused("iterable of str"))
    snow = "\u2603\u2603 \U0001f642 \x00"

    api(
        "translator(unknown characters and NUL)",
        lambda: g.translate_with_details([snow]),
        Handled(
            "[UNK] source tokens and a str translation",
            lambda d: (
                (
                    f.src_tok.unk_id in d.source_ids[0].tolist()
                    and isinstance(d.translations[0], str)
                )
                or f"source ids {d.source_ids[0].tolist()}"
            ),
        ),
    )
    long_text = " ".join(["seven"] * (L + 20))
    api(
        "translator(a source longer than max_length)",
        lambda: g.translate_with_details([long_text]),
        Handled(
            f"a translation of the first {L} tokens",
            lambda d: len(d.source_ids[0]) == L or f"{len(d.source_ids[0])} source ids",
        ),
    )
    strict = Translator(model, f.src_tok, f.tgt_tok, beam_size=1, strict=True)
    api(
        "Translator(strict=True)(a source longer than max_length)",
        lambda: strict([long_text]),
        Refused("max_length"),
    )
    api(
        "translator.translate_ids(id = V + 1000) (graph check)",
        lambda: g.translate_ids(tf.constant([[V + 1000]], tf.int32)),
        Refused("src ids must be in", kinds=(tf.errors.InvalidArgumentError,)),
    )

    # tokenizers
    tok = f.src_tok
    api(
        "tokenize(int tensor)",
        lambda: tok.tokenize(tf.constant([1, 2])),
        Refused("tokenize expects strings"),
    )
    api("tokenize(rank-2 strings)", lambda: tok.tokenize([["a"]]), Refused("shape () or (batch,)"))
    api(
        "tokenize('')",
        lambda: tok.tokenize(""),
        Handled("no ids", lambda r: r.shape[0] == 0 or f"{r.numpy()}"),
    )
    api(
        "tokenize(invalid UTF-8 bytes)",
        lambda: tok.tokenize(tf.constant([b"caf\xe9 one"])),
        Handled(
            "ids in [0, V)",
            lambda r: bool(np.all((r.flat_values.numpy() >= 0) & (r.flat_values.numpy() < V))),
        ),
    )
    api(
        "detokenize(float ids)",
        lambda: tok.detokenize(tf.constant([[5.0]])),
        Refused("integer token ids"),
    )
    api(
        "detokenize(id = V + 5)",
        lambda: tok.detokenize(tf.constant([[5, V + 5]])),
        Refused(str(V + 5)),
    )
    api("detokenize(negative id)", lambda: tok.detokenize(tf.constant([[5, -2]])), Refused("-2"))
    api(
        "WordPieceTokenizer.train([])",
        lambda: kt.text.WordPieceTokenizer.train([], 100),
        Refused("at least one line"),
    )
    api(
        "WordPieceTokenizer.train(vocab_size=3)",
        lambda: kt.text.WordPieceTokenizer.train(["a b"], vocab_size=3),
        Refused("vocab_size must exceed"),
    )
    api(
        "WordPieceTokenizer(a token with a line break)",
        lambda: kt.text.WordPieceTokenizer(kt.text.RESERVED_TOKENS + ["a\nb"]),
        Refused("without line breaks"),
    )
    api(
        "WordPieceTokenizer.train(a 1 MB one-word line)",
        lambda: kt.text.WordPieceTokenizer.train(["a" * 1_000_000, "b c"], vocab_size=50),
        Handled("a vocabulary of at most 50", lambda t: t.vocab_size <= 50 or t.vocab_size),
    )
    hangul = "".join(
        chr(0xAC00 + (i * 7919) % 11172) + (" " if i % 5 == 4 else "") for i in range(60_000)
    )
    api(
        "WordPieceTokenizer.train(varied Hangul, vocab_size=100)",
        lambda: kt.text.WordPieceTokenizer.train([hangul], vocab_size=100),
        Handled("a vocabulary of at most 100", lambda t: t.vocab_size <= 100 or t.vocab_size),
    )
    api(
        "SentencePieceTokenizer(b'garbage')",
        lambda: kt.text.SentencePieceTokenizer(b"garbage proto"),
        Refused("not a serialized"),
    )

    # load_tokenizer
    saved = os.path.join(f.run_dir, "tokenizers", "source")
    load = kt.text.load_tokenizer

    def tokenizer_copy(name, edit):
        directory = os.path.join(f.work, "tokenizers", name)
        shutil.copytree(saved, directory)
        edit(directory)
        return directory

    meta = kt.text.tokenizer.METADATA_FILE
    api(
        "load_tokenizer(missing directory)",
        lambda: load(os.path.join(f.work, "nope")),
        Refused("no tokenizer directory"),
    )
    api(
        "load_tokenizer(a file)",
        lambda: load(f.file("tok_file", "x")),
        Refused("no tokenizer directory"),
    )
    for name, content, message in [
        ("zero-byte", b"", "corrupt tokenizer metadata"),
        ("truncated", None, "corrupt tokenizer metadata"),
        ("non-UTF-8", b'{"kind": "\xff"}', "corrupt tokenizer metadata"),
        ("a JSON list", b"[]", "corrupt tokenizer metadata"),
    ]:

        def damage(d, content=content):
            path = os.path.join(d, meta)
            if content is None:
                truncate(path, 40)
            else:
                write(path, content)

        directory = tokenizer_copy(f"meta_{name.replace(' ', '_')}", damage)
        api(
            f"load_tokenizer({name} tokenizer.json)",
            lambda d=directory: load(d),
            Refused(message),
            guard=[directory],
        )
    outside = tokenizer_copy(
        "outside",
        lambda d: edit_json(
            os.path.join(d, meta), lambda m: {**m, "files": {**m["files"], "model": "../../x"}}
        ),
    )
    api(
        "load_tokenizer(tokenizer.json naming ../../x)",
        lambda: load(outside),
        Refused("not a plain file name"),
    )
    version = tokenizer_copy(
        "version", lambda d: edit_json(os.path.join(d, meta), lambda m: {**m, "format_version": 99})
    )
    api("load_tokenizer(format_version 99)", lambda: load(version), Refused("format_version"))
    truncated_model = tokenizer_copy(
        "truncated_model", lambda d: truncate(os.path.join(d, "sentencepiece.model"), 50)
    )
    api(
        "load_tokenizer(truncated sentencepiece.model)",
        lambda: load(truncated_model),
        Refused("SentencePiece"),
    )
    missing_model = tokenizer_copy(
        "missing_model", lambda d: os.remove(os.path.join(d, "sentencepiece.model"))
    )
    api(
        "load_tokenizer(missing sentencepiece.model)",
        lambda: load(missing_model),
        Refused("missing"),
    )
    api(
        "load_tokenizer(expected_fingerprint of another vocabulary)",
        lambda: load(saved, expected_fingerprint="0123456789abcdef"),
        Refused("belongs to another vocabulary"),
    )

    # read_parallel
    read = kt.data.read_parallel
    api(
        "read_parallel(missing file)",
        lambda: read(os.path.join(f.work, "none.tsv")),
        Refused("not found"),
    )
    api(
        "read_parallel(a directory)",
        lambda: read(f.directory("corpus_folder")),
        Refused("corpus_folder"),
    )
    api(
        "read_parallel(zero-byte file)",
        lambda: read(f.file("empty.tsv", b"")),
        Refused("holds no sentence pairs"),
    )
    api(
        "read_parallel(Latin-1 bytes)",
        lambda: read(f.file("l1.tsv", b"caf\xe9\tKaffee\n")),
        Refused("not valid UTF-8"),
    )
    api(
        "read_parallel(BOM and CRLF)",
        lambda: read(f.file("bom.tsv", "\ufeffone\teins\r\ntwo\tzwei\r\n".encode())),
        Handled("[('one', 'eins'), ('two', 'zwei')]", equal([("one", "eins"), ("two", "zwei")])),
    )
    api(
        "read_parallel(a line with two tabs)",
        lambda: read(f.file("tabs.tsv", "one\teins\ntwo\tzwei\tdrei\n")),
        Refused("line 2"),
    )
    api(
        "read_parallel(skip_bad_lines=True)",
        lambda: read(f.file("skip.tsv", "one\teins\nbroken\ntwo\tzwei\n"), skip_bad_lines=True),
        Handled("the two good pairs", equal([("one", "eins"), ("two", "zwei")])),
    )
    api(
        "read_parallel(U+2028 inside a sentence)",
        lambda: read(f.file("ls.tsv", "a\u2028b\tc\n")),
        Handled("one pair", equal([("a\u2028b", "c")])),
    )
    api(
        "read_parallel(aligned files of different lengths)",
        lambda: read(f.file("x.en", "a\nb\n"), f.file("x.de", "a\n")),
        Refused("differ in length"),
    )

    # make_dataset
    pairs = f.corpus.train[:50]
    make = kt.data.make_dataset
    api("make_dataset([])", lambda: make([], f.src_tok, f.tgt_tok), Refused("at least one"))
    api(
        "make_dataset(max_length=1)",
        lambda: make(pairs, f.src_tok, f.tgt_tok, max_length=1),
        Refused("max_length must be at least 2"),
    )
    api(
        "make_dataset(tokens_per_batch=0)",
        lambda: make(pairs, f.src_tok, f.tgt_tok, tokens_per_batch=0),
        Refused("tokens_per_batch"),
    )
    api(
        "make_dataset(a target that is an int)",
        lambda: make(pairs + [("one", 1)], f.src_tok, f.tgt_tok),
        Refused("str"),
    )
    api(
        "make_dataset(3-tuples)",
        lambda: make([("a", "b", "c")], f.src_tok, f.tgt_tok),
        Refused("pairs"),
    )
    api(
        "make_dataset(every pair too long)",
        lambda: make([(long_text, "x")], f.src_tok, f.tgt_tok, max_length=10),
        Refused("longer than max_length"),
    )

    # evaluate
    evaluate = kt.evaluate
    api(
        "evaluate(1 source, 0 references)",
        lambda: evaluate(g, ["one"], [], progress=False),
        Refused("one reference per source"),
    )
    api("evaluate([], [])", lambda: evaluate(g, [], [], progress=False), Refused("nothing"))
    api(
        "evaluate(a reference that is None)",
        lambda: evaluate(g, ["one"], [None], progress=False),
        Refused("str"),
    )
    api(
        "evaluate(batch_size=0)",
        lambda: evaluate(g, ["one"], ["eins"], batch_size=0, progress=False),
        Refused("batch_size"),
    )

    # training settings and runs
    Settings = run_lib.TrainingSettings
    api(
        "TrainingSettings(learning_rate_scale=inf)",
        lambda: Settings(learning_rate_scale=float("inf")),
        Refused("learning_rate_scale"),
    )
    api(
        "TrainingSettings(time_budget=inf)",
        lambda: Settings(time_budget=float("inf")),
        Refused("time_budget"),
    )
    api(
        "TrainingSettings(label_smoothing=nan)",
        lambda: Settings(label_smoothing=float("nan")),
        Refused("label_smoothing must be in [0, 1)"),
    )
    api(
        "TrainingSettings(tokens_per_batch=2.5)",
        lambda: Settings(tokens_per_batch=2.5),
        Refused("tokens_per_batch must be an int"),
    )
    config = kt.TransformerConfig.from_preset("tiny", **MODEL)
    api(
        "train() into a finished run",
        lambda: run_lib.train(f.run_dir, f.corpus, config, Settings(**SETTINGS), verbose=0),
        Refused("holds a finished run"),
        guard=[f.run_dir],
    )
    interrupted = f.copy_run(
        "api_interrupted", remove=("model.keras", "averaged.weights.h5", "training_summary.json")
    )
    api(
        "train() an interrupted run with another model configuration",
        lambda: run_lib.train(
            interrupted,
            f.corpus,
            kt.TransformerConfig.from_preset("tiny", **dict(MODEL, d_model=64)),
            Settings(**SETTINGS),
            data=DATA,
            verbose=0,
        ),
        Refused("another model configuration"),
        guard=[interrupted],
    )
    damaged_record = f.copy_run(
        "api_damaged_record",
        remove=("model.keras", "averaged.weights.h5", "training_summary.json"),
        edit=lambda d: write(os.path.join(d, "progress.json"), '{"epoch": 2, "check'),
    )
    api(
        "train() with a damaged progress.json (starts over)",
        lambda: run_lib.train(
            damaged_record, f.corpus, config, Settings(**SETTINGS), data=DATA, verbose=0
        ),
        Handled(
            "a finished run of 2 logged epochs",
            lambda r: (
                (
                    len(r.history["loss"]) == 2
                    and os.path.isfile(os.path.join(damaged_record, "model.keras"))
                )
                or f"history {r.history}"
            ),
        ),
    )
    damaged_checkpoint = f.copy_run(
        "api_damaged_checkpoint",
        remove=("model.keras", "averaged.weights.h5", "training_summary.json"),
        edit=lambda d: truncate(os.path.join(d, "checkpoints", "epoch_002.weights.h5"), 96),
    )
    api(
        "train() with a truncated last checkpoint (redoes that epoch)",
        lambda: run_lib.train(
            damaged_checkpoint, f.corpus, config, Settings(**SETTINGS), data=DATA, verbose=0
        ),
        Handled(
            "a finished run of 2 logged epochs",
            lambda r: (
                (
                    len(r.history["loss"]) == 2
                    and os.path.getsize(
                        os.path.join(damaged_checkpoint, "checkpoints", "epoch_002.weights.h5")
                    )
                    > 96
                )
                or f"history {r.history}"
            ),
        ),
    )
    load_run = run_lib.load_run
    api(
        "load_run(missing directory)",
        lambda: load_run(os.path.join(f.work, "no_run")),
        Refused("is not a training run"),
    )
    api(
        "load_run(weights='best')",
        lambda: load_run(f.run_dir, weights="best"),
        Refused("weights must be"),
    )
    for name, change, message in [
        (
            "truncated model.keras",
            lambda d: truncate(os.path.join(d, "model.keras"), 100),
            "model.keras is damaged",
        ),
        (
            "model.keras a directory",
            lambda d: (
                os.remove(os.path.join(d, "model.keras")),
                os.mkdir(os.path.join(d, "model.keras")),
            ),
            "model.keras",
        ),
        (
            "missing averaged.weights.h5",
            lambda d: os.remove(os.path.join(d, "averaged.weights.h5")),
            "averaged.weights.h5",
        ),
        (
            "zero-byte config.json",
            lambda d: write(os.path.join(d, "config.json"), b""),
            "not a valid run configuration",
        ),
        (
            "config.json whose model is a list",
            lambda d: edit_json(os.path.join(d, "config.json"), lambda c: {**c, "model": [1]}),
            "not a valid run configuration",
        ),
        (
            'config.json with d_model "32"',
            lambda d: edit_json(
                os.path.join(d, "config.json"),
                lambda c: {**c, "model": {**c["model"], "d_model": "32"}},
            ),
            "d_model",
        ),
        (
            "config.json whose tokenizers is a list",
            lambda d: edit_json(
                os.path.join(d, "config.json"), lambda c: {**c, "tokenizers": ["x"]}
            ),
            "not a valid run configuration",
        ),
        (
            "missing tokenizer.json",
            lambda d: os.remove(os.path.join(d, "tokenizers", "target", meta)),
            meta,
        ),
        (
            "a same-size tokenizer of another vocabulary",
            _swap_in_permuted_tokenizer,
            "belongs to another vocabulary",
        ),
    ]:
        directory = f.copy_run(
            "load_" + "".join(c if c.isalnum() else "_" for c in name), edit=change
        )
        api(
            f"load_run({name})",
            lambda d=directory: load_run(d),
            Refused(message),
            guard=[directory],
        )

    # checkpoint averaging
    checkpoints = os.path.join(f.run_dir, "checkpoints")
    good = os.path.join(checkpoints, "epoch_001.weights.h5")
    bad = f.file("bad.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    api(
        "average_checkpoints(model, [])",
        lambda: averaging.average_checkpoints(model, []),
        Refused("at least one"),
        model=model,
    )
    api(
        "average_checkpoints(model, [good, truncated])",
        lambda: averaging.average_checkpoints(model, [good, bad]),
        Refused("bad.weights.h5"),
        model=model,
    )
    small = kt.Transformer.from_preset("tiny", num_layers=1, src_vocab_size=V, tgt_vocab_size=V)
    small.build()
    api(
        "average_checkpoints(a model of another configuration)",
        lambda: averaging.average_checkpoints(small, [good]),
        Refused("same configuration"),
        model=small,
    )
    api(
        "last_checkpoints(count=0)",
        lambda: averaging.last_checkpoints(checkpoints, 0),
        Refused("count"),
    )
    api(
        "last_checkpoints(count=-1)",
        lambda: averaging.last_checkpoints(checkpoints, -1),
        Refused("count"),
    )


def _swap_in_permuted_tokenizer(run_dir):
    """Replaces the run's target tokenizer by a valid one of the same size whose tokens
    are in another order (another run's tokenizer, as a user could copy in)."""
    directory = os.path.join(run_dir, "tokenizers", "target")
    vocabulary = kt.text.load_tokenizer(directory).vocabulary
    reserved = len(kt.text.RESERVED_TOKENS)
    permuted = vocabulary[:reserved] + vocabulary[reserved:][::-1]
    shutil.rmtree(directory)
    kt.text.WordPieceTokenizer(permuted).save(directory)


# --- the exported artifacts -----------------------------------------------------------


def artifact_cases(f):
    import tensorflow_text  # noqa: F401  registers the SavedModel's text ops

    V, L = f.V, f.L
    loaded = tf.saved_model.load(f.saved_model)
    serve = loaded.signatures["serving_default"]
    translate_ids = loaded.signatures["translate_ids"]
    graph_error = (tf.errors.InvalidArgumentError,)

    def text(*strings):
        return [
            s.decode("utf-8")
            for s in serve(text=tf.constant(list(strings), tf.string))["translation"].numpy()
        ]

    artifact(
        "SavedModel serving_default(text=[''])", lambda: text(""), Handled("['']", equal([""]))
    )
    artifact(
        "SavedModel serving_default(text=[]) (empty batch)",
        lambda: serve(text=tf.constant([], tf.string))["translation"].shape,
        Handled("shape (0,)", lambda s: tuple(s) == (0,) or f"shape {s}"),
    )
    artifact(
        "SavedModel serving_default(invalid UTF-8 bytes)",
        lambda: serve(text=tf.constant([b"caf\xe9"]))["translation"].numpy()[0].decode(),
        Handled("a UTF-8 translation", lambda s: isinstance(s, str)),
    )
    long_text = " ".join(["seven"] * (L + 20))
    artifact(
        "SavedModel serving_default(a source longer than max_length)",
        lambda: (text(long_text), f.beam([long_text])),
        Handled(
            "the Translator's translation (truncated)",
            lambda r: r[0] == r[1] or f"{r[0]} where the Translator gives {r[1]}",
        ),
    )
    artifact(
        "SavedModel translate_ids(id = V + 1000)",
        lambda: translate_ids(src_ids=tf.constant([[5, V + 1000]], tf.int32)),
        Refused("src ids must be in", kinds=graph_error),
    )
    artifact(
        "SavedModel translate_ids(negative id)",
        lambda: translate_ids(src_ids=tf.constant([[-1]], tf.int32)),
        Refused("src ids must be in", kinds=graph_error),
    )
    artifact(
        "SavedModel translate_ids(rows longer than max_length)",
        lambda: translate_ids(src_ids=tf.fill([1, L + 3], 5)),
        Refused("max_length", kinds=graph_error),
    )
    artifact(
        "SavedModel translate_ids(int64 ids)",
        lambda: translate_ids(src_ids=tf.constant([[2**32 + 10]], tf.int64)),
        Refused("expected to be a int32 tensor", kinds=graph_error),
    )  # TF's own check
    artifact(
        "SavedModel translate_ids(empty batch (0, 5))",
        lambda: translate_ids(src_ids=tf.zeros([0, 5], tf.int32))["ids"].shape[0],
        Handled("0 rows", equal(0)),
    )
    artifact(
        "tf.saved_model.load(missing directory)",
        lambda: tf.saved_model.load(os.path.join(f.work, "no_export")),
        Refused("SavedModel file does not exist", kinds=(OSError,)),
    )
    existing = os.path.join(f.exports, "run")
    artifact(
        "export_saved_model over an existing version",
        lambda: kt.export.export_saved_model(f.beam, existing, version=1),
        Refused("overwrite=True"),
        guard=[existing],
    )

    tflite = kt.runtimes.TFLiteTranslator(f.tflite)
    for name, ids, message in [
        ("id = V", np.array([[5, V]], np.int32), f"got {V}"),
        ("negative id", np.array([[-1, 5]], np.int32), "got -1"),
        ("int64 id 2**32+10", np.array([[2**32 + 10]], np.int64), str(2**32 + 10)),
        ("float ids", np.array([[5.0]], np.float32), "int32 of shape"),
        ("3-D ids", np.zeros([1, 2, 3], np.int32), "int32 of shape"),
        ("rows longer than max_length", np.full([1, L + 1], 5, np.int32), "max_length"),
    ]:
        artifact(
            f"TFLiteTranslator.translate_ids({name})",
            lambda ids=ids: tflite.translate_ids(ids),
            Refused(message),
        )
    artifact(
        "TFLiteTranslator.translate_ids(empty batch)",
        lambda: tflite.translate_ids(np.zeros([0, 4], np.int32)),
        Handled("0 rows", lambda r: r[0].shape[0] == 0 or r[0].shape),
    )
    artifact(
        "TFLiteTranslator.translate_ids(an all-padding row)",
        lambda: tflite.translate_ids(np.array([[0, 0], [5, 6]], np.int32)),
        Handled(
            "an empty first row with score 0",
            lambda r: (
                (not r[0][0].any() and float(r[1][0]) == 0.0)
                or f"row {r[0][0][:8]}, score {r[1][0]}"
            ),
        ),
    )
    artifact(
        "TFLiteTranslator(['text']) on an ids-only file",
        lambda: tflite(["one"]),
        Refused("no text signature"),
    )
    artifact(
        "TFLiteTranslator(missing file)",
        lambda: kt.runtimes.TFLiteTranslator(os.path.join(f.work, "none.tflite")),
        Refused("none.tflite"),
    )
    artifact(
        "TFLiteTranslator(zero-byte file)",
        lambda: kt.runtimes.TFLiteTranslator(f.file("zero.tflite", b"")),
        Refused("zero.tflite"),
    )
    artifact(
        "export_tflite over an existing file",
        lambda: kt.export.export_tflite(f.beam, f.tflite),
        Refused("overwrite=True"),
        guard=[f.tflite],
    )
    artifact(
        "export_tflite(quantization='int4')",
        lambda: kt.export.export_tflite(
            f.beam, os.path.join(f.work, "q.tflite"), quantization="int4"
        ),
        Refused("int4"),
    )

    onnx = kt.runtimes.OnnxTranslator(f.onnx)
    for name, ids, message in [
        ("id = V", np.array([[5, V]], np.int32), f"got {V}"),
        ("negative id", np.array([[-1, 5]], np.int32), "got -1"),
        ("int64 id 2**32+10", np.array([[2**32 + 10]], np.int64), str(2**32 + 10)),
        ("rows longer than max_length", np.full([1, L + 1], 5, np.int32), "max_length"),
    ]:
        artifact(
            f"OnnxTranslator.translate_ids({name})",
            lambda ids=ids: onnx.translate_ids(ids),
            Refused(message),
        )
    artifact(
        "OnnxTranslator.translate_ids(max_length=0)",
        lambda: onnx.translate_ids(np.array([[5]], np.int32), max_length=0),
        Refused("max_length must be"),
    )
    artifact(
        "OnnxTranslator.translate_ids(empty batch)",
        lambda: onnx.translate_ids(np.zeros([0, 3], np.int32)),
        Handled("0 rows", lambda r: r[0].shape[0] == 0 or r[0].shape),
    )
    artifact(
        "OnnxTranslator('one') (a str, not a list)",
        lambda: onnx("one"),
        Refused("wrap it in a list"),
    )
    artifact(
        "OnnxTranslator(['']) (an empty string)",
        lambda: onnx([""])[0],
        Handled("['']", equal([""])),
    )
    artifact(
        "OnnxTranslator(missing directory)",
        lambda: kt.runtimes.OnnxTranslator(os.path.join(f.work, "no_onnx")),
        Refused("config.json is missing"),
    )

    def onnx_copy(name, edit):
        directory = os.path.join(f.work, "onnx_" + name)
        shutil.copytree(f.onnx, directory)
        edit(directory)
        return directory

    bad_config = onnx_copy("bad_config", lambda d: write(os.path.join(d, "config.json"), "{"))
    artifact(
        "OnnxTranslator(config.json that is not JSON)",
        lambda: kt.runtimes.OnnxTranslator(bad_config),
        Refused("config.json"),
    )
    zero_encoder = onnx_copy("zero_encoder", lambda d: write(os.path.join(d, "encoder.onnx"), b""))
    artifact(
        "OnnxTranslator(zero-byte encoder.onnx)",
        lambda: kt.runtimes.OnnxTranslator(zero_encoder),
        Refused("encoder.onnx"),
    )
    artifact(
        "export_onnx over an existing directory",
        lambda: kt.export.export_onnx(f.beam, f.onnx),
        Refused("overwrite=True"),
        guard=[f.onnx],
    )


# --- report ---------------------------------------------------------------------------


def report():
    counts = collections.Counter((r.entry, r.outcome) for r in RESULTS)
    width = max(len(o) for o in OUTCOMES)
    header = f"{'outcome':{width}s} " + " ".join(f"{e:>8s}" for e in ENTRY_POINTS) + "    total"
    print("\n" + header)
    print("-" * len(header))
    for outcome in OUTCOMES:
        row = [counts[(e, outcome)] for e in ENTRY_POINTS]
        print(f"{outcome:{width}s} " + " ".join(f"{n:8d}" for n in row) + f" {sum(row):8d}")
    totals = [sum(counts[(e, o)] for o in OUTCOMES) for e in ENTRY_POINTS]
    print(f"{'cases':{width}s} " + " ".join(f"{n:8d}" for n in totals) + f" {sum(totals):8d}")
    failures = [r for r in RESULTS if r.outcome not in OK]
    if failures:
        print(f"\n{len(failures)} case(s) not clear-error or handled:")
        for r in failures:
            print(f"  [{r.entry}] {r.outcome}: {r.name} -- {r.detail}")
    return 1 if failures else 0


def main():
    global ONLY
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", action="append", help="run only the cases whose name contains this (repeatable)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    ONLY = args.only
    work = tempfile.mkdtemp(prefix="hostile_inputs_")
    started = time.monotonic()
    try:
        print(f"building the tiny run and its exports in {work} ...", flush=True)
        fixture = Fixture(work)
        print(
            f"built in {time.monotonic() - started:.0f} s; vocabulary {fixture.V}, "
            f"max_length {fixture.L}",
            flush=True,
        )
        api_cases(fixture)
        artifact_cases(fixture)
        cli_cases(fixture)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    status = report()
    print(f"\nwall time {time.monotonic() - started:.0f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
