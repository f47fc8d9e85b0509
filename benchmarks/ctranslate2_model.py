"""Our trained weights as a CTranslate2 model, to time the same computation in its engine.

CTranslate2 (the engine OpenNMT users deploy on CPUs) describes a Transformer with
`ctranslate2.specs.TransformerSpec`; this module fills one from a `kt.Transformer`:

    embeddings        E (vocab, d_model), scaled by √d_model as ours are
    positions         our interleaved sin/cos table (CTranslate2's own is not interleaved)
    self-attention    linear[0] = [W_Q; W_K; W_V] (3·d_model, d_model), linear[1] = W_O
    cross-attention   linear[0] = W_Q, linear[1] = [W_K; W_V], linear[2] = W_O
    feed-forward      linear_0 = W_1, linear_1 = W_2
    layer norms       after each sub-layer (post-norm, the paper's), or before it with a
                      final norm (norm_first)
    projection        W_out, or Eᵀ with a zero bias when the output is tied

CTranslate2 stores a linear map as (out, in), the transpose of a Keras kernel; our heads
are the d_k-wide slices of the projection in order, as CTranslate2 splits them. Tokens are
named by id ("[PAD]", "[UNK]", "[START]", "[END]", then "t4", "t5", ...), so ids go in
and come out unchanged. CTranslate2 is a benchmark-only extra (`pip install .[bench]`).
"""

import os

import numpy as np

from keras_transformer.constants import END_ID, PAD_ID, START_ID, UNK_ID
from keras_transformer.extras import import_extra
from keras_transformer.layers.embedding import sinusoidal_table

RESERVED = {PAD_ID: "[PAD]", UNK_ID: "[UNK]", START_ID: "[START]", END_ID: "[END]"}


def token_names(vocab_size):
    """The names of ids 0 .. vocab_size - 1 in the converted model's vocabularies."""
    return [RESERVED.get(i, f"t{i}") for i in range(vocab_size)]


def ids_to_tokens(ids):
    """(batch, len) 0-padded ids -> lists of token names, padding dropped."""
    return [[RESERVED.get(int(i), f"t{int(i)}") for i in row if i != PAD_ID] for row in ids]


def tokens_to_ids(tokens):
    """A list of token names -> int32 ids."""
    names = {name: i for i, name in RESERVED.items()}
    return np.array([names[t] if t in names else int(t[1:]) for t in tokens], np.int32)


def _linear(spec, kernel, bias):
    """Fills a LinearSpec from a Keras kernel (in, out) and bias (out,)."""
    spec.weight = np.ascontiguousarray(np.asarray(kernel, np.float32).T)
    spec.bias = np.asarray(bias, np.float32)


def _norm(spec, layer_norm):
    spec.gamma = np.asarray(layer_norm.gamma, np.float32)
    spec.beta = np.asarray(layer_norm.beta, np.float32)


def _attention(spec, attention, d_model, self_attention):
    query = np.reshape(attention.query_kernel, (d_model, d_model))
    query_bias = np.reshape(attention.query_bias, (d_model,))
    key, value = (np.reshape(attention.key_value_kernel[:, i], (d_model, d_model)) for i in (0, 1))
    key_bias, value_bias = (np.reshape(attention.key_value_bias[i], (d_model,)) for i in (0, 1))
    output = np.reshape(attention.output_kernel, (d_model, d_model))
    if self_attention:
        _linear(
            spec.linear[0],
            np.concatenate([query, key, value], 1),
            np.concatenate([query_bias, key_bias, value_bias]),
        )
        _linear(spec.linear[1], output, attention.output_bias)
    else:
        _linear(spec.linear[0], query, query_bias)
        _linear(
            spec.linear[1], np.concatenate([key, value], 1), np.concatenate([key_bias, value_bias])
        )
        _linear(spec.linear[2], output, attention.output_bias)


def _feed_forward(spec, feed_forward):
    _linear(spec.linear_0, feed_forward.inner.kernel, feed_forward.inner.bias)
    _linear(spec.linear_1, feed_forward.outer.kernel, feed_forward.outer.bias)


def convert(model, directory, quantization=None):
    """Writes `model` (a built float32 `kt.Transformer`) as a CTranslate2 model directory.

    Args:
        model: the Transformer.
        directory: where to write (created; an existing model there is replaced).
        quantization: None (float32) or a CTranslate2 quantization such as "int8".

    Returns:
        `directory`.
    """
    ctranslate2 = import_extra("ctranslate2", "bench")
    specs = ctranslate2.specs
    config = model.config
    d_model = config.d_model
    activation = {"relu": specs.Activation.RELU, "gelu": specs.Activation.GELU}[config.activation]
    spec = specs.TransformerSpec.from_config(
        config.num_layers, config.num_heads, pre_norm=config.norm_first, activation=activation
    )
    table = sinusoidal_table(config.max_length, d_model)
    for side, embedding, stack in (
        (spec.encoder, model.source_embedding, model.encoder),
        (spec.decoder, model.target_embedding, model.decoder),
    ):
        embeddings = side.embeddings[0] if isinstance(side.embeddings, list) else side.embeddings
        embeddings.weight = np.asarray(embedding.embeddings, np.float32)
        side.scale_embeddings = True
        side.position_encodings.encodings = table
        if config.norm_first:
            _norm(side.layer_norm, stack.final_norm)
    for layer_spec, layer in zip(spec.encoder.layer, model.encoder.encoder_layers):
        _attention(layer_spec.self_attention, layer.self_attention, d_model, True)
        _norm(layer_spec.self_attention.layer_norm, layer.self_attention_add_norm.layer_norm)
        _feed_forward(layer_spec.ffn, layer.feed_forward)
        _norm(layer_spec.ffn.layer_norm, layer.feed_forward_add_norm.layer_norm)
    for layer_spec, layer in zip(spec.decoder.layer, model.decoder.decoder_layers):
        _attention(layer_spec.self_attention, layer.self_attention, d_model, True)
        _norm(layer_spec.self_attention.layer_norm, layer.self_attention_add_norm.layer_norm)
        _attention(layer_spec.attention, layer.cross_attention, d_model, False)
        _norm(layer_spec.attention.layer_norm, layer.cross_attention_add_norm.layer_norm)
        _feed_forward(layer_spec.ffn, layer.feed_forward)
        _norm(layer_spec.ffn.layer_norm, layer.feed_forward_add_norm.layer_norm)
    if model.output_projection is None:
        _linear(
            spec.decoder.projection,
            np.asarray(model.target_embedding.embeddings).T,
            np.zeros(config.tgt_vocab_size, np.float32),
        )
    else:
        _linear(
            spec.decoder.projection,
            model.output_projection.kernel,
            model.output_projection.bias,
        )
    spec.config.unk_token = RESERVED[UNK_ID]
    spec.config.bos_token = RESERVED[START_ID]
    spec.config.eos_token = RESERVED[END_ID]
    spec.config.decoder_start_token = RESERVED[START_ID]
    spec.config.layer_norm_epsilon = config.layer_norm_epsilon
    spec.register_source_vocabulary(token_names(config.src_vocab_size))
    spec.register_target_vocabulary(token_names(config.tgt_vocab_size))
    spec.validate()
    spec.optimize(quantization=quantization)
    os.makedirs(directory, exist_ok=True)
    spec.save(directory)
    return directory
