"""Tutorial 01 — attention from scratch, beside §3.2 of the paper.

Run:  python tutorials/01_attention_from_scratch.py [--tiny] [--output-dir DIR]

1. Scaled dot-product attention, softmax(Q Kᵀ / √d_k) V, written in NumPy line by line,
   checked against `kt.layers.scaled_dot_product_attention`.
2. Why the 1/√d_k: without it, dot products of d_k-dimensional unit vectors have
   variance d_k and the softmax saturates.
3. Masks: padding and causal, and what a masked weight becomes (exactly 0).
4. Multi-head attention: h heads of width d_model / h, each a projection of the same
   input, concatenated and projected by W^O — checked against our layer.
5. Positional encoding (§3.5): PE(pos, 2i) = sin(pos / 10000^(2i/d_model)),
   PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model)), in NumPy and from our layer.
6. A heat map of the heads' weights, saved as PNG.

`main` returns what it computed (inputs, the NumPy results and the library's), which
tests/test_tutorials.py checks against the paper's equations.
"""

import argparse
import os

import numpy as np

import keras_transformer as kt
from keras_transformer import plots


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attention(q, k, v, mask=None):
    """Equation (1) in NumPy: q (n, d_k), k (m, d_k), v (m, d_v) -> (n, d_v), (n, m)."""
    scores = q @ k.T / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = softmax(scores)
    return weights @ v, weights


def positional_encoding(length, d_model):
    """§3.5 in NumPy: (length, d_model), sin at even columns 2i, cos at odd 2i + 1."""
    pos = np.arange(length)[:, None]
    two_i = np.arange(0, d_model, 2)[None, :]
    angles = pos / np.power(10000.0, two_i / d_model)
    table = np.zeros((length, d_model))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles)
    return table


def main(tiny=False, output_dir="tutorial_output"):
    rng = np.random.default_rng(0)
    d_model, num_heads, length = (16, 2, 5) if tiny else (64, 4, 8)
    d_k = d_model // num_heads

    print("1. scaled dot-product attention")
    q, k, v = (rng.normal(size=(length, d_k)).astype("float32") for _ in range(3))
    ours, weights = attention(q, k, v)
    library, library_weights = kt.layers.scaled_dot_product_attention(q, k, v)
    print(f"   max |NumPy - library| = {np.abs(ours - np.asarray(library)).max():.2e}")
    assert np.allclose(ours, np.asarray(library), atol=1e-5)

    print("2. why divide by √d_k")
    for width in (4, 64, 512):
        a, b = rng.normal(size=(2, 10000, width))
        dots = (a * b).sum(-1)
        print(
            f"   d_k={width:4d}: var(q·k) = {dots.var():7.1f}, "
            f"var(q·k/√d_k) = {(dots / np.sqrt(width)).var():.2f}"
        )

    print("3. a causal mask: position i sees positions <= i")
    causal = np.tril(np.ones((length, length), bool))
    _, masked = attention(q, k, v, causal)
    print(np.array2string(masked[:4, :4], precision=2, suppress_small=True))
    assert np.all(masked[~causal] == 0)

    print("4. multi-head attention = h small attentions, concatenated, projected")
    layer = kt.layers.MultiHeadAttention(num_heads=num_heads, d_model=d_model)
    x = rng.normal(size=(1, length, d_model)).astype("float32")
    output, head_weights = layer(x, return_attention_scores=True)
    wq, wkv = np.asarray(layer.query_kernel), np.asarray(layer.key_value_kernel)
    heads = []
    for i in range(num_heads):  # biases start at zero, so only the kernels matter here
        head, _ = attention(x[0] @ wq[:, i], x[0] @ wkv[:, 0, i], x[0] @ wkv[:, 1, i])
        heads.append(head)
    by_hand = np.concatenate(heads, -1) @ np.asarray(layer.output_kernel).reshape(d_model, d_model)
    print(f"   max |by hand - layer| = {np.abs(by_hand - np.asarray(output)[0]).max():.2e}")
    assert np.allclose(by_hand, np.asarray(output)[0], atol=1e-4)

    print("5. positional encoding: sin at even columns, cos at odd ones")
    ours_pe = positional_encoding(length, d_model)
    library_pe = np.asarray(kt.layers.SinusoidalPositionalEncoding(max_length=length)(x))
    print(np.array2string(ours_pe[:4, :4], precision=2, suppress_small=True))
    assert np.allclose(ours_pe, library_pe, atol=1e-6)

    tokens = [f"t{i}" for i in range(length)]
    path = plots.plot_attention(
        np.asarray(head_weights)[0],
        tokens,
        tokens,
        os.path.join(output_dir, "01_attention_heads.png"),
        title="self-attention weights per head (untrained)",
    )
    print(f"6. heat map written to {path}")
    return dict(
        q=q,
        k=k,
        v=v,
        attention=ours,
        attention_weights=weights,
        library_attention=np.asarray(library),
        causal_mask=causal,
        causal_weights=masked,
        x=x,
        layer=layer,
        multi_head=by_hand,
        library_multi_head=np.asarray(output)[0],
        positional_encoding=ours_pe,
        library_positional_encoding=library_pe,
        heat_map=path,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--output-dir", default="tutorial_output")
    args = parser.parse_args()
    main(args.tiny, args.output_dir)
