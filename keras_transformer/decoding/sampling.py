"""Sampling: draw each next token from the model's distribution, reshaped.

    p'(y) ∝ exp(log p(y | y_<t, x) / T)     restricted to the top-k tokens and then to
                                            the nucleus: the fewest most probable tokens
                                            whose probability reaches top_p

Temperature T < 1 sharpens the distribution, T > 1 flattens it; top_k = 0 and
top_p = 1 keep every token; top_k = 1 is greedy search. The draw at step t uses the
stateless seed (seed, t), so a call is reproducible whatever ran before it. The draws of
a row depend on its position in the batch: the same sentence in another batch (or alone)
may sample differently.

The loop is `greedy_loop` with this random choice in place of argmax.
"""

import dataclasses

import tensorflow as tf

from keras_transformer.constants import END_ID, NEG_INF, START_ID
from keras_transformer.decoding import compiled
from keras_transformer.decoding.buffers import trim_padding
from keras_transformer.decoding.greedy import greedy_loop
from keras_transformer.decoding.rules import PAPER_SETTINGS, DecodingSettings
from keras_transformer.errors import InputError


def _check_sampling(temperature, top_k, top_p, seed):
    for name, value in (("temperature", temperature), ("top_p", top_p)):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise InputError(f"{name} must be a number; got {value!r}")
    if not 0 < temperature < float("inf"):
        raise InputError(
            f"temperature must be a finite number > 0; got {temperature!r} (use "
            f"greedy_search for the temperature-0 limit)"
        )
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
        raise InputError(f"top_k must be an int >= 0 (0 keeps every token); got {top_k!r}")
    if not 0 < top_p <= 1:
        raise InputError(f"top_p must be in (0, 1] (1 keeps every token); got {top_p!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InputError(f"seed must be an int; got {seed!r}")


def filter_logits(logits, temperature=1.0, top_k=0, top_p=1.0):
    """Temperature, top-k and top-p (nucleus) filtering of (batch, vocab) logits (or
    log-probabilities: adding a constant per row changes nothing).

    Returns logits of the same shape, NEG_INF outside the kept tokens. Ties at the
    top-k or top-p boundary are all kept.

    Example:
    >>> logits = filter_logits(tf.math.log([[0.5, 0.3, 0.2]]), top_p=0.7)
    >>> np.round(tf.exp(logits).numpy(), 3)                        # keeps 0.5 and 0.3
    array([[0.5, 0.3, 0. ]], dtype=float32)
    """
    logits = logits / temperature
    if top_k > 0:
        top_k = min(top_k, logits.shape[-1])
        kth_best = tf.math.top_k(logits, k=top_k).values[:, -1:]
        logits = tf.where(logits < kth_best, NEG_INF, logits)
    if top_p < 1.0:
        ranked = tf.sort(logits, axis=-1, direction="DESCENDING")
        probs = tf.nn.softmax(ranked)
        # A token stays while the mass ranked above it is still below top_p, so the
        # most probable token always stays.
        mass_above = tf.cumsum(probs, axis=-1, exclusive=True)
        kept = tf.reduce_sum(tf.cast(mass_above < top_p, tf.int32), axis=-1)
        threshold = tf.gather(ranked, kept - 1, batch_dims=1)[:, None]
        logits = tf.where(logits < threshold, NEG_INF, logits)
    return logits


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How the next token is drawn (see the module docstring); frozen and hashable, as
    it keys the compiled loop."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    def check(self):
        """Raises InputError for a setting out of range; returns self."""
        _check_sampling(self.temperature, self.top_k, self.top_p, self.seed)
        return self

    def __call__(self, logits, step):
        """Draws (batch,) int32 ids from the filtered (batch, vocab) `logits` with the
        seed (seed, step)."""
        logits = filter_logits(logits, self.temperature, self.top_k, self.top_p)
        seed = tf.stack([tf.constant(self.seed, tf.int32), step])
        return tf.random.stateless_categorical(logits, 1, seed=seed, dtype=tf.int32)[:, 0]


def sample_loop(model, src_ids, settings=PAPER_SETTINGS, sampling=Sampling()):
    """Sampling over a batch; the plain function to use inside traced graphs.

    Returns ids (batch, W) int32 as `greedy_loop` (which reads the same `settings`), and
    the sum of the model's (unfiltered) log-probabilities of the sampled tokens.
    """
    return greedy_loop(model, src_ids, settings, choose=sampling.check())


def sample(
    model,
    src_ids,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    seed=0,
    max_length=None,
    min_length=0,
    start_id=START_ID,
    end_id=END_ID,
    jit_compile=True,
):
    """Samples one output per source.

    Args:
        model: a `Transformer`.
        src_ids: (batch, src_len) int source ids, 0-padded.
        temperature: T > 0 divides the log-probabilities.
        top_k: keep the k most probable tokens (0: all).
        top_p: keep the smallest set of most probable tokens whose probability
            reaches top_p (1: all).
        seed: int; the same seed and batch give the same output.
        max_length, min_length, start_id, end_id, jit_compile: as `greedy_search`.

    Returns:
        ids (batch, t) int32 without [START], ending with [END] then padding.

    Example:
    >>> model = kt.Transformer.from_preset("tiny", num_layers=1, src_vocab_size=20,
    ...                                    tgt_vocab_size=20)
    >>> model.build()                                    # untrained: any ids will do here
    >>> src_ids = tf.constant([[5, 6, 7], [8, 9, 0]])    # 0-padded
    >>> ids = kt.decoding.sample(model, src_ids, temperature=0.8, top_p=0.9, seed=7)
    >>> again = kt.decoding.sample(model, src_ids, temperature=0.8, top_p=0.9, seed=7)
    >>> bool(tf.reduce_all(ids == again))               # same seed and batch: same output
    True
    """
    sampling = Sampling(temperature, top_k, top_p, seed).check()
    settings = DecodingSettings(
        beam_size=1, max_length=max_length, min_length=min_length, start_id=start_id, end_id=end_id
    ).check(model)
    ids, _ = compiled.decode_in_buckets(
        sample_loop, model, src_ids, (settings, sampling), jit_compile
    )
    return trim_padding(ids)
