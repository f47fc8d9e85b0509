"""The training run on disk (keras_transformer/training/run.py): what it refuses."""

import dataclasses
import json
import math

import pytest

import keras_transformer as kt
from keras_transformer.training.run import TrainingSettings, load_run


@pytest.mark.parametrize("settings, message", [
    (dict(learning_rate_scale=math.inf), "learning_rate_scale must be positive and finite"),
    (dict(learning_rate_scale=math.nan), "learning_rate_scale must be positive and finite"),
    (dict(time_budget=math.inf), "time_budget must be a positive, finite number"),
    (dict(time_budget=math.nan), "time_budget must be a positive, finite number"),
    (dict(tokens_per_batch=64, max_length=128),
     r"tokens_per_batch \(64\) must be at least max_length \(128\)"),
])
def test_settings_refused_before_anything_is_written(settings, message):
    # Catches: an infinite learning rate (a run of NaN losses), an infinite budget (with
    # no --epochs, a run that never ends), and a token budget below max_length refused
    # only by make_dataset, after config.json and the tokenizers were written.
    with pytest.raises(kt.errors.InputError, match=message):
        TrainingSettings(**settings)


def test_a_config_whose_tokenizers_are_not_an_object_is_refused(tmp_path):
    # Catches: config.json's "tokenizers" read with .get() whatever its type: a list
    # there gave an AttributeError traceback instead of naming the damaged file.
    config = kt.TransformerConfig(num_layers=1, d_model=8, num_heads=2, d_ff=16,
                                  src_vocab_size=12, tgt_vocab_size=12, max_length=16)
    model = kt.Transformer(**config.to_dict())
    model.build()
    model.save(tmp_path / "model.keras")
    model.save_weights(tmp_path / "averaged.weights.h5")
    (tmp_path / "config.json").write_text(json.dumps({
        "model": config.to_dict(), "training": dataclasses.asdict(TrainingSettings()),
        "data": {}, "tokenizers": ["0123456789abcdef"]}))
    with pytest.raises(kt.errors.InputError,
                       match="config.json is not a valid run configuration: 'tokenizers'"):
        load_run(str(tmp_path))
