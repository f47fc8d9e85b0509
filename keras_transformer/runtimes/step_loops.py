"""The decoding loops of the runtimes, in NumPy, over an export's step graphs.

An export (`kt.export.export_tflite`, `kt.export.export_onnx`) holds, beside its
one-graph decoding loop, the graphs of one step (`kt.export.steps`): the encoder, the
greedy `decoder_step` and, for a beam Translator, `beam_step`. A step reads the
self-attention caches without writing them and returns the k new rows of K and V; the
loop here writes them into its own buffers. Inside a graph loop (LiteRT's WHILE, ONNX's
Loop) every write into a loop-carried cache copied the whole cache at every step.

`greedy_steps` follows `kt.decoding.greedy_loop` and `beam_steps` follows
`kt.decoding.beam_loop` step for step, with the rules of `DecodingSettings`
(`decoding/rules.py`), so they give the same ids. Both drive a runtime's `Steps`:

    start(src_ids, width, hypotheses)   runs the encoder, zeroes caches of k·W rows
    run(graph, step, inputs) -> dict    runs one step graph at position `step` and
                                        writes its rows j·W + step of every cache
"""

import numpy as np

from keras_transformer.constants import NEG_INF, PAD_ID

# The step graphs' names: the ONNX files (without ".onnx") and the LiteRT signatures.
ENCODER = "encoder"
GREEDY_STEP = "decoder_step"
BEAM_STEP = "beam_step"

# The beam-search state that beam_step takes and returns ("next_" + name): the fields
# of `kt.decoding.BeamState` but the step and the caches, with the ancestry of the
# cache (layers/decoder.py) beside them.
BEAM_STATE = (
    "tokens",
    "alive_ids",
    "alive_log_probs",
    "finished_ids",
    "finished_scores",
    "done",
    "ancestry",
)


def layer_name(kind, layer):
    """The name of layer `layer`'s tensor of `kind` ("self_keys", "cross_values",
    "step_keys", ...) among the step graphs' inputs and outputs: one tensor per layer."""
    return f"{kind}_{layer}"


def cache_names(num_layers):
    """[(cache, rows)]: the name of each self-attention cache input of a step graph and
    of the output whose rows are written into it."""
    return [
        (layer_name(cache, i), layer_name(rows, i))
        for cache, rows in (("self_keys", "step_keys"), ("self_values", "step_values"))
        for i in range(num_layers)
    ]


def trim(ids):
    """Drops the trailing columns that are padding in every row."""
    used = (ids != PAD_ID).any(axis=0)
    return ids[:, : (np.flatnonzero(used)[-1] + 1 if used.any() else 0)]


def _width(limits):
    # One row at least: a batch of empty sources still runs the encoder.
    return max(int(limits.max()), 1)


def greedy_steps(steps, src_ids, settings, model_max_length):
    """Greedy search over `steps`' decoder_step graph, as `kt.decoding.greedy_loop`.

    Args:
        steps: a runtime's `Steps` (see the module docstring).
        src_ids: (batch, src_len) int32, 0-padded, at least one column.
        settings: `DecodingSettings` (max_length, min_length, start_id, end_id).
        model_max_length: the model's max_length, which caps every row's limit.

    Returns:
        ids (batch, t) int32, ending with [END] then padding; scores (batch,) float32,
        the sums of the emitted tokens' log-probabilities.
    """
    batch = src_ids.shape[0]
    limits = settings.limits(src_ids, model_max_length)
    width = _width(limits)
    steps.start(src_ids, width, hypotheses=1)
    tokens = np.full([batch, 1], settings.start_id, np.int32)
    ids = np.zeros([batch, width], np.int32)
    scores = np.zeros([batch], np.float32)
    finished = np.zeros([batch], bool)
    min_length = np.array(settings.min_length, np.int32)
    for step in range(width):
        active = settings.still_decoding(finished, step, limits)
        if not active.any():
            break
        chosen = steps.run(GREEDY_STEP, step, {"tgt_ids": tokens, "min_length": min_length})
        tokens = np.where(active, chosen["token"], PAD_ID).astype(np.int32)[:, None]
        scores += np.where(active, chosen["log_prob"], 0.0).astype(np.float32)
        ids[:, step] = tokens[:, 0]
        finished = settings.finished_after(finished, active, tokens[:, 0])
    return trim(ids), scores


def beam_steps(steps, src_ids, settings, model_max_length):
    """Beam search over `steps`' beam_step graph, as `kt.decoding.beam_loop`: the graph
    holds the search's rule (`kt.decoding.beam_step` with the export's beam size, α and
    min_length); this loop carries its state until every sentence is done.

    Args and returns: as `greedy_steps`; scores are the best finished hypotheses'
    length-penalised log-probabilities (0 for an empty source).
    """
    k = settings.beam_size
    batch = src_ids.shape[0]
    limits = settings.limits(src_ids, model_max_length).astype(np.int32)
    width = _width(limits)
    steps.start(src_ids, width, hypotheses=k)
    state = {
        "tokens": np.full([batch, k], settings.start_id, np.int32),
        "alive_ids": np.zeros([batch, k, width], np.int32),
        # The first beam only: the k beams start as one hypothesis.
        "alive_log_probs": np.tile(
            np.where(np.arange(k) == 0, 0.0, NEG_INF).astype(np.float32), (batch, 1)
        ),
        "finished_ids": np.zeros([batch, k, width], np.int32),
        "finished_scores": np.full([batch, k], NEG_INF, np.float32),
        "done": limits == 0,
        "ancestry": np.zeros([batch, k, width], np.int32),
    }
    step = 0
    while not state["done"].all():
        outputs = steps.run(BEAM_STEP, step, {**state, "limits": limits})
        state = {name: outputs["next_" + name] for name in BEAM_STATE}
        step += 1
    scores = np.where(limits == 0, 0.0, state["finished_scores"][:, 0]).astype(np.float32)
    return trim(state["finished_ids"][:, 0]), scores


def cache_rows(cache, hypotheses, width, step):
    """The view of rows j·W + step (j < k) of a cache (batch, h, k·W, d_k): where a
    step's returned rows (batch, h, k, d_k) are written."""
    batch, heads, _, head_dim = cache.shape
    return cache.reshape(batch, heads, hypotheses, width, head_dim)[:, :, :, step]
