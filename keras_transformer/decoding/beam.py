"""Beam search with the GNMT length penalty (the paper, §6.1: beam 4, α = 0.6).

A finished hypothesis Y is ranked by its length-normalised log-probability

    score(Y) = log p(Y | x) / lp(Y),        lp(Y) = ((5 + |Y|) / 6)^α

(Wu et al., 2016), |Y| counting [END]. α = 0 ranks by log-probability alone.

Each sentence keeps two fixed-size sets of k hypotheses, as in Tensor2Tensor and the
Model Garden: `alive` ones that may grow and `finished` ones that ended with [END] (or
reached their length limit). At every step the k alive beams propose their 2k best
one-token extensions; those that end go to the finished set only if they rank within the
top k of the 2k (as fairseq does, so that a beam of 1 is exactly greedy search when
α = 0), the best k that do not end become the new alive set. A sentence stops once no
alive hypothesis can beat the `num_return`-th best finished one: alive log-probabilities
only fall as they grow, and lp is at most lp(limit), so an alive hypothesis scores at
most  log p / lp(limit). A stopped sentence is frozen while the rest of the batch goes
on, so it decodes to the same result alone and in a batch.
"""

import typing

import tensorflow as tf

from keras_transformer.constants import END_ID, NEG_INF, START_ID
from keras_transformer.decoding import compiled
from keras_transformer.decoding.buffers import trim_padding, write_column
from keras_transformer.decoding.rules import (
    PAPER_SETTINGS,
    DecodingSettings,
    check_src_ids,
)
from keras_transformer.errors import InputError
from keras_transformer.layers.masks import per_sentence


def length_penalty(length, alpha):
    """GNMT lp(Y) = ((5 + |Y|) / 6)^α for `length` = |Y| (float32 tensor or number)."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def top_k_by_blocks(values, k, block=64):
    """`tf.math.top_k(values, k)` over the last axis, from the maxima of blocks of `block`.

    The k largest entries lie in the k blocks with the largest maxima (a block holding
    one of them has a maximum at least as large, and k other blocks with larger maxima
    would hold k larger entries). So one max-reduction, a top-k over the block maxima and
    a top-k over k·block candidates replace a top-k over every entry, which XLA runs
    slower on CPU (benchmarks/decode_latency.py times beam search). The chosen blocks are
    taken in index order, so ties come out as top_k orders them: lower index first.

    Args:
        values: (..., n) float.
        k: how many to keep.
        block: entries per block; the last block is padded with -inf.

    Returns:
        (values (..., k), indices (..., k) int32), as `tf.math.top_k`.
    """
    n = values.shape[-1]
    blocks = -(-n // block)
    if blocks < 2 * k:
        return tf.math.top_k(values, k)
    lead = tf.shape(values)[:-1]
    batch_dims = values.shape.rank - 1
    if blocks * block != n:
        padding = tf.fill(tf.concat([lead, [blocks * block - n]], 0), float("-inf"))
        values = tf.concat([values, padding], axis=-1)
    tiled = tf.reshape(values, tf.concat([lead, [blocks, block]], 0))
    best_blocks = tf.sort(tf.math.top_k(tf.reduce_max(tiled, axis=-1), k).indices, axis=-1)
    candidates = tf.gather(tiled, best_blocks, batch_dims=batch_dims)
    top, position = tf.math.top_k(tf.reshape(candidates, tf.concat([lead, [k * block]], 0)), k)
    indices = (
        tf.gather(best_blocks, position // block, batch_dims=batch_dims) * block + position % block
    )
    return top, indices


def check_num_return(num_return, beam_size):
    if not isinstance(num_return, int) or not 1 <= num_return <= beam_size:
        raise InputError(
            f"num_return must be an int in [1, beam_size={beam_size}]; got {num_return!r}"
        )


class BeamState(typing.NamedTuple):
    """The state of the beam-search while loop: fixed shapes, k = beam_size, W = width.

    Attributes:
        step: () int32, the output position being chosen (or (batch,) int32, one per
            sentence, in `continuous.beam_stream`).
        tokens: (batch, k) int32, each alive hypothesis's newest token.
        cache: the model's decoding cache for batch·k hypotheses.
        alive_ids: (batch, k, W) int32, the hypotheses that may grow.
        alive_log_probs: (batch, k) float32, their log-probabilities.
        finished_ids: (batch, k, W) int32, hypotheses that ended, best first.
        finished_scores: (batch, k) float32, their length-penalised scores (NEG_INF:
            an empty slot).
        done: (batch,) bool, the sentences whose search ended.
    """

    step: tf.Tensor
    tokens: tf.Tensor
    cache: dict
    alive_ids: tf.Tensor
    alive_log_probs: tf.Tensor
    finished_ids: tf.Tensor
    finished_scores: tf.Tensor
    done: tf.Tensor


def _gather(values, indices):
    return tf.gather(values, indices, batch_dims=1)


def _extensions(settings, logits, state):
    """The 2k best one-token extensions of each sentence's k alive hypotheses.

    Returns top_log_probs (batch, 2k) float32 best first, top_tokens (batch, 2k) int32,
    origins (batch, 2k) int32 (the alive beam each extends) and top_ids (batch, 2k, W)
    int32, the extended hypotheses.
    """
    k = settings.beam_size
    batch = tf.shape(logits)[0]
    # The 2k best extensions of a sentence are among the 2k best of each beam, so
    # log p(y | ...) = logit - logsumexp is formed for those k·2k alone: the
    # (batch, k, vocab) log-softmax is never materialised. Ties keep the order of a
    # top-k over all k·vocab candidates (lower beam, then lower token, first).
    normalizer = tf.reduce_logsumexp(logits, axis=-1, keepdims=True)
    step = per_sentence(state.step, rank=3)
    beam_best, beam_tokens = top_k_by_blocks(settings.forbid_tokens(logits, step), 2 * k)
    candidates = state.alive_log_probs[:, :, None] + (beam_best - normalizer)
    top_log_probs, top_indices = tf.math.top_k(tf.reshape(candidates, [batch, k * 2 * k]), k=2 * k)
    origins = top_indices // (2 * k)
    top_tokens = _gather(tf.reshape(beam_tokens, [batch, k * 2 * k]), top_indices)
    top_ids = write_column(_gather(state.alive_ids, origins), step, top_tokens)
    return top_log_probs, top_tokens, origins, top_ids


def _merge_finished(settings, state, top_log_probs, top_ids, ends):
    """The k best finished hypotheses once the extensions that `ends` (batch, 2k) and
    rank within the top k join them; a sentence already done keeps its own.

    Returns finished_ids (batch, k, W) int32 and finished_scores (batch, k) float32.
    """
    k = settings.beam_size
    within_top_k = tf.range(2 * k)[None, :] < k
    penalty = length_penalty(per_sentence(state.step, rank=2) + 1, settings.alpha)
    new_scores = tf.where(ends & within_top_k, top_log_probs / penalty, NEG_INF)
    merged_scores, kept = tf.math.top_k(tf.concat([state.finished_scores, new_scores], axis=1), k=k)
    merged_ids = _gather(tf.concat([state.finished_ids, top_ids], axis=1), kept)
    # A finished sentence keeps its result while the rest of the batch decodes.
    finished_scores = tf.where(state.done[:, None], state.finished_scores, merged_scores)
    finished_ids = tf.where(state.done[:, None, None], state.finished_ids, merged_ids)
    return finished_ids, finished_scores


def beam_step(model, settings, state, memory_mask, limits, num_return=1):
    """One step of beam search for every sentence of the batch: the next `BeamState`.

    The k alive hypotheses of each sentence propose their 2k best extensions (one
    decoder step); those that end join the finished set if they rank within the top k,
    the best k that do not end stay alive, and a sentence is done once its `limits`
    (batch,) is reached or no alive hypothesis can beat its `num_return`-th finished one
    (see the module docstring). A done sentence keeps its finished set. `state.step` is
    a scalar, or (batch,) for sentences at different steps (`continuous.beam_stream`);
    memory_mask is (batch, 1, 1, src_len).
    """
    k = settings.beam_size
    logits, cache = model.decode_step(state.tokens, state.step, state.cache, memory_mask)
    top_log_probs, top_tokens, origins, top_ids = _extensions(settings, logits, state)
    at_limit = (state.step + 1 >= limits)[:, None]
    ends = tf.equal(top_tokens, settings.end_id) | at_limit

    alive_log_probs, chosen = tf.math.top_k(tf.where(ends, NEG_INF, top_log_probs), k=k)
    # Each new hypothesis inherits the ancestry of the beam it extends; the keys and
    # values stay where they were written (see layers/decoder.py).
    cache = dict(cache, ancestry=_gather(cache["ancestry"], _gather(origins, chosen)))
    finished_ids, finished_scores = _merge_finished(settings, state, top_log_probs, top_ids, ends)
    # Alive log-probabilities only fall, and lp is at most lp(limit).
    best_alive = alive_log_probs[:, 0] / length_penalty(limits, settings.alpha)
    done = state.done | at_limit[:, 0] | (best_alive <= finished_scores[:, num_return - 1])
    return BeamState(
        step=state.step + 1,
        tokens=_gather(top_tokens, chosen),
        cache=cache,
        alive_ids=_gather(top_ids, chosen),
        alive_log_probs=alive_log_probs,
        finished_ids=finished_ids,
        finished_scores=finished_scores,
        done=done,
    )


def beam_loop(model, src_ids, settings=PAPER_SETTINGS, num_return=1, max_steps=None):
    """Beam search over a batch; the plain function to use inside traced graphs.

    Args:
        model: a `Transformer` (anything with encode, init_cache, decode_step, config).
        src_ids: (batch, src_len) int32 source ids, 0-padded.
        settings: `DecodingSettings`: k = beam_size hypotheses kept per sentence, α =
            alpha of the length penalty, and the length bounds and reserved ids as
            `greedy_loop` reads them.
        num_return: the early stop waits until this many finished hypotheses are final.
        max_steps: as `greedy_loop`.

    Returns:
        ids (batch, k, W) int32, the finished hypotheses best first (without [START],
        ending with [END] then padding); scores (batch, k) float32 length-penalised
        log-probabilities, descending. Only the first `num_return` are final: the search
        stops once no alive hypothesis can beat them. An empty source gives an empty
        hypothesis of score 0. With `max_steps`, also done (batch,) bool: the sentences
        whose search ended; the others were cut.

    Example:
    >>> model = kt.Transformer.from_preset("tiny", num_layers=1, src_vocab_size=20,
    ...                                    tgt_vocab_size=20)
    >>> model.build()                                    # untrained: any ids will do here
    >>> src_ids = tf.constant([[5, 6, 7], [8, 9, 0]])    # 0-padded
    >>> ids, scores = tf.function(beam_loop, jit_compile=True)(model, src_ids)
    >>> ids.shape, scores.shape                         # (batch, k, W), (batch, k)
    (TensorShape([2, 4, 53]), TensorShape([2, 4]))
    """
    src_ids = check_src_ids(model, src_ids)
    settings.check(model)
    check_num_return(num_return, settings.beam_size)
    k = settings.beam_size
    memory, memory_mask = model.encode(src_ids, training=False)
    width = settings.width(src_ids.shape[1], model.config.max_length)
    limits = settings.limits(src_ids, model.config.max_length)
    batch = tf.shape(src_ids)[0]

    def not_done(*state):
        going = ~tf.reduce_all(BeamState(*state).done)
        return going if max_steps is None else going & (state[0] < max_steps)

    def body(*state):
        return tuple(beam_step(model, settings, BeamState(*state), memory_mask, limits, num_return))

    state = BeamState(
        step=tf.constant(0, tf.int32),
        tokens=tf.fill([batch, k], settings.start_id),
        cache=model.init_cache(memory, width, beam_size=k),
        alive_ids=tf.zeros([batch, k, width], tf.int32),
        alive_log_probs=tf.one_hot(
            tf.zeros([batch], tf.int32), k, on_value=0.0, off_value=NEG_INF
        ),  # the first beam only
        finished_ids=tf.zeros([batch, k, width], tf.int32),
        finished_scores=tf.fill([batch, k], NEG_INF),
        done=tf.equal(limits, 0),
    )
    state = BeamState(*tf.while_loop(not_done, body, tuple(state)))
    empty = tf.equal(limits, 0)[:, None]
    finished_scores = tf.where(empty, 0.0, state.finished_scores)
    if max_steps is None:
        return state.finished_ids, finished_scores
    return state.finished_ids, finished_scores, state.done


def beam_search(
    model,
    src_ids,
    beam_size=4,
    alpha=0.6,
    num_return=1,
    max_length=None,
    min_length=0,
    start_id=START_ID,
    end_id=END_ID,
    jit_compile=True,
):
    """Beam search decoding of a batch of sources (the paper: beam 4, α = 0.6).

    Args:
        model: a `Transformer`.
        src_ids: (batch, src_len) int source ids, 0-padded.
        beam_size: hypotheses kept per sentence.
        alpha: length-penalty exponent; 0 ranks by log-probability alone.
        num_return: how many hypotheses to return per sentence (an n-best list).
        max_length, min_length, start_id, end_id, jit_compile: as `greedy_search`.

    Returns:
        num_return == 1: ids (batch, t) int32 and scores (batch,) float32.
        num_return > 1: ids (batch, num_return, t) and scores (batch, num_return),
        best first. Ids are without [START], end with [END] then padding; scores are
        length-penalised log-probabilities.

    Example:
    >>> model = kt.Transformer.from_preset("tiny", num_layers=1, src_vocab_size=20,
    ...                                    tgt_vocab_size=20)
    >>> model.build()                                    # untrained: any ids will do here
    >>> src_ids = tf.constant([[5, 6, 7], [8, 9, 0]])    # 0-padded
    >>> ids, scores = kt.decoding.beam_search(model, src_ids, beam_size=4, alpha=0.6)
    >>> nbest, nbest_scores = kt.decoding.beam_search(model, src_ids, num_return=4)
    >>> scores.shape, nbest_scores.shape
    (TensorShape([2]), TensorShape([2, 4]))
    >>> bool(np.allclose(nbest_scores[:, 0], scores))   # the n-best list starts with the best
    True
    """
    settings = DecodingSettings(
        beam_size=beam_size,
        alpha=alpha,
        max_length=max_length,
        min_length=min_length,
        start_id=start_id,
        end_id=end_id,
    ).check(model)
    check_num_return(num_return, beam_size)
    ids, scores = compiled.decode_in_buckets(
        beam_loop, model, src_ids, (settings, num_return), jit_compile
    )
    ids, scores = ids[:, :num_return], scores[:, :num_return]
    if num_return == 1:
        ids, scores = ids[:, 0], scores[:, 0]
    return trim_padding(ids), scores
