import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.training import (
    GlobalTokenMean,
    LabelSmoothedCrossEntropy,
    MaskedAccuracy,
    NoamSchedule,
    masked_accuracy,
    paper_optimizer,
)


def test_noam_schedule_equals_the_papers_formula():
    schedule = NoamSchedule(d_model=512, warmup_steps=4000)
    for step in [0, 1, 100, 3999, 4000, 20000]:
        s = step + 1
        expected = 512**-0.5 * min(s**-0.5, s * 4000**-1.5)
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5)
    assert float(schedule(3999)) > float(schedule(100)) and float(schedule(3999)) > float(
        schedule(9000)
    )
    assert NoamSchedule.from_config(schedule.get_config()).get_config() == schedule.get_config()


def test_paper_optimizer_hyper_parameters():
    optimizer = paper_optimizer(512)
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.9, 0.98, 1e-9)
    assert optimizer.get_config()["learning_rate"]["class_name"] == "NoamSchedule"


def smoothed_target(y_true, vocab, eps):
    """q = (1 - ε) · onehot(y) + ε / V, (..., V)."""
    return np.full((*y_true.shape, vocab), eps / vocab) + (1 - eps) * np.eye(vocab)[y_true]


def reference_loss(y_true, logits, eps):
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    per_token = -(smoothed_target(y_true, logits.shape[-1], eps) * log_p).sum(-1)
    mask = y_true != 0
    return per_token[mask].mean()


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_label_smoothed_loss_matches_reference_and_ignores_padding(eps):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 7)).astype("float32")
    y_true = rng.integers(1, 7, (2, 5))
    y_true[1, 3:] = 0
    loss = float(LabelSmoothedCrossEntropy(eps)(y_true, logits))
    assert loss == pytest.approx(reference_loss(y_true, logits, eps), rel=1e-5)
    # Changing the logits at padded positions changes nothing.
    logits[1, 3:] = 100.0
    assert float(LabelSmoothedCrossEntropy(eps)(y_true, logits)) == pytest.approx(loss, rel=1e-5)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_label_smoothed_loss_gradient_is_softmax_minus_the_smoothed_target(eps):
    # dL/dz = (softmax(z) - q) / tokens at real tokens, 0 at padding.
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 4, 9)).astype("float32")
    y_true = rng.integers(1, 9, (2, 4))
    y_true[0, 2:] = 0
    variable = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss = LabelSmoothedCrossEntropy(eps)(y_true, variable)
    gradient = tape.gradient(loss, variable).numpy()
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    q = smoothed_target(y_true, 9, eps)
    mask = (y_true != 0)[..., None]
    np.testing.assert_allclose(gradient, (p - q) * mask / mask.sum(), atol=1e-6)


def test_masked_accuracy_counts_real_tokens_only():
    y_true = np.array([[4, 5, 0, 0], [6, 0, 0, 0]])
    logits = np.zeros((2, 4, 8), "float32")
    logits[0, 0, 4] = logits[0, 1, 1] = logits[1, 0, 6] = 1.0  # 2 of 3 real tokens right
    logits[0, 2, 0] = 1.0  # a "correct" padding position must not count
    assert float(masked_accuracy(y_true, logits)) == pytest.approx(2 / 3)
    metric = MaskedAccuracy()
    metric.update_state(y_true, logits)
    metric.update_state(np.array([[4, 4, 4, 4]]), np.zeros((1, 4, 8), "float32"))  # 0 of 4
    assert float(metric.result()) == pytest.approx(2 / 7)


def test_bad_shapes_and_values():
    with pytest.raises(ValueError, match="y_true int ids"):
        LabelSmoothedCrossEntropy()(np.zeros((2, 5)), np.zeros((2, 5), "float32"))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        LabelSmoothedCrossEntropy(1.0)
    with pytest.raises(ValueError, match="positive"):
        NoamSchedule(0)


def test_loss_config_round_trip():
    loss = LabelSmoothedCrossEntropy(0.2)
    assert keras.losses.deserialize(keras.losses.serialize(loss)).label_smoothing == 0.2


def test_global_token_mean_is_the_loss_on_one_device():
    loss = LabelSmoothedCrossEntropy(0.1)
    y_true = np.array([[3, 4, 0], [5, 0, 0]], np.int32)
    y_pred = np.random.default_rng(0).normal(size=(2, 3, 20)).astype(np.float32)
    wrapped = GlobalTokenMean(loss)
    np.testing.assert_allclose(
        float(wrapped(y_true, y_pred)), float(loss(y_true, y_pred)), rtol=1e-6
    )
    restored = GlobalTokenMean.from_config(wrapped.get_config())
    assert restored.loss.label_smoothing == 0.1
