"""Training for a time budget: stopping mid-epoch, totals across a resume, the token
count, and the precision "auto" picks."""

import json
import time

import keras
import numpy as np
import pytest

from keras_transformer import distribute
from keras_transformer.training import LabelSmoothedCrossEntropy, TargetTokens, TimeBudget


class SlowStep(keras.callbacks.Callback):
    """Makes every training step last at least `seconds`."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(self.seconds)


def tiny_model():
    model = keras.Sequential([keras.Input((4,), dtype="int32"), keras.layers.Embedding(10, 10)])
    model.compile(optimizer="sgd", loss=LabelSmoothedCrossEntropy(0.0), metrics=[TargetTokens()])
    return model


def data(batches, batch=2):
    x = np.tile(np.array([[1, 2, 3, 0]]), (batches * batch, 1))
    return x, x  # 3 real target tokens per row


def test_budget_stops_within_the_epoch_and_counts_what_ran(tmp_path):
    # Catches: the budget checked only at epoch ends (the run would do all 40 steps),
    # a clock that ignores the budget, tokens or steps not accumulated.
    x, y = data(40)
    state = str(tmp_path / "budget.json")
    budget = TimeBudget(0.25, state_path=state)
    model = tiny_model()
    model.fit(x[:2], y[:2], batch_size=2, verbose=0)  # traced before the clock starts
    model.fit(x, y, batch_size=2, epochs=3, verbose=0, callbacks=[SlowStep(0.05), budget])
    summary = budget.summary()
    assert summary["stopped_by_budget"]
    assert 2 <= summary["steps"] < 40
    assert summary["target_tokens"] == 6 * summary["steps"]
    assert 0 < summary["epochs"] < 1
    assert summary["train_seconds"] >= 0.25
    assert summary["target_tokens_per_second"] == pytest.approx(
        summary["target_tokens"] / summary["train_seconds"]
    )
    with open(state) as handle:
        assert json.load(handle)["steps"] == summary["steps"]


def test_a_resumed_run_spends_only_what_is_left(tmp_path):
    # Catches: totals restarted from zero on resume (the budget would be spent twice).
    state = str(tmp_path / "budget.json")
    x, y = data(4)
    first = TimeBudget(None, state_path=state)
    tiny_model().fit(x, y, batch_size=2, epochs=2, verbose=0, callbacks=[first])
    assert first.summary()["steps"] == 8 and first.summary()["epochs"] == 2.0
    second = TimeBudget(first.summary()["train_seconds"] + 1000, state_path=state)
    tiny_model().fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[second])
    assert second.summary()["steps"] == 12
    assert second.summary()["target_tokens"] == 72
    spent = TimeBudget(first.summary()["train_seconds"] / 2, state_path=state)
    tiny_model().fit(x, y, batch_size=2, epochs=5, verbose=0, callbacks=[spent])
    assert spent.summary()["steps"] == 13  # one step: Keras checks the flag after a step


def test_validation_time_is_not_training_time():
    x, y = data(2)

    class SlowValidation(keras.callbacks.Callback):
        slept = 0.0

        def on_test_batch_end(self, batch, logs=None):
            time.sleep(1.0)
            self.slept += 1.0

    budget, slow = TimeBudget(), SlowValidation()
    started = time.monotonic()
    tiny_model().fit(
        x, y, batch_size=2, epochs=1, verbose=0, validation_data=(x, y), callbacks=[budget, slow]
    )
    wall = time.monotonic() - started
    # Counted validation would make the training time about the whole wall time.
    assert slow.slept >= 1.0
    assert budget.summary()["train_seconds"] < wall - 0.9 * slow.slept


def test_target_tokens_logs_survive_validation():
    # Catches: result() returning the variable itself, which validation then resets and
    # refills, so the training log showed the validation count.
    x, y = data(4)
    history = tiny_model().fit(
        x, y, batch_size=2, epochs=1, verbose=0, validation_data=(x[:2], y[:2])
    )
    assert history.history["target_tokens"] == [24.0]
    assert history.history["val_target_tokens"] == [6.0]


def test_bad_budget_is_refused():
    with pytest.raises(ValueError, match="positive number of seconds"):
        TimeBudget(0)


def test_auto_precision(monkeypatch):
    # Catches: "auto" passed through to Keras (which has no such policy), or bfloat16
    # chosen on a CPU without bfloat16 instructions.
    monkeypatch.setattr(distribute, "cpu_has_bfloat16", lambda: True)
    assert distribute.resolve_precision("auto") == "mixed_bfloat16"
    monkeypatch.setattr(distribute, "cpu_has_bfloat16", lambda: False)
    assert distribute.resolve_precision("auto") == "float32"
    assert distribute.resolve_precision("mixed_float16") == "mixed_float16"
