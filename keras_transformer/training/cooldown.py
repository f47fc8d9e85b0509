"""A linear cool-down to zero over the last part of a run whose length is a budget.

The paper's schedule (§5.3) decays as 1/√step and never reaches zero: trained for 100,000
steps, the model is then averaged over its last checkpoints. A run cut by a time budget
stops wherever the clock says, often still near the peak rate, with nothing to average
that has settled. `Cooldown` multiplies any schedule by a factor that falls linearly to
zero over the last `fraction` of the run:

    lrate(step) = schedule(step) · min(1, (1 − p) / fraction)

where p ∈ [0, 1] is how much of the run is done: the larger of the budget's seconds
spent and the planned steps taken (`TimeBudget.progress`). `CooldownProgress` writes p
before every step, so the same program serves every step (p is a variable, not a traced
constant).

Example:
>>> schedule = Cooldown(kt.training.NoamSchedule(d_model=256, warmup_steps=1000), 0.25)
>>> f"{float(schedule(999)):.2e}"      # the paper's peak while p < 0.75
'1.98e-03'
>>> _ = schedule.progress.assign(0.875)  # halfway through the cool-down
>>> f"{float(schedule(999)):.2e}"
'9.88e-04'
>>> _ = schedule.progress.assign(1.0)
>>> float(schedule(999))
0.0
"""

import keras
from keras import ops

from keras_transformer.errors import InputError


@keras.saving.register_keras_serializable(package="keras_transformer")
class Cooldown(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule` times a linear ramp from 1 down to 0 over the last `fraction` of the run.

    Args:
        schedule: the learning-rate schedule to cool down (a `LearningRateSchedule`).
        fraction: the share of the run, in (0, 1], over which the rate falls to zero.

    `progress` (a float32 scalar variable, 0 at the start) is the share of the run done;
    `CooldownProgress` keeps it current during `fit`. A loaded model starts at 0 again,
    and its run's callback sets it before the first step.
    """

    def __init__(self, schedule, fraction):
        if (
            not isinstance(fraction, (int, float))
            or isinstance(fraction, bool)
            or not 0 < fraction <= 1
        ):
            raise InputError(f"the cool-down fraction must be in (0, 1]; got {fraction!r}")
        self.schedule = schedule
        self.fraction = float(fraction)
        self.progress = keras.Variable(
            0.0, dtype="float32", trainable=False, name="cooldown_progress"
        )

    def __call__(self, step):
        ramp = ops.clip((1.0 - ops.convert_to_tensor(self.progress)) / self.fraction, 0.0, 1.0)
        return self.schedule(step) * ramp

    def get_config(self):
        return {
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "fraction": self.fraction,
        }

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config["schedule"]), config["fraction"])


class CooldownProgress(keras.callbacks.Callback):
    """Before every training step, sets `schedule.progress` to `budget.progress()`.

    Args:
        schedule: a `Cooldown`.
        budget: the run's `TimeBudget` (its seconds, and the epochs `fit` was given).
    """

    def __init__(self, schedule, budget):
        super().__init__()
        self.schedule = schedule
        self.budget = budget

    def on_train_batch_begin(self, batch, logs=None):
        self.schedule.progress.assign(self.budget.progress())
