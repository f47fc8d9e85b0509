import keras
import numpy as np
import pytest

from keras_transformer.layers import MultiHeadAttention, scaled_dot_product_attention


def numpy_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_rows_sum_to_one_and_masked_weights_are_zero():
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(2, 3, 5, 8)).astype("float32") for _ in range(3))
    mask = rng.random((2, 1, 5, 5)) > 0.4
    mask[..., 0] = True  # every row keeps one key
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    weights = np.asarray(weights)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    assert np.all(weights[np.broadcast_to(~mask, weights.shape)] == 0.0)
    expected_w = numpy_softmax(np.where(mask, q @ k.transpose(0, 1, 3, 2) / np.sqrt(8), -np.inf))
    np.testing.assert_allclose(weights, expected_w, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out), expected_w @ v, atol=1e-5)


def test_fully_masked_row_gives_zeros_not_nan():
    q = k = v = np.ones((1, 2, 4), "float32")
    mask = np.array([[[True, False], [False, False]]])
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    assert not np.isnan(np.asarray(out)).any()
    np.testing.assert_array_equal(np.asarray(weights)[0, 1], 0.0)
    np.testing.assert_array_equal(np.asarray(out)[0, 1], 0.0)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_masking_is_safe_in_half_precision(dtype):
    q = k = v = keras.ops.cast(np.random.default_rng(1).normal(size=(1, 3, 4)), dtype)
    mask = np.tril(np.ones((3, 3), bool))[None]
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    assert np.isfinite(keras.ops.convert_to_numpy(keras.ops.cast(out, "float32"))).all()
    assert np.asarray(weights)[0, 0, 1:].max() == 0.0


def numpy_multi_head(mha, query, key_value, mask):
    """The paper's equations with the layer's weights, head by head."""
    wq, bq = np.asarray(mha.query_kernel), np.asarray(mha.query_bias)
    wkv, bkv = np.asarray(mha.key_value_kernel), np.asarray(mha.key_value_bias)
    wo, bo = np.asarray(mha.output_kernel), np.asarray(mha.output_bias)
    heads = []
    for i in range(mha.num_heads):
        q = query @ wq[:, i] + bq[i]
        k = key_value @ wkv[:, 0, i] + bkv[0, i]
        v = key_value @ wkv[:, 1, i] + bkv[1, i]
        logits = q @ k.transpose(0, 2, 1) / np.sqrt(mha.head_dim)
        logits = np.where(mask, logits, -np.inf)
        heads.append(numpy_softmax(logits) @ v)
    concat = np.concatenate(heads, axis=-1)
    return concat @ wo.reshape(-1, mha.d_model) + bo


def test_multi_head_attention_matches_numpy_equations():
    rng = np.random.default_rng(2)
    mha = MultiHeadAttention(num_heads=4, d_model=16)
    query = rng.normal(size=(2, 5, 16)).astype("float32")
    memory = rng.normal(size=(2, 7, 16)).astype("float32")
    mha.build(query.shape, memory.shape)
    # Biases start at zero: random ones, so that each must land on its own projection.
    for bias in (mha.query_bias, mha.key_value_bias, mha.output_bias):
        bias.assign(rng.normal(size=bias.shape).astype("float32"))
    mask = np.ones((2, 1, 5, 7), bool)
    mask[1, ..., 5:] = False
    cross = mha(query, memory, attention_mask=mask)
    np.testing.assert_allclose(
        np.asarray(cross), numpy_multi_head(mha, query, memory, mask[:, 0]), atol=1e-5
    )
    # Self-attention takes the fused Q/K/V path; it must equal the same equations.
    self_mask = np.tril(np.ones((5, 5), bool))[None, None]
    out = mha(query, attention_mask=self_mask)
    np.testing.assert_allclose(
        np.asarray(out), numpy_multi_head(mha, query, query, self_mask[:, 0]), atol=1e-5
    )


def test_multi_head_attention_weights_shape_and_param_count():
    mha = MultiHeadAttention(num_heads=8, d_model=64)
    out, weights = mha(
        np.zeros((3, 4, 64), "float32"),
        np.zeros((3, 6, 64), "float32"),
        return_attention_scores=True,
    )
    assert out.shape == (3, 4, 64) and weights.shape == (3, 8, 4, 6)
    assert mha.count_params() == 4 * (64 * 64 + 64)


def test_kernel_init_uses_the_papers_matrix_fans():
    mha = MultiHeadAttention(num_heads=8, d_model=512)
    mha.build((None, None, 512))
    limit = np.sqrt(6.0 / (512 + 512))
    for kernel in (mha.query_kernel, mha.key_value_kernel, mha.output_kernel):
        values = np.asarray(kernel)
        assert values.max() <= limit and values.max() > 0.9 * limit
    kv = np.asarray(mha.key_value_kernel)
    assert not np.allclose(kv[:, 0], kv[:, 1])


def test_cached_self_attention_equals_full_causal_attention():
    rng = np.random.default_rng(3)
    mha = MultiHeadAttention(num_heads=2, d_model=8)
    x = rng.normal(size=(2, 4, 8)).astype("float32")
    full = np.asarray(mha(x, attention_mask=np.tril(np.ones((4, 4), bool))[None, None]))
    keys, values = np.zeros((2, 2, 4, 6), "float32"), np.zeros((2, 2, 6, 4), "float32")
    for t in range(4):
        mask = (np.arange(6) <= t)[None, None, None, :]
        out, (keys, values), _ = mha.call_cached(
            x[:, t : t + 1], (keys, values), attention_mask=mask, cache_index=t
        )
        np.testing.assert_allclose(np.asarray(out)[:, 0], full[:, t], atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        MultiHeadAttention(num_heads=3, d_model=16)
    with pytest.raises(ValueError, match="d_model=16"):
        MultiHeadAttention(num_heads=2, d_model=16)(np.zeros((1, 2, 8), "float32"))


def test_config_round_trip():
    mha = MultiHeadAttention(num_heads=2, d_model=8, dropout=0.2, name="mha")
    clone = MultiHeadAttention.from_config(mha.get_config())
    assert clone.get_config() == mha.get_config()


def test_seeded_initializer_gives_four_different_matrices():
    mha = MultiHeadAttention(
        num_heads=2, d_model=8, kernel_initializer=keras.initializers.GlorotUniform(seed=3)
    )
    mha.build((None, None, 8))
    kv = np.asarray(mha.key_value_kernel)
    matrices = [
        np.asarray(mha.query_kernel).reshape(8, 8),
        kv[:, 0].reshape(8, 8),
        kv[:, 1].reshape(8, 8),
        np.asarray(mha.output_kernel).reshape(8, 8),
    ]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.allclose(matrices[i], matrices[j])


def test_both_cache_writes_fill_the_same_cache():
    # Catches: "slices" writing hypothesis j anywhere but position j·W + t (an off-by-one,
    # the blocks swapped, keys written untransposed), which the decoding tests under XLA
    # would only show as different translations.
    import tensorflow as tf

    from keras_transformer.layers.attention import cache_writes

    rng = np.random.default_rng(5)
    mha = MultiHeadAttention(num_heads=2, d_model=8)
    mha.build((None, None, 8))
    x = rng.normal(size=(3, 2, 8)).astype("float32")  # 3 sentences, k = 2 hypotheses
    keys = rng.normal(size=(3, 2, 4, 10)).astype("float32")  # W = 5 positions each
    values = rng.normal(size=(3, 2, 10, 4)).astype("float32")
    mask = np.ones((3, 1, 2, 10), bool)

    def step(mode):
        @tf.function(jit_compile=True)
        def run(x, keys, values):
            with cache_writes(mode):
                return mha.call_cached(x, (keys, values), attention_mask=mask, cache_index=3)

        out, (k, v), _ = run(x, keys, values)
        return np.asarray(out), np.asarray(k), np.asarray(v)

    scattered, sliced = step("scatter"), step("slices")
    for a, b in zip(scattered, sliced):
        np.testing.assert_allclose(a, b, atol=1e-6)
    changed = np.any(scattered[1] != keys, axis=(0, 1, 2))
    assert np.flatnonzero(changed).tolist() == [3, 8]  # positions j·W + 3 of Kᵀ
    with pytest.raises(ValueError, match="one of"):
        with cache_writes("rows"):
            pass


@pytest.mark.parametrize("hypotheses", [1, 3])
def test_returned_cache_writes_attend_as_the_written_cache(hypotheses):
    # Catches, in the step graphs the exports trace with "returned": the step's own key
    # left out of the logits (its row then scores 0), its own value left out of the
    # output, the one-hot at t for every hypothesis instead of j·W + t (k = 3 fails),
    # the returned key transposed, a position per sentence let through.
    from keras_transformer.layers.attention import cache_writes

    rng = np.random.default_rng(6)
    mha = MultiHeadAttention(num_heads=2, d_model=8)
    mha.build((None, None, 8))
    k, width, t = hypotheses, 6, 3
    x = rng.normal(size=(3, k, 8)).astype("float32")
    keys = rng.normal(size=(3, 2, 4, k * width)).astype("float32")  # Kᵀ, as the model keeps it
    values = rng.normal(size=(3, 2, k * width, 4)).astype("float32")
    for j in range(k):  # positions t.. of every block not written yet
        keys[..., j * width + t : (j + 1) * width] = 0.0
        values[:, :, j * width + t : (j + 1) * width] = 0.0
    # Hypothesis j attends to its own position t and to random earlier ones of any block.
    mask = rng.random((3, 1, k, k * width)) < 0.5
    mask &= np.tile(np.arange(width) < t, k)
    mask[:, :, np.arange(k), np.arange(k) * width + t] = True

    with cache_writes("scatter"):
        out, (written_keys, written_values), weights = mha.call_cached(
            x, (keys, values), attention_mask=mask, cache_index=t
        )
    with cache_writes("returned"):
        own_out, (own_key, own_value), own_weights = mha.call_cached(
            x, (keys.transpose(0, 1, 3, 2), values), attention_mask=mask, cache_index=t
        )
    np.testing.assert_allclose(own_out, out, atol=1e-5)
    np.testing.assert_allclose(own_weights, weights, atol=1e-6)
    assert own_key.shape == own_value.shape == (3, 2, k, 4)
    rows = np.arange(k) * width + t
    np.testing.assert_allclose(own_key, np.asarray(written_keys)[..., rows].transpose(0, 1, 3, 2))
    np.testing.assert_allclose(own_value, np.asarray(written_values)[:, :, rows], atol=1e-6)
    with pytest.raises(ValueError, match="one scalar position"):
        with cache_writes("returned"):
            mha.call_cached(x, (keys, values), cache_index=np.full([3], t, np.int32))
