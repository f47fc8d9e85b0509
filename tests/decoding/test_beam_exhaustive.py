"""Beam search against an exhaustive search over every output the decoding rules allow.

The reference enumerates every output Y of a tiny real `Transformer`: tokens other than
[PAD] and [START], [END] last and only once min_length tokens precede it, and at most
`limit` tokens (an output that reaches the limit stops there, without [END]). Each Y is
scored from a plain teacher-forced forward pass (no decoding cache) as

    score(Y) = log p(Y | x) / lp(Y),        lp(Y) = ((5 + |Y|) / 6)^α   (GNMT)

with |Y| counting [END]. Beam search cannot keep every hypothesis (it ranks 2k
candidates per sentence, so k is at most half the vocabulary, and a hypothesis that ends
counts only if among the k best of them): it prunes by design.
But a beam of k cannot lose an output Y whose every proper prefix ranks among the k most
probable unfinished prefixes of its length, and which itself ranks among the k most
probable candidates of its length (finished ones and unfinished prefixes): such a prefix
survives each step's top-k, and Y enters the finished set, against any set of rivals the
beam may hold. Where that holds for the best outputs of the enumeration, beam search
must return exactly them, in order, with their scores. With a target vocabulary of 4
([END] and [UNK] the only choices) there is one unfinished prefix per length, so a beam
of 2 holds the whole search space up to the source length + 50 limit.
"""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import END_ID, START_ID, strip, teacher_forced_log_prob

import keras_transformer as kt
from keras_transformer import decoding

SOURCES = np.array([[5, 6, 7, 0, 0], [8, 0, 0, 0, 0], [4, 9, 6, 7, 5]], np.int32)
SETTINGS = [(alpha, min_length) for alpha in (0.0, 0.6, 1.0) for min_length in (0, 2)]


def gnmt_penalty(length, alpha):
    """lp(Y) = ((5 + |Y|) / 6)^α (Wu et al., 2016)."""
    return ((5.0 + np.asarray(length, np.float64)) / 6.0) ** alpha


def tiny_transformer(seed, tgt_vocab_size, d_model, sharpness=1.0):
    """A random 1+1 layer model with an untied output projection (so that a token does
    not simply predict itself), its weights multiplied by `sharpness`."""
    keras.utils.set_random_seed(seed)
    model = kt.Transformer(
        num_layers=1,
        d_model=d_model,
        num_heads=2,
        d_ff=2 * d_model,
        src_vocab_size=10,
        tgt_vocab_size=tgt_vocab_size,
        dropout=0.0,
        max_length=64,
        share_embeddings=False,
        tie_output=False,
    )
    ids = np.ones((1, 3), np.int32)
    model((ids, ids), training=False)
    model.output_projection.kernel.assign(model.output_projection.kernel * sharpness)
    return model


def all_outputs(tgt_vocab_size, limit):
    """Every output the decoding rules allow without min_length, as tuples of ids."""
    words = [id_ for id_ in range(1, tgt_vocab_size) if id_ not in (START_ID, END_ID)]
    ended = [
        prefix + (END_ID,)
        for length in range(limit)
        for prefix in itertools.product(words, repeat=length)
    ]
    return ended + list(itertools.product(words, repeat=limit))


def enumerate_and_score(model, src, limits):
    """Per source row, every allowed output up to the row's limit and its per-token
    log-probabilities log p(y_t | y_<t, x) (0 after its end), from one teacher-forced
    forward pass of the whole model: [(outputs, (len(outputs), longest) float64)]."""
    rows = [all_outputs(model.config.tgt_vocab_size, limit) for limit in limits]
    outputs = [output for row in rows for output in row]
    ids = np.zeros((len(outputs), max(limits)), np.int32)
    for i, output in enumerate(outputs):
        ids[i, : len(output)] = output
    tgt_in = np.concatenate([np.full((len(ids), 1), START_ID, np.int32), ids[:, :-1]], 1)
    src_in = np.repeat(src, [len(row) for row in rows], axis=0)
    logits = model((src_in, tgt_in), training=False)
    log_probs = tf.nn.log_softmax(logits).numpy().astype(np.float64)
    log_probs = np.take_along_axis(log_probs, ids[..., None], -1)[..., 0] * (ids != 0)
    ends = np.cumsum([len(row) for row in rows])
    return list(zip(rows, np.split(log_probs, ends[:-1])))


def beam_cannot_lose(outputs, log_probs, k):
    """`keeps(i)`: whether a beam of k necessarily finds outputs[i] (module docstring),
    from `log_probs`, the per-token log-probabilities of every allowed output."""
    prefix_log_prob = {}
    for output, row in zip(outputs, log_probs):
        running = np.cumsum(row)
        for t in range(1, len(output) + (output[-1] != END_ID)):
            prefix_log_prob[output[:t]] = running[t - 1]
    unfinished = {}
    for prefix, value in prefix_log_prob.items():
        unfinished.setdefault(len(prefix), []).append(value)
    candidates = {length: list(values) for length, values in unfinished.items()}
    for output, row in zip(outputs, log_probs):
        if output[-1] == END_ID:
            candidates.setdefault(len(output), []).append(row.sum())

    def among_best(value, rivals):
        return np.sum(np.asarray(rivals) > value) < k

    def keeps(i):
        output = outputs[i]
        return all(
            among_best(prefix_log_prob[output[:t]], unfinished[t]) for t in range(1, len(output))
        ) and among_best(log_probs[i].sum(), candidates[len(output)])

    return keeps


def compare_with_enumeration(ids, scores, reference, alpha, min_length):
    """Compares the n-best lists `ids` (batch, k, t), `scores` (batch, k) of a beam of k
    with the enumeration `reference` (from `enumerate_and_score`). Returns, per row, how
    many of the best outputs the beam was bound to find."""
    k = scores.shape[1]
    guaranteed = []
    for row, (every_output, every_log_prob) in enumerate(reference):
        allowed = [
            i
            for i, output in enumerate(every_output)
            if output[-1] != END_ID or len(output) > min_length
        ]
        outputs = [every_output[i] for i in allowed]
        log_probs = every_log_prob[allowed]
        exact = log_probs.sum(1) / gnmt_penalty([len(y) for y in outputs], alpha)
        best = np.argsort(-exact)[:k]
        found = [tuple(strip(h)) for h in ids[row]]
        # Whatever the pruning, every hypothesis is an allowed output, scored exactly.
        index = {output: i for i, output in enumerate(outputs)}
        for hypothesis, score in zip(found, np.asarray(scores[row])):
            assert hypothesis in index, (hypothesis, "breaks the decoding rules")
            np.testing.assert_allclose(score, exact[index[hypothesis]], atol=1e-4)
        keeps = beam_cannot_lose(outputs, log_probs, k)
        sure = next((n for n, i in enumerate(best) if not keeps(i)), k)
        assert found[:sure] == [outputs[i] for i in best[:sure]], (
            f"row {row}, α={alpha}, min_length={min_length}: the beam returned "
            f"{found}, the {sure} best outputs are {[outputs[i] for i in best[:sure]]}"
        )
        np.testing.assert_allclose(scores[row, :sure], exact[best[:sure]], atol=1e-4)
        guaranteed.append(sure)
    return guaranteed


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_finds_the_best_outputs_of_an_exhaustive_search(seed):
    """Target vocabulary 6 ([UNK], 4, 5 and [END]), outputs of at most 5 tokens (364
    of them), a beam of 3, a batch of three sources of different lengths. The loop runs
    eagerly (`beam_loop`), which test_xla.py ties to the compiled `beam_search`."""
    model = tiny_transformer(seed, tgt_vocab_size=6, d_model=16)
    reference = enumerate_and_score(model, SOURCES, [5] * len(SOURCES))
    guaranteed = []
    for alpha, min_length in SETTINGS:
        settings = decoding.DecodingSettings(
            beam_size=3, alpha=alpha, max_length=5, min_length=min_length
        )
        ids, scores = decoding.beam_loop(model, SOURCES, settings, num_return=3)
        guaranteed += compare_with_enumeration(
            ids.numpy(), scores.numpy(), reference, alpha, min_length
        )
    # The comparison must bite: the best output is guaranteed in most cases, and a
    # longer n-best list in some.
    assert np.mean(np.asarray(guaranteed) >= 1) >= 0.75, guaranteed
    assert max(guaranteed) == 3, guaranteed


@pytest.mark.parametrize("seed", [0, 3])
def test_a_beam_as_wide_as_the_search_space_is_exhaustive_up_to_the_length_limit(seed):
    """Target vocabulary 4: every output is [UNK]^n [END] or [UNK]^limit, and a beam of 2
    holds every candidate at every step, so its n-best list of 2 is exact, up to each
    row's own limit of source length + 50. The output weights are sharpened so that
    [UNK] often outweighs [END]: short, long and limit-length outputs all win somewhere."""
    model = tiny_transformer(seed, tgt_vocab_size=4, d_model=8, sharpness=6.0)
    limits = (SOURCES != 0).sum(axis=1) + 50
    reference = enumerate_and_score(model, SOURCES, limits)
    for alpha, min_length in SETTINGS:
        ids, scores = decoding.beam_search(
            model,
            SOURCES,
            beam_size=2,
            alpha=alpha,
            num_return=2,
            min_length=min_length,
            jit_compile=False,
        )
        guaranteed = compare_with_enumeration(
            ids.numpy(), scores.numpy(), reference, alpha, min_length
        )
        assert guaranteed == [2, 2, 2]


@pytest.mark.parametrize("alpha, min_length", [(0.0, 0), (0.6, 0), (1.0, 0), (0.6, 8)])
def test_every_hypothesis_of_a_beam_of_4_scores_as_teacher_forcing_does(
    tiny_model, sources, alpha, min_length
):
    """On the 2+2 layer model of 20 tokens, every hypothesis of the n-best list, however it
    was reordered among the beams, carries its own teacher-forced score."""
    ids, scores = decoding.beam_search(
        tiny_model,
        sources,
        beam_size=4,
        alpha=alpha,
        num_return=4,
        min_length=min_length,
        jit_compile=False,
    )
    assert strip(ids[3, 0]) == [] and scores[3, 0] == 0.0
    for row in range(3):
        hypotheses = ids[row].numpy()
        assert len({tuple(strip(h)) for h in hypotheses}) == 4
        lengths = (hypotheses != 0).sum(axis=1)
        assert (lengths > min_length).all()
        log_probs = teacher_forced_log_prob(
            tiny_model, np.repeat(sources[row : row + 1], 4, 0), hypotheses
        )
        np.testing.assert_allclose(scores[row], log_probs / gnmt_penalty(lengths, alpha), atol=1e-4)
