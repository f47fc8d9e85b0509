"""Training throughput of `kt.Transformer` against the TensorFlow-tutorial Transformer.

Both models are trained with `model.fit` on the same synthetic batch (random ids in
[1, vocab), so no padding) at 2 + 2 layers, d_model 256, 4 heads, d_ff 1024, vocabulary
8000, batch 32, source and target length 64, with the same loss (cross-entropy from
logits, masked at id 0) and optimizer (Adam, lr 1e-4, β2 0.98, ε 1e-9):

* ours      `keras_transformer.Transformer` (shared and tied embeddings, head width
            d_model / h, fused QKV projection, no attention dropout);
* baseline  the model of the TensorFlow tutorial "Neural machine translation with a
            Transformer and Keras", rebuilt below from `keras.layers.MultiHeadAttention`
            with key_dim = d_model (so every head is d_model wide), attention dropout,
            separate source and target embeddings and an untied output Dense.

Throughput is target tokens per second, batch · tgt_len / step time, where the step time
is the wall time of `model.fit(steps_per_epoch=steps)` after a warm-up fit that
compiles, divided by `steps`. The two models alternate within every repeat (the one
that goes first alternates too); the table gives medians over repeats and the median of
the per-repeat ratios ours / baseline.

Model FLOPs per training step (forward + backward = 3 × forward, every matmul
counted as 2 FLOPs per multiply-add):

    FLOPs = 6 · Σ_matmuls (weights of the matmul · tokens it is applied to)
          + 12 · B · Σ_attentions (L_q · L_k · W)

where the first sum runs over every projection and feed-forward kernel (with the
source tokens B·S for the encoder and for the cross-attention keys and values, the
target tokens B·T otherwise) and over the output projection (d_model × vocab, tied or
not); embedding look-ups are not counted. The second term is Q Kᵀ and weights · V
(2 · 2 · B · L_q · L_k · W forward) for every attention, where W is the total width
over heads (d_model for ours, h · d_model for the baseline); causal self-attention is
counted at full L_q · L_k because it is computed densely. Each model is charged its own
FLOPs, so the baseline's MFU reflects its wider attention.

MFU = FLOPs / step time / peak, where the peak is measured here: the best rate of a
2048 × 2048 × 2048 `tf.matmul` under `tf.function`, in float32 for float32 runs and in
bfloat16 for mixed_bfloat16 runs; the peak table shows it with and without XLA and the
higher of the two is used.

Every (precision, jit) configuration runs in its own subprocess, so that the global
dtype policy and compiled state never leak between them.

Usage:
    python benchmarks/train_throughput.py                       # everything, ~10 min on 2 cores
    python benchmarks/train_throughput.py --precision float32 --jit --steps 10
"""

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

BATCH = 32
SRC_LEN = 64
TGT_LEN = 64
NUM_LAYERS = 2
D_MODEL = 256
NUM_HEADS = 4
D_FF = 1024
VOCAB = 8000
DROPOUT = 0.1
PRECISIONS = ("float32", "mixed_bfloat16")
RESULT_PREFIX = "RESULT "


# --------------------------------------------------------------------------- FLOPs


def matmul_flops(attention_width):
    """6 · Σ weights · tokens over projections, feed-forward and the output projection."""
    d, f, v, n = D_MODEL, D_FF, VOCAB, NUM_LAYERS
    src, tgt = BATCH * SRC_LEN, BATCH * TGT_LEN
    qkvo = 4 * d * attention_width
    ffn = 2 * d * f
    encoder = n * (qkvo + ffn) * src
    decoder_self = n * (qkvo + ffn) * tgt
    cross_q_o = n * 2 * d * attention_width * tgt
    cross_k_v = n * 2 * d * attention_width * src
    output = d * v * tgt
    return 6 * (encoder + decoder_self + cross_q_o + cross_k_v + output)


def attention_flops(attention_width):
    """12 · B · Σ L_q · L_k · W over encoder self, decoder self and cross attention."""
    pairs = NUM_LAYERS * (SRC_LEN * SRC_LEN + TGT_LEN * TGT_LEN + TGT_LEN * SRC_LEN)
    return 12 * BATCH * pairs * attention_width


def model_flops(name):
    width = D_MODEL if name == "ours" else NUM_HEADS * D_MODEL
    return matmul_flops(width) + attention_flops(width)


def matmul_weight_count(name):
    """Matmul weights the FLOP formula assumes, to check against the built model."""
    width = D_MODEL if name == "ours" else NUM_HEADS * D_MODEL
    per_attention = 4 * D_MODEL * width
    ffn = 2 * D_MODEL * D_FF
    return (
        NUM_LAYERS * (per_attention + ffn)
        + NUM_LAYERS * (2 * per_attention + ffn)
        + D_MODEL * VOCAB
    )


# --------------------------------------------------------------------------- peak


def measure_peak(repeats, size=2048, inner=8):
    """Best matmul FLOP/s of a size³ tf.matmul, float32 and bfloat16, with and without XLA."""
    import tensorflow as tf

    results = {}
    for dtype in ("float32", "bfloat16"):
        a = tf.cast(tf.random.normal((size, size)), dtype)
        b = tf.cast(tf.random.normal((size, size)), dtype)
        for jit in (False, True):

            @tf.function(jit_compile=jit)
            def chain(a, b):
                # A chain keeps every product live (no dead-code elimination) and keeps
                # the values bounded; `inner` products amortise the call overhead.
                x = a
                for _ in range(inner):
                    x = tf.matmul(x, b) * tf.constant(1.0 / size, dtype)
                return x

            chain(a, b).numpy()
            best = math.inf
            for _ in range(repeats):
                start = time.perf_counter()
                chain(a, b).numpy()
                best = min(best, time.perf_counter() - start)
            results[f"{dtype}{'_xla' if jit else ''}"] = 2 * size**3 * inner / best
    return results


# --------------------------------------------------------------------------- baseline


def build_baseline(keras):
    """The TensorFlow tutorial's Transformer, rebuilt with `keras.layers.MultiHeadAttention`."""
    import numpy as np
    from keras import ops

    def positional_encoding(length, depth):
        # Concatenated [sin | cos] halves, as in the tutorial (not interleaved).
        half = depth // 2
        positions = np.arange(length)[:, None]
        rates = 1 / (10000 ** (np.arange(half)[None, :] / half))
        angles = positions * rates
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1).astype("float32")

    class PositionalEmbedding(keras.layers.Layer):
        def __init__(self, vocab_size, d_model, **kwargs):
            super().__init__(**kwargs)
            self.d_model = d_model
            self.embedding = keras.layers.Embedding(vocab_size, d_model, mask_zero=True)
            self.table = positional_encoding(2048, d_model)

        def compute_mask(self, inputs, mask=None):
            return self.embedding.compute_mask(inputs, mask)

        def call(self, ids):
            length = ops.shape(ids)[1]
            x = self.embedding(ids)
            x = x * ops.cast(math.sqrt(self.d_model), x.dtype)
            return x + ops.cast(self.table[None, :length, :], x.dtype)

    class BaseAttention(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__()
            self.mha = keras.layers.MultiHeadAttention(**kwargs)
            self.layernorm = keras.layers.LayerNormalization()
            self.add = keras.layers.Add()

    class CrossAttention(BaseAttention):
        def call(self, x, context):
            attended = self.mha(query=x, key=context, value=context)
            return self.layernorm(self.add([x, attended]))

    class GlobalSelfAttention(BaseAttention):
        def call(self, x):
            attended = self.mha(query=x, value=x, key=x)
            return self.layernorm(self.add([x, attended]))

    class CausalSelfAttention(BaseAttention):
        def call(self, x):
            attended = self.mha(query=x, value=x, key=x, use_causal_mask=True)
            return self.layernorm(self.add([x, attended]))

    class FeedForward(keras.layers.Layer):
        def __init__(self, d_model, dff, dropout_rate):
            super().__init__()
            self.seq = keras.Sequential(
                [
                    keras.layers.Dense(dff, activation="relu"),
                    keras.layers.Dense(d_model),
                    keras.layers.Dropout(dropout_rate),
                ]
            )
            self.add = keras.layers.Add()
            self.layer_norm = keras.layers.LayerNormalization()

        def call(self, x):
            return self.layer_norm(self.add([x, self.seq(x)]))

    class EncoderLayer(keras.layers.Layer):
        def __init__(self, d_model, num_heads, dff, dropout_rate):
            super().__init__()
            self.self_attention = GlobalSelfAttention(
                num_heads=num_heads, key_dim=d_model, dropout=dropout_rate
            )
            self.ffn = FeedForward(d_model, dff, dropout_rate)

        def call(self, x):
            return self.ffn(self.self_attention(x))

    class Encoder(keras.layers.Layer):
        def __init__(self, num_layers, d_model, num_heads, dff, vocab_size, dropout_rate):
            super().__init__()
            self.pos_embedding = PositionalEmbedding(vocab_size, d_model)
            self.enc_layers = [
                EncoderLayer(d_model, num_heads, dff, dropout_rate) for _ in range(num_layers)
            ]
            self.dropout = keras.layers.Dropout(dropout_rate)

        def call(self, ids):
            x = self.dropout(self.pos_embedding(ids))
            for layer in self.enc_layers:
                x = layer(x)
            return x

    class DecoderLayer(keras.layers.Layer):
        def __init__(self, d_model, num_heads, dff, dropout_rate):
            super().__init__()
            self.causal_self_attention = CausalSelfAttention(
                num_heads=num_heads, key_dim=d_model, dropout=dropout_rate
            )
            self.cross_attention = CrossAttention(
                num_heads=num_heads, key_dim=d_model, dropout=dropout_rate
            )
            self.ffn = FeedForward(d_model, dff, dropout_rate)

        def call(self, x, context):
            x = self.causal_self_attention(x)
            x = self.cross_attention(x, context)
            return self.ffn(x)

    class Decoder(keras.layers.Layer):
        def __init__(self, num_layers, d_model, num_heads, dff, vocab_size, dropout_rate):
            super().__init__()
            self.pos_embedding = PositionalEmbedding(vocab_size, d_model)
            self.dropout = keras.layers.Dropout(dropout_rate)
            self.dec_layers = [
                DecoderLayer(d_model, num_heads, dff, dropout_rate) for _ in range(num_layers)
            ]

        def call(self, ids, context):
            x = self.dropout(self.pos_embedding(ids))
            for layer in self.dec_layers:
                x = layer(x, context)
            return x

    class TutorialTransformer(keras.Model):
        def __init__(
            self,
            num_layers,
            d_model,
            num_heads,
            dff,
            input_vocab_size,
            target_vocab_size,
            dropout_rate,
        ):
            super().__init__()
            self.encoder = Encoder(
                num_layers, d_model, num_heads, dff, input_vocab_size, dropout_rate
            )
            self.decoder = Decoder(
                num_layers, d_model, num_heads, dff, target_vocab_size, dropout_rate
            )
            self.final_layer = keras.layers.Dense(target_vocab_size)

        def call(self, inputs):
            context, x = inputs
            logits = self.final_layer(self.decoder(x, self.encoder(context)))
            try:
                # Keep Keras from turning the decoder's padding mask into loss weights;
                # the loss masks padding itself.
                del logits._keras_mask
            except AttributeError:
                pass
            return logits

    return TutorialTransformer(NUM_LAYERS, D_MODEL, NUM_HEADS, D_FF, VOCAB, VOCAB, DROPOUT)


# --------------------------------------------------------------------------- worker


def masked_loss(y_true, y_pred):
    """Sparse cross-entropy from logits averaged over the labels that are not 0."""
    from keras import ops

    per_token = ops.sparse_categorical_crossentropy(
        y_true, ops.cast(y_pred, "float32"), from_logits=True
    )
    mask = ops.cast(ops.not_equal(y_true, 0), "float32")
    return ops.sum(per_token * mask) / ops.maximum(ops.sum(mask), 1.0)


def matmul_weights_in(model):
    """Weights of the built model that enter matmuls: every ≥2-D weight except biases
    and lookup tables, plus the tied output projection."""
    total = 0
    for weight in model.trainable_weights:
        name = weight.path
        if len(weight.shape) < 2 or "bias" in name:
            continue
        if "embedding" in name and "kernel" not in name:
            continue
        total += int(math.prod(weight.shape))
    if getattr(model, "output_projection", 1) is None:
        total += D_MODEL * VOCAB
    return total


def run_worker(precision, jit, steps, repeats, warmup):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_transformer as kt

    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)

    rng = np.random.default_rng(0)
    src = rng.integers(1, VOCAB, size=(BATCH, SRC_LEN), dtype=np.int32)
    tgt = rng.integers(1, VOCAB, size=(BATCH, TGT_LEN + 1), dtype=np.int32)
    batch = ((src, tgt[:, :-1]), tgt[:, 1:])
    dataset = tf.data.Dataset.from_tensors(batch).repeat().prefetch(2)

    models = {
        "ours": kt.Transformer(
            num_layers=NUM_LAYERS,
            d_model=D_MODEL,
            num_heads=NUM_HEADS,
            d_ff=D_FF,
            src_vocab_size=VOCAB,
            tgt_vocab_size=VOCAB,
            dropout=DROPOUT,
        ),
        "baseline": build_baseline(keras),
    }
    info = {}
    for name, model in models.items():
        model((src[:2], tgt[:2, :-1]))
        counted = matmul_weights_in(model)
        expected = matmul_weight_count(name)
        if counted != expected:
            raise RuntimeError(
                f"{name}: the FLOP formula assumes {expected} matmul weights, the built "
                f"model has {counted}; update matmul_flops()"
            )
        model.compile(
            optimizer=keras.optimizers.Adam(1e-4, beta_2=0.98, epsilon=1e-9),
            loss=masked_loss,
            jit_compile=jit,
        )
        start = time.perf_counter()
        history = model.fit(dataset, epochs=1, steps_per_epoch=warmup, verbose=0)
        info[name] = dict(
            params=model.count_params(),
            compile_s=time.perf_counter() - start,
            matmul_weights=counted,
        )
        print(
            f"  [{precision} jit={jit}] {name}: {model.count_params():,} params, "
            f"warm-up {info[name]['compile_s']:.1f} s, loss {history.history['loss'][-1]:.3f}",
            flush=True,
        )

    times = {name: [] for name in models}
    order = list(models)
    for repeat in range(repeats):
        for name in order if repeat % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            history = models[name].fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
            times[name].append((time.perf_counter() - start) / steps)
            loss = history.history["loss"][-1]
            if not math.isfinite(loss):
                raise RuntimeError(f"{name} diverged: loss {loss}")
        print(
            f"  [{precision} jit={jit}] repeat {repeat + 1}/{repeats}: "
            + ", ".join(f"{name} {times[name][-1] * 1e3:.0f} ms/step" for name in models),
            flush=True,
        )
    print(
        RESULT_PREFIX + json.dumps(dict(precision=precision, jit=jit, times=times, info=info)),
        flush=True,
    )


def run_peak_worker(repeats):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(RESULT_PREFIX + json.dumps(measure_peak(repeats)), flush=True)


# --------------------------------------------------------------------------- driver


def run_child(arguments):
    """Runs this script with `arguments` in a fresh interpreter; streams its progress
    lines and returns the parsed RESULT line."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    result = None
    for line in process.stdout:
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
        else:
            print(line, end="", flush=True)
    stderr = process.stderr.read()
    if process.wait() != 0 or result is None:
        raise RuntimeError(f"worker {arguments} failed:\n{stderr[-4000:]}")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2, help="training steps per timed fit")
    parser.add_argument("--repeats", type=int, default=3, help="timed fits per model")
    parser.add_argument("--warmup", type=int, default=1, help="steps of the untimed first fit")
    parser.add_argument("--precision", choices=(*PRECISIONS, "all"), default="all")
    jit = parser.add_mutually_exclusive_group()
    jit.add_argument(
        "--jit",
        dest="jit",
        action="store_const",
        const=True,
        help="only jit_compile=True (default: both)",
    )
    jit.add_argument(
        "--no-jit",
        dest="jit",
        action="store_const",
        const=False,
        help="only jit_compile=False (default: both)",
    )
    parser.add_argument("--worker", nargs=2, metavar=("PRECISION", "JIT"), help=argparse.SUPPRESS)
    parser.add_argument("--peak-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.peak_worker:
        return run_peak_worker(args.repeats + 2)
    if args.worker:
        return run_worker(
            args.worker[0], args.worker[1] == "1", args.steps, args.repeats, args.warmup
        )

    import keras
    import tensorflow as tf

    precisions = PRECISIONS if args.precision == "all" else (args.precision,)
    jits = (True, False) if args.jit is None else (args.jit,)
    tokens = BATCH * TGT_LEN
    print(
        f"train_throughput: TF {tf.__version__}, Keras {keras.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    print(
        f"  {NUM_LAYERS}+{NUM_LAYERS} layers, d_model {D_MODEL}, {NUM_HEADS} heads, d_ff {D_FF}, "
        f"vocab {VOCAB}, batch {BATCH}, src/tgt length {SRC_LEN}/{TGT_LEN}, dropout {DROPOUT}; "
        f"{args.steps} steps x {args.repeats} repeats (interleaved), warm-up {args.warmup}"
    )
    for name in ("ours", "baseline"):
        print(
            f"  {name:8s} model FLOPs/step {model_flops(name) / 1e9:7.1f} G "
            f"(matmul weights {matmul_weight_count(name) / 1e6:.2f} M, attention scores "
            f"{attention_flops(D_MODEL if name == 'ours' else NUM_HEADS * D_MODEL) / 1e9:.1f} G)"
        )

    print("measuring matmul peak (2048^3) ...", flush=True)
    peaks = run_child(["--peak-worker", "--repeats", str(args.repeats)])
    print("  peak GFLOP/s: " + ", ".join(f"{k} {v / 1e9:.0f}" for k, v in peaks.items()))
    peak_for = {
        "float32": max(peaks["float32"], peaks["float32_xla"]),
        "mixed_bfloat16": max(peaks["bfloat16"], peaks["bfloat16_xla"]),
    }

    rows = []
    for precision in precisions:
        for jit in jits:
            print(f"running {precision}, jit_compile={jit} ...", flush=True)
            result = run_child(
                [
                    "--worker",
                    precision,
                    "1" if jit else "0",
                    "--steps",
                    str(args.steps),
                    "--repeats",
                    str(args.repeats),
                    "--warmup",
                    str(args.warmup),
                ]
            )
            times = result["times"]
            ratios = [b / o for o, b in zip(times["ours"], times["baseline"])]
            row = dict(precision=precision, jit=jit, ratio=statistics.median(ratios))
            for name in ("ours", "baseline"):
                step = statistics.median(times[name])
                row[name] = dict(
                    step=step,
                    tps=tokens / step,
                    spread=(max(times[name]) - min(times[name])) / step,
                    mfu=model_flops(name) / step / peak_for[precision],
                )
            rows.append(row)

    fastest = {name: min(rows, key=lambda r: r[name]["step"]) for name in ("ours", "baseline")}
    ours_fp32_jit = next((r for r in rows if r["precision"] == "float32" and r["jit"]), None)
    print()
    print(
        "target tokens/s (median over repeats; ± = (max - min) / median; MFU against the "
        "measured peak of the run's precision)"
    )
    header = (
        f"{'precision':15s} {'jit':5s} | {'ours tok/s':>10s} {'±':>4s} {'MFU':>6s} | "
        f"{'base tok/s':>10s} {'±':>4s} {'MFU':>6s} | {'ours/base':>9s} | {'ours vs fp32 XLA':>16s}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        o, b = row["ours"], row["baseline"]
        versus = f"{ours_fp32_jit['ours']['step'] / o['step']:.2f}x" if ours_fp32_jit else "-"
        print(
            f"{row['precision']:15s} {str(row['jit']):5s} | {o['tps']:10.0f} {o['spread']:4.0%} "
            f"{o['mfu']:6.1%} | {b['tps']:10.0f} {b['spread']:4.0%} {b['mfu']:6.1%} | "
            f"{row['ratio']:8.2f}x | {versus:>16s}"
        )
    print()
    for name in ("ours", "baseline"):
        best = fastest[name]
        print(
            f"fastest for {name}: {best['precision']}, jit_compile={best['jit']} "
            f"({best[name]['tps']:.0f} target tokens/s)"
        )
    if ours_fp32_jit:
        verdict = "meets" if ours_fp32_jit["ratio"] >= 1.3 else "MISSES"
        print(
            f"float32 XLA ours/baseline = {ours_fp32_jit['ratio']:.2f}x ({verdict} the 1.3x goal)"
        )


if __name__ == "__main__":
    main()
