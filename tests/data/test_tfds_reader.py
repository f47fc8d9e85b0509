import sys

import pytest

from keras_transformer.data import read_tfds

tfds = pytest.importorskip("tensorflow_datasets")


def test_read_tfds_with_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=7, data_dir=str(tmp_path)):
        pairs = read_tfds("ted_hrlr_translate/pt_to_en", split="train", data_dir=str(tmp_path))
    assert len(pairs) == 7
    assert all(isinstance(s, str) and isinstance(t, str) for s, t in pairs)


def test_missing_tensorflow_datasets(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install keras_transformer\[tfds\]"):
        read_tfds("ted_hrlr_translate/pt_to_en")
