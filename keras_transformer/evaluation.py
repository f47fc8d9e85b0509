"""Translation quality: BLEU and chrF through sacreBLEU, and exact match.

BLEU (Papineni et al., 2002) is the paper's metric; sacreBLEU computes it on detokenized
text with its standard "13a" tokenization, so scores compare across papers (Post, 2018).
chrF (Popović, 2015) scores character n-grams, kinder to morphology such as German
compounds. Exact match is the fraction of hypotheses equal to their reference (after
stripping outer whitespace), telling on small synthetic tasks.

Languages that write a sentence as one word (the German numbers of the embedded corpus:
"einundzwanzigtausend") have no word 4-grams, so word BLEU is 0 there whatever the
quality: score them with `bleu_tokenize="char"`, BLEU over characters.
"""

import time

import sacrebleu

from keras_transformer.errors import InputError
from keras_transformer.translator import DECODE_BATCH_SIZE, translate_in_batches


def evaluate(
    translator,
    sources,
    references,
    batch_size=DECODE_BATCH_SIZE,
    progress=True,
    bleu_tokenize="13a",
):
    """Translates `sources` and scores them against `references`.

    Args:
        translator: a `Translator`, or any callable list of str -> list of str.
        sources: list of source sentences.
        references: list of reference translations, one per source.
        batch_size: sentences translated per call.
        progress: show a tqdm progress bar.
        bleu_tokenize: sacreBLEU's tokenizer for BLEU: "13a" (standard), "char",
            "intl", "zh", "ja-mecab", ...

    Returns:
        {"bleu": corpus BLEU in [0, 100], "chrf": corpus chrF in [0, 100],
         "exact_match": fraction in [0, 1], "num_sentences": int,
         "translate_seconds": wall time of translating, compilation included}.

    Example:
    >>> known = {"der hund lief nach hause": "the dog ran home"}
    >>> translator = lambda sentences: [known.get(s, "") for s in sentences]  # a stand-in
    >>> scores = evaluate(translator, ["der hund lief nach hause", "die katze"],
    ...                   ["the dog ran home", "the cat"], progress=False)
    >>> scores["exact_match"], scores["num_sentences"]
    (0.5, 2)
    """
    sources, references = list(sources), list(references)
    if len(sources) != len(references):
        raise InputError(
            f"expected one reference per source; got {len(sources)} sources and "
            f"{len(references)} references"
        )
    if not sources:
        raise InputError("nothing to evaluate: sources and references are empty")
    wrong = sorted({type(r).__name__ for r in references if not isinstance(r, str)})
    if wrong:
        raise InputError(f"references must be str, one per source; got {wrong}")
    start = time.perf_counter()
    hypotheses = translate_in_batches(translator, sources, batch_size, progress)
    seconds = time.perf_counter() - start
    exact = sum(h.strip() == r.strip() for h, r in zip(hypotheses, references))
    return {
        "bleu": sacrebleu.corpus_bleu(hypotheses, [references], tokenize=bleu_tokenize).score,
        "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
        "exact_match": exact / len(sources),
        "num_sentences": len(sources),
        "translate_seconds": seconds,
    }
