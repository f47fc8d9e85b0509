"""Input pipeline benchmark: token-budget bucketing vs fixed-size batches.

On the embedded numbers corpus (English -> German), measured in one run:

1. batching: sentences per second through an epoch of `make_dataset` (bucketed by
   length, batched by a token budget) against the baseline, fixed-size batches
   of the same average batch size padded to their longest pair; and the share of
   padding tokens in each. Printed as ratios bucketed / fixed.
2. tokenizing: once up front (what `make_dataset` does) against inside
   `Dataset.map` over batches of strings.
3. with `--vocab-learners N`: our WordPiece learner against tensorflow-text's
   `bert_vocab_from_dataset` on N lines (slow: minutes for a few hundred lines).

Usage:

    python benchmarks/pipeline.py [--pairs 4000] [--tokens-per-batch 1024]
                                  [--epochs 3] [--vocab-learners 0]
"""

import argparse
import time

import tensorflow as tf

from keras_transformer.data import make_dataset, numbers_corpus
from keras_transformer.text import RESERVED_TOKENS, WordPieceTokenizer


def _epoch_stats(dataset, epochs):
    """Sentences per second over `epochs` epochs, and the padding share."""
    for _ in dataset.take(1):  # build the pipeline and its functions first
        pass
    sentences = real = padded = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for (src, _), tgt_out in dataset:
            sentences += int(src.shape[0])
            real += int(tf.math.count_nonzero(src)) + int(tf.math.count_nonzero(tgt_out))
            padded += int(tf.size(src)) + int(tf.size(tgt_out))
    seconds = time.perf_counter() - start
    return sentences / seconds, 1 - real / padded, sentences / epochs


def _fixed_size_batches(pairs, src_tok, tgt_tok, batch_size, seed):
    """The baseline: shuffled, then batches of `batch_size` padded to their
    longest pair."""
    src = src_tok.tokenize([s for s, _ in pairs])
    tgt = tgt_tok.tokenize([t for _, t in pairs])
    dataset = tf.data.Dataset.from_tensor_slices((src, tgt))
    dataset = dataset.shuffle(len(pairs), seed=seed)
    dataset = dataset.map(
        lambda s, t: ((tf.concat([s, [3]], 0), tf.concat([[2], t], 0)), tf.concat([t, [3]], 0))
    )
    return dataset.padded_batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _time_tokenizing(pairs, tokenizer, repeats=3):
    """Seconds to tokenize all source sentences: one call vs Dataset.map."""
    lines = [s for s, _ in pairs]
    tokenizer.tokenize(lines[:10])
    start = time.perf_counter()
    for _ in range(repeats):
        tokenizer.tokenize(tf.constant(lines))
    up_front = (time.perf_counter() - start) / repeats

    dataset = tf.data.Dataset.from_tensor_slices(lines).batch(256)
    dataset = dataset.map(tokenizer.tokenize, num_parallel_calls=tf.data.AUTOTUNE)
    for _ in dataset.take(1):
        pass
    start = time.perf_counter()
    for _ in range(repeats):
        for _ in dataset:
            pass
    in_map = (time.perf_counter() - start) / repeats
    return up_front, in_map


def _time_vocab_learners(lines, vocab_size):
    from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset

    start = time.perf_counter()
    WordPieceTokenizer.train(lines, vocab_size=vocab_size)
    ours = time.perf_counter() - start

    start = time.perf_counter()
    bert_vocab_from_dataset.bert_vocab_from_dataset(
        tf.data.Dataset.from_tensor_slices(lines).batch(1000),
        vocab_size=vocab_size,
        reserved_tokens=RESERVED_TOKENS,
        bert_tokenizer_params={"lower_case": False},
    )
    theirs = time.perf_counter() - start
    return ours, theirs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4000)
    parser.add_argument("--tokens-per-batch", type=int, default=1024)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--vocab-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--vocab-learners", type=int, default=0, metavar="N")
    args = parser.parse_args()

    pairs = numbers_corpus("de", train_size=args.pairs, dev_size=0, test_size=0).train
    src_tok = WordPieceTokenizer.train([s for s, _ in pairs], vocab_size=args.vocab_size)
    tgt_tok = WordPieceTokenizer.train([t for _, t in pairs], vocab_size=args.vocab_size)
    bucketed = make_dataset(
        pairs, src_tok, tgt_tok, tokens_per_batch=args.tokens_per_batch, max_length=args.max_length
    )
    num_batches = sum(1 for _ in bucketed)
    batch_size = round(len(pairs) / num_batches)
    fixed = _fixed_size_batches(pairs, src_tok, tgt_tok, batch_size, seed=0)

    # Interleave the two so that machine load drifts hit both alike.
    results = {"fixed": [], "bucketed": []}
    for _ in range(2):
        results["fixed"].append(_epoch_stats(fixed, args.epochs))
        results["bucketed"].append(_epoch_stats(bucketed, args.epochs))
    fixed_speed = max(r[0] for r in results["fixed"])
    bucketed_speed = max(r[0] for r in results["bucketed"])
    fixed_padding = results["fixed"][0][1]
    bucketed_padding = results["bucketed"][0][1]

    print(
        f"numbers corpus en->de, {len(pairs)} pairs, WordPiece vocab "
        f"{src_tok.vocab_size}/{tgt_tok.vocab_size}, tokens_per_batch="
        f"{args.tokens_per_batch}, max_length={args.max_length}, {args.epochs} epochs"
    )
    print(f"{'':34s}{'sentences/s':>12s}{'padding share':>15s}")
    print(
        f"{'fixed-size batches of ' + str(batch_size):34s}{fixed_speed:12.0f}{fixed_padding:15.1%}"
    )
    print(
        f"{'token-budget buckets (' + str(num_batches) + ' batches)':34s}"
        f"{bucketed_speed:12.0f}{bucketed_padding:15.1%}"
    )
    print(
        f"{'ratio bucketed / fixed':34s}{bucketed_speed / fixed_speed:12.2f}"
        f"{bucketed_padding / fixed_padding:15.2f}"
    )

    up_front, in_map = _time_tokenizing(pairs, src_tok)
    print(
        f"tokenizing {len(pairs)} source sentences: up front {up_front * 1000:.1f} ms, "
        f"in Dataset.map {in_map * 1000:.1f} ms; ratio map / up front "
        f"{in_map / up_front:.2f}"
    )

    if args.vocab_learners:
        lines = [s for s, _ in pairs[: args.vocab_learners // 2]]
        lines += [t for _, t in pairs[: args.vocab_learners // 2]]
        ours, theirs = _time_vocab_learners(lines, args.vocab_size)
        print(
            f"learning a WordPiece vocabulary from {len(lines)} lines: ours "
            f"{ours:.2f} s, bert_vocab_from_dataset {theirs:.1f} s; ratio "
            f"theirs / ours {theirs / ours:.0f}"
        )


if __name__ == "__main__":
    main()
