"""Tutorial 02 — train a translator with `model.fit`.

Run:  python tutorials/02_train_a_translator.py [--tiny]

The whole flow of the library by hand, one step per arrow:

    numbers corpus ─WordPiece─▶ ids ─make_dataset (token-budget buckets)─▶ model.fit
    ─▶ Translator (cached beam search) ─▶ evaluate (sacreBLEU, chrF, exact match)

The corpus is English numbers in words to German ("twenty-one" → "einundzwanzig"),
generated on the spot; test numbers never occur in training.

With --tiny (numbers below 1,000, one layer, 20 short epochs; about a minute on two
CPU cores) the translator gets at least half of the 50 test numbers exactly right
(about 0.8); `main` returns the scores, and tests/test_tutorials.py holds it to that.
BLEU stays 0 here: a German number is one word, and BLEU counts up to 4-grams.
"""

import argparse

import keras

import keras_transformer as kt


def main(tiny=False):
    keras.utils.set_random_seed(0)
    sizes = (
        dict(train_size=900, dev_size=50, test_size=50, max_number=999)
        if tiny
        else dict(train_size=20000)
    )
    corpus = kt.data.numbers_corpus(target_lang="de", seed=0, **sizes)
    print("a training pair:", corpus.train[0])

    # One shared WordPiece vocabulary for both languages (§3.4 shares the embeddings).
    tokenizer = kt.text.WordPieceTokenizer.train(
        [s for s, _ in corpus.train] + [t for _, t in corpus.train], vocab_size=400
    )
    print("tokens:", [tokenizer.vocabulary[i] for i in tokenizer.tokenize([corpus.train[0][1]])[0]])

    # Batches of about 2,048 tokens, grouped by length ((src, tgt_in), tgt_out).
    train_data = kt.data.make_dataset(
        corpus.train, tokenizer, tokenizer, tokens_per_batch=2048, max_length=40
    )
    dev_data = kt.data.make_dataset(
        corpus.dev, tokenizer, tokenizer, tokens_per_batch=2048, max_length=40, shuffle=False
    )

    config = (
        dict(num_layers=1, d_model=64, d_ff=128)
        if tiny
        else dict(num_layers=3, d_model=128, d_ff=512)
    )
    model = kt.Transformer(
        num_heads=4,
        src_vocab_size=tokenizer.vocab_size,
        tgt_vocab_size=tokenizer.vocab_size,
        dropout=0.1,
        max_length=64,
        **config,
    )
    # The paper's optimizer, schedule (shorter warm-up for a small corpus) and loss.
    warmup_steps = 100 if tiny else 800  # the tiny corpus makes about 7 batches an epoch
    model.compile(
        optimizer=kt.training.paper_optimizer(model.config.d_model, warmup_steps),
        loss=kt.training.LabelSmoothedCrossEntropy(0.1),
        metrics=[kt.training.MaskedAccuracy()],
    )
    model.fit(train_data, validation_data=dev_data, epochs=20 if tiny else 8, verbose=2)

    translator = kt.Translator(model, tokenizer, tokenizer, beam_size=4, alpha=0.6)
    sources = [s for s, _ in corpus.test]
    for source, translation in zip(sources[:3], translator(sources[:3])):
        print(f"{source} -> {translation}")
    scores = kt.evaluate(translator, sources, [t for _, t in corpus.test], progress=False)
    print({k: round(v, 3) for k, v in scores.items()})
    return scores


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    main(parser.parse_args().tiny)
