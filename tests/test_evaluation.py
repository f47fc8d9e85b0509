import pytest

import keras_transformer as kt
from keras_transformer.evaluation import evaluate


def upper_case_translator(sentences):
    assert len(sentences) <= 2  # batch_size below
    return [s.upper() for s in sentences]


def test_perfect_translations_score_100():
    sources = ["the cat sat on the mat", "a b", "hello there my friend"]
    scores = evaluate(
        upper_case_translator, sources, [s.upper() for s in sources], batch_size=2, progress=False
    )
    assert scores["bleu"] == pytest.approx(100.0)
    assert scores["chrf"] == pytest.approx(100.0)
    assert scores["exact_match"] == 1.0 and scores["num_sentences"] == 3


def test_scores_come_from_sacrebleu_and_keep_sentence_order():
    import sacrebleu

    sources = ["the cat sat on the mat", "one two three four five", "x"]
    references = ["THE CAT SAT ON A MAT", "ONE TWO THREE FOUR FIVE", "Y"]
    scores = evaluate(upper_case_translator, sources, references, batch_size=2, progress=False)
    hypotheses = [s.upper() for s in sources]
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hypotheses, [references]).score)
    assert scores["exact_match"] == pytest.approx(1 / 3)


def test_progress_bar(capsys):
    evaluate(upper_case_translator, ["a"], ["A"], progress=True)
    assert "translating" in capsys.readouterr().err


@pytest.mark.parametrize(
    "sources, references, message",
    [
        (["a", "b"], ["A"], "one reference per source"),
        ([], [], "nothing to evaluate"),
    ],
)
def test_bad_input(sources, references, message):
    with pytest.raises(ValueError, match=message):
        evaluate(upper_case_translator, sources, references, progress=False)


@pytest.mark.parametrize("reference", [None, 3, b"A"])
def test_references_must_be_str(reference):
    # Catches: a reference that is not a str reaching exact match or sacreBLEU, which
    # fail on it with an AttributeError or TypeError traceback after translating.
    with pytest.raises(kt.errors.InputError, match="references must be str"):
        evaluate(upper_case_translator, ["a", "b"], ["A", reference], progress=False)
