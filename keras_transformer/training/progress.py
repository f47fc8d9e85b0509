"""A run's progress on disk, kept so that a kill at any instant resumes without loss.

    checkpoints/epoch_NNN.weights.h5   the model and optimizer variables after epoch N
    progress.json                       the commit record: the epochs finished, the
                                        checkpoint holding them, every epoch's logs, the
                                        time budget's totals, whether training finished
    log.csv                             the logs as a table, rewritten from the record

At the end of epoch N the checkpoint is written first, then the record, then log.csv,
each whole or not at all (`files.atomic_path`: temporary name, fsync, `os.replace`). The
record is the commit point: a kill before it leaves the record of epoch N - 1, which
names checkpoint N - 1, so epoch N is trained again from where it began; a kill after it
loses nothing. Because every number a resumed run needs (epoch, optimizer step, logs,
time spent) comes from one file, they can never disagree, as Keras's BackupAndRestore
weights, CSVLogger rows and a separate budget file could.

A damaged checkpoint (a disk error, a file replaced by hand) is reported in one line and
the record of the epoch before it is used; the record keeps the two latest epochs for
that. A damaged record is reported and the run starts over.

Example:
>>> model = kt.Transformer.from_preset("tiny", num_layers=1, src_vocab_size=20,
...                                    tgt_vocab_size=20)
>>> model.compile(optimizer="adam", loss=kt.training.LabelSmoothedCrossEntropy(0.1),
...               metrics=[kt.training.TargetTokens()])
>>> ids = np.array([[5, 6, 7, 3]] * 8, np.int32)     # a toy batch of 8 × 4 target tokens
>>> data = tf.data.Dataset.from_tensors(((ids, ids), ids)).repeat(5)   # 5 steps an epoch
>>> model.build(); model.optimizer.build(model.trainable_variables)
>>> budget = kt.training.TimeBudget(1800)
>>> progress = RunProgress("runs/fr", budget=budget)
>>> initial_epoch = progress.restore(model)      # 0 for a new run
>>> if not progress.finished:
...     _ = model.fit(data, initial_epoch=initial_epoch, epochs=2, verbose=0,
...                   callbacks=[budget, progress])
>>> RunProgress("runs/fr").restore(model)        # run again: epoch 2 is done already
2
"""

import csv
import io
import json
import logging
import os

import keras

from keras_transformer.errors import InputError, first_line
from keras_transformer.files import atomic_path, atomic_write_text

logger = logging.getLogger("keras_transformer.training")

RECORD_FILE = "progress.json"
CHECKPOINT_DIR = "checkpoints"


def checkpoint_name(epoch):
    """The file name of the checkpoint after `epoch` (1-based) epochs."""
    return f"epoch_{epoch:03d}.weights.h5"


class RunProgress(keras.callbacks.Callback):
    """Writes a checkpoint and the commit record at every epoch end; restores them.

    Args:
        run_dir: the run directory.
        budget: a `TimeBudget` whose totals are kept in the record, or None.

    Attributes (after `restore`):
        epoch: epochs finished.
        finished: `fit` returned normally (its epochs done or its budget spent).
        history: one dict of logs per finished epoch.
    """

    def __init__(self, run_dir, budget=None):
        super().__init__()
        self.run_dir = run_dir
        self.budget = budget
        self.record_path = os.path.join(run_dir, RECORD_FILE)
        self.checkpoint_dir = os.path.join(run_dir, CHECKPOINT_DIR)
        self.epoch, self.finished, self.history, self._entries = 0, False, [], []

    def restore(self, model):
        """Loads the latest intact checkpoint into `model` (built, with its optimizer
        built) and the record's totals into the budget; returns the epochs finished."""
        record = self._read_record()
        usable = [e for e in ([record, record.get("previous")] if record else []) if e]
        for position, entry in enumerate(usable):
            path = os.path.join(self.checkpoint_dir, entry["checkpoint"])
            try:
                model.load_weights(path)
            except Exception as error:  # h5py and Keras raise many kinds for a bad file
                logger.warning(
                    "checkpoint %s cannot be read (%s); resuming from the epoch before it",
                    path,
                    first_line(error),
                )
                continue
            self._set(usable[position:][::-1])
            return self.epoch
        if record:
            logger.warning("no readable checkpoint for %s; training starts over", self.record_path)
        self._set([])
        return 0

    def _read_record(self):
        if not os.path.isfile(self.record_path):
            return None
        try:
            with open(self.record_path, encoding="utf-8") as handle:
                record = json.load(handle)
            if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
                raise InputError("not a progress record")
            return record
        except (OSError, ValueError) as error:
            logger.warning("%s is damaged (%s); training starts over", self.record_path, error)
            return None

    def _set(self, entries):
        """entries: the usable record entries, oldest first (at most two)."""
        self._entries = [{k: v for k, v in e.items() if k != "previous"} for e in entries]
        latest = self._entries[-1] if self._entries else {}
        self.epoch = latest.get("epoch", 0)
        self.finished = bool(latest.get("finished", False))
        self.history = list(latest.get("history", []))
        if self.budget is not None:
            self.budget.set_totals(latest.get("budget"))

    def checkpoints(self, count):
        """The paths of the checkpoints of the last `count` recorded epochs, oldest first."""
        return [
            os.path.join(self.checkpoint_dir, checkpoint_name(epoch))
            for epoch in range(max(self.epoch - count + 1, 1), self.epoch + 1)
        ]

    def on_epoch_end(self, epoch, logs=None):
        self.epoch = epoch + 1
        name = checkpoint_name(self.epoch)
        with atomic_path(os.path.join(self.checkpoint_dir, name)) as temporary:
            self.model.save_weights(temporary)
        self.history.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
        self._commit(name, finished=False)
        atomic_write_text(os.path.join(self.run_dir, "log.csv"), _csv(self.history))

    def on_train_end(self, logs=None):
        if self._entries:  # at least one epoch recorded
            self._commit(self._entries[-1]["checkpoint"], finished=True)
        self.finished = True

    def _commit(self, checkpoint, finished):
        entry = {
            "epoch": self.epoch,
            "checkpoint": checkpoint,
            "finished": finished,
            "history": list(self.history),
            "budget": dict(self.budget.totals) if self.budget is not None else None,
        }
        if self._entries and self._entries[-1]["checkpoint"] == checkpoint:
            self._entries[-1] = entry  # the same epoch, now finished
        else:
            self._entries = (self._entries + [entry])[-2:]
        previous = self._entries[0] if len(self._entries) == 2 else None
        atomic_write_text(self.record_path, json.dumps(dict(entry, previous=previous)))


def _csv(history):
    columns = ["epoch"] + sorted({key for row in history for key in row} - {"epoch"})
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return out.getvalue()
