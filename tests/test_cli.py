"""The command line, run as a user runs it: in subprocesses."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "data"))
from mo_files import write_mo  # noqa: E402

TINY = [
    "--preset",
    "tiny",
    "--set",
    "d_model=32",
    "d_ff=64",
    "num_layers=1",
    "--train-size",
    "1500",
    "--vocab-size",
    "200",
    "--tokens-per-batch",
    "512",
    "--warmup-steps",
    "50",
    "--max-length",
    "40",
]


def cli(*args, timeout=300, quiet=True, **kwargs):
    """Runs the command line; `quiet=False` leaves TensorFlow's logging as a user has it."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    if quiet:
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.run(
        [sys.executable, "-m", "keras_transformer.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def logged_epochs(run_dir):
    path = os.path.join(run_dir, "log.csv")
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def optimizer_steps(run_dir):
    check = cli_python(f"""
import keras
import keras_transformer  # registers the model's classes for loading
print(int(keras.saving.load_model({os.path.join(run_dir, "model.keras")!r}).optimizer.iterations))
""")
    return int(check.stdout.split()[-1])


def cli_python(code):
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def assert_user_error(result, command, message):
    """Exit status 2 and the whole of stderr one line: the command, "error:", the message."""
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().split("\n")
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(f"keras-transformer {command}: error:") and message in lines[0]


@pytest.mark.parametrize(
    "args,message",
    [
        (["evaluate", "--run-dir", "/nonexistent/run"], "/nonexistent/run is not a training run"),
        (["plot", "loss", "--run-dir", "/nonexistent/run"], "train a run first"),
        (["train", "--run-dir", "RUN", "--preset", "huge"], "unknown preset 'huge'"),
        (
            ["train", "--run-dir", "RUN", "--data", "tsv", "--train", "/nonexistent/pairs.tsv"],
            "/nonexistent/pairs.tsv",
        ),
        (["train", "--run-dir", "RUN", "--data", "tfds"], "needs --tfds-name"),
        (
            [
                "train",
                "--run-dir",
                "RUN",
                "--data",
                "gettext",
                "--target-lang",
                "xx",
                "--locale-dir",
                "/nonexistent/locale",
            ],
            "no gettext catalogs",
        ),
        (["train", "--run-dir", "RUN", "--time-budget", "0"], "time_budget must be a positive"),
        (["train", "--run-dir", "RUN", "--set", "foo=1"], "unknown model settings ['foo']"),
        (
            ["train", "--run-dir", "RUN", "--set", "norm_first=off"],
            "norm_first must be true or false",
        ),
        (["train", "--run-dir", "RUN", "--set", 'dropout="x"'], "dropout must be a number"),
        (
            ["train", "--run-dir", "RUN", "--set", "d_model=63", "num_heads=7"],
            "d_model must be even",
        ),
        (
            ["train", "--run-dir", "RUN", "--learning-rate-scale", "-1"],
            "learning_rate_scale must be positive",
        ),
        (["train", "--run-dir", "RUN", "--warmup-steps", "0"], "warmup_steps must be an int"),
        (
            ["train", "--run-dir", "RUN", "--label-smoothing", "1"],
            "label_smoothing must be in [0, 1)",
        ),
        (["train", "--run-dir", "RUN", "--data", "tsv", "--train", "BAD_TSV"], "--skip-bad-lines"),
        (
            ["translate", "--run-dir", "TRAINED", "--alpha", "-1", "x"],
            "alpha must be a number >= 0",
        ),
        (["translate", "--run-dir", "TRAINED", "--beam-size", "1000", "x"], "beam_size"),
        (["translate", "--run-dir", "TRAINED", "--file", "RUN"], "Is a directory"),
        (
            ["export", "--run-dir", "TRAINED", "--format", "onnx", "--output", "EXPORTS"],
            "pass --overwrite to replace it",
        ),
    ],
)
def test_user_errors_print_one_line_and_exit_non_zero(tmp_path, args, message, trained_run):
    # Catches: a traceback or a TensorFlow log line on stderr, a check that comes only at
    # decode time, a message that names a Python argument instead of the flag.
    bad_tsv = tmp_path / "bad.tsv"
    bad_tsv.write_text("one\teins\ntwo without a tab\n")
    exports = tmp_path / "exports"
    (exports / "run_onnx").mkdir(parents=True)
    places = {
        "RUN": str(tmp_path / "run"),
        "TRAINED": trained_run,
        "BAD_TSV": str(bad_tsv),
        "EXPORTS": str(exports),
    }
    if "--file" in args:
        os.makedirs(places["RUN"])
    args = [places.get(a, a) for a in args]
    assert_user_error(cli(*args, quiet=False), args[0], message)
    # Refused before anything was written: the corrected command starts afresh.
    assert not os.path.exists(tmp_path / "run" / "config.json")
    # Refused before anything was written: the corrected command starts afresh.
    assert not os.path.exists(tmp_path / "run" / "config.json")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished one-epoch tiny run, for the commands that need one."""
    run_dir = str(tmp_path_factory.mktemp("trained") / "run")
    result = cli("train", "--run-dir", run_dir, *TINY, "--epochs", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir


@pytest.mark.parametrize(
    "args",
    [
        ["translate", "--batch-size", "-1", "x"],
        ["translate", "--beam-size", "0", "x"],
        ["evaluate", "--limit", "-1"],
        ["average-checkpoints", "--last", "0"],
        ["average-checkpoints", "--last", "-2"],
    ],
)
def test_non_positive_counts_are_usage_errors(tmp_path, args):
    result = cli(*args[:1], "--run-dir", str(tmp_path), *args[1:])
    assert result.returncode == 2 and "expected an int >= " in result.stderr
    assert "Traceback" not in result.stderr


def test_a_run_is_bound_to_its_tokenizers(tmp_path, trained_run):
    # Catches: load_run comparing vocabulary sizes only (a same-size tokenizer swapped in
    # translates with the wrong words and no error).
    run_dir = str(tmp_path / "run")
    shutil.copytree(trained_run, run_dir)
    path = os.path.join(run_dir, "config.json")
    with open(path) as handle:
        config = json.load(handle)
    assert set(config["tokenizers"]) == {"source", "target"}
    config["tokenizers"]["target"] = "0123456789abcdef"
    with open(path, "w") as handle:
        json.dump(config, handle)
    result = cli("translate", "--run-dir", run_dir, "--beam-size", "1", "twenty-one", quiet=False)
    assert_user_error(
        result, "translate", "belongs to another vocabulary than the one the model was trained with"
    )


def test_a_damaged_model_file_is_reported_with_the_way_out(tmp_path, trained_run):
    run_dir = str(tmp_path / "run")
    shutil.copytree(trained_run, run_dir)
    with open(os.path.join(run_dir, "model.keras"), "r+b") as handle:
        handle.truncate(100)
    assert_user_error(
        cli("translate", "--run-dir", run_dir, "twenty-one", quiet=False),
        "translate",
        "model.keras is damaged",
    )


def test_a_config_file_must_be_an_object(tmp_path):
    config = tmp_path / "config.json"
    config.write_text("[1, 2]")
    result = cli("train", "--run-dir", str(tmp_path / "run"), "--config", str(config), quiet=False)
    assert_user_error(result, "train", "must hold a JSON object")


def test_the_demo_refuses_a_directory_it_did_not_create(tmp_path):
    run_dir = tmp_path / "real_run"
    run_dir.mkdir()
    (run_dir / "model.keras").write_bytes(b"a finished run of someone's")
    result = cli(
        "demo", "--run-dir", str(run_dir), "--export-dir", str(tmp_path / "exports"), quiet=False
    )
    assert_user_error(result, "demo", "the demo did not create it")
    assert (run_dir / "model.keras").read_bytes() == b"a finished run of someone's"


def test_usage_errors_are_argparse_errors(tmp_path):
    result = cli("train", "--run-dir", str(tmp_path), "--set", "d_model")
    assert result.returncode == 2 and "--set expects key=value" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_fault_of_ours_keeps_its_traceback(monkeypatch, tmp_path):
    # Catches: the command line treating every ValueError as the user's mistake (exit 2,
    # one line), which hides a bug of the library or of TensorFlow behind it.
    from keras_transformer import cli as cli_module

    def broken_translate(args):
        raise ValueError("an internal fault, not the user's input")

    monkeypatch.setattr(cli_module, "cmd_translate", broken_translate)
    with pytest.raises(ValueError, match="internal fault"):
        cli_module.main(["translate", "--run-dir", str(tmp_path), "x"])


def test_a_bad_line_can_be_skipped_from_the_command_line(tmp_path):
    from keras_transformer.cli import _data_description, build_parser
    from keras_transformer.data import load_corpus

    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("one\teins\nno tab here\ntwo\tzwei\n")
    args = build_parser().parse_args(
        [
            "train",
            "--run-dir",
            str(tmp_path / "run"),
            "--data",
            "tsv",
            "--train",
            str(tsv),
            "--skip-bad-lines",
        ]
    )
    assert load_corpus(_data_description(args)).train == [("one", "eins"), ("two", "zwei")]


@pytest.mark.slow
def test_killed_training_resumes_without_losing_an_epoch(tmp_path):
    """SIGKILL mid-epoch, then the same command again: finished epochs are not redone,
    the run ends after the planned epochs, and every epoch is logged once."""
    run_dir = str(tmp_path / "run")
    epochs = ["--epochs", "6"]
    command = [
        sys.executable,
        "-m",
        "keras_transformer.cli",
        "train",
        "--run-dir",
        run_dir,
        *TINY,
        *epochs,
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 240
    while len(logged_epochs(run_dir)) < 2 and time.monotonic() < deadline:
        assert process.poll() is None, "training ended before it could be killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # during the third epoch (or a little later)
    process.wait()
    finished = logged_epochs(run_dir)
    assert 2 <= len(finished) < 6 and finished == list(range(len(finished)))
    assert not os.path.exists(os.path.join(run_dir, "model.keras"))

    resumed = cli("train", "--run-dir", run_dir, *TINY, *epochs)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"Epoch {len(finished) + 1}/6" in resumed.stdout
    assert f"Epoch {len(finished)}/6" not in resumed.stdout, "a finished epoch ran again"
    assert logged_epochs(run_dir) == list(range(6))
    checkpoints = sorted(os.listdir(os.path.join(run_dir, "checkpoints")))
    assert checkpoints == [f"epoch_{e:03d}.weights.h5" for e in range(1, 7)]

    # Every epoch's steps ran exactly once: the optimizer took as many steps as in an
    # uninterrupted run of the same command.
    reference_dir = str(tmp_path / "reference")
    reference = cli("train", "--run-dir", reference_dir, *TINY, *epochs)
    assert reference.returncode == 0, reference.stderr[-2000:]
    assert optimizer_steps(run_dir) == optimizer_steps(reference_dir) > 6

    again = cli("train", "--run-dir", run_dir, *TINY, *epochs)
    assert again.returncode == 2 and "holds a finished run" in again.stderr

    averaged = cli("average-checkpoints", "--run-dir", run_dir, "--last", "3")
    assert averaged.returncode == 0 and "averaged 3 checkpoints" in averaged.stdout
    for what in ("loss", "lr"):
        plotted = cli("plot", what, "--run-dir", run_dir)
        assert plotted.returncode == 0, plotted.stderr[-2000:]
        assert os.path.getsize(plotted.stdout.strip()) > 1000
    plotted = cli(
        "plot", "attention", "--run-dir", run_dir, "--sentence", "twenty-one", "--beam-size", "1"
    )
    assert plotted.returncode == 0 and os.path.getsize(plotted.stdout.strip()) > 1000


@pytest.mark.slow
def test_evaluate_translate_and_export_a_trained_run(tmp_path):
    run_dir = str(tmp_path / "run")
    assert cli("train", "--run-dir", run_dir, *TINY, "--epochs", "1").returncode == 0

    evaluated = cli(
        "evaluate",
        "--run-dir",
        run_dir,
        "--limit",
        "8",
        "--samples",
        "2",
        "--bleu-tokenize",
        "char",
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    scores = json.loads(evaluated.stdout.splitlines()[0])
    assert scores["num_sentences"] == 8 and 0.0 < scores["chrf"]
    assert len(evaluated.stdout.strip().splitlines()) == 3  # the scores and 2 samples

    translated = cli(
        "translate", "--run-dir", run_dir, "--beam-size", "1", "one", "", "two hundred"
    )
    assert translated.returncode == 0, translated.stderr[-2000:]
    lines = translated.stdout.split("\n")[:3]
    assert lines[1] == "" and lines[0] and lines[2]  # an empty source gives an empty line
    piped = cli("translate", "--run-dir", run_dir, "--beam-size", "1", input="one\ntwo\n")
    assert piped.returncode == 0 and piped.stdout.splitlines()[0] == lines[0]

    output = str(tmp_path / "exports")
    for attempt in range(2):  # the second export must replace the first
        exported = cli(
            "export",
            "--run-dir",
            run_dir,
            "--format",
            "tflite",
            "--output",
            output,
            "--quantization",
            "int8",
            "--overwrite",
        )
        assert exported.returncode == 0, exported.stderr[-2000:]
    assert exported.stdout.strip().endswith("run_int8.tflite")
    assert os.path.getsize(exported.stdout.strip()) > 1000
    exported = cli(
        "export", "--run-dir", run_dir, "--format", "onnx", "--output", output, "--quantization",
        "int8",
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert exported.stdout.strip().endswith("run_onnx_int8")
    with open(os.path.join(exported.stdout.strip(), "config.json")) as f:
        assert json.load(f)["quantization"] == "int8"
    refused = cli("export", "--run-dir", run_dir, "--format", "onnx", "--quantization", "float16")
    assert refused.returncode == 2 and "float16 applies to --format tflite only" in refused.stderr


@pytest.mark.slow
def test_train_on_gettext_catalogs_for_a_time_budget(tmp_path):
    # Catches: --data gettext not wired to the catalogs, --time-budget ignored (the run
    # would train its epoch bound, 100,000 epochs, or the default 10), the summary not
    # written, the tiny preset's settings taking the small preset's warm-up.
    locale = tmp_path / "locale"
    write_mo(
        str(locale / "fr" / "LC_MESSAGES" / "app.mo"),
        {f"file {i} is open": f"le fichier {i} est ouvert" for i in range(2100)},
    )
    run_dir = str(tmp_path / "run")
    trained = cli(
        "train",
        "--run-dir",
        run_dir,
        "--preset",
        "tiny",
        "--set",
        "d_model=32",
        "d_ff=64",
        "num_layers=1",
        "--data",
        "gettext",
        "--target-lang",
        "fr",
        "--locale-dir",
        str(locale),
        "--vocab-size",
        "100",
        "--time-budget",
        "6",
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    with open(os.path.join(run_dir, "training_summary.json")) as handle:
        summary = json.load(handle)
    assert summary["stopped_by_budget"] and 6 <= summary["train_seconds"] < 60
    assert summary["steps"] > 0 and summary["target_tokens"] > 0
    assert 1 <= summary["checkpoints_averaged"] <= 5
    with open(os.path.join(run_dir, "config.json")) as handle:
        config = json.load(handle)
    assert config["data"]["source"] == "gettext" and config["training"]["warmup_steps"] == 4000
    assert config["training"]["tokenizer"] == "sentencepiece"


def test_translate_names_the_input_that_is_not_utf8(tmp_path, trained_run):
    # Catches: stdin decoded with surrogate escapes, whose bytes reached tf.constant
    # (a ValueError traceback), and --file reported by Python's decoding error, which
    # names neither the file nor the line.
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"one\ncaf\xe9\n")
    result = cli(
        "translate",
        "--run-dir",
        trained_run,
        "--beam-size",
        "1",
        "--file",
        str(latin1),
        quiet=False,
    )
    assert_user_error(result, "translate", f"{latin1} is not valid UTF-8: byte 0xe9 on line 2")
    result = cli(
        "translate",
        "--run-dir",
        trained_run,
        "--beam-size",
        "1",
        quiet=False,
        input="one\ncaf\udce9\n",
        errors="surrogateescape",
    )
    assert_user_error(result, "translate", "stdin is not valid UTF-8: byte 0xe9 on line 2")
    assert len(result.stdout.splitlines()) == 1  # the line before was translated
