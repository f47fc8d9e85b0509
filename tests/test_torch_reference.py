"""An independent reference: a trained `kt.Transformer`'s weights loaded into
`torch.nn.Transformer`, with the embeddings, positional encodings and output projection
written here from the paper (§3.4, §3.5), must give the same logits and the same greedy
translations.

    logits = Decoder(E_tgt[y] · √d_model + PE, Encoder(E_src[x] · √d_model + PE)) E_tgtᵀ

A model trained with a wrong mask, a missing √d_model, the other LayerNorm placement or a
different positional table still learns; only a second implementation tells it apart.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch

import keras_transformer as kt
from keras_transformer.constants import PAD_ID
from keras_transformer.data import numbers_corpus
from keras_transformer.decoding import END_ID, START_ID, greedy_search
from keras_transformer.text import WordPieceTokenizer

# (share_embeddings, tie_output, norm_first): the paper's model, then separate source
# and target vocabularies with an untied output layer in a pre-norm stack.
CONFIGS = {
    "paper": (True, True, False),
    "separate-untied-prenorm": (False, False, True),
}
SENTENCES = [
    "twenty-one",
    "seven thousand, three hundred and forty-six",
    "eighty",
    "one hundred and five",
    "nine thousand and twelve",
    "six",
]
MAX_OUTPUT = 24


def positional_table(length, d_model):
    """PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(same), §3.5."""
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, two_i / d_model)
    table = torch.empty(length, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle)
    return table


class TorchTransformer(torch.nn.Module):
    """Figure 1 around `torch.nn.Transformer`, in float64.

    A post-norm stack ends with its last layer's LayerNorm (the paper); a pre-norm stack
    needs one more LayerNorm after its last layer.
    """

    def __init__(self, cfg):
        super().__init__()
        self.d_model = cfg.d_model
        layer = dict(
            d_model=cfg.d_model,
            nhead=cfg.num_heads,
            dim_feedforward=cfg.d_ff,
            dropout=0.0,
            activation="relu",
            layer_norm_eps=cfg.layer_norm_epsilon,
            batch_first=True,
            norm_first=cfg.norm_first,
            dtype=torch.float64,
        )

        def final_norm():
            return (
                torch.nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_epsilon, dtype=torch.float64)
                if cfg.norm_first
                else None
            )

        # No nested tensors: padded source positions keep their values, as in ours.
        encoder = torch.nn.TransformerEncoder(
            torch.nn.TransformerEncoderLayer(**layer),
            cfg.num_layers,
            final_norm(),
            enable_nested_tensor=False,
        )
        decoder = torch.nn.TransformerDecoder(
            torch.nn.TransformerDecoderLayer(**layer), cfg.num_layers, final_norm()
        )
        self.transformer = torch.nn.Transformer(
            d_model=cfg.d_model,
            nhead=cfg.num_heads,
            custom_encoder=encoder,
            custom_decoder=decoder,
            batch_first=True,
        )
        self.target_embedding = torch.nn.Embedding(
            cfg.tgt_vocab_size, cfg.d_model, dtype=torch.float64
        )
        self.source_embedding = (
            self.target_embedding
            if cfg.share_embeddings
            else torch.nn.Embedding(cfg.src_vocab_size, cfg.d_model, dtype=torch.float64)
        )
        self.output_projection = (
            None
            if cfg.tie_output
            else torch.nn.Linear(cfg.d_model, cfg.tgt_vocab_size, dtype=torch.float64)
        )
        self.register_buffer("positional_encoding", positional_table(cfg.max_length, cfg.d_model))

    def embed(self, ids, embedding):
        """E[ids] · √d_model + PE (§3.4, §3.5)."""
        return embedding(ids) * math.sqrt(self.d_model) + self.positional_encoding[: ids.shape[1]]

    def forward(self, src, tgt_in):
        length = tgt_in.shape[1]
        # True = may NOT attend (torch's convention): position i never sees j > i (§3.2.3).
        future = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
        y = self.transformer(
            self.embed(src, self.source_embedding),
            self.embed(tgt_in, self.target_embedding),
            tgt_mask=future,
            src_key_padding_mask=src == PAD_ID,
            tgt_key_padding_mask=tgt_in == PAD_ID,
            memory_key_padding_mask=src == PAD_ID,
        )
        if self.output_projection is None:
            return y @ self.target_embedding.weight.T
        return self.output_projection(y)


def _tensor(variable):
    return torch.from_numpy(np.asarray(keras.ops.convert_to_numpy(variable), np.float64))


def _copy(parameter, value):
    assert parameter.shape == value.shape, (parameter.shape, value.shape)
    parameter.data.copy_(value)


def load_attention(reference, attention, d_model):
    """W^Q (d, h, d_k), W^{KV} (d, 2, h, d_k), W^O (h, d_k, d) into torch's packed
    in_proj (3d, d) and out_proj, which compute x Aᵀ + b; both order a head's d_k
    features contiguously, head after head."""
    kv = _tensor(attention.key_value_kernel)
    w_q, w_k, w_v = (
        _tensor(attention.query_kernel).reshape(d_model, d_model),
        kv[:, 0].reshape(d_model, d_model),
        kv[:, 1].reshape(d_model, d_model),
    )
    _copy(reference.in_proj_weight, torch.cat([w_q, w_k, w_v], dim=1).T)
    _copy(
        reference.in_proj_bias,
        torch.cat(
            [
                _tensor(attention.query_bias).reshape(-1),
                _tensor(attention.key_value_bias).reshape(-1),
            ]
        ),
    )
    _copy(reference.out_proj.weight, _tensor(attention.output_kernel).reshape(d_model, d_model).T)
    _copy(reference.out_proj.bias, _tensor(attention.output_bias))


def load_norm(reference, norm):
    _copy(reference.weight, _tensor(norm.gamma))
    _copy(reference.bias, _tensor(norm.beta))


def load_feed_forward(reference, feed_forward):
    _copy(reference.linear1.weight, _tensor(feed_forward.inner.kernel).T)
    _copy(reference.linear1.bias, _tensor(feed_forward.inner.bias))
    _copy(reference.linear2.weight, _tensor(feed_forward.outer.kernel).T)
    _copy(reference.linear2.bias, _tensor(feed_forward.outer.bias))


def torch_reference(model):
    """A `TorchTransformer` holding `model`'s weights."""
    cfg = model.config
    reference = TorchTransformer(cfg).eval()
    d = cfg.d_model
    for ours, theirs in zip(model.encoder.encoder_layers, reference.transformer.encoder.layers):
        load_attention(theirs.self_attn, ours.self_attention, d)
        load_norm(theirs.norm1, ours.self_attention_add_norm.layer_norm)
        load_feed_forward(theirs, ours.feed_forward)
        load_norm(theirs.norm2, ours.feed_forward_add_norm.layer_norm)
    for ours, theirs in zip(model.decoder.decoder_layers, reference.transformer.decoder.layers):
        load_attention(theirs.self_attn, ours.self_attention, d)
        load_norm(theirs.norm1, ours.self_attention_add_norm.layer_norm)
        load_attention(theirs.multihead_attn, ours.cross_attention, d)
        load_norm(theirs.norm2, ours.cross_attention_add_norm.layer_norm)
        load_feed_forward(theirs, ours.feed_forward)
        load_norm(theirs.norm3, ours.feed_forward_add_norm.layer_norm)
    if cfg.norm_first:
        load_norm(reference.transformer.encoder.norm, model.encoder.final_norm)
        load_norm(reference.transformer.decoder.norm, model.decoder.final_norm)
    _copy(reference.target_embedding.weight, _tensor(model.target_embedding.embeddings))
    if not cfg.share_embeddings:
        _copy(reference.source_embedding.weight, _tensor(model.source_embedding.embeddings))
    if not cfg.tie_output:
        _copy(reference.output_projection.weight, _tensor(model.output_projection.kernel).T)
        _copy(reference.output_projection.bias, _tensor(model.output_projection.bias))
    return reference


@torch.no_grad()
def torch_greedy(reference, src, max_length):
    """Plain greedy decoding without a cache: the whole prefix goes through the decoder
    again at every step. Padding and [START] are never chosen; a row stops after [END]
    and is padded from there. Returns the ids and each row's sum of log p(y_t | y_<t, x)."""
    tgt = torch.full((src.shape[0], 1), START_ID)
    finished = torch.zeros(src.shape[0], dtype=torch.bool)
    scores = torch.zeros(src.shape[0], dtype=torch.float64)
    for _ in range(max_length):
        log_probs = torch.log_softmax(reference(src, tgt)[:, -1], dim=-1)
        allowed = log_probs.clone()
        allowed[:, [PAD_ID, START_ID]] = -math.inf
        token = torch.where(finished, PAD_ID, allowed.argmax(dim=-1))
        scores += torch.where(finished, 0.0, log_probs.gather(1, token[:, None])[:, 0])
        tgt = torch.cat([tgt, token[:, None]], dim=1)
        finished |= token == END_ID
        if finished.all():
            break
    return tgt[:, 1:].numpy(), scores.numpy()


class Trained:
    """A tiny English -> French numbers model trained for a few epochs."""

    def __init__(self, share_embeddings, tie_output, norm_first):
        keras.utils.set_random_seed(0)
        corpus = numbers_corpus("fr", train_size=1500, dev_size=0, test_size=0, max_number=9999)
        sources = [source for source, _ in corpus.train]
        targets = [target for _, target in corpus.train]
        if share_embeddings:
            self.src_tokenizer = self.tgt_tokenizer = WordPieceTokenizer.train(
                sources + targets, vocab_size=200
            )
        else:
            self.src_tokenizer = WordPieceTokenizer.train(sources, vocab_size=120)
            self.tgt_tokenizer = WordPieceTokenizer.train(targets, vocab_size=150)
        src = self.src_ids(sources)
        tgt = self.tgt_tokenizer.tokenize(targets)
        rows = tgt.nrows()
        tgt = (
            tf.concat([tf.fill([rows, 1], START_ID), tgt, tf.fill([rows, 1], END_ID)], axis=1)
            .to_tensor(PAD_ID)
            .numpy()
        )
        self.model = kt.Transformer(
            num_layers=2,
            d_model=32,
            num_heads=4,
            d_ff=64,
            src_vocab_size=self.src_tokenizer.vocab_size,
            tgt_vocab_size=self.tgt_tokenizer.vocab_size,
            dropout=0.0,
            max_length=48,
            share_embeddings=share_embeddings,
            tie_output=tie_output,
            norm_first=norm_first,
        )
        self.model.compile(
            optimizer=keras.optimizers.Adam(3e-3), loss=kt.training.LabelSmoothedCrossEntropy(0.0)
        )
        self.model.fit((src, tgt[:, :-1]), tgt[:, 1:], batch_size=64, epochs=4, verbose=0)
        self.reference = torch_reference(self.model)

    def src_ids(self, sentences):
        return self.src_tokenizer.tokenize(sentences).to_tensor(PAD_ID).numpy().astype(np.int32)

    def tgt_in_ids(self, sentences):
        tgt = self.tgt_tokenizer.tokenize(sentences)
        tgt = tf.concat([tf.fill([tgt.nrows(), 1], START_ID), tgt], axis=1)
        return tgt.to_tensor(PAD_ID).numpy().astype(np.int32)


@pytest.fixture(scope="module", params=list(CONFIGS), ids=list(CONFIGS))
def trained(request):
    return Trained(*CONFIGS[request.param])


def test_logits_match_torch_on_a_padded_batch(trained):
    src = trained.src_ids(SENTENCES)
    tgt_in = trained.tgt_in_ids(
        [
            "vingt et un",
            "sept mille trois cent quarante-six",
            "quatre",
            "cent cinq",
            "neuf mille douze",
            "six",
        ]
    )
    assert (src == PAD_ID).any(axis=1).sum() >= 3 and (tgt_in == PAD_ID).any(axis=1).sum() >= 3
    ours = keras.ops.convert_to_numpy(trained.model((src, tgt_in), training=False))
    with torch.no_grad():
        theirs = trained.reference(
            torch.from_numpy(src).long(), torch.from_numpy(tgt_in).long()
        ).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)


def test_greedy_search_matches_uncached_torch_greedy(trained):
    src = trained.src_ids(SENTENCES)
    ours, our_scores = greedy_search(trained.model, src, max_length=MAX_OUTPUT, jit_compile=False)
    ours = ours.numpy()
    theirs, their_scores = torch_greedy(trained.reference, torch.from_numpy(src).long(), MAX_OUTPUT)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_allclose(our_scores.numpy(), their_scores, atol=1e-4, rtol=0)
    # A trained model: every sentence gets words before [END], and they differ.
    assert (ours[:, 0] != END_ID).all()
    assert len({tuple(row) for row in ours}) == len(SENTENCES)
