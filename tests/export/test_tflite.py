"""TFLite export run by the LiteRT interpreter (ai_edge_litert): ids, quantization, text."""

import os

import numpy as np
import pytest
import sacrebleu

import keras_transformer as kt
from keras_transformer.export import TFLiteTranslator, export_tflite


@pytest.fixture(scope="module")
def tflite_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tflite")


@pytest.fixture(scope="module")
def float32_path(trained, tflite_dir):
    return export_tflite(trained.greedy_translator, tflite_dir / "float32.tflite")


def test_float32_ids_match_tensorflow(trained, float32_path):
    runner = TFLiteTranslator(float32_path)
    assert not runner.has_text
    trained.assert_decodes_as_greedy_search(
        runner.translate_ids,
        (trained.dev_sources[:8], trained.dev_sources[8:11], ["zzz", ""]))


def test_bad_arguments(trained, float32_path, tflite_dir):
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_tflite(trained.greedy_translator, float32_path)
    with pytest.raises(ValueError, match="quantization"):
        export_tflite(trained.greedy_translator, tflite_dir / "x.tflite", quantization="int4")
    with pytest.raises(ValueError, match="int32 of shape"):
        TFLiteTranslator(float32_path).translate_ids(np.zeros((2,), np.int32))
    with pytest.raises(ValueError, match="text=True"):
        TFLiteTranslator(float32_path)(["one"])


def _bleu(runner, trained):
    hypotheses = []
    for start in range(0, len(trained.dev_sources), 32):
        ids, _ = runner.translate_ids(trained.src_ids(trained.dev_sources[start:start + 32]))
        hypotheses += [t.decode() for t in trained.tokenizer.detokenize(ids).numpy()]
    return sacrebleu.corpus_bleu(hypotheses, [trained.dev_references]).score


@pytest.mark.slow
def test_int8_loses_at_most_one_bleu(trained, float32_path, tflite_dir):
    int8_path = export_tflite(trained.greedy_translator, tflite_dir / "int8.tflite",
                              quantization="int8")
    assert os.path.getsize(int8_path) < 0.5 * os.path.getsize(float32_path)
    float32_bleu = _bleu(TFLiteTranslator(float32_path), trained)
    int8_bleu = _bleu(TFLiteTranslator(int8_path), trained)
    assert float32_bleu > 50, "the fixture model should have learned the task"
    assert int8_bleu >= float32_bleu - 1.0, (float32_bleu, int8_bleu)


@pytest.mark.slow
def test_text_signature_with_tf_text_custom_ops(trained, tflite_dir):
    path = export_tflite(trained.greedy_translator, tflite_dir / "text.tflite",
                         quantization="float16", text=True)
    runner = TFLiteTranslator(path)
    assert runner.has_text
    sources = trained.dev_sources[:6]
    translations, scores = runner(sources + [""])
    # FastWordpiece joins words with single spaces, without WordPieceTokenizer's
    # spacing rules ("vingt - sept" for "vingt-sept").
    translations = [t.replace(" - ", "-") for t in translations]
    assert translations == trained.greedy_translator(sources) + [""]
    assert scores.shape == (len(sources) + 1,)
    assert runner([]) == ([], pytest.approx(np.zeros((0,))))


def test_text_needs_wordpiece_without_lower_case(trained, tflite_dir):
    lower = kt.text.WordPieceTokenizer(trained.tokenizer.vocabulary, lower_case=True)
    translator = kt.translator.Translator(trained.model, lower, lower, beam_size=1)
    with pytest.raises(ValueError, match="lower_case"):
        export_tflite(translator, tflite_dir / "lower.tflite", text=True)
