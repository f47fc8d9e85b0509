"""`make demo`: train on the embedded English→German numbers corpus, evaluate on
numbers never seen in training, plot attention, and export to all three runtimes.

German reverses the order inside each group of tens ("twenty-one" → "einundzwanzig"),
so the model must learn a real reordering, not a word-for-word substitution.
"""

import os
import shutil
import time

from keras_transformer import export, plots
from keras_transformer.config import TransformerConfig
from keras_transformer.data import numbers_corpus
from keras_transformer.errors import InputError
from keras_transformer.evaluation import evaluate
from keras_transformer.files import atomic_write_text
from keras_transformer.runs import TrainingSettings, train
from keras_transformer.translator import Translator

# Sized so that training fits in a few minutes on 2 CPU cores (see README, "Results").
MODEL = dict(num_layers=3, d_model=128, num_heads=4, d_ff=512, dropout=0.1, max_length=64)
SETTINGS = dict(
    epochs=10,
    tokens_per_batch=2048,
    max_length=40,
    warmup_steps=500,
    learning_rate_scale=0.5,
    tokenizer="wordpiece",
    vocab_size=400,
    average_last=3,
    seed=0,
)
CORPUS = dict(target_lang="de", train_size=20000, seed=0)
# What each size changes; "small" learns the same task from a smaller model and corpus
# in about 30 s of training, for the test suite (tests/test_demo.py).
SIZES = {
    "full": dict(model={}, settings={}, corpus={}),
    "small": dict(
        model=dict(num_layers=2, d_model=64, d_ff=256),
        settings=dict(
            epochs=8,
            tokens_per_batch=1024,
            warmup_steps=300,
            learning_rate_scale=1.0,
            vocab_size=300,
        ),
        corpus=dict(train_size=4000, dev_size=100, test_size=200),
    ),
}


DEMO_MARK = "demo_run.txt"


def run_demo(run_dir="runs/demo", export_dir="saved_models", minutes=8.0, size="full"):
    """Trains, evaluates, plots and exports; returns the evaluation scores. A finished
    demo run in `run_dir` is replaced; an interrupted one resumes. A directory the demo
    did not create (it marks its own with `DEMO_MARK`) is refused, never deleted.
    `size` is a key of `SIZES`."""
    if size not in SIZES:
        raise InputError(f"size must be one of {sorted(SIZES)}; got {size!r}")
    model_args = {**MODEL, **SIZES[size]["model"]}
    settings = {**SETTINGS, **SIZES[size]["settings"]}
    corpus_args = {**CORPUS, **SIZES[size]["corpus"]}
    mark = os.path.join(run_dir, DEMO_MARK)
    if os.path.isdir(run_dir) and os.listdir(run_dir) and not os.path.isfile(mark):
        raise FileExistsError(
            f"{run_dir} is not empty and the demo did not create it (it has no {DEMO_MARK}); "
            "the demo replaces only its own runs: pass another --run-dir"
        )
    if os.path.isfile(os.path.join(run_dir, "model.keras")):
        print(f"replacing the finished demo run in {run_dir}")
        shutil.rmtree(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    atomic_write_text(
        mark, "created by `keras-transformer demo`, which replaces it when run again\n"
    )
    corpus = numbers_corpus(**corpus_args)
    print(
        f"corpus: {len(corpus.train)} train, {len(corpus.dev)} dev, {len(corpus.test)} test "
        "pairs (English → German numbers; test numbers never seen in training)"
    )
    started = time.monotonic()
    result = train(
        run_dir,
        corpus,
        TransformerConfig(**model_args),
        TrainingSettings(**settings, time_budget=minutes * 60),
        data=dict(source="embedded", **corpus_args),
        verbose=2,
    )
    print(f"trained in {time.monotonic() - started:.0f} s")

    translator = Translator(
        result.model, result.source_tokenizer, result.target_tokenizer, beam_size=4, alpha=0.6
    )
    sources = [source for source, _ in corpus.test]
    # German numbers are single words: word BLEU would be 0, so BLEU counts characters.
    scores = evaluate(
        translator, sources, [target for _, target in corpus.test], bleu_tokenize="char"
    )
    print(
        f"test: BLEU (characters) {scores['bleu']:.2f}  chrF {scores['chrf']:.2f}  "
        f"exact match {100 * scores['exact_match']:.1f}% of {scores['num_sentences']}"
    )
    for (source, reference), hypothesis in zip(corpus.test[:5], translator(sources[:5])):
        print(f"  {source}\n    → {hypothesis}   (reference: {reference})")

    details = translator.translate_with_details([sources[0]])
    heat_map = plots.plot_attention(
        details.attention[0],
        details.source_tokens[0],
        details.target_tokens[0],
        os.path.join(run_dir, "attention.png"),
        title=sources[0],
    )
    print(f"attention heat map: {heat_map}")

    written = [
        export.export_saved_model(
            translator, os.path.join(export_dir, "numbers_en_de"), version=1, overwrite=True
        ),
        export.export_tflite(
            translator, os.path.join(export_dir, "numbers_en_de.tflite"), overwrite=True
        ),
        os.path.dirname(
            export.export_onnx(
                translator, os.path.join(export_dir, "numbers_en_de_onnx"), overwrite=True
            )[0]
        ),
    ]
    print("exported:", *written, sep="\n  ")
    return scores
