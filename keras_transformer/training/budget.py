"""Training for a wall-clock budget, and what it achieved: steps, tokens, tokens/s, cores.

A user with 30 minutes does not know how many epochs fit in them. `TimeBudget` ends
`model.fit` at the first step boundary after `seconds` of training (the epoch then ends
as usual: validation, checkpoint, logs), and keeps count of

    epochs (fractional)      steps        target tokens (non-padding, from TargetTokens)
    train seconds            target tokens / s           cores used = CPU s / wall s

Validation time is not training time: the clock stops while Keras validates. The
state is written to `state_path` (JSON, atomically) at every epoch end, so a run killed
and resumed spends only what is left of its budget, and its totals carry on.

Example:
>>> model = kt.Transformer.from_preset("tiny", num_layers=1, src_vocab_size=20,
...                                    tgt_vocab_size=20)
>>> model.compile(optimizer="adam", loss=kt.training.LabelSmoothedCrossEntropy(0.1),
...               metrics=[kt.training.TargetTokens()])
>>> ids = np.array([[5, 6, 7, 3]] * 8, np.int32)     # a toy batch of 8 × 4 target tokens
>>> data = tf.data.Dataset.from_tensors(((ids, ids), ids)).repeat(5)   # 5 steps an epoch
>>> budget = TimeBudget(1800, state_path="runs/fr/budget.json")
>>> _ = model.fit(data, epochs=2, callbacks=[budget], verbose=0)  # 2 epochs, or 30 minutes
>>> summary = budget.summary()
>>> summary["steps"], summary["target_tokens"], summary["stopped_by_budget"]
(10, 320, False)
>>> summary["target_tokens_per_second"] > 0
True
"""

import json
import os
import time

import keras

from keras_transformer.errors import InputError
from keras_transformer.files import atomic_write_text


class TimeBudget(keras.callbacks.Callback):
    """Stops training after `seconds` of wall-clock training time and reports throughput.

    Args:
        seconds: the budget; None trains for the epochs `fit` was given, still counting.
        state_path: a JSON file where the totals are kept across interruptions, or None.
        steps_per_epoch: batches in one epoch, for the fractional epoch count (None:
            Keras's count when the data has a known length, else learned from the first
            finished epoch; a first epoch of unknown length cut by the budget counts as
            one).

    Reads `logs["target_tokens"]` (the `TargetTokens` metric) when the model has it.
    """

    def __init__(self, seconds=None, state_path=None, steps_per_epoch=None):
        super().__init__()
        if seconds is not None and seconds <= 0:
            raise InputError(
                f"the time budget must be a positive number of seconds; got {seconds!r}"
            )
        self.seconds = seconds
        self.state_path = state_path
        self.steps_per_epoch = steps_per_epoch
        self.totals = self._zero_totals()
        if state_path and os.path.isfile(state_path):
            try:
                with open(state_path) as handle:
                    self.totals.update(json.load(handle))
            except (OSError, ValueError):
                pass  # a damaged state file only loses the totals of earlier sessions

    def set_totals(self, totals):
        """Replaces the totals with those saved by an earlier session (None: zeros), as
        `RunProgress` does when it restores a run."""
        self.totals = dict(self._zero_totals(), **(totals or {}))

    @staticmethod
    def _zero_totals():
        return {
            "epochs": 0.0,
            "steps": 0,
            "target_tokens": 0,
            "train_seconds": 0.0,
            "cpu_seconds": 0.0,
            "stopped_by_budget": False,
        }

    def _spent(self):
        return self.totals["train_seconds"] + (time.monotonic() - self._wall)

    def _pause(self):
        self.totals["train_seconds"] += time.monotonic() - self._wall
        self.totals["cpu_seconds"] += time.process_time() - self._cpu

    def _resume(self):
        self._wall, self._cpu = time.monotonic(), time.process_time()

    def on_train_begin(self, logs=None):
        self.steps_per_epoch = self.steps_per_epoch or (self.params or {}).get("steps")
        if self.seconds is not None and self.totals["train_seconds"] >= self.seconds:
            self.model.stop_training = True
        self._resume()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._epoch_steps += 1
        if self.seconds is not None and self._spent() >= self.seconds:
            self.totals["stopped_by_budget"] = True
            self.model.stop_training = True

    def on_test_begin(self, logs=None):
        self._pause()

    def on_test_end(self, logs=None):
        self._resume()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.steps_per_epoch is None and not self.model.stop_training:
            self.steps_per_epoch = self._epoch_steps
        full = self.steps_per_epoch or self._epoch_steps or 1
        self.totals["epochs"] += min(self._epoch_steps / full, 1.0)
        self.totals["steps"] += self._epoch_steps
        self.totals["target_tokens"] += int(logs.get("target_tokens", 0))
        self._pause()
        self._save()
        self._resume()

    def on_train_end(self, logs=None):
        self._pause()
        self._save()

    def _save(self):
        if self.state_path:
            atomic_write_text(self.state_path, json.dumps(self.totals, indent=2))

    def progress(self):
        """The share of the run done, in [0, 1]: the larger of the budget's seconds spent
        and the steps taken of the epochs `fit` was given (once an epoch's length is
        known; 0 before, without a budget)."""
        done = 0.0
        if self.seconds is not None:
            done = self._spent() / self.seconds
        epochs = (self.params or {}).get("epochs")
        if epochs and self.steps_per_epoch:
            steps = self.totals["steps"] + self._epoch_steps
            done = max(done, steps / (epochs * self.steps_per_epoch))
        return min(done, 1.0)

    def summary(self):
        """The totals, with target tokens per second and cores used."""
        seconds = max(self.totals["train_seconds"], 1e-9)
        return dict(
            self.totals,
            target_tokens_per_second=self.totals["target_tokens"] / seconds,
            cores_used=self.totals["cpu_seconds"] / seconds,
        )
