"""The cool-down: the rate a step uses, as the run's share done grows by steps or by time."""

import keras
import numpy as np
import pytest

from keras_transformer.errors import InputError
from keras_transformer.training import (
    Cooldown,
    CooldownProgress,
    LabelSmoothedCrossEntropy,
    NoamSchedule,
    TimeBudget,
)
from keras_transformer.training import budget as budget_module
from keras_transformer.training.schedule import paper_adam


class RecordRate(keras.callbacks.Callback):
    """Records the learning rate each training step is about to use."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        self.rates.append(float(self.model.optimizer.learning_rate))


def test_the_rate_falls_linearly_to_zero_over_the_last_fraction_of_the_steps():
    # Catches: progress never written (every rate the base one), progress counted from
    # the epoch rather than the run, the ramp not linear or not ending at zero.
    base = NoamSchedule(d_model=16, warmup_steps=4)
    schedule = Cooldown(base, fraction=0.5)
    model = keras.Sequential([keras.Input((4,), dtype="int32"), keras.layers.Embedding(10, 10)])
    model.compile(optimizer=paper_adam(schedule), loss=LabelSmoothedCrossEntropy(0.0))
    x = np.tile(np.array([[1, 2, 3, 0]]), (10, 1))
    budget, record = TimeBudget(), RecordRate()
    model.fit(
        x,
        x,
        batch_size=2,
        epochs=2,
        verbose=0,  # 5 steps an epoch, 10 in all
        callbacks=[budget, CooldownProgress(schedule, budget), record],
    )
    expected = [float(base(step)) * min(1.0, (1 - step / 10) / 0.5) for step in range(10)]
    np.testing.assert_allclose(record.rates, expected, rtol=1e-6)
    assert record.rates[4] == pytest.approx(float(base(4)))  # before the last half
    assert record.rates[9] == pytest.approx(0.2 * float(base(9)), rel=1e-6)


def test_with_a_time_budget_the_share_done_is_the_share_of_the_seconds(monkeypatch):
    # Catches: a budgeted run cooled down by its epochs (which the budget cuts short, so
    # the rate would never fall), or the share not capped at 1.
    clock = [100.0]
    monkeypatch.setattr(budget_module.time, "monotonic", lambda: clock[0])
    budget = TimeBudget(seconds=50)
    budget.set_model(keras.Sequential([keras.Input((1,))]))
    budget.set_params({"epochs": 1000, "steps": 10})
    budget.on_train_begin()
    budget.on_epoch_begin(0)
    clock[0] += 20
    assert budget.progress() == pytest.approx(0.4)
    clock[0] += 40
    assert budget.progress() == 1.0


def test_a_model_trained_with_a_cooldown_saves_and_loads(tmp_path):
    # Catches: Cooldown not registered or its config not round-tripping (load_model of a
    # run's model.keras would fail).
    model = keras.Sequential([keras.Input((4,), dtype="int32"), keras.layers.Embedding(10, 10)])
    model.compile(
        optimizer=paper_adam(Cooldown(NoamSchedule(16, 4), 0.3)),
        loss=LabelSmoothedCrossEntropy(0.0),
    )
    x = np.tile(np.array([[1, 2, 3, 0]]), (2, 1))
    model.fit(x, x, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    schedule = loaded.optimizer.get_config()["learning_rate"]
    assert schedule["class_name"] == "Cooldown" and schedule["config"]["fraction"] == 0.3


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5, True, "half"])
def test_a_fraction_outside_zero_to_one_is_refused(fraction):
    with pytest.raises(InputError, match=r"cool-down fraction must be in \(0, 1\]"):
        Cooldown(NoamSchedule(16), fraction)
