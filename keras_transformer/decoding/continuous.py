"""Beam search over a queue of sentences with continuous batching.

A batch decoded by `beam_loop` steps until its last sentence is done: on real text one
or two of its sentences keep searching (beam search stops a sentence only once no alive
hypothesis can beat its best finished one) while the others sit frozen in the batch,
costing a full step each. `beam_stream` keeps a fixed number of slots busy instead:

    encode the whole queue once (memory, cross-attention keys and values);
    fill every slot with the next sentence of the queue, at step 0;
    repeat while a slot decodes:
        one beam-search step for every slot, each at its own step (`beam_step`);
        a slot whose sentence is done writes its finished hypotheses to the output
        and takes the next sentence of the queue, starting at step 0.

Nothing of the old sentence needs clearing: a slot's self-attention cache and ancestry
are read only at positions t <= its step, which the new sentence writes first, and its
cross-attention keys and values are gathered from the queue by the slot's row at every
step. The decoder takes one position per sentence (`Transformer.decode_step` with a
(batch,) step), so each sentence decodes exactly as it would alone: the same output as
`beam_loop`, with about the steps its own length needs instead of the longest of its
batch's.

`decode_queue` drives it from Python: the sources go in queues of one source width each
(`compiled.source_bucket`), each compiled once per queue shape.
"""

import typing

import numpy as np
import tensorflow as tf

from keras_transformer.constants import NEG_INF, PAD_ID
from keras_transformer.decoding import compiled
from keras_transformer.decoding.beam import BeamState, beam_step, check_num_return
from keras_transformer.decoding.rules import PAPER_SETTINGS, check_src_ids
from keras_transformer.errors import InputError


class StreamState(typing.NamedTuple):
    """The state of `beam_stream`'s while loop; S = slots, N = queue rows, k, W as
    `BeamState`.

    Attributes:
        beam: the `BeamState` of the S slots, each at its own step ((S,) int32).
        rows: (S,) int32, the queue row each slot decodes; N for an idle slot.
        next: () int32, the position in the decoding order of the next row to load.
        ids: (N + 1, k, W) int32, the finished hypotheses of each row (row N takes the
            writes of slots that finished nothing).
        scores: (N + 1, k) float32, their scores.
    """

    beam: BeamState
    rows: tf.Tensor
    next: tf.Tensor
    ids: tf.Tensor
    scores: tf.Tensor


def _start(beam, load, settings):
    """`beam` with the slots where `load` (S,) is True reset to a new sentence at step
    0: the [START] token, only the first hypothesis alive, nothing finished."""
    k = settings.beam_size
    first_only = tf.one_hot(tf.zeros_like(load, tf.int32), k, on_value=0.0, off_value=NEG_INF)
    per_hypothesis = load[:, None]
    return beam._replace(
        step=tf.where(load, 0, beam.step),
        tokens=tf.where(per_hypothesis, settings.start_id, beam.tokens),
        alive_ids=tf.where(load[:, None, None], 0, beam.alive_ids),
        alive_log_probs=tf.where(per_hypothesis, first_only, beam.alive_log_probs),
        finished_ids=tf.where(load[:, None, None], 0, beam.finished_ids),
        finished_scores=tf.where(per_hypothesis, NEG_INF, beam.finished_scores),
        done=beam.done & ~load,
    )


def beam_stream(model, src_ids, settings=PAPER_SETTINGS, slots=16, num_return=1):
    """Beam search over every row of `src_ids` with `slots` sentences decoding at a
    time, each slot refilled from the queue as soon as its sentence is done (see the
    module docstring); the plain function to use inside traced graphs.

    Args:
        model: a `Transformer`.
        src_ids: (N, src_len) int32 source ids, 0-padded: the queue, decoded in order.
        settings: `DecodingSettings`, as `beam_loop`.
        slots: how many sentences decode side by side (S; S·k hypotheses per step).
        num_return: as `beam_loop`.

    Returns:
        As `beam_loop`: ids (N, k, W) int32, the finished hypotheses best first, and
        scores (N, k) float32; an empty source (all padding) is never decoded and gives
        an empty hypothesis of score 0.

    Example:
    >>> model = kt.Transformer.from_preset("tiny", num_layers=1, src_vocab_size=20,
    ...                                    tgt_vocab_size=20)
    >>> model.build()                                    # untrained: any ids will do here
    >>> queue = tf.constant([[5, 6, 7], [8, 9, 0], [4, 0, 0]])
    >>> ids, scores = tf.function(beam_stream, jit_compile=True)(model, queue, slots=2)
    >>> ids.shape, scores.shape                         # (N, k, W), (N, k)
    (TensorShape([3, 4, 53]), TensorShape([3, 4]))
    """
    src_ids = check_src_ids(model, src_ids)
    settings.check(model)
    check_num_return(num_return, settings.beam_size)
    if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
        raise InputError(f"slots must be a positive int; got {slots!r}")
    k = settings.beam_size
    queue = src_ids.shape[0]
    slots = min(slots, queue)
    width = settings.width(src_ids.shape[1], model.config.max_length)
    memory, memory_mask = model.encode(src_ids, training=False)
    cross = model.decoder.cross_cache(memory)
    limits = settings.limits(src_ids, model.config.max_length)
    # The decoding order: the rows with something to decode, in the queue's order.
    wanted = limits > 0
    order = tf.argsort(tf.cast(~wanted, tf.int32), stable=True)
    total = tf.reduce_sum(tf.cast(wanted, tf.int32))

    def refill(state):
        """Gives each free slot (a done sentence, or idle) the next row, if any."""
        free = state.beam.done
        position = state.next + tf.cumsum(tf.cast(free, tf.int32)) - 1
        load = free & (position < total)
        loaded = tf.gather(order, tf.minimum(position, queue - 1))
        rows = tf.where(load, loaded, tf.where(free, queue, state.rows))
        beam = _start(state.beam, load, settings)
        # An idle slot stays at step 0, inside every buffer, until a row comes.
        beam = beam._replace(step=tf.where(free, 0, beam.step))
        return state._replace(
            beam=beam, rows=rows, next=state.next + tf.reduce_sum(tf.cast(load, tf.int32))
        )

    def decoding(state):
        return tf.reduce_any(~state.beam.done)

    def body(state):
        row = tf.minimum(state.rows, queue - 1)  # an idle slot reads some row, unused
        cache = dict(
            state.beam.cache,
            cross_keys=[tf.gather(keys, row) for keys, _ in cross],
            cross_values=[tf.gather(values, row) for _, values in cross],
        )
        beam = beam_step(
            model,
            settings,
            state.beam._replace(cache=cache),
            tf.gather(memory_mask, row),
            tf.gather(limits, row),
            num_return,
        )
        finishing = beam.done & ~state.beam.done
        target = tf.where(finishing, state.rows, queue)[:, None]
        state = state._replace(
            beam=beam,
            ids=tf.tensor_scatter_nd_update(state.ids, target, beam.finished_ids),
            scores=tf.tensor_scatter_nd_update(state.scores, target, beam.finished_scores),
        )
        return (refill(state),)

    idle = tf.zeros([slots], tf.int32)
    beam = BeamState(
        step=idle,
        tokens=tf.fill([slots, k], settings.start_id),
        cache=model.init_cache(tf.gather(memory, idle), width, beam_size=k),
        alive_ids=tf.zeros([slots, k, width], tf.int32),
        alive_log_probs=tf.zeros([slots, k]),
        finished_ids=tf.zeros([slots, k, width], tf.int32),
        finished_scores=tf.zeros([slots, k]),
        done=tf.ones([slots], tf.bool),
    )
    state = StreamState(
        beam=beam,
        rows=tf.fill([slots], queue),
        next=tf.constant(0, tf.int32),
        ids=tf.zeros([queue + 1, k, width], tf.int32),
        scores=tf.zeros([queue + 1, k]),
    )
    (state,) = tf.while_loop(decoding, body, (refill(state),))
    return state.ids[:queue], state.scores[:queue]


def best_of_stream(model, src_ids, settings=PAPER_SETTINGS, slots=16):
    """`beam_stream`'s best hypothesis per row: ids (N, W) int32 and scores (N,)."""
    ids, scores = beam_stream(model, src_ids, settings, slots)
    return ids[:, 0], scores[:, 0]


# A queue of fewer sentences than this many rounds of its slots joins the next wider
# queue: a program of its own would cost more to compile (2-8 s on 2 cores) than its
# sentences lose by reading the wider caches.
ROUNDS_PER_PROGRAM = 4


def queues(sources, max_length, slots):
    """The queues `decode_queue` decodes: lists of indices into `sources` (1-D id
    arrays), one per source width (`compiled.source_bucket`), a width with fewer than
    ROUNDS_PER_PROGRAM · `slots` sources merged into the next wider one (the widest
    sources form the last queue, however few). The largest queue comes first (the
    others' programs compile while it decodes), each longest source first (the long
    decodings start early, so that a queue's last steps have short ones to keep its
    slots busy)."""
    order = sorted(range(len(sources)), key=lambda i: -len(sources[i]))
    by_width = {}
    for i in order:
        by_width.setdefault(compiled.source_bucket(len(sources[i]), max_length), []).append(i)
    merged, small = [], []
    for width in sorted(by_width):
        small = by_width[width] + small  # the wider sources first
        if len(small) >= ROUNDS_PER_PROGRAM * slots:
            merged.append(small)
            small = []
    if small:  # the widest sources, however few: no queue is wide enough for them
        merged.append(small)
    return sorted(merged, key=len, reverse=True)


def queue_shape(queue, sources):
    """The (rows, columns) a queue of those source indices is decoded with: its rows
    padded with empty sources to `compiled.batch_bucket`, so that a handful of queue
    sizes share programs, and its longest source."""
    return compiled.batch_bucket(len(queue)), max(1, max(len(sources[i]) for i in queue))


def decode_queue(model, sources, settings, slots=16, jit_compile=True, on_final=None):
    """Beam search of every source by `beam_stream`, in one queue per source width
    (`queues`); each queue's program compiled ahead on a helper thread
    (`compiled.CompileAhead`) while the queues before it decode.

    Args:
        model: a `Transformer`.
        sources: list of 1-D int arrays, the sources' ids without padding.
        settings: `DecodingSettings` with beam_size > 1.
        slots: sentences decoding side by side.
        jit_compile: compile with XLA.
        on_final: optional callback, called with the number of sources that became
            final after each queue (for a progress bar).

    Returns:
        ids: list of 1-D int32 arrays, one per source in the input's order (without
        [START], ending with [END] unless the row reached its limit); scores: list of
        float.
    """
    ids, scores = [None] * len(sources), [None] * len(sources)
    plan = [
        (queue, queue_shape(queue, sources))
        for queue in queues(sources, model.config.max_length, slots)
    ]
    args = (settings, slots)
    with compiled.CompileAhead(
        best_of_stream, model, [shape for _, shape in plan], args, jit_compile
    ):
        for queue, (rows, columns) in plan:
            src_ids = np.full((rows, columns), PAD_ID, np.int32)
            for row, i in enumerate(queue):
                src_ids[row, : len(sources[i])] = sources[i]
            queue_ids, queue_scores = (
                np.asarray(t)
                for t in compiled.decode_in_buckets(
                    best_of_stream, model, src_ids, args, jit_compile
                )
            )
            for row, i in enumerate(queue):
                length = int(np.sum(queue_ids[row] != PAD_ID))
                ids[i], scores[i] = queue_ids[row, :length], float(queue_scores[row])
            if on_final is not None:
                on_final(len(queue))
    return ids, scores
