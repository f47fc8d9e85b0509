"""The step graphs both exports hold: the encoder and one decoding step, for a loop that
runs outside the graph (`kt.runtimes.step_loops`).

| graph | inputs | outputs |
|---|---|---|
| encoder | src_ids (b, s) int32 | memory_mask (b, 1, 1, s) bool, cross_keys_i Kᵀ (b, h, d_k, s) and cross_values_i (b, h, s, d_k) for each layer i < N |
| decoder_step | tgt_ids (b, 1) int32, step () int32, min_length () int32, self_keys_i and self_values_i (b, h, W, d_k), cross_keys_i, cross_values_i, memory_mask | token (b,) int32, log_prob (b,) float32, step_keys_i and step_values_i (b, h, 1, d_k) |
| beam_step | step, the state (see below), limits (b,) int32, self_keys_i and self_values_i (b, h, k·W, d_k), cross_keys_i, cross_values_i, memory_mask | next_<state>, step_keys_i and step_values_i (b, h, k, d_k) |

The beam state (`kt.runtimes.step_loops.BEAM_STATE`): tokens (b, k) int32, alive_ids
(b, k, W) int32, alive_log_probs (b, k) float32, finished_ids (b, k, W) int32,
finished_scores (b, k) float32, done (b,) bool and the cache's ancestry (b, k, W) int32;
beam_step is `kt.decoding.beam_step` with the export's beam size, α and min_length.
decoder_step chooses as `kt.decoding.greedy_loop` does (`greedy_choice`): `token` is
the argmax once [PAD], [START] and, before `min_length`, [END] are forbidden, and
`log_prob` its log-probability; the loop pads the rows that are done. Only two (b,)
tensors leave the graph per step, where the (b, V) log-probabilities cost a copy and a
NumPy pass over them.

A step reads the self-attention caches without writing them (`cache_writes("returned")`):
rows j·W + step are still zero, it attends over them and its own keys and values, and
returns those rows for the loop to write. The self-attention keys are K, untransposed
(b, h, rows, d_k), so that a written row is contiguous; the runtimes fold the transpose
into their matmul. The inputs and outputs are flat, one tensor per layer, named
`layer_name(kind, i)`: a signature of LiteRT takes no nested inputs, and a stacked cache
cost ONNX Runtime a Split and a Concat copy per step.
"""

import dataclasses

import tensorflow as tf

from keras_transformer.decoding.beam import BeamState, beam_step
from keras_transformer.decoding.greedy import greedy_choice
from keras_transformer.export.common import SRC_IDS_SPEC, WeightsModule, refused_by_gather
from keras_transformer.layers.attention import cache_writes
from keras_transformer.runtimes.step_loops import (
    BEAM_STATE,
    BEAM_STEP,
    ENCODER,
    GREEDY_STEP,
    layer_name,
)


def _per_layer(kind, tensors):
    """{layer_name(kind, i): tensor of layer i}."""
    return {layer_name(kind, i): tensor for i, tensor in enumerate(tensors)}


class StepGraphs(WeightsModule):
    """The step graphs of `model` (see the module docstring); `settings`: the
    `DecodingSettings` that beam_step follows.

    `function(graph)` is the tf.function of "encoder", "decoder_step" or "beam_step",
    with its flat input signature, for a converter."""

    def __init__(self, model, settings, name=None):
        super().__init__(model, name=name)
        self._settings = settings
        config = model.config
        h, d_k, k = config.num_heads, config.d_model // config.num_heads, settings.beam_size
        layers = range(config.num_layers)

        def per_layer(kind, shape):
            return [tf.TensorSpec(shape, tf.float32, name=layer_name(kind, i)) for i in layers]

        caches = [
            *per_layer("self_keys", [None, h, None, d_k]),
            *per_layer("self_values", [None, h, None, d_k]),
            *per_layer("cross_keys", [None, h, d_k, None]),
            *per_layer("cross_values", [None, h, None, d_k]),
            tf.TensorSpec([None, 1, 1, None], tf.bool, name="memory_mask"),
        ]
        step = tf.TensorSpec([], tf.int32, name="step")
        beam_state = {
            "tokens": tf.TensorSpec([None, k], tf.int32),
            "alive_ids": tf.TensorSpec([None, k, None], tf.int32),
            "alive_log_probs": tf.TensorSpec([None, k], tf.float32),
            "finished_ids": tf.TensorSpec([None, k, None], tf.int32),
            "finished_scores": tf.TensorSpec([None, k], tf.float32),
            "done": tf.TensorSpec([None], tf.bool),
            "ancestry": tf.TensorSpec([None, k, None], tf.int32),
        }
        self.input_signatures = {
            ENCODER: [SRC_IDS_SPEC],
            GREEDY_STEP: [
                tf.TensorSpec([None, 1], tf.int32, name="tgt_ids"),
                step,
                tf.TensorSpec([], tf.int32, name="min_length"),
                *caches,
            ],
            BEAM_STEP: [
                step,
                *(tf.TensorSpec(beam_state[n].shape, beam_state[n].dtype, n) for n in BEAM_STATE),
                tf.TensorSpec([None], tf.int32, name="limits"),
                *caches,
            ],
        }

    def function(self, graph):
        """The tf.function of `graph`, taking its inputs as flat, named tensors."""
        specs = self.input_signatures[graph]
        names = [spec.name for spec in specs]
        method = getattr(self, "_" + graph)

        def run(*tensors):
            return method(**dict(zip(names, tensors)))

        run.__name__ = graph
        return tf.function(run, input_signature=specs)

    def _cache(self, inputs, ancestry):
        layers = range(self.model.config.num_layers)
        return {
            kind: [inputs[layer_name(kind, i)] for i in layers]
            for kind in ("self_keys", "self_values", "cross_keys", "cross_values")
        } | {"ancestry": ancestry}

    @staticmethod
    def _rows(cache):
        """The step's rows of K and V, which "returned" writes put in place of the cache."""
        return {
            **_per_layer("step_keys", cache["self_keys"]),
            **_per_layer("step_values", cache["self_values"]),
        }

    def _encoder(self, src_ids):
        src_ids = refused_by_gather(src_ids, self.model.config.src_vocab_size)
        memory, memory_mask = self.model.encode(src_ids, training=False)
        cross = self.model.decoder.cross_cache(memory)
        return {
            "memory_mask": memory_mask,
            **_per_layer("cross_keys", [keys for keys, _ in cross]),
            **_per_layer("cross_values", [values for _, values in cross]),
        }

    def _decoder_step(self, tgt_ids, step, min_length, memory_mask, **inputs):
        # One hypothesis per sentence: its ancestry is all zeros.
        width = tf.shape(inputs[layer_name("self_values", 0)])[2]
        cache = self._cache(inputs, tf.zeros([tf.shape(tgt_ids)[0], 1, width], tf.int32))
        with cache_writes("returned"):
            logits, cache = self.model.decode_step(tgt_ids, step, cache, memory_mask)
        settings = dataclasses.replace(self._settings, min_length=min_length)
        token, log_prob = greedy_choice(settings, logits[:, 0], step)
        return {"token": token, "log_prob": log_prob, **self._rows(cache)}

    def _beam_step(self, step, limits, memory_mask, **inputs):
        state = BeamState(
            step=step,
            cache=self._cache(inputs, inputs["ancestry"]),
            **{name: inputs[name] for name in BEAM_STATE if name != "ancestry"},
        )
        with cache_writes("returned"):
            state = beam_step(self.model, self._settings, state, memory_mask, limits)
        return {
            **{f"next_{name}": getattr(state, name) for name in BEAM_STATE if name != "ancestry"},
            "next_ancestry": state.cache["ancestry"],
            **self._rows(state.cache),
        }
