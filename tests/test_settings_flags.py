"""Command-line flags generated from a settings dataclass (keras_transformer.settings_flags)
and the `train` flags generated from TrainingSettings."""

import argparse
import dataclasses
import json
import re

import pytest

from keras_transformer import cli, runs
from keras_transformer.settings_flags import add_settings_flags, docstring_help, given_settings


@dataclasses.dataclass
class Settings:
    """Example settings.

    Args:
        steps: how many steps; a description that goes on
            over two lines.
        low, high: the range.
        budget: seconds, or None.
        fast: go fast.

    Returns nothing: this line is no field's.
    """

    steps: int = 3
    low: float = 0.0
    high: float = 1.0
    budget: float | None = None
    fast: bool = False


def test_help_comes_from_the_docstring_args():
    """Catches: continuation lines dropped, or an entry naming two fields helping only
    the first ("low, high: the range")."""
    helps = docstring_help(Settings)
    assert helps == {
        "steps": "how many steps; a description that goes on over two lines.",
        "low": "the range.",
        "high": "the range.",
        "budget": "seconds, or None.",
        "fast": "go fast.",
    }


def test_every_field_is_a_typed_flag_that_defaults_to_not_given():
    """Catches: a flag typed as str (the settings would get "5", not 5), a bool field
    without its --no- form, or a flag default that overrides the dataclass's."""
    parser = argparse.ArgumentParser()
    add_settings_flags(parser, Settings)
    args = parser.parse_args(["--steps", "5", "--budget", "2.5", "--no-fast"])
    assert given_settings(args, Settings) == {"steps": 5, "budget": 2.5, "fast": False}
    assert given_settings(parser.parse_args([]), Settings) == {}
    assert Settings(**given_settings(parser.parse_args(["--high", "2"]), Settings)).high == 2.0


def test_a_new_training_setting_is_a_train_flag(monkeypatch, tmp_path, capsys):
    """A field added to TrainingSettings is a `train` flag with its docstring's help,
    with no edit of cli.py.

    Catches: the train flags listed by hand in cli.py (the new field has no flag)."""

    @dataclasses.dataclass
    class Extended(runs.TrainingSettings):
        """Args:
        cooldown_steps: steps of linear decay at the end.
        """

        cooldown_steps: int = 0

    monkeypatch.setattr(runs, "TrainingSettings", Extended)
    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    assert re.search(
        r"--cooldown-steps COOLDOWN_STEPS\s+steps of linear decay at the end\.",
        capsys.readouterr().out,
    )
    args = parser.parse_args(
        ["train", "--run-dir", str(tmp_path), "--cooldown-steps", "7", "--no-jit"]
    )
    settings = cli._training_settings(args, {}, None)
    assert settings.cooldown_steps == 7 and settings.jit_compile is False


def test_train_reads_its_config_file_once_then_flags_win(monkeypatch, tmp_path):
    """Catches: --config read once per section (twice), or its training object applied
    after the flags (a flag must win over the file)."""
    config = tmp_path / "run.json"
    config.write_text(
        json.dumps(
            {
                "model": {"d_model": 32, "num_heads": 2},
                "training": {"warmup_steps": 7, "vocab_size": 300},
            }
        )
    )
    opened = []
    real_read = cli._read_config_file
    monkeypatch.setattr(
        cli, "_read_config_file", lambda path: opened.append(path) or real_read(path)
    )
    calls = []
    monkeypatch.setattr(runs, "train", lambda *args, **kwargs: calls.append(args) or _Result())
    monkeypatch.setattr(cli, "load_corpus", lambda data: None)
    assert (
        cli.main(
            [
                "train",
                "--run-dir",
                str(tmp_path / "run"),
                "--config",
                str(config),
                "--vocab-size",
                "250",
            ]
        )
        == 0
    )
    ((_, _, model_config, settings),) = calls
    assert opened == [str(config)]
    assert model_config.d_model == 32 and settings.warmup_steps == 7
    assert settings.vocab_size == 250


class _Result:
    history = {"loss": [1.0]}
    steps = 1
