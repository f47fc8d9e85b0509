"""RunProgress: a run's checkpoints, commit record and log, restored after a kill."""

import csv
import json
import logging
import os

import keras
import numpy as np
import pytest

from keras_transformer.training import TimeBudget
from keras_transformer.training.progress import RunProgress, checkpoint_name

BATCHES = 4


def model():
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    net.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    net.optimizer.build(net.trainable_variables)
    return net


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(8 * BATCHES, 3)), rng.normal(size=(8 * BATCHES, 2))


def fit(net, progress, epochs, initial_epoch=0, budget=None):
    x, y = data()
    callbacks = ([budget] if budget else []) + [progress]
    net.fit(
        x,
        y,
        batch_size=8,
        epochs=epochs,
        initial_epoch=initial_epoch,
        verbose=0,
        shuffle=False,
        callbacks=callbacks,
    )


def logged_epochs(run_dir):
    with open(os.path.join(run_dir, "log.csv"), newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def test_resume_restores_weights_optimizer_step_and_logs_each_epoch_once(tmp_path):
    run_dir = str(tmp_path)
    first = model()
    fit(first, RunProgress(run_dir), epochs=2)

    second = model()
    progress = RunProgress(run_dir)
    assert progress.restore(second) == 2 and progress.finished
    assert int(second.optimizer.iterations) == 2 * BATCHES
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [row["epoch"] for row in progress.history] == [0, 1]

    fit(second, progress, epochs=3, initial_epoch=2)
    assert logged_epochs(run_dir) == [0, 1, 2]
    assert int(second.optimizer.iterations) == 3 * BATCHES
    assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == [
        checkpoint_name(e) for e in (1, 2, 3)
    ]


def test_a_checkpoint_written_without_its_record_is_not_used(tmp_path):
    """A kill between the checkpoint of epoch 2 and the record: epoch 2 is trained again."""
    run_dir = str(tmp_path)
    net = model()
    fit(net, RunProgress(run_dir), epochs=1)
    after_one = net.get_weights()
    fit(net, keras.callbacks.LambdaCallback(), epochs=1)  # moves the weights on
    net.save_weights(os.path.join(run_dir, "checkpoints", checkpoint_name(2)))

    fresh = model()
    progress = RunProgress(run_dir)
    assert progress.restore(fresh) == 1
    for a, b in zip(after_one, fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert progress.checkpoints(5) == [os.path.join(run_dir, "checkpoints", checkpoint_name(1))]


def test_a_damaged_checkpoint_falls_back_to_the_epoch_before(tmp_path, caplog):
    run_dir = str(tmp_path)
    net, progress = model(), RunProgress(run_dir)
    fit(net, progress, epochs=1)
    after_one = net.get_weights()
    fit(net, progress, epochs=2, initial_epoch=1)
    with open(os.path.join(run_dir, "checkpoints", checkpoint_name(2)), "wb") as handle:
        handle.write(b"\0" * 96)

    fresh, restored = model(), RunProgress(run_dir)
    with caplog.at_level(logging.WARNING, logger="keras_transformer.training"):
        assert restored.restore(fresh) == 1
    assert "cannot be read" in caplog.text and checkpoint_name(2) in caplog.text
    # The fallback's logs are epoch 1's alone (not a list shared with the later entry).
    assert [row["epoch"] for row in restored.history] == [0]
    for a, b in zip(after_one, fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(fresh.optimizer.iterations) == BATCHES


def test_a_damaged_record_starts_the_run_over(tmp_path, caplog):
    run_dir = str(tmp_path)
    fit(model(), RunProgress(run_dir), epochs=1)
    with open(os.path.join(run_dir, "progress.json"), "w") as handle:
        handle.write('{"epoch": 1, "checkp')
    with caplog.at_level(logging.WARNING, logger="keras_transformer.training"):
        assert RunProgress(run_dir).restore(model()) == 0
    assert "progress.json is damaged" in caplog.text


def test_the_time_budget_and_the_finished_mark_travel_with_the_record(tmp_path):
    run_dir = str(tmp_path)
    budget = TimeBudget(3600)
    progress = RunProgress(run_dir, budget)
    fit(model(), progress, epochs=2, budget=budget)
    assert progress.finished
    with open(os.path.join(run_dir, "progress.json")) as handle:
        saved = json.load(handle)
    assert saved["finished"] and saved["budget"]["steps"] == 2 * BATCHES

    restored_budget = TimeBudget(3600)
    restored = RunProgress(run_dir, restored_budget)
    assert restored.restore(model()) == 2 and restored.finished
    assert restored_budget.totals["steps"] == 2 * BATCHES
    assert restored_budget.totals["train_seconds"] == pytest.approx(budget.totals["train_seconds"])
