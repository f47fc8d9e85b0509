"""Plain PyTorch baseline of the real-data benchmark: train a Transformer, then decode.

The script a PyTorch user would write for the base model of "Attention Is All You
Need": `torch.nn.Transformer` (post-norm, relu, batch_first) with sinusoidal positional
encodings, token embeddings scaled by sqrt(d_model), dropout on the embedding sums and
an output projection tied to the target embedding matrix; label-smoothed cross-entropy
(PAD ignored), Adam(0.9, 0.98, 1e-9) under the Noam schedule
lr = scale · d_model^-0.5 · min(step^-0.5, step · warmup^-1.5), and batches of pairs of
similar length under a token budget (tensor2tensor-style geometric buckets). Train and
dev pairs with an empty source, a source longer than --max-length or a target longer
than --max-length - 1 are left out (and counted).

Input `--data FILE.npz` (ids int32; 0 = PAD, 1 = UNK, 2 = START, 3 = END):
{train,dev}_{src,tgt}_{ids,lengths} and test_src_{ids,lengths} (flat ids plus one length
per sequence; sources carry no START/END, targets get [START]+y in and y+[END] out) and
the scalars src_vocab_size and tgt_vocab_size.

Training runs for `--budget` seconds of wall time, counted from the first step (the
shuffling and batching of later epochs count) and stopped at the first step boundary
past it; the dev loss (the training criterion, label smoothing included, without
dropout) is evaluated after every epoch and once at the end, outside the budget. The
test sources are then translated greedily and by beam search (GNMT length penalty),
both re-running the decoder over the whole prefix at every step (no cache). Everything is
written to `--out` as JSON.

Usage: python benchmarks/torch_baseline.py --data corpus.npz --budget 600 --out torch.json
"""

import argparse
import bisect
import functools
import json
import math
import os
import random
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PAD, START, END = 0, 2, 3  # 1 is [UNK]


class Translator(nn.Module):
    def __init__(self, src_vocab, tgt_vocab, max_positions, args):
        super().__init__()
        self.d_model = args.d_model
        self.src_emb = nn.Embedding(src_vocab, args.d_model)
        self.tgt_emb = nn.Embedding(tgt_vocab, args.d_model)
        for emb in (self.src_emb, self.tgt_emb):
            nn.init.normal_(emb.weight, 0.0, args.d_model**-0.5)
        self.dropout = nn.Dropout(args.dropout)
        self.transformer = nn.Transformer(
            args.d_model,
            args.num_heads,
            args.num_layers,
            args.num_layers,
            args.d_ff,
            args.dropout,
            activation="relu",
            batch_first=True,
            norm_first=False,
        )
        position = torch.arange(max_positions).unsqueeze(1)
        rate = torch.exp(torch.arange(0, args.d_model, 2) * (-math.log(10000.0) / args.d_model))
        pe = torch.zeros(position.size(0), args.d_model)
        pe[:, 0::2] = torch.sin(position * rate)
        pe[:, 1::2] = torch.cos(position * rate)
        # Sized from the data, and a function of the position alone: not saved.
        self.register_buffer("pe", pe, persistent=False)

    def embed(self, emb, ids):
        return self.dropout(emb(ids) * math.sqrt(self.d_model) + self.pe[: ids.size(1)])

    def encode(self, src):
        src_pad = src == PAD
        embedded = self.embed(self.src_emb, src)
        return self.transformer.encoder(embedded, src_key_padding_mask=src_pad), src_pad

    def decode(self, tgt_in, memory, src_pad):
        """Decoder states for every target position."""
        causal = nn.Transformer.generate_square_subsequent_mask(tgt_in.size(1))
        return self.transformer.decoder(
            self.embed(self.tgt_emb, tgt_in),
            memory,
            tgt_mask=causal,
            tgt_is_causal=True,
            memory_key_padding_mask=src_pad,
        )

    def logits(self, states):
        return F.linear(states, self.tgt_emb.weight)  # tied output projection

    def forward(self, src, tgt_in):
        return self.logits(self.decode(tgt_in, *self.encode(src)))

    def next_log_probs(self, prefix, memory, src_pad):
        """Log-probabilities of the next token after each prefix; PAD and START excluded."""
        log_probs = F.log_softmax(self.logits(self.decode(prefix, memory, src_pad)[:, -1]), -1)
        log_probs[:, [PAD, START]] = -math.inf
        return log_probs


def split(data, name):
    flat, lengths = data[f"{name}_ids"], data[f"{name}_lengths"]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return [flat[offsets[i] : offsets[i + 1]].tolist() for i in range(len(lengths))]


def within(pairs, max_length):
    """The pairs whose source (non-empty) and target with END fit in max_length."""
    return [(s, t) for s, t in pairs if 0 < len(s) <= max_length and len(t) + 1 <= max_length]


def pad(rows):
    out = torch.full((len(rows), max(map(len, rows))), PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def make_batches(pairs, tokens_per_batch, max_length, rng=None, pool_batches=0):
    """(src, tgt_in, tgt_out) batches of pairs bucketed by length; shuffled when rng is given.
    With pool_batches > 0 each bucket is sorted by (source, target) length in pools of
    that many batches before it is cut into batches, as the library's make_dataset does."""
    uppers, x = [], 8
    while x < max_length:
        uppers.append(x)
        x = max(x + 1, int(x * 1.1))
    uppers.append(max_length)
    order = list(range(len(pairs)))
    if rng:
        rng.shuffle(order)
    buckets = [[] for _ in uppers]
    for i in order:
        src, tgt = pairs[i]
        buckets[bisect.bisect_left(uppers, max(len(src), len(tgt) + 1))].append(pairs[i])
    batches = []
    for upper, bucket in zip(uppers, buckets):
        size = max(1, tokens_per_batch // upper)
        if pool_batches:
            pool = pool_batches * size
            bucket = [
                pair
                for begin in range(0, len(bucket), pool)
                for pair in sorted(
                    bucket[begin : begin + pool], key=lambda p: (len(p[0]), len(p[1]))
                )
            ]
        for start in range(0, len(bucket), size):
            chunk = bucket[start : start + size]
            batches.append(
                (
                    pad([s for s, _ in chunk]),
                    pad([[START] + t for _, t in chunk]),
                    pad([t + [END] for _, t in chunk]),
                )
            )
    if rng:
        rng.shuffle(batches)
    return batches


def greedy(model, src, src_lengths):
    memory, src_pad = model.encode(src)
    max_len = torch.tensor(src_lengths) + 50
    prefix = torch.full((src.size(0), 1), START, dtype=torch.long)
    done = torch.zeros(src.size(0), dtype=torch.bool)
    while not done.all():
        token = model.next_log_probs(prefix, memory, src_pad).argmax(-1).masked_fill(done, PAD)
        prefix = torch.cat([prefix, token[:, None]], 1)
        done |= (token == END) | (prefix.size(1) - 1 >= max_len)
    return [cut(row[1:]) for row in prefix.tolist()]


def cut(ids):
    """Output ids up to (excluding) END; PAD only follows a finished sentence."""
    for i, token in enumerate(ids):
        if token in (END, PAD):
            return ids[:i]
    return ids


def beam_search(model, src, src_lengths, k, alpha):
    """Best hypothesis per sentence by score / ((5 + |Y|) / 6)^alpha, |Y| counting END.

    Each sentence holds k hypotheses, alive or finished (ended by END or by the length
    limit). At each step its k - f alive ones (f finished so far) are extended, the
    k - f best extensions by score (the sum of log-probabilities) are kept and those
    that end finish; the sentence is done when all k have finished (so k = 1 is greedy
    search). The alive hypotheses of all unfinished sentences run as one batch, k rows
    per sentence (rows of finished slots are padded with score -inf).
    """
    memory, src_pad = model.encode(src)
    memory, src_pad = memory.repeat_interleave(k, 0), src_pad.repeat_interleave(k, 0)
    prefix = torch.full((src.size(0) * k, 1), START, dtype=torch.long)
    scores = torch.full((src.size(0), k), -math.inf)
    scores[:, 0] = 0.0
    active = list(range(src.size(0)))  # sentences whose rows are in `prefix`
    finished = [[] for _ in active]
    step = 0
    while active:
        step += 1
        log_probs = model.next_log_probs(prefix, memory, src_pad)
        vocab = log_probs.size(1)
        candidates = scores[:, :, None] + log_probs.view(len(active), k, vocab)
        top_scores, top_ids = (t.tolist() for t in candidates.flatten(1).topk(k, 1))
        rows, tokens, new_scores, still_active = [], [], [], []
        for a, sentence in enumerate(active):
            alive = []
            for score, idx in zip(top_scores[a][: k - len(finished[sentence])], top_ids[a]):
                if score == -math.inf:
                    break
                beam, token = divmod(idx, vocab)
                if token == END or step >= src_lengths[sentence] + 50:
                    ids = prefix[a * k + beam, 1:].tolist() + ([] if token == END else [token])
                    finished[sentence].append((score / ((5 + step) / 6) ** alpha, ids))
                else:
                    alive.append((score, a * k + beam, token))
            if not alive:
                continue
            alive += [(-math.inf, a * k, PAD)] * (k - len(alive))
            still_active.append(sentence)
            new_scores.append([score for score, _, _ in alive])
            rows += [row for _, row, _ in alive]
            tokens += [token for _, _, token in alive]
        active = still_active
        if active:
            rows = torch.tensor(rows)
            prefix = torch.cat([prefix[rows], torch.tensor(tokens)[:, None]], 1)
            memory, src_pad = memory[rows], src_pad[rows]
            scores = torch.tensor(new_scores)
    return [max(hyps, key=lambda h: h[0])[1] for hyps in finished]


def translate(model, sources, search):
    """Decode sources in batches of 64 sorted by length; outputs in the original order."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    outputs = [None] * len(sources)
    for start in range(0, len(order), 64):
        chunk = order[start : start + 64]
        src_lengths = [len(sources[i]) for i in chunk]
        for i, ids in zip(chunk, search(model, pad([sources[i] for i in chunk]), src_lengths)):
            outputs[i] = ids
    return outputs


def evaluate(model, criterion, batches):
    model.eval()
    total = tokens = 0
    with torch.inference_mode():
        for src, tgt_in, tgt_out in batches:
            n = int((tgt_out != PAD).sum())
            total += criterion(model(src, tgt_in).flatten(0, 1), tgt_out.flatten()).item() * n
            tokens += n
    model.train()
    return total / tokens


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--budget", type=float, required=True, help="training seconds")
    parser.add_argument("--num-layers", type=int, default=3)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--d-ff", type=int, default=1024)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--warmup-steps", type=int, default=1000)
    parser.add_argument("--lr-scale", type=float, default=1.0)
    parser.add_argument("--tokens-per-batch", type=int, default=4096)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument(
        "--pool-batches",
        type=int,
        default=0,
        help="sort each bucket by length in pools of this many batches (0: no sorting)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--beam-size", type=int, default=4)
    parser.add_argument("--alpha", type=float, default=0.6)
    parser.add_argument("--out", default="RESULT.json")
    parser.add_argument("--save", help="after training, save the weights and statistics here")
    parser.add_argument("--load", help="skip training: decode with weights saved by --save")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    data = np.load(args.data)
    train = list(zip(split(data, "train_src"), split(data, "train_tgt")))
    dev = list(zip(split(data, "dev_src"), split(data, "dev_tgt")))
    kept, dev_kept = within(train, args.max_length), within(dev, args.max_length)
    print(
        f"train: {len(kept)} pairs kept, {len(train) - len(kept)} dropped (empty or too long); "
        f"dev: {len(dev_kept)} kept, {len(dev) - len(dev_kept)} dropped"
    )
    if not kept or not dev_kept:
        raise SystemExit("no training or dev pair within --max-length")
    dev_batches = make_batches(dev_kept, args.tokens_per_batch, args.max_length)
    test_sources = split(data, "test_src")
    max_positions = max([args.max_length] + [len(s) + 51 for s in test_sources])

    model = Translator(
        int(data["src_vocab_size"]), int(data["tgt_vocab_size"]), max_positions, args
    )
    criterion = nn.CrossEntropyLoss(ignore_index=PAD, label_smoothing=args.label_smoothing)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.0, betas=(0.9, 0.98), eps=1e-9)

    if args.load:
        saved = torch.load(args.load)
        model.load_state_dict({k: v for k, v in saved["model"].items() if k != "pe"})
        decode(model, test_sources, dict(saved["results"]), args)
        return
    steps = target_tokens = 0
    epochs, dev_losses = 0.0, []
    train_seconds = train_cpu = 0.0
    batches = make_batches(kept, args.tokens_per_batch, args.max_length, rng, args.pool_batches)
    while True:
        loss_sum = epoch_tokens = 0
        wall, cpu = time.perf_counter(), time.process_time()
        for done, (src, tgt_in, tgt_out) in enumerate(batches, 1):
            steps += 1
            for group in optimizer.param_groups:
                group["lr"] = (
                    args.lr_scale
                    * args.d_model**-0.5
                    * min(steps**-0.5, steps * args.warmup_steps**-1.5)
                )
            loss = criterion(model(src, tgt_in).flatten(0, 1), tgt_out.flatten())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            n = int((tgt_out != PAD).sum())
            loss_sum += loss.item() * n
            epoch_tokens += n
            out_of_time = train_seconds + time.perf_counter() - wall >= args.budget
            if out_of_time:
                break
        epochs += done / len(batches)
        if not out_of_time:  # the next epoch's batches, built on the clock
            batches = make_batches(
                kept, args.tokens_per_batch, args.max_length, rng, args.pool_batches
            )
        train_seconds += time.perf_counter() - wall
        train_cpu += time.process_time() - cpu
        target_tokens += epoch_tokens
        dev_losses.append(evaluate(model, criterion, dev_batches))
        print(
            f"epoch {epochs:.2f}  steps {steps}  loss {loss_sum / epoch_tokens:.4f}  "
            f"dev loss {dev_losses[-1]:.4f}  {target_tokens / train_seconds:.0f} tokens/s",
            flush=True,
        )
        if out_of_time:
            break

    results = {
        "train_pairs": len(kept),
        "train_pairs_dropped": len(train) - len(kept),
        "epochs": epochs,
        "steps": steps,
        "train_seconds": train_seconds,
        "target_tokens": target_tokens,
        "target_tokens_per_second": target_tokens / train_seconds,
        "cpu_cores_used": train_cpu / train_seconds,
        "dev_loss": dev_losses,
    }
    if args.save:
        torch.save({"model": model.state_dict(), "results": results}, args.save + ".tmp")
        os.replace(args.save + ".tmp", args.save)
    decode(model, test_sources, results, args)


def decode(model, test_sources, results, args):
    """Translates the test sources greedily and by beam search; writes `args.out`."""
    model.eval()
    beam = functools.partial(beam_search, k=args.beam_size, alpha=args.alpha)
    with torch.inference_mode():
        for name, search in (("greedy", greedy), ("beam", beam)):
            start = time.perf_counter()
            results[f"{name}_ids"] = translate(model, test_sources, search)
            results[f"{name}_seconds"] = seconds = time.perf_counter() - start
            print(f"{name}: {len(test_sources)} sentences in {seconds:.1f} s", flush=True)
    results["settings"] = vars(args)

    directory = os.path.dirname(os.path.abspath(args.out))
    with tempfile.NamedTemporaryFile("w", dir=directory, suffix=".tmp", delete=False) as f:
        json.dump(results, f)
    os.replace(f.name, args.out)


if __name__ == "__main__":
    main()
