"""The training run on disk (keras_transformer/runs.py): what it refuses."""

import dataclasses
import json
import math

import pytest

import keras_transformer as kt
from keras_transformer.runs import TrainingSettings, load_run


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(learning_rate_scale=math.inf), "learning_rate_scale must be positive and finite"),
        (dict(learning_rate_scale=math.nan), "learning_rate_scale must be positive and finite"),
        (dict(time_budget=math.inf), "time_budget must be a positive, finite number"),
        (dict(time_budget=math.nan), "time_budget must be a positive, finite number"),
        (
            dict(tokens_per_batch=64, max_length=128),
            r"tokens_per_batch \(64\) must be at least max_length \(128\)",
        ),
        (dict(cooldown=0), r"cooldown must be a share of the run in \(0, 1\]"),
        (dict(cooldown=1.5), r"cooldown must be a share of the run in \(0, 1\]"),
    ],
)
def test_settings_refused_before_anything_is_written(settings, message):
    # Catches: an infinite learning rate (a run of NaN losses), an infinite budget (with
    # no --epochs, a run that never ends), and a token budget below max_length refused
    # only by make_dataset, after config.json and the tokenizers were written.
    with pytest.raises(kt.errors.InputError, match=message):
        TrainingSettings(**settings)


def test_a_config_whose_tokenizers_are_not_an_object_is_refused(tmp_path):
    # Catches: config.json's "tokenizers" read with .get() whatever its type: a list
    # there gave an AttributeError traceback instead of naming the damaged file.
    config = kt.TransformerConfig(
        num_layers=1,
        d_model=8,
        num_heads=2,
        d_ff=16,
        src_vocab_size=12,
        tgt_vocab_size=12,
        max_length=16,
    )
    model = kt.Transformer(**config.to_dict())
    model.build()
    model.save(tmp_path / "model.keras")
    model.save_weights(tmp_path / "averaged.weights.h5")
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "model": config.to_dict(),
                "training": dataclasses.asdict(TrainingSettings()),
                "data": {},
                "tokenizers": ["0123456789abcdef"],
            }
        )
    )
    with pytest.raises(
        kt.errors.InputError, match="config.json is not a valid run configuration: 'tokenizers'"
    ):
        load_run(str(tmp_path))


@pytest.mark.slow
def test_a_run_trained_in_bfloat16_loads_in_float32_and_exports_to_tflite(tmp_path):
    # Catches: train or load_run handing back the bfloat16 layers of a mixed-precision
    # run, which TFLite's converter refuses; a float32 copy that lost the trained
    # weights; train leaving the global dtype policy at bfloat16 for the caller.
    import json

    import keras
    import numpy as np

    from keras_transformer import runs

    corpus = kt.data.numbers_corpus(target_lang="fr", train_size=300, dev_size=20, test_size=5)
    settings = TrainingSettings(
        epochs=1,
        tokens_per_batch=512,
        max_length=40,
        vocab_size=120,
        tokenizer="wordpiece",
        warmup_steps=20,
        precision="mixed_bfloat16",
    )
    config = kt.TransformerConfig.from_preset("tiny", num_layers=1, d_model=16, d_ff=32)
    trained = runs.train(str(tmp_path / "run"), corpus, config, settings, verbose=0)
    summary = json.loads((tmp_path / "run" / "training_summary.json").read_text())
    assert summary["precision"] == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert trained.model.dtype_policy.name == "float32"
    loaded = load_run(str(tmp_path / "run"), weights="last")
    assert loaded.model.dtype_policy.name == "float32"
    for ours, theirs in zip(loaded.model.weights, trained.model.weights):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    translator = kt.Translator(
        loaded.model, loaded.source_tokenizer, loaded.target_tokenizer, beam_size=1
    )
    path = kt.export.export_tflite(translator, tmp_path / "model.tflite")
    ids, _ = kt.runtimes.TFLiteTranslator(path).translate_ids(np.array([[5, 6, 7]], np.int32))
    expected, _ = kt.decoding.greedy_search(loaded.model, np.array([[5, 6, 7]], np.int32))
    np.testing.assert_array_equal(ids, np.asarray(expected))


def test_a_run_with_a_cooldown_ends_at_a_rate_near_zero_and_loads(tmp_path):
    # Catches: train ignoring settings.cooldown (with 20 warm-up steps the paper's rate
    # would still be rising at the end of these 2 short epochs), or a run whose
    # model.keras (an optimizer with a Cooldown schedule) does not load.
    import keras

    from keras_transformer import runs

    class RecordRate(keras.callbacks.Callback):
        """The rate of each step taken (Keras begins one more batch at the end of an
        epoch of unknown length, and finds no data)."""

        rates = []

        def on_train_batch_begin(self, batch, logs=None):
            self.rate = float(self.model.optimizer.learning_rate)

        def on_train_batch_end(self, batch, logs=None):
            self.rates.append(self.rate)

    corpus = kt.data.numbers_corpus(target_lang="fr", train_size=200, dev_size=10, test_size=5)
    settings = TrainingSettings(
        epochs=2,
        tokens_per_batch=512,
        max_length=40,
        vocab_size=120,
        tokenizer="wordpiece",
        warmup_steps=20,
        cooldown=0.5,
        precision="float32",
    )
    config = kt.TransformerConfig.from_preset("tiny", num_layers=1, d_model=16, d_ff=32)
    record = RecordRate()
    runs.train(str(tmp_path / "run"), corpus, config, settings, callbacks=[record], verbose=0)
    steps = len(record.rates)
    assert steps >= 6
    assert max(record.rates) == record.rates[steps // 2]  # the peak, at p = 0.5
    assert record.rates[-1] == pytest.approx(record.rates[steps // 2] * 2 / steps, rel=0.2)
    assert load_run(str(tmp_path / "run")).model is not None
