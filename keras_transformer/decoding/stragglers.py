"""Decoding many sentences without letting a few long rows hold up their batches.

`Translator.translate_many` decodes greedily this way; beam search refills its batch
as sentences finish instead (`continuous`).

A compiled loop steps its whole batch until the last row is done. On real text a few
outputs run away (an undertrained model repeating a word up to the source + 50 limit)
and beam search keeps a sentence alive until no hypothesis can beat its best one, so one
row can keep 15 finished ones stepping for dozens of steps. Decoding therefore goes in
two passes that give the same result as one:

1. The sources, sorted by length, are decoded in batches, each for at most

       first_pass_steps(n) = FIRST_PASS_SCALE · n + FIRST_PASS_EXTRA     steps,

   n the batch's longest source. The rows whose decoding ended within that are final.
2. The rows that were cut (the stragglers) are decoded again from the start, sorted by
   length and batched together, until they end.

A row decodes to the same output alone and inside any batch (its limits come from its
own source, and a finished row is frozen), so each straggler's second decoding is the
one it would have had: the passes change the time, never the output. The step cap is a
tensor input of the compiled loop, so both passes run the same XLA programs.
"""

import numpy as np

from keras_transformer.constants import PAD_ID

FIRST_PASS_SCALE = 2
FIRST_PASS_EXTRA = 10


def first_pass_steps(longest_source):
    """The step cap of a first-pass batch whose longest source has that many tokens."""
    return FIRST_PASS_SCALE * longest_source + FIRST_PASS_EXTRA


def _batches(rows, sources, batch_size):
    """`rows` (indices into sources) sorted by source length, in batches."""
    rows = sorted(rows, key=lambda i: len(sources[i]))
    return [rows[start : start + batch_size] for start in range(0, len(rows), batch_size)]


def first_pass_shapes(sources, batch_size):
    """The (batch, longest source) of the first pass's batches, in decoding order: the
    programs `decode_in_two_passes` will need, known before it starts."""
    return [
        (len(batch), max(len(sources[i]) for i in batch))
        for batch in _batches(range(len(sources)), sources, batch_size)
    ]


def decode_in_two_passes(decode, sources, batch_size, max_steps, on_final=None):
    """Decodes every source, batch by batch, stragglers last (see the module docstring).

    Args:
        decode: `(src_ids (batch, n) int32, steps) -> (ids (batch, W), scores (batch,),
            done (batch,))`, a capped decoding loop
            (`compiled.decode_in_buckets(..., max_steps=steps)`).
        sources: list of 1-D int arrays, the sources' ids without padding.
        batch_size: sources per batch.
        max_steps: a cap no decoding reaches (at least every row's length limit), for
            the second pass.
        on_final: optional callback, called with the number of sources that became
            final (for a progress bar).

    Returns:
        ids: list of 1-D int32 arrays, one per source in the input's order (without
        [START], ending with [END] unless the row reached its limit); scores: list of
        float.
    """
    ids, scores = [None] * len(sources), [None] * len(sources)

    def decode_batches(rows, steps_of):
        """Decodes `rows` (indices into sources) in sorted batches; returns those cut."""
        cut = []
        for batch in _batches(rows, sources, batch_size):
            longest = max(len(sources[i]) for i in batch)
            src_ids = np.full((len(batch), max(longest, 1)), PAD_ID, np.int32)
            for row, i in enumerate(batch):
                src_ids[row, : len(sources[i])] = sources[i]
            batch_ids, batch_scores, done = (
                np.asarray(t) for t in decode(src_ids, steps_of(longest))
            )
            for row, i in enumerate(batch):
                if done[row]:
                    length = int(np.sum(batch_ids[row] != PAD_ID))
                    ids[i], scores[i] = batch_ids[row, :length], float(batch_scores[row])
                else:
                    cut.append(i)
            if on_final is not None:
                on_final(int(np.sum(done[: len(batch)])))
        return cut

    stragglers = decode_batches(range(len(sources)), first_pass_steps)
    left = decode_batches(stragglers, lambda longest: max_steps)
    if left:
        raise RuntimeError(f"{len(left)} rows still decoding after max_steps={max_steps}")
    return ids, scores
