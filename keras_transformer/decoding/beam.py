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

import tensorflow as tf

from keras_transformer.constants import END_ID, NEG_INF, START_ID
from keras_transformer.decoding import compiled
from keras_transformer.decoding.lengths import (
    check_lengths, check_settings, forbid_tokens, output_limits, trim_padding, write_column)
from keras_transformer.errors import InputError


def length_penalty(length, alpha):
    """GNMT lp(Y) = ((5 + |Y|) / 6)^α for `length` = |Y| (float32 tensor or number)."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def top_k_by_blocks(values, k, block=64):
    """`tf.math.top_k(values, k)` over the last axis, from the maxima of blocks of `block`.

    The k largest entries lie in the k blocks with the largest maxima (a block holding
    one of them has a maximum at least as large, and k other blocks with larger maxima
    would hold k larger entries). So one max-reduction, a top-k over the block maxima and
    a top-k over k·block candidates replace a top-k over every entry, which XLA runs
    about 2× slower on CPU. The chosen blocks are taken in index order, so ties come out
    as top_k orders them: lower index first.

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
    indices = (tf.gather(best_blocks, position // block, batch_dims=batch_dims) * block
               + position % block)
    return top, indices


def check_beam(beam_size, alpha, num_return, vocab_size):
    if not isinstance(beam_size, int) or beam_size < 1:
        raise InputError(f"beam_size must be a positive int; got {beam_size!r}")
    if 2 * beam_size > vocab_size:
        raise InputError(
            f"beam search ranks 2 × beam_size candidates per sentence, so beam_size must be "
            f"at most half the target vocabulary ({vocab_size}); got {beam_size}")
    if not isinstance(num_return, int) or not 1 <= num_return <= beam_size:
        raise InputError(
            f"num_return must be an int in [1, beam_size={beam_size}]; got {num_return!r}")
    if (not isinstance(alpha, (int, float)) or isinstance(alpha, bool)
            or not 0 <= alpha < float("inf")):
        raise InputError(
            f"alpha must be a number >= 0, finite (0 disables the length penalty); got {alpha!r}")


def beam_loop(model, src_ids, beam_size=4, alpha=0.6, num_return=1, max_length=None,
              min_length=0, start_id=START_ID, end_id=END_ID, max_steps=None):
    """Beam search over a batch; the plain function to use inside traced graphs.

    Args:
        model: a `Transformer` (anything with encode, init_cache, decode_step, config).
        src_ids: (batch, src_len) int32 source ids, 0-padded.
        beam_size: k, hypotheses kept per sentence.
        alpha: α of the length penalty.
        num_return: the early stop waits until this many finished hypotheses are final.
        max_length, min_length, start_id, end_id, max_steps: as `greedy_loop`.

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
    src_ids = check_settings(model, src_ids, max_length, min_length, start_id, end_id)
    vocab_size = model.config.tgt_vocab_size
    check_beam(beam_size, alpha, num_return, vocab_size)
    k = beam_size
    memory, memory_mask = model.encode(src_ids, training=False)
    width, limits = output_limits(src_ids, max_length, model.config.max_length)
    batch = tf.shape(src_ids)[0]
    best_possible_penalty = length_penalty(limits, alpha)

    def gather(values, indices):
        return tf.gather(values, indices, batch_dims=1)

    def not_done(step, tokens, cache, alive_ids, alive_log_probs, finished_ids,
                 finished_scores, done):
        going = ~tf.reduce_all(done)
        return going if max_steps is None else going & (step < max_steps)

    def body(step, tokens, cache, alive_ids, alive_log_probs, finished_ids, finished_scores,
             done):
        logits, cache = model.decode_step(tokens, step, cache, memory_mask)
        # The 2k best extensions of a sentence are among the 2k best of each beam, so
        # log p(y | ...) = logit - logsumexp is formed for those k·2k alone: the
        # (batch, k, vocab) log-softmax is never materialised. Ties keep the order of a
        # top-k over all k·vocab candidates (lower beam, then lower token, first).
        normalizer = tf.reduce_logsumexp(logits, axis=-1, keepdims=True)
        beam_best, beam_tokens = top_k_by_blocks(
            forbid_tokens(logits, step, min_length, start_id, end_id), 2 * k)
        candidates = alive_log_probs[:, :, None] + (beam_best - normalizer)
        top_log_probs, top_indices = tf.math.top_k(
            tf.reshape(candidates, [batch, k * 2 * k]), k=2 * k)
        origins = top_indices // (2 * k)
        top_tokens = gather(tf.reshape(beam_tokens, [batch, k * 2 * k]), top_indices)
        top_ids = write_column(gather(alive_ids, origins), step, top_tokens)
        at_limit = (step + 1 >= limits)[:, None]
        ends = tf.equal(top_tokens, end_id) | at_limit

        alive_log_probs, chosen = tf.math.top_k(tf.where(ends, NEG_INF, top_log_probs), k=k)
        tokens = gather(top_tokens, chosen)
        # Each new hypothesis inherits the ancestry of the beam it extends; the keys and
        # values stay where they were written (see layers/decoder.py).
        cache = dict(cache, ancestry=gather(cache["ancestry"], gather(origins, chosen)))

        within_top_k = tf.range(2 * k)[None, :] < k
        new_scores = tf.where(ends & within_top_k,
                              top_log_probs / length_penalty(step + 1, alpha), NEG_INF)
        merged_scores, kept = tf.math.top_k(
            tf.concat([finished_scores, new_scores], axis=1), k=k)
        merged_ids = gather(tf.concat([finished_ids, top_ids], axis=1), kept)
        # A finished sentence keeps its result while the rest of the batch decodes.
        finished_scores = tf.where(done[:, None], finished_scores, merged_scores)
        finished_ids = tf.where(done[:, None, None], finished_ids, merged_ids)

        best_alive = alive_log_probs[:, 0] / best_possible_penalty
        done = (done | at_limit[:, 0]
                | (best_alive <= finished_scores[:, num_return - 1]))
        return (step + 1, tokens, cache, gather(top_ids, chosen), alive_log_probs,
                finished_ids, finished_scores, done)

    first_beam_only = tf.one_hot(tf.zeros([batch], tf.int32), k, on_value=0.0,
                                 off_value=NEG_INF)
    state = (
        tf.constant(0, tf.int32),
        tf.fill([batch, k], start_id),
        model.init_cache(memory, width, beam_size=k),
        tf.zeros([batch, k, width], tf.int32),
        first_beam_only,
        tf.zeros([batch, k, width], tf.int32),
        tf.fill([batch, k], NEG_INF),
        tf.equal(limits, 0),
    )
    state = tf.while_loop(not_done, body, state)
    finished_ids, finished_scores, done = state[5], state[6], state[7]
    empty = tf.equal(limits, 0)[:, None]
    finished_scores = tf.where(empty, 0.0, finished_scores)
    if max_steps is None:
        return finished_ids, finished_scores
    return finished_ids, finished_scores, done


def beam_search(model, src_ids, beam_size=4, alpha=0.6, num_return=1, max_length=None,
                min_length=0, start_id=START_ID, end_id=END_ID, jit_compile=True):
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
    check_beam(beam_size, alpha, num_return, model.config.tgt_vocab_size)
    check_lengths(model, max_length, min_length, start_id, end_id)
    settings = dict(beam_size=beam_size, alpha=float(alpha), num_return=num_return,
                    max_length=max_length, min_length=min_length, start_id=start_id,
                    end_id=end_id)
    ids, scores = compiled.run(beam_loop, model, src_ids, settings, jit_compile)
    ids, scores = ids[:, :num_return], scores[:, :num_return]
    if num_return == 1:
        ids, scores = ids[:, 0], scores[:, 0]
    return trim_padding(ids), scores
