"""Every tutorial runs, with tiny settings, and shows what it claims."""

import importlib.util
import os

import pytest

TUTORIALS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tutorials")


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(TUTORIALS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tutorials_are_numbered_and_all_tested():
    names = sorted(n[:-3] for n in os.listdir(TUTORIALS) if n.endswith(".py"))
    assert [n[:2] for n in names] == ["01", "02", "03", "04"]


def test_01_attention_from_scratch(tmp_path):
    path = load("01_attention_from_scratch").main(tiny=True, output_dir=str(tmp_path))
    assert os.path.getsize(path) > 1000


@pytest.mark.slow
def test_02_train_a_translator():
    scores = load("02_train_a_translator").main(tiny=True)
    assert scores["num_sentences"] == 50 and scores["chrf"] > 0.0


@pytest.mark.slow
def test_03_export_tflite_and_onnx(tmp_path):
    agreement, total = load("03_export_tflite_and_onnx").main(tiny=True, output_dir=str(tmp_path))
    assert agreement["TFLite float32"] == total
    assert agreement["ONNX Runtime"] == total


@pytest.mark.slow
def test_04_serve_with_tf_serving(tmp_path):
    response = load("04_serve_with_tf_serving").main(tiny=True, output_dir=str(tmp_path))
    assert len(response["predictions"]) == 2
    assert os.path.isfile(tmp_path / "numbers" / "1" / "assets.extra" / "tf_serving_warmup_requests")
