import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_transformer as kt


def tiny(**overrides):
    args = dict(
        num_layers=2,
        d_model=16,
        num_heads=2,
        d_ff=32,
        src_vocab_size=30,
        tgt_vocab_size=30,
        dropout=0.0,
        max_length=32,
    )
    args.update(overrides)
    return kt.Transformer(**args)


def random_ids(shape, vocab=30, seed=0):
    return np.random.default_rng(seed).integers(4, vocab, shape).astype("int32")


def expected_parameters(cfg):
    """Parameters from the dimensions, written out: shared tied embedding, per-layer
    attention (4 projections with bias), FFN (2 with bias), LayerNorms (γ, β)."""
    d, f, n, v = cfg.d_model, cfg.d_ff, cfg.num_layers, cfg.tgt_vocab_size
    embedding = v * d
    attention = 4 * (d * d + d)
    ffn = d * f + f + f * d + d
    norm = 2 * d
    encoder_layer = attention + ffn + 2 * norm
    decoder_layer = 2 * attention + ffn + 3 * norm
    return embedding + n * (encoder_layer + decoder_layer)


@pytest.mark.parametrize("preset,expected", [("base", 63_082_496), ("big", 214_245_376)])
def test_paper_parameter_counts(preset, expected):
    model = kt.Transformer.from_preset(preset, src_vocab_size=37000, tgt_vocab_size=37000)
    model.build()
    assert model.count_params() == expected_parameters(model.config) == expected


def test_untied_separate_vocabularies_add_their_matrices():
    tied = tiny()
    untied = tiny(src_vocab_size=40, share_embeddings=False, tie_output=False)
    tied.build()
    untied.build()
    extra = 40 * 16 + (16 * 30 + 30)  # source embedding + output projection W, b
    assert untied.count_params() == tied.count_params() + extra
    logits = untied((random_ids((2, 5), 40), random_ids((2, 4))))
    assert logits.shape == (2, 4, 30)


def test_presets_and_config():
    cfg = kt.TransformerConfig.from_preset("big")
    assert (cfg.num_layers, cfg.d_model, cfg.d_ff, cfg.num_heads, cfg.dropout) == (
        6,
        1024,
        4096,
        16,
        0.3,
    )
    assert cfg.head_dim == 64
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        kt.TransformerConfig.from_preset("huge")
    with pytest.raises(ValueError, match="share_embeddings=False"):
        kt.TransformerConfig(src_vocab_size=10, tgt_vocab_size=12)
    assert not kt.TransformerConfig.from_preset(
        "tiny", src_vocab_size=10, tgt_vocab_size=12
    ).share_embeddings


def test_no_causal_leak_in_the_logits():
    model = tiny()
    src = random_ids((2, 6))
    tgt = random_ids((2, 8), seed=1)
    changed = tgt.copy()
    changed[:, 5:] = random_ids((2, 3), seed=2)
    a = np.asarray(model((src, tgt)))
    b = np.asarray(model((src, changed)))
    np.testing.assert_allclose(a[:, :5], b[:, :5], atol=1e-6)
    assert np.abs(a[:, 5:] - b[:, 5:]).max() > 1e-4


def test_no_causal_leak_in_gradients_with_dropout():
    model = tiny(dropout=0.3, attention_dropout=0.2)
    src = random_ids((1, 6))
    tgt = random_ids((1, 7), seed=1)
    i = 3
    memory, memory_mask = model.encode(src)
    embedded = model.target_embedding(tgt)
    with tf.GradientTape() as tape:
        tape.watch(embedded)
        x = model.target_dropout(embedded + model.positional_encoding(embedded), training=True)
        y = model.decoder(
            x, memory, self_mask=kt.layers.causal_mask(7), memory_mask=memory_mask, training=True
        )
        logit_sum = tf.reduce_sum(model.project(y)[:, i])
    grad = tape.gradient(logit_sum, embedded).numpy()
    assert np.all(grad[:, i + 1 :] == 0.0)
    assert np.abs(grad[:, : i + 1]).max() > 0.0


def test_source_padding_invariance():
    model = tiny()
    src = random_ids((2, 5))
    tgt = random_ids((2, 4), seed=1)
    padded = np.concatenate([src, np.zeros((2, 7), "int32")], axis=1)
    np.testing.assert_allclose(
        np.asarray(model((src, tgt))), np.asarray(model((padded, tgt))), atol=1e-5
    )


def test_xla_and_eager_forward_agree():
    model = tiny(norm_first=True)
    inputs = (random_ids((3, 9)), random_ids((3, 7), seed=1))
    eager = np.asarray(model(inputs))
    xla = np.asarray(tf.function(lambda s, t: model((s, t)), jit_compile=True)(*inputs))
    np.testing.assert_allclose(eager, xla, atol=1e-5)


def test_keras_file_round_trip_is_exact(tmp_path):
    model = tiny(share_embeddings=False, src_vocab_size=33, norm_first=True, activation="gelu")
    inputs = (random_ids((2, 6), 33), random_ids((2, 5), seed=1))
    before = np.asarray(model(inputs))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, kt.Transformer) and loaded.config == model.config
    np.testing.assert_array_equal(np.asarray(loaded(inputs)), before)


@pytest.mark.parametrize(
    "bad,match",
    [
        (
            np.zeros((2, 7), "float32"),
            r"src ids must be int32 of shape \(batch, length\); got float32 \(2, 7\)",
        ),
        (np.zeros((7,), "int32"), r"got int32 \(7,\)"),
        (np.ones((1, 40), "int32"), "longer than the model's max_length=32"),
        (np.full((1, 3), 30, "int32"), r"\[0, 30\)"),
        (np.full((1, 3), -1, "int32"), r"\[0, 30\)"),
    ],
)
def test_bad_source_ids(bad, match):
    with pytest.raises(ValueError, match=match):
        tiny()((bad, random_ids((bad.shape[0] if bad.ndim else 1, 3))))


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="d_model must be divisible by num_heads"):
        tiny(d_model=18, num_heads=4)
    with pytest.raises(ValueError, match=r"inputs \(src_ids, tgt_in_ids\)"):
        tiny()(random_ids((1, 3)))
    with pytest.raises(ValueError, match="max_length is 32"):
        model = tiny()
        memory, _ = model.encode(random_ids((1, 3)))
        model.init_cache(memory, 33)


def test_decode_step_equals_teacher_forced_decoder():
    model = tiny(norm_first=True)
    src, tgt = random_ids((2, 6)), random_ids((2, 5), seed=1)
    memory, memory_mask = model.encode(src)
    full = np.asarray(model.decode(tgt, memory, memory_mask))
    cache = model.init_cache(memory, 8)
    for t in range(5):
        logits, cache = model.decode_step(tgt[:, t : t + 1], t, cache, memory_mask)
        np.testing.assert_allclose(np.asarray(logits)[:, 0], full[:, t], atol=1e-5)


def reverse_task(n, length=8, vocab=20, seed=0):
    src = random_ids((n, length), vocab, seed)
    tgt = src[:, ::-1]
    tgt_in = np.concatenate([np.full((n, 1), 2, "int32"), tgt], axis=1)
    tgt_out = np.concatenate([tgt, np.full((n, 1), 3, "int32")], axis=1)
    return (src, tgt_in), tgt_out


@pytest.mark.slow
def test_tiny_model_learns_to_reverse_with_xla_fit():
    keras.utils.set_random_seed(0)
    model = kt.Transformer(
        num_layers=2,
        d_model=64,
        num_heads=4,
        d_ff=128,
        src_vocab_size=20,
        tgt_vocab_size=20,
        dropout=0.0,
        max_length=16,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=kt.training.LabelSmoothedCrossEntropy(0.0),
        metrics=[kt.training.MaskedAccuracy()],
        jit_compile=True,
    )
    x, y = reverse_task(4096)
    model.fit(x, y, batch_size=64, epochs=5, verbose=0)
    x_test, y_test = reverse_task(512, seed=1)
    _, accuracy = model.evaluate(x_test, y_test, batch_size=128, verbose=0)
    assert accuracy >= 0.99


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_with_float32_logits(policy):
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    model = tiny()
    optimizer = keras.optimizers.Adam(1e-3)
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer, loss=kt.training.LabelSmoothedCrossEntropy(), jit_compile=True
    )
    x, y = reverse_task(256, vocab=30)
    history = model.fit(x, y, batch_size=32, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    logits, weights = model.decode(x[1], *model.encode(x[0]), return_attention_scores=True)
    assert logits.dtype == "float32" and weights[0].dtype == "float32"
    assert model.encoder.encoder_layers[0].self_attention.compute_dtype == policy[6:]
    assert all(w.dtype == "float32" for w in model.weights)


# Table 3 of the paper (N, d_model, d_ff, h) with its parameter counts, and §5.1's
# shared English-German vocabulary of "about 37000 tokens".
TABLE_3 = {
    "base": dict(n=6, d_model=512, d_ff=2048, h=8, millions=65),
    "big": dict(n=6, d_model=1024, d_ff=4096, h=16, millions=213),
}
PAPER_VOCABULARY = 37000


def figure_1_layers(n, d_model, d_ff, h):
    """Parameters of the 2N layers of Figure 1, counted from the paper's matrices.

    Multi-head attention (§3.2.2): per head W_i^Q, W_i^K ∈ R^{d_model×d_k}, W_i^V ∈
    R^{d_model×d_v}, then W^O ∈ R^{h·d_v×d_model}, each with a bias vector as our layers
    have them. FFN (§3.3): W₁, b₁, W₂, b₂. LayerNorm: a gain and a bias per feature.
    An encoder layer has one attention and 2 LayerNorms; a decoder layer two
    attentions and 3 LayerNorms.
    """
    d_k = d_v = d_model // h
    heads = h * (2 * (d_model * d_k + d_k) + d_model * d_v + d_v)
    attention_biases = h * (2 * d_k + d_v) + d_model
    attention = heads + h * d_v * d_model + d_model
    ffn_biases = d_ff + d_model
    ffn = d_model * d_ff + d_ff * d_model + ffn_biases
    layer_norm = 2 * d_model
    return dict(
        encoder=n * (attention + ffn + 2 * layer_norm),
        decoder=n * (2 * attention + ffn + 3 * layer_norm),
        biases=n * (3 * attention_biases + 2 * ffn_biases),
        layer_norms=n * 5 * layer_norm,
    )


@pytest.mark.parametrize("preset", ["base", "big"])
def test_parameter_counts_from_table_3(preset):
    """The presets hold exactly Figure 1's parameters at Table 3's sizes: one
    vocabulary × d_model matrix shared by source, target and output (§3.4), and the
    encoder and decoder layers; the README quotes the biases and LayerNorms."""
    sizes = dict(TABLE_3[preset])
    del sizes["millions"]
    model = kt.Transformer.from_preset(
        preset, src_vocab_size=PAPER_VOCABULARY, tgt_vocab_size=PAPER_VOCABULARY
    )
    model.build()
    parts = figure_1_layers(**sizes)
    embedding = PAPER_VOCABULARY * sizes["d_model"]
    assert model.target_embedding.count_params() == embedding
    assert model.encoder.count_params() == parts["encoder"]
    assert model.decoder.count_params() == parts["decoder"]
    assert model.count_params() == embedding + parts["encoder"] + parts["decoder"]
    counts = {}
    for weight in model.weights:
        name = weight.path.rsplit("/", 1)[-1]
        kind = (
            "layer_norms"
            if name in ("gamma", "beta")
            else "biases"
            if name.endswith("bias")
            else "other"
        )
        counts[kind] = counts.get(kind, 0) + int(np.prod(weight.shape))
    assert counts["biases"] == parts["biases"]
    assert counts["layer_norms"] == parts["layer_norms"]
    readme = {"base": (63_082_496, 67_584, 30_720), "big": (214_245_376, 135_168, 61_440)}
    assert (model.count_params(), parts["biases"], parts["layer_norms"]) == readme[preset]
    # The README's gaps to the paper (1.9 M fewer, 1.2 M more) and "under 0.2 M".
    gap = model.count_params() - TABLE_3[preset]["millions"] * 10**6
    assert round(gap / 10**5) == {"base": -19, "big": 12}[preset]
    assert parts["biases"] + parts["layer_norms"] < 200_000


def vocabularies_matching_the_paper(preset, matrices):
    """The vocabulary sizes V for which the layers plus `matrices` V × d_model
    embedding matrices round to the paper's count in millions."""
    sizes = dict(TABLE_3[preset])
    millions = sizes.pop("millions")
    parts = figure_1_layers(**sizes)
    layers = parts["encoder"] + parts["decoder"]
    per_token = matrices * sizes["d_model"]
    low = -(-(millions * 10**6 - 500_000 - layers) // per_token)
    high = -(-(millions * 10**6 + 500_000 - layers) // per_token)
    return range(low, high)


def test_no_vocabulary_gives_both_of_the_papers_counts():
    """The README's account of 65 M and 213 M: with one shared matrix 65 M needs
    39,769-41,721 tokens and 213 M 35,296-36,272; two or three matrices (separate
    source, target, output) do not reconcile them either."""
    assert vocabularies_matching_the_paper("base", 1) == range(39_769, 41_722)
    assert vocabularies_matching_the_paper("big", 1) == range(35_296, 36_273)
    for matrices in (1, 2, 3):
        base = vocabularies_matching_the_paper("base", matrices)
        big = vocabularies_matching_the_paper("big", matrices)
        assert base.start > big.stop, matrices


@pytest.mark.parametrize("epsilon", [0.0, -1e-6, float("inf"), float("nan")])
def test_layer_norm_epsilon_must_be_positive_and_finite(epsilon):
    # Catches: an infinite epsilon accepted (every LayerNorm then divides by infinity
    # and the model outputs its biases whatever the input), e.g. from
    # `--set layer_norm_epsilon=Infinity`.
    with pytest.raises(
        kt.errors.InputError, match="layer_norm_epsilon must be positive and finite"
    ):
        kt.TransformerConfig.from_preset("tiny", layer_norm_epsilon=epsilon)


def test_a_keras_file_saved_before_block_settings_loads_the_same():
    """A .keras file written by the model before BlockSettings (commit f9e83d6: layers
    with their own constructor arguments) loads with every setting and gives the logits
    it gave then.

    Catches: a saved setting lost on its way to the layers (e.g. AddNorm.from_settings
    ignoring layer_norm_epsilon, so the loaded model normalises with 1e-6, not 1e-5)."""
    fixtures = pathlib.Path(__file__).parent / "fixtures"
    loaded = keras.saving.load_model(fixtures / "transformer_before_block_settings.keras")
    expected = np.load(fixtures / "transformer_before_block_settings.npz")
    assert loaded.config == kt.TransformerConfig(
        num_layers=2,
        d_model=8,
        num_heads=2,
        d_ff=16,
        src_vocab_size=13,
        tgt_vocab_size=11,
        share_embeddings=False,
        tie_output=False,
        norm_first=True,
        activation="gelu",
        layer_norm_epsilon=1e-5,
        attention_dropout=0.1,
        dropout=0.2,
        max_length=16,
    )
    logits = loaded((expected["src"], expected["tgt_in"]), training=False)
    np.testing.assert_allclose(np.asarray(logits), expected["logits"], atol=1e-6)
