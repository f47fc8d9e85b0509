"""Label-smoothed cross-entropy (§5.4) and token accuracy, both ignoring padding.

With smoothing ε over a vocabulary of V classes the target distribution is
q = (1 - ε) · onehot(y) + ε / V, and the loss of one token is

    L = -Σ_v q_v log p_v = (1 - ε) · (-log p_y) + ε · mean_v(-log p_v)

averaged over the non-padding tokens (id 0 is padding) of the batch.

`GlobalTokenMean` makes such a token mean the mean over the global batch when a
tf.distribute strategy splits the batch across replicas (see `distribute.py`).
"""

import keras
import tensorflow as tf
from keras import ops

from keras_transformer.constants import PAD_ID
from keras_transformer.errors import InputError


def _check(y_true, y_pred):
    if len(y_pred.shape) != len(y_true.shape) + 1:
        raise InputError(
            "expected y_true int ids (batch, length) and y_pred logits (batch, length, vocab); "
            f"got {tuple(y_true.shape)} and {tuple(y_pred.shape)}"
        )


def smoothed_token_losses(logits, labels, label_smoothing):
    """The label-smoothed cross-entropy -Σ_v q_v log p_v of every token.

    q = (1 - ε) · onehot(y) + ε / V is written out, and TensorFlow's fused softmax
    cross-entropy kernel computes the loss and its gradient softmax(z) - q in one pass
    over the (tokens, V) logits. (A log-softmax, a gather along the vocabulary and
    their automatic gradient cost several passes more, and the gather's gradient is a
    slow unsorted segment sum: on 2 CPU cores they took 1.4 s of op time in a 2.7 s
    training step of 4,096 target tokens with V = 8,000.)

    Args:
        logits: float32 (..., V).
        labels: int32 (...), ids in [0, V).
        label_smoothing: ε.

    Returns:
        float32 (...), the loss of every token (padding included: the caller masks it).
    """
    vocab = logits.shape[-1]
    smoothed = tf.one_hot(
        labels,
        vocab,
        on_value=1.0 - label_smoothing + label_smoothing / vocab,
        off_value=label_smoothing / vocab,
    )
    return tf.nn.softmax_cross_entropy_with_logits(labels=smoothed, logits=logits)


@keras.saving.register_keras_serializable(package="keras_transformer")
class LabelSmoothedCrossEntropy(keras.losses.Loss):
    """Cross-entropy from logits with label smoothing ε, averaged over non-padding tokens.

    Args:
        label_smoothing: ε (0.1 in the paper).
        name: loss name.

    Call arguments: y_true (batch, length) int ids, y_pred (batch, length, vocab) logits.

    Example:
    >>> loss = LabelSmoothedCrossEntropy(0.1)
    >>> y_true = np.array([[5, 6, 0]])                  # 0 is padding: not counted
    >>> y_pred = np.zeros((1, 3, 10), np.float32)       # uniform over 10 tokens
    >>> round(float(loss(y_true, y_pred)), 4)           # ln 10, whatever ε
    2.3026
    >>> model = kt.Transformer.from_preset("tiny", src_vocab_size=100, tgt_vocab_size=100)
    >>> model.compile(loss=loss, optimizer=kt.training.paper_optimizer(64))
    """

    def __init__(self, label_smoothing=0.1, name="label_smoothed_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise InputError(f"label_smoothing must be in [0, 1); got {label_smoothing!r}")
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        _check(y_true, y_pred)
        y_true = ops.cast(y_true, "int32")
        per_token = smoothed_token_losses(ops.cast(y_pred, "float32"), y_true, self.label_smoothing)
        mask = ops.cast(ops.not_equal(y_true, PAD_ID), "float32")
        return ops.sum(per_token * mask) / ops.maximum(ops.sum(mask), 1.0)

    def get_config(self):
        config = super().get_config()
        config.update(label_smoothing=self.label_smoothing)
        return config


def _correct_and_real(y_true, y_pred):
    """float32 (batch, length) indicators: argmax is the true id; the token is not padding."""
    _check(y_true, y_pred)
    y_true = ops.cast(y_true, "int32")
    correct = ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true)
    return ops.cast(correct, "float32"), ops.cast(ops.not_equal(y_true, PAD_ID), "float32")


def masked_accuracy(y_true, y_pred):
    """Share of non-padding tokens whose argmax logit is the true id, in one batch."""
    correct, real = _correct_and_real(y_true, y_pred)
    return ops.sum(correct * real) / ops.maximum(ops.sum(real), 1.0)


@keras.saving.register_keras_serializable(package="keras_transformer")
class MaskedAccuracy(keras.metrics.Metric):
    """Token accuracy over every non-padding token seen since the last reset (weighted by
    tokens, unlike averaging `masked_accuracy` per batch)."""

    def __init__(self, name="masked_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        correct, real = _correct_and_real(y_true, y_pred)
        self.correct.assign_add(ops.sum(correct * real))
        self.count.assign_add(ops.sum(real))

    def result(self):
        return self.correct / ops.maximum(self.count, 1.0)


@keras.saving.register_keras_serializable(package="keras_transformer")
class TargetTokens(keras.metrics.Metric):
    """The number of non-padding target tokens seen since the last reset (one epoch in
    `fit`'s logs): what throughput in target tokens per second counts."""

    def __init__(self, name="target_tokens", **kwargs):
        super().__init__(name=name, **kwargs)
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.count.assign_add(
            ops.sum(ops.cast(ops.not_equal(ops.cast(y_true, "int32"), PAD_ID), "float32"))
        )

    def result(self):
        # A copy: a log holding the variable itself would change when validation resets it.
        return ops.convert_to_tensor(self.count) + 0.0


@keras.saving.register_keras_serializable(package="keras_transformer")
class GlobalTokenMean(keras.losses.Loss):
    """Makes a token-mean loss train on the mean over the non-padding tokens of the
    *global* batch under a distribution strategy (see `distribute.py`'s docstring); the same
    value as the wrapped loss on one device.

    Args:
        loss: a loss whose value is the mean over the non-padding (id != 0) target
            tokens of its batch, e.g. `LabelSmoothedCrossEntropy`.

    On replica r with n_r non-padding tokens the value is loss_r · n_r / N, N = Σ_r n_r
    all-reduced across replicas (a replica without tokens contributes 0). It is returned
    with shape (1,) and reduction "sum", which Keras neither divides by the replica
    count nor averages, so the summed replica gradients are the gradient of the global
    token mean. The logged loss is Keras's replica-count-weighted view of it: exact when
    the replicas hold equal numbers of rows, approximate otherwise.
    """

    def __init__(self, loss, name=None, reduction="sum", **kwargs):
        if reduction != "sum":
            raise InputError(f"GlobalTokenMean works with reduction='sum' only; got {reduction!r}")
        super().__init__(name=name or f"global_{loss.name}", reduction="sum", **kwargs)
        self.loss = loss

    def call(self, y_true, y_pred):
        local_mean = self.loss(y_true, y_pred)
        context = tf.distribute.get_replica_context()
        if context is None:
            return ops.reshape(local_mean, (1,))
        tokens = ops.sum(ops.cast(ops.not_equal(ops.cast(y_true, "int32"), PAD_ID), "float32"))
        total = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(tokens))
        return ops.reshape(local_mean * tokens / ops.maximum(total, 1.0), (1,))

    def get_config(self):
        config = super().get_config()
        config.update(loss=keras.saving.serialize_keras_object(self.loss))
        return config

    @classmethod
    def from_config(cls, config):
        config["loss"] = keras.saving.deserialize_keras_object(config["loss"])
        return cls(**config)
