"""Greedy search: at every step emit the most probable next token.

    y_t = argmax_y log p(y | y_<t, x)          score = Σ_t log p(y_t | y_<t, x)

The source is encoded once; each step runs the decoder on the newest token only, reading
earlier positions from the model's fixed-size cache. The loop state has fixed shapes
(the output buffer is (batch, W), written by a select on the column), so the same loop runs
eagerly, compiles with `jit_compile=True`, and converts to a TFLite WHILE op.

`greedy_loop` is the plain function to call inside a tf.function, SavedModel or TFLite
conversion; `greedy_search` is the convenience wrapper that compiles it once per
settings. Sampling (`sampling.py`) is this loop with a random choice instead of argmax.
"""

import tensorflow as tf

from keras_transformer.constants import END_ID, PAD_ID, START_ID
from keras_transformer.decoding import compiled
from keras_transformer.decoding.buffers import trim_padding, write_column
from keras_transformer.decoding.rules import (
    PAPER_SETTINGS,
    DecodingSettings,
    check_src_ids,
)


def argmax_choice(logits):
    """The greedy choice: (batch, vocab) logits -> (batch,) int32 ids."""
    return tf.argmax(logits, axis=-1, output_type=tf.int32)


def greedy_choice(settings, logits, step, choose=None):
    """The token a row emits at output position `step`, and its log-probability.

    [PAD], [START] and, before `settings.min_length`, [END] are forbidden
    (`DecodingSettings.forbid_tokens`), then `choose` picks among the rest (None:
    argmax). log p(token) = logit - logsumexp(logits): the (batch, vocab) log-softmax
    is never formed.

    Args:
        settings: `DecodingSettings`.
        logits: (batch, vocab) float32, unnormalised.
        step: scalar int32.
        choose: as `greedy_loop`'s.

    Returns:
        token (batch,) int32, log p(token) (batch,) float32.
    """
    allowed = settings.forbid_tokens(logits, step)
    token = argmax_choice(allowed) if choose is None else choose(allowed, step)
    log_prob = tf.gather(logits, token, batch_dims=1) - tf.reduce_logsumexp(logits, axis=-1)
    return token, log_prob


def greedy_loop(model, src_ids, settings=PAPER_SETTINGS, choose=None, max_steps=None):
    """Decodes `src_ids` one token at a time with `choose` picking each token.

    Args:
        model: a `Transformer` (anything with encode, init_cache, decode_step, config).
        src_ids: (batch, src_len) int32 source ids, 0-padded.
        settings: `DecodingSettings`; greedy search reads its max_length, min_length
            (see `rules.py`), start_id and end_id.
        choose: `(logits (batch, vocab), step) -> (batch,) int32`, applied after
            padding, [START] and (before min_length) [END] were forbidden. The logits
            are unnormalised: log p = logits - logsumexp(logits). None: argmax.
        max_steps: None, or a scalar int32 tensor: stop after this many steps even if
            some rows are still decoding (see `decoding.stragglers`).

    Returns:
        ids (batch, W) int32 without [START], each row ending with [END] (unless it
        reached its length limit) then padding; scores (batch,) float32, the sum of
        the model's log-probabilities of the emitted tokens. With `max_steps`, also
        done (batch,) bool: the rows whose output is complete; the others were cut.

    Example:
    >>> model = kt.Transformer.from_preset("tiny", num_layers=1, src_vocab_size=20,
    ...                                    tgt_vocab_size=20)
    >>> model.build()                                    # untrained: any ids will do here
    >>> src_ids = tf.constant([[5, 6, 7], [8, 9, 0]])    # 0-padded
    >>> ids, scores = tf.function(greedy_loop, jit_compile=True)(model, src_ids)
    >>> ids.shape, scores.shape                         # W = 3 + 50: source length + 50
    (TensorShape([2, 53]), TensorShape([2]))
    """
    src_ids = check_src_ids(model, src_ids)
    settings.check(model)
    memory, memory_mask = model.encode(src_ids, training=False)
    width = settings.width(src_ids.shape[1], model.config.max_length)
    limits = settings.limits(src_ids, model.config.max_length)
    batch = tf.shape(src_ids)[0]

    def not_done(step, tokens, cache, ids, scores, finished):
        going = tf.reduce_any(settings.still_decoding(finished, step, limits))
        return going if max_steps is None else going & (step < max_steps)

    def body(step, tokens, cache, ids, scores, finished):
        logits, cache = model.decode_step(tokens[:, None], step, cache, memory_mask)
        token, log_prob = greedy_choice(settings, logits[:, 0], step, choose)
        active = settings.still_decoding(finished, step, limits)
        token = tf.where(active, token, PAD_ID)
        scores = scores + tf.where(active, log_prob, 0.0)
        ids = write_column(ids, step, token)
        finished = settings.finished_after(finished, active, token)
        return step + 1, token, cache, ids, scores, finished

    state = (
        tf.constant(0, tf.int32),
        tf.fill([batch], settings.start_id),
        model.init_cache(memory, width),
        tf.zeros([batch, width], tf.int32),
        tf.zeros([batch], tf.float32),
        tf.zeros([batch], tf.bool),
    )
    step, _, _, ids, scores, finished = tf.while_loop(not_done, body, state)
    if max_steps is None:
        return ids, scores
    return ids, scores, finished | (step >= limits)


def greedy_search(
    model,
    src_ids,
    max_length=None,
    min_length=0,
    start_id=START_ID,
    end_id=END_ID,
    jit_compile=True,
):
    """Greedy decoding of a batch of sources.

    Args:
        model: a `Transformer`.
        src_ids: (batch, src_len) int source ids, 0-padded (array, list or tensor).
        max_length: None for source length + 50 per row (capped at the model's
            max_length), or an int limit for every row.
        min_length: [END] is forbidden before this many tokens.
        start_id, end_id: reserved ids of the target vocabulary.
        jit_compile: compile the loop with XLA (eager calls only; inside a traced
            function the loop joins the enclosing graph).

    Returns:
        ids (batch, t) int32 without [START], ending with [END] then padding, t the
        longest output; scores (batch,) float32 sums of log-probabilities.

    Example:
    >>> model = kt.Transformer.from_preset("tiny", num_layers=1, src_vocab_size=20,
    ...                                    tgt_vocab_size=20)
    >>> model.build()                                    # untrained: any ids will do here
    >>> src_ids = tf.constant([[5, 6, 7], [8, 9, 0]])    # 0-padded
    >>> ids, scores = kt.decoding.greedy_search(model, src_ids)
    >>> ids.dtype, scores.shape
    (tf.int32, TensorShape([2]))
    """
    settings = DecodingSettings(
        beam_size=1, max_length=max_length, min_length=min_length, start_id=start_id, end_id=end_id
    ).check(model)
    ids, scores = compiled.decode_in_buckets(greedy_loop, model, src_ids, (settings,), jit_compile)
    return trim_padding(ids), scores
