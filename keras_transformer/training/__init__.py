"""Training pieces of §5: the schedule (and a cool-down for budgeted runs), the optimizer,
the loss and metrics.

May import from keras_transformer: constants, errors, files.
Third-party: keras, tensorflow. Not data, text or the model: `keras_transformer.runs`
ties them together into a run.
"""

from keras_transformer.training.budget import TimeBudget
from keras_transformer.training.cooldown import Cooldown, CooldownProgress
from keras_transformer.training.losses import (
    GlobalTokenMean,
    LabelSmoothedCrossEntropy,
    MaskedAccuracy,
    TargetTokens,
    masked_accuracy,
)
from keras_transformer.training.schedule import NoamSchedule, paper_optimizer
