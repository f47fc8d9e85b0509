"""The decoding settings and the rules every decoder follows, written once.

The paper (§6.1) sets the maximum output length to the input length + 50. Each row gets
its own limit from its own source length, so that a sentence decodes to the same output
alone and inside a padded batch:

    limit_i = min(|x_i| + 50, model max_length)     when max_length is None
    limit_i = max_length                             when max_length is an int
    limit_i = 0                                      when x_i is empty (id 0 only)

|x_i| counts the non-padding ids of row i. [PAD] and [START] are never chosen; [END] is
banned before `min_length` output tokens; a row stops at [END] or at its limit (then
without [END]). Output buffers share one batch-wide width W >= every limit_i:
min(src_len + 50, model max_length) when the padded source length is known while
tracing, the model's max_length otherwise (a graph traced for any source length). W
only sizes the buffers; the limits decide the output.

The rules run on TensorFlow tensors (the loops, XLA, the exports) and on NumPy arrays
(`runtimes.onnx`, which drives the ONNX decoder step from Python): each function below
takes either and answers in the same kind, so there is no second copy to drift.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_transformer.constants import END_ID, NEG_INF, PAD_ID, START_ID
from keras_transformer.errors import InputError

EXTRA_LENGTH = 50


def _array_module(value):
    """tf for a TensorFlow tensor, np for anything else."""
    return tf if tf.is_tensor(value) else np


@dataclasses.dataclass(frozen=True)
class DecodingSettings:
    """How a model decodes: what greedy search, beam search, sampling, the Translator
    and the exports all thread through. Frozen and hashable: compiled loops are cached
    per settings.

    Attributes:
        beam_size: hypotheses kept per sentence (the paper: 4); 1 is greedy search
            where a caller chooses between the two (`Translator`, the exports).
        alpha: α of beam search's length penalty (the paper: 0.6).
        max_length: None for source length + 50 per row (capped at the model's
            max_length), or an int limit for every row.
        min_length: [END] is forbidden before this many output tokens (inside the greedy
            step graph of an export, `kt.export.steps`, a scalar int32 tensor: there
            the caller gives it at every step).
        start_id, end_id: the [START] fed first and the [END] that stops a row.
    """

    beam_size: int = 4
    alpha: float = 0.6
    max_length: int = None
    min_length: int = 0
    start_id: int = START_ID
    end_id: int = END_ID

    def check(self, model):
        """Validates the settings against `model` (its max_length and target vocabulary);
        returns self. The search functions call it before anything is traced, so that a
        wrong setting is an InputError and not an error inside a traced function."""
        return self.check_sizes(model.config.max_length, model.config.tgt_vocab_size)

    def check_sizes(self, model_max_length, vocab_size):
        """`check` for a model of that max_length and target vocabulary size."""
        beam_size, alpha = self.beam_size, self.alpha
        if not isinstance(beam_size, int) or isinstance(beam_size, bool) or beam_size < 1:
            raise InputError(f"beam_size must be a positive int; got {beam_size!r}")
        if 2 * beam_size > vocab_size:
            raise InputError(
                f"beam search ranks 2 × beam_size candidates per sentence, so beam_size "
                f"must be at most half the target vocabulary ({vocab_size}); got {beam_size}"
            )
        if (
            not isinstance(alpha, (int, float))
            or isinstance(alpha, bool)
            or not 0 <= alpha < float("inf")
        ):
            raise InputError(
                f"alpha must be a number >= 0, finite (0 disables the length "
                f"penalty); got {alpha!r}"
            )
        max_length = self.max_length
        if max_length is not None:
            if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
                raise InputError(f"max_length must be None or a positive int; got {max_length!r}")
            if max_length > model_max_length:
                raise InputError(
                    f"max_length={max_length} is longer than the model's max_length="
                    f"{model_max_length} (its positional table and cache); pass at most "
                    f"{model_max_length}, or None for the source length + {EXTRA_LENGTH}"
                )
        for name, value in (("start_id", self.start_id), ("end_id", self.end_id)):
            if not isinstance(value, int) or not 0 < value < vocab_size:
                raise InputError(
                    f"{name} must be an int id in [1, {vocab_size}) (the target vocabulary, "
                    f"0 is padding); got {value!r}"
                )
        min_length = self.min_length
        if not isinstance(min_length, int) or isinstance(min_length, bool) or min_length < 0:
            raise InputError(f"min_length must be an int >= 0; got {min_length!r}")
        return self

    def width(self, src_len, model_max_length):
        """The buffer width W, a Python int, for a padded source length `src_len` (None
        when unknown while tracing)."""
        if self.max_length is not None:
            return self.max_length
        if src_len is None:
            return model_max_length
        return min(src_len + EXTRA_LENGTH, model_max_length)

    def limits(self, src_ids, model_max_length):
        """(batch,) int per-row output limits of (batch, src_len) source ids, 0-padded."""
        xp = _array_module(src_ids)
        lengths = source_lengths(src_ids)
        if self.max_length is None:
            limit = xp.minimum(lengths + EXTRA_LENGTH, model_max_length)
        else:
            limit = self.max_length
        return xp.where(lengths > 0, limit, 0)

    def forbid_tokens(self, log_probs, step):
        """Sets the log-probabilities of tokens that may not come next to NEG_INF.

        Padding (id 0) and [START] never belong to an output, and [END] may not come
        before `min_length` tokens were emitted (output position `step` < min_length).

        Args:
            log_probs: (..., vocab) float32.
            step: scalar int (a tensor with tensors), the output position being chosen
                (0 = first token).
        """
        xp = _array_module(log_probs)
        token = np.arange(log_probs.shape[-1])
        banned = (token == PAD_ID) | (token == self.start_id)
        if tf.is_tensor(self.min_length) or self.min_length > 0:
            banned = xp.logical_or(
                banned, xp.logical_and(token == self.end_id, step < self.min_length)
            )
        return xp.where(banned, NEG_INF, log_probs)

    def still_decoding(self, finished, step, limits):
        """(batch,) bool: the rows that choose a token at `step`: not finished, and
        below their limit."""
        return ~finished & (step < limits)

    def finished_after(self, finished, active, tokens):
        """(batch,) bool: the rows finished once `tokens` were chosen at a step where
        `active` rows decoded: those already finished, inactive, or that chose [END]."""
        return finished | ~active | (tokens == self.end_id)


# The paper's decoding (§6.1): beam 4, α = 0.6, source length + 50.
PAPER_SETTINGS = DecodingSettings()


def source_lengths(src_ids):
    """(batch, src_len) int ids -> (batch,) int number of non-padding ids per row."""
    if tf.is_tensor(src_ids):
        return tf.reduce_sum(tf.cast(tf.not_equal(src_ids, PAD_ID), tf.int32), axis=1)
    return np.sum(np.asarray(src_ids) != PAD_ID, axis=1)


def check_src_ids(model, src_ids):
    """Validates source ids for a decoding loop; returns them as an int32 tensor."""
    src_ids = tf.convert_to_tensor(src_ids)
    if not src_ids.dtype.is_integer or src_ids.shape.rank != 2:
        raise InputError(
            f"src ids must be int32 of shape (batch, length); got {src_ids.dtype.name} "
            f"{tuple(src_ids.shape)}"
        )
    return tf.cast(src_ids, tf.int32)
