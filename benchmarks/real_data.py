"""Real data: the library against a plain PyTorch script, same corpus, same budget.

The corpus is real human translation available offline: the gettext catalogs this
system installs (`kt.data.gettext_corpus`: English messages of about 90 programs with
their French or Spanish translations, format strings and markup dropped, deduplicated,
a seeded split with 1,000 dev and 1,000 test pairs).

For each language pair, under one wall-clock training budget, in the same run:

* library  the documented path: `keras-transformer train --preset small --data tsv ...
           --time-budget B` with the library's defaults, then `keras-transformer
           evaluate` (greedy and beam 4) on the test split;
* torch    benchmarks/torch_baseline.py: `torch.nn.Transformer` of the same sizes, the
           same tokenizers, the paper's schedule and loss, tied output embedding,
           token-budget length buckets, greedy and beam decoding that re-run the decoder
           over the whole prefix (no cache).

Both get the tokenizers the library's recipe learns (learned once, outside both budgets)
and the same pairs. The systems take turns, one at a time on the whole machine, the
first one alternating between language pairs; before each, a matmul peak is measured,
so that a loaded machine shows in the table instead of in the ratios. Printed per
pair: epochs, optimizer steps, target tokens/s, cores used (CPU seconds / training
seconds), BLEU and chrF (sacreBLEU, 13a) for greedy and beam 4, and the time to
translate the 1,000 test sentences, compilation included. Ratios are library / torch.

PyTorch is a benchmark-only extra: `pip install -e ".[bench]"`.

Usage:
    python benchmarks/real_data.py                              # fr and es, 1,800 s each
    python benchmarks/real_data.py --pairs fr --budget 300      # a development run
    python benchmarks/real_data.py --pairs fr --splits dev --tag _w400 \
        --library-args="--warmup-steps 400"                     # one setting on the dev split
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLI = [sys.executable, "-m", "keras_transformer.cli"]
QUIET = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def measure_peak():
    """float32 GFLOP/s of a 2048³ matmul, best of 5, in a fresh process."""
    code = (
        "import time, tensorflow as tf\n"
        "a = tf.random.normal((2048, 2048)); b = tf.random.normal((2048, 2048))\n"
        "f = tf.function(lambda a, b: tf.matmul(a, b)); f(a, b).numpy()\n"
        "best = 1e9\n"
        "for _ in range(5):\n"
        "    t = time.perf_counter(); f(a, b).numpy(); best = min(best, time.perf_counter() - t)\n"
        "print(2 * 2048 ** 3 / best / 1e9)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=QUIET, check=True
    ).stdout
    return float(out.strip().splitlines()[-1])


def write_tsv(path, pairs):
    from keras_transformer.files import atomic_write_text

    atomic_write_text(path, "".join(f"{s}\t{t}\n" for s, t in pairs))


def prepare(lang, work):
    """Writes the corpus as TSVs and learns the library's tokenizers into the run dir."""
    import keras_transformer as kt
    from keras_transformer import runs

    corpus = kt.data.gettext_corpus(lang)
    os.makedirs(work, exist_ok=True)
    for split in ("train", "dev", "test"):
        write_tsv(os.path.join(work, f"{split}.tsv"), getattr(corpus, split))
    run_dir = os.path.join(work, "library")
    tokenizers = [os.path.join(run_dir, "tokenizers", side) for side in ("source", "target")]
    if not all(os.path.isfile(os.path.join(d, "tokenizer.json")) for d in tokenizers):
        source, target = runs.learn_tokenizers(corpus.train, runs.TrainingSettings())
        source.save(tokenizers[0])
        target.save(tokenizers[1])
    source, target = (kt.text.load_tokenizer(d) for d in tokenizers)
    return corpus, source, target


def ragged_arrays(tokenizer, texts):
    ids = tokenizer.tokenize(texts)
    return ids.flat_values.numpy().astype(np.int32), ids.row_lengths().numpy().astype(np.int32)


def write_npz(path, corpus, source, target):
    arrays = {"src_vocab_size": source.vocab_size, "tgt_vocab_size": target.vocab_size}
    for split in ("train", "dev", "test"):
        pairs = getattr(corpus, split)
        arrays[f"{split}_src_ids"], arrays[f"{split}_src_lengths"] = ragged_arrays(
            source, [s for s, _ in pairs]
        )
        if split != "test":
            arrays[f"{split}_tgt_ids"], arrays[f"{split}_tgt_lengths"] = ragged_arrays(
                target, [t for _, t in pairs]
            )
    np.savez(path, **arrays)


def run_library(work, budget, splits, extra_args, tag):
    run_dir = os.path.join(work, "library" + tag)
    if tag:  # the same tokenizers as every other run of this pair
        shutil.copytree(
            os.path.join(work, "library", "tokenizers"),
            os.path.join(run_dir, "tokenizers"),
            dirs_exist_ok=True,
        )
    split_files = [f"--{s}={os.path.join(work, s + '.tsv')}" for s in ("train", "dev", "test")]
    if not os.path.isfile(os.path.join(run_dir, "model.keras")):
        subprocess.run(
            CLI
            + [
                "train",
                "--run-dir",
                run_dir,
                "--preset",
                "small",
                "--data",
                "tsv",
                *split_files,
                "--time-budget",
                str(budget),
                *extra_args,
            ],
            check=True,
            env=QUIET,
            stdout=subprocess.DEVNULL,
        )
    with open(os.path.join(run_dir, "training_summary.json")) as handle:
        summary = json.load(handle)
    result = {
        "epochs": summary["epochs"],
        "steps": summary["steps"],
        "tokens_per_second": summary["target_tokens_per_second"],
        "cores_used": summary["cores_used"],
    }
    for split in splits:
        for beam in (1, 4):
            out = subprocess.run(
                CLI
                + [
                    "evaluate",
                    "--run-dir",
                    run_dir,
                    "--split",
                    split,
                    "--beam-size",
                    str(beam),
                    "--samples",
                    "0",
                ],
                check=True,
                env=QUIET,
                capture_output=True,
                text=True,
            ).stdout
            scores = json.loads(out.strip().splitlines()[-1])
            name = f"{split}_{'greedy' if beam == 1 else 'beam4'}"
            result.update(
                {
                    f"{name}_bleu": scores["bleu"],
                    f"{name}_chrf": scores["chrf"],
                    f"{name}_seconds": scores["translate_seconds"],
                }
            )
    return result


def run_torch(work, corpus, source, target, budget, splits, extra_args, tag):
    """Trains once, then decodes each split (the script decodes its `test_src` arrays:
    the first run trains and saves its weights, later ones load them)."""
    import sacrebleu

    from keras_transformer.data import Corpus

    result = {}
    weights = os.path.join(work, f"torch{tag}.pt")
    for split in splits:
        pairs = getattr(corpus, split)
        npz = os.path.join(work, f"corpus_{split}.npz")
        write_npz(npz, Corpus(train=corpus.train, dev=corpus.dev, test=pairs), source, target)
        out = os.path.join(work, f"torch{tag}_{split}.json")
        if not os.path.isfile(out):
            resume = ["--load", weights] if os.path.isfile(weights) else ["--save", weights]
            subprocess.run(
                [
                    sys.executable,
                    os.path.join(HERE, "torch_baseline.py"),
                    "--data",
                    npz,
                    "--budget",
                    str(budget),
                    "--out",
                    out,
                    *resume,
                    *extra_args,
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        with open(out) as handle:
            raw = json.load(handle)
        if split == splits[0]:
            result.update(
                {
                    "epochs": raw["epochs"],
                    "steps": raw["steps"],
                    "tokens_per_second": raw["target_tokens_per_second"],
                    "cores_used": raw["cpu_cores_used"],
                }
            )
        references = [t for _, t in pairs]
        for name, key in (("greedy", "greedy"), ("beam4", "beam")):
            hypotheses = detokenize(target, raw[f"{key}_ids"])
            result.update(
                {
                    f"{split}_{name}_bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
                    f"{split}_{name}_chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
                    f"{split}_{name}_seconds": raw[f"{key}_seconds"],
                }
            )
    return result


def detokenize(tokenizer, rows):
    import tensorflow as tf

    ids = tf.ragged.constant(rows, dtype=tf.int32, ragged_rank=1)
    return [text.decode("utf-8") for text in tokenizer.detokenize(ids).numpy()]


def rows(splits):
    yield from (
        ("epochs", "{:.1f}"),
        ("steps", "{:.0f}"),
        ("tokens_per_second", "{:.0f}"),
        ("cores_used", "{:.2f}"),
    )
    for split in splits:
        for metric in ("greedy_bleu", "greedy_chrf", "beam4_bleu", "beam4_chrf"):
            yield f"{split}_{metric}", "{:.1f}"
        for metric in ("greedy_seconds", "beam4_seconds"):
            yield f"{split}_{metric}", "{:.1f}"
    yield "peak_gflops", "{:.0f}"


def print_table(lang, results, splits):
    print(f"\n## en-{lang}\n")
    print("| | library | torch | library / torch |")
    print("|---|---|---|---|")
    for key, fmt in rows(splits):
        lib, ref = results["library"][key], results["torch"][key]
        ratio = f"{lib / ref:.2f}×" if ref else "-"
        print(f"| {key} | {fmt.format(lib)} | {fmt.format(ref)} | {ratio} |")
    lib, ref = results["library"], results["torch"]
    split = splits[-1]
    print(
        f"\n{split}: beam-4 decoding of the library / greedy decoding of torch: "
        f"{lib[f'{split}_beam4_seconds'] / ref[f'{split}_greedy_seconds']:.2f}× (goal ≤ 0.25×)"
    )
    best = max(ref[f"{split}_greedy_bleu"], ref[f"{split}_beam4_bleu"])
    print(
        f"{split}: library beam-4 BLEU / best torch BLEU: "
        f"{lib[f'{split}_beam4_bleu'] / best:.2f}× (goal ≥ 1.3×)",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", nargs="+", default=["fr", "es"])
    parser.add_argument("--budget", type=float, default=1800, help="training seconds")
    parser.add_argument(
        "--splits",
        nargs="+",
        default=["dev", "test"],
        help="splits to decode and score (dev for tuning, test to report)",
    )
    parser.add_argument(
        "--tag",
        default="",
        help="suffix of the run names, to keep the runs of several settings side by side",
    )
    parser.add_argument(
        "--work",
        default=os.path.join(ROOT, "runs", "real_data"),
        help="where corpora, runs and results go; finished runs are reused",
    )
    parser.add_argument("--systems", nargs="+", default=["library", "torch"])
    parser.add_argument("--library-args", default="", help="more `train` flags, one string")
    parser.add_argument("--torch-args", default="", help="more torch_baseline.py flags")
    args = parser.parse_args()

    all_results = {}
    for index, lang in enumerate(args.pairs):
        work = os.path.join(args.work, f"en-{lang}")
        corpus, source, target = prepare(lang, work)
        log(
            f"en-{lang}: {len(corpus.train)} train, {len(corpus.dev)} dev, "
            f"{len(corpus.test)} test pairs; vocabularies {source.vocab_size}/{target.vocab_size}"
        )
        results = {}
        order = args.systems if index % 2 == 0 else args.systems[::-1]
        for system in order:
            peak = measure_peak()
            log(f"en-{lang} {system}: matmul peak {peak:.0f} GFLOP/s; training {args.budget:.0f} s")
            if system == "library":
                results[system] = run_library(
                    work, args.budget, args.splits, shlex.split(args.library_args), args.tag
                )
            else:
                results[system] = run_torch(
                    work,
                    corpus,
                    source,
                    target,
                    args.budget,
                    args.splits,
                    shlex.split(args.torch_args),
                    args.tag,
                )
            results[system]["peak_gflops"] = peak
            log(f"en-{lang} {system}: {json.dumps(results[system])}")
        all_results[lang] = results
        if len(results) == 2:
            print_table(lang, results, args.splits)
    path = os.path.join(args.work, f"results{args.tag}.json")
    with open(path + ".tmp", "w") as handle:
        json.dump(all_results, handle, indent=2)
    os.replace(path + ".tmp", path)
    log(f"results in {path}")


if __name__ == "__main__":
    main()
