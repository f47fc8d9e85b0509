"""Decoding: greedy search, beam search and sampling over the model's fixed-size cache.

`greedy_search`, `beam_search` and `sample` decode a batch eagerly, compiling their loop
once per model and settings. `greedy_loop`, `beam_loop` and `sample_loop` are the same
loops as plain functions, to call inside a tf.function, a SavedModel signature or a
TFLite conversion. For many sentences (`Translator.translate_many`), `continuous` runs
beam search over a queue, each slot taking the next sentence as soon as its own is done,
and `stragglers` decodes greedily in two passes, so that a few long rows do not hold up
their batches. `DecodingSettings`
(`rules.py`) holds the settings they share and the rules they follow: length limits,
banned tokens, min_length, the stop at [END].

This package may import TensorFlow, NumPy, `keras_transformer.constants`, `errors`,
`layers` (the cache writes, the per-sentence step) and `model` (for its id checks); it
reaches nothing above it (`translator`, `export`,
`runtimes`, `text`).
"""

from keras_transformer.constants import END_ID, START_ID
from keras_transformer.decoding.beam import beam_loop, beam_search, length_penalty
from keras_transformer.decoding.greedy import greedy_loop, greedy_search
from keras_transformer.decoding.rules import EXTRA_LENGTH, DecodingSettings
from keras_transformer.decoding.sampling import (
    Sampling,
    filter_logits,
    sample,
    sample_loop,
)
