"""TFLite export run by the LiteRT interpreter (ai_edge_litert): ids, greedy and beam
decoding, quantization, text, and the ids the graph cannot refuse itself."""

import os

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import keras_transformer as kt
from keras_transformer.export import export_tflite
from keras_transformer.runtimes import TFLiteTranslator

# What a float16 export must keep of TensorFlow's greedy or beam decoding on the 100
# dev sentences: the same ids, scores within 5e-3 (measured: 1e-3). int8: see
# conftest.py's INT8_MIN_IDENTICAL and INT8_MAX_BLEU_LOSS.
FLOAT16_SCORE_TOLERANCE = 5e-3
OVERLONG = " ".join(["one"] * 80)  # 80 tokens, more than max_length=48
# int8 weights take a quarter of float32's bytes; the graphs (the WHILE loop and the
# step signatures) are not quantized, and in the tiny fixture model they are about a
# tenth of the weights: int8 files measured 0.50 of float32 ones, unquantized 1.0.
INT8_MAX_SIZE_RATIO = 0.6


@pytest.fixture(scope="module")
def tflite_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tflite")


@pytest.fixture(scope="module")
def float32_path(trained, tflite_dir):
    """Greedy, forced on a beam-search Translator."""
    return export_tflite(trained.beam_translator, tflite_dir / "float32.tflite", decoding="greedy")


@pytest.fixture(scope="module")
def beam_float32_path(trained, tflite_dir):
    """The beam translator's own decoding: beam 4, α = 0.6."""
    return export_tflite(trained.beam_translator, tflite_dir / "beam_float32.tflite")


@pytest.fixture(scope="module")
def text_path(trained, tflite_dir):
    return export_tflite(
        trained.greedy_translator, tflite_dir / "text.tflite", quantization="float16", text=True
    )


def _wordpiece_join(ids, vocabulary):
    """What FastWordpiece's detokenize makes of greedy ids: the tokens before [END],
    '##' pieces glued to the token before, words joined by single spaces."""
    texts = []
    for row in ids:
        words = []
        for token in (vocabulary[i] for i in row if i != 0):
            if token == "[END]":
                break
            if token.startswith("##") and words:
                words[-1] += token[2:]
            else:
                words.append(token)
        texts.append(" ".join(words))
    return texts


@pytest.mark.parametrize("use_loop", [False, True])
def test_float32_ids_match_tensorflow(trained, float32_path, use_loop):
    """Both drivers, the step loop over decoder_step and the WHILE op of translate_ids,
    give greedy_search's ids. Catches: decoding="greedy" ignored for a beam-search
    Translator; a step loop that falls back to the WHILE op silently, or writes a row
    at another position than its step."""
    runner = TFLiteTranslator(float32_path, use_loop=use_loop)
    assert not runner.has_text
    assert runner.step_signature == ("translate_ids" if use_loop else "decoder_step")
    trained.assert_decodes_as_greedy_search(
        runner.translate_ids, (trained.dev_sources[:8], trained.dev_sources[8:11], ["zzz", ""])
    )


def test_the_translator_prints_no_litert_flag_notice(trained, float32_path, capfd, monkeypatch):
    # Catches: TFLiteTranslator's interpreter made outside the stderr filter, or filtered
    # only when TF_CPP_MIN_LOG_LEVEL is set, so that LiteRT's "ERROR: Subgraph reshaping
    # is enabled by default" (about a flag its own wrapper sets for the XNNPACK
    # delegate) reaches every user as an error.
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    runner = TFLiteTranslator(float32_path)
    runner.translate_ids(trained.src_ids(trained.dev_sources[:2]))
    assert "Subgraph reshaping" not in capfd.readouterr().err


@pytest.mark.parametrize("use_loop", [False, True])
def test_float32_beam_ids_and_scores_equal_beam_search(trained, beam_float32_path, use_loop):
    """Both drivers, the step loop over beam_step and the WHILE op, give beam_search's
    ids and scores. Catches: an export that decodes greedily (or with another α, beam
    size or length limit) for a beam translator; a beam loop that the converter or
    interpreter changes (a row frozen too early or too late, a beam gathered from the
    wrong origin); a step loop that writes a hypothesis's row into another block."""
    runner = TFLiteTranslator(beam_float32_path, use_loop=use_loop)
    assert runner.step_signature == ("translate_ids" if use_loop else "beam_step")
    trained.assert_decodes_as_beam_search(
        runner.translate_ids,
        (trained.dev_sources[:8], trained.dev_sources[8:11] + [""], ["zzz", ""]),
    )


def test_float16_beam_ids_equal_beam_search(trained, beam_float32_path, tflite_dir):
    """Catches: a float16 beam export that changes a translation, or drifts in score
    beyond FLOAT16_SCORE_TOLERANCE, on the dev set; quantization not applied (size)."""
    path = export_tflite(
        trained.beam_translator, tflite_dir / "beam_float16.tflite", quantization="float16"
    )
    assert 0.45 < os.path.getsize(path) / os.path.getsize(beam_float32_path) < 0.7
    expected_ids, expected_scores = trained.dev_beam
    ids, scores = trained.dev_ids(TFLiteTranslator(path).translate_ids, expected_ids)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, atol=FLOAT16_SCORE_TOLERANCE)


def test_int8_beam_translations_and_bleu_against_beam_search(
    trained, beam_float32_path, tflite_dir
):
    """Catches: an int8 beam export that changes more than 5 % of the dev translations
    or costs more than 1 BLEU; quantization not applied (size)."""
    path = export_tflite(
        trained.beam_translator, tflite_dir / "beam_int8.tflite", quantization="int8"
    )
    assert os.path.getsize(path) < INT8_MAX_SIZE_RATIO * os.path.getsize(beam_float32_path)
    trained.assert_int8_keeps(TFLiteTranslator(path).translate_ids, trained.dev_beam[0])


def test_bad_arguments(trained, float32_path, tflite_dir):
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_tflite(trained.greedy_translator, float32_path)
    with pytest.raises(ValueError, match="quantization"):
        export_tflite(trained.greedy_translator, tflite_dir / "x.tflite", quantization="int4")
    with pytest.raises(kt.errors.InputError, match="decoding must be one of"):
        export_tflite(trained.beam_translator, tflite_dir / "x.tflite", decoding="beam")
    with pytest.raises(ValueError, match="int32 of shape"):
        TFLiteTranslator(float32_path).translate_ids(np.zeros((2,), np.int32))
    with pytest.raises(ValueError, match="text=True"):
        TFLiteTranslator(float32_path)(["one"])


def test_float16_ids_equal_tensorflow(trained, float32_path, tflite_dir):
    path = export_tflite(
        trained.greedy_translator, tflite_dir / "float16.tflite", quantization="float16"
    )
    # Half the weight bytes: neither the float32 file (no quantization) nor int8's.
    assert 0.45 < os.path.getsize(path) / os.path.getsize(float32_path) < 0.7
    ids, scores = trained.dev_ids(TFLiteTranslator(path).translate_ids)
    expected_ids, expected_scores = trained.dev_greedy
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, atol=FLOAT16_SCORE_TOLERANCE)


@pytest.mark.slow
def test_int8_translations_and_bleu_against_tensorflow(trained, float32_path, tflite_dir):
    path = export_tflite(trained.greedy_translator, tflite_dir / "int8.tflite", quantization="int8")
    assert os.path.getsize(path) < INT8_MAX_SIZE_RATIO * os.path.getsize(float32_path)
    trained.assert_int8_keeps(TFLiteTranslator(path).translate_ids, trained.dev_greedy[0])


@pytest.mark.slow
def test_text_signature_translates_as_the_translator(trained, text_path):
    runner = TFLiteTranslator(text_path)
    assert runner.has_text
    sources = trained.dev_sources
    translations, scores = runner(sources + [""])
    expected_ids, expected_scores = trained.dev_greedy
    # FastWordpiece joins words with single spaces, without WordPieceTokenizer's
    # spacing rules ("vingt - sept" for "vingt-sept"); token for token they agree.
    assert translations[:-1] == _wordpiece_join(expected_ids, trained.tokenizer.vocabulary)
    assert [t.replace(" - ", "-") for t in translations[:-1]] == trained.greedy_translator(sources)
    assert translations[-1] == ""
    np.testing.assert_allclose(scores[:-1], expected_scores, atol=FLOAT16_SCORE_TOLERANCE)
    assert scores[-1] == 0
    assert runner([]) == ([], pytest.approx(np.zeros((0,))))


def test_text_signature_decodes_with_beam_search(trained, tflite_dir):
    """Catches: a text signature that decodes greedily (or with other settings) for a
    beam translator."""
    path = export_tflite(trained.beam_translator, tflite_dir / "beam_text.tflite", text=True)
    sources = trained.dev_sources[:8]
    translations, scores = TFLiteTranslator(path)(sources + [""])
    expected_ids, expected_scores = trained.beam_search(trained.src_ids(sources))
    assert translations == _wordpiece_join(expected_ids, trained.tokenizer.vocabulary) + [""]
    np.testing.assert_allclose(scores, np.append(expected_scores, 0.0), atol=1e-4)


@pytest.mark.slow
def test_text_signature_truncates_a_long_source(trained, text_path):
    runner = TFLiteTranslator(text_path)
    src_ids = trained.src_ids([OVERLONG])
    assert src_ids.shape[1] > runner.max_length
    (translation,), _ = runner([OVERLONG])
    ids, _ = runner.translate_ids(src_ids[:, : runner.max_length])
    assert translation == _wordpiece_join(ids, trained.tokenizer.vocabulary)[0]
    assert translation


def test_text_needs_wordpiece_without_lower_case(trained, tflite_dir):
    lower = kt.text.WordPieceTokenizer(trained.tokenizer.vocabulary, lower_case=True)
    translator = kt.translator.Translator(trained.model, lower, lower, beam_size=1)
    with pytest.raises(ValueError, match="lower_case"):
        export_tflite(translator, tflite_dir / "lower.tflite", text=True)


def test_translator_refuses_the_ids_the_graph_cannot(trained, float32_path):
    runner = TFLiteTranslator(float32_path)
    config = trained.model.config
    assert (runner.src_vocab_size, runner.max_length) == (config.src_vocab_size, config.max_length)
    trained.assert_runtime_refuses_bad_ids(runner.translate_ids)


def test_the_graph_alone_refuses_an_id_out_of_range(trained, float32_path):
    """The .tflite has no assert op, and its GATHER reads -1 as the last row of the
    table: the graph maps every id outside [0, V) to V, which GATHER refuses (without
    naming the value; TFLiteTranslator does). Catches: a graph that translates -1
    silently as the vocabulary's last token."""
    translate_ids = Interpreter(model_path=str(float32_path)).get_signature_runner("translate_ids")
    encoder = Interpreter(model_path=str(float32_path)).get_signature_runner("encoder")
    vocab_size = trained.model.config.src_vocab_size
    for bad in (-1, -vocab_size, vocab_size):
        for runner in (translate_ids, encoder):
            with pytest.raises(RuntimeError, match="GATHER"):
                runner(src_ids=np.array([[5, 6, bad]], np.int32))
    assert translate_ids(src_ids=np.array([[5, 6, vocab_size - 1]], np.int32))["ids"].size
    assert encoder(src_ids=np.array([[5, 6, vocab_size - 1]], np.int32))["memory_mask"].all()


def test_a_missing_or_damaged_file_is_reported_in_one_line(tmp_path):
    # Catches: LiteRT's own ValueError ("Could not open ...", "Model provided has model
    # identifier ...") reaching the caller instead of the library's one line.
    with pytest.raises(FileNotFoundError, match="is not a file"):
        TFLiteTranslator(tmp_path / "missing.tflite")
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with pytest.raises(kt.errors.InputError, match="is not a readable .tflite model"):
        TFLiteTranslator(empty)
