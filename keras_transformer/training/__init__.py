"""Training pieces of §5: the schedule, the optimizer, the loss and metrics."""

from keras_transformer.training.losses import (
    GlobalTokenMean, LabelSmoothedCrossEntropy, MaskedAccuracy, TargetTokens, masked_accuracy)
from keras_transformer.training.schedule import NoamSchedule, paper_optimizer
from keras_transformer.training.budget import TimeBudget
