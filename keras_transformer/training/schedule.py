"""The learning-rate schedule of §5.3 and the paper's optimizer.

    lrate = scale · d_model^-0.5 · min(step^-0.5, step · warmup_steps^-1.5)

It rises linearly for `warmup_steps` steps, then decays as 1/√step. A run with a time
budget may cool it down to zero at its end (`cooldown.Cooldown`).
"""

import keras
from keras import ops

from keras_transformer.errors import InputError


@keras.saving.register_keras_serializable(package="keras_transformer")
class NoamSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The paper's warm-up then inverse-square-root schedule.

    Args:
        d_model: model width.
        warmup_steps: steps of linear warm-up (4000 in the paper).
        scale: a constant factor (1.0 in the paper).

    `step` is the optimizer's iteration count, 0-based; the formula uses step + 1 so the
    first update has a non-zero rate.

    Example:
    >>> schedule = NoamSchedule(d_model=512)
    >>> f"{float(schedule(3999)):.3e}"     # the peak, 512^-0.5 · 4000^-0.5
    '6.988e-04'
    """

    def __init__(self, d_model, warmup_steps=4000, scale=1.0):
        if d_model < 1 or warmup_steps < 1:
            raise InputError(
                f"d_model and warmup_steps must be positive; got {d_model}, {warmup_steps}"
            )
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.scale = scale

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        return (self.scale * self.d_model**-0.5) * ops.minimum(
            ops.rsqrt(step), step * self.warmup_steps**-1.5
        )

    def get_config(self):
        return {"d_model": self.d_model, "warmup_steps": self.warmup_steps, "scale": self.scale}


def paper_optimizer(d_model, warmup_steps=4000, scale=1.0):
    """Adam(β1 = 0.9, β2 = 0.98, ε = 1e-9) driven by `NoamSchedule` (§5.3)."""
    return paper_adam(NoamSchedule(d_model, warmup_steps, scale))


def paper_adam(learning_rate):
    """Adam(β1 = 0.9, β2 = 0.98, ε = 1e-9) (§5.3) with any learning rate or schedule."""
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.9, beta_2=0.98, epsilon=1e-9)
