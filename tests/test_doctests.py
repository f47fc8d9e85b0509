"""Every `>>>` example in the package's docstrings runs and prints what it shows.

The standard library's doctest, one pytest case per docstring, each in a fresh temporary
working directory (examples write files such as saved_models/...). Besides its module's
globals an example may use `kt`, `np`, `tf` and `keras`, imported as everywhere in the
docs. Examples that need the network or this machine's files are skipped with
`# doctest: +SKIP`, and only in the docstrings of ALLOWED_TO_SKIP.
"""

import doctest
import importlib
import pkgutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_transformer as kt

# Docstrings whose examples read what a test machine need not have: a TFDS download,
# the system's gettext catalogs.
ALLOWED_TO_SKIP = {
    "keras_transformer.data.tfds_reader",
    "keras_transformer.data.gettext_corpus",
}

# Examples that export a model (SavedModel, the TFLite converter, tf2onnx).
SLOW = {
    "keras_transformer.export.onnx.export_onnx",
    "keras_transformer.export.saved_model.export_saved_model",
    "keras_transformer.runtimes.tflite.TFLiteTranslator",
    "keras_transformer.export.tflite.export_tflite",
}

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def docstring_tests():
    """Every DocTest with examples in the keras_transformer package, by name."""
    finder = doctest.DocTestFinder()
    tests = {}
    for info in pkgutil.walk_packages(kt.__path__, "keras_transformer."):
        module = importlib.import_module(info.name)
        for test in finder.find(module):
            if test.examples:
                tests[test.name] = test
    return tests


TESTS = docstring_tests()


def test_docstring_examples_found():
    assert "keras_transformer.layers.decoder.DecoderLayer" in TESTS
    assert len(TESTS) >= 40
    assert SLOW | ALLOWED_TO_SKIP <= set(TESTS)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
        for name in sorted(TESTS)
    ],
)
def test_docstring_examples(name, tmp_path, monkeypatch):
    test = TESTS[name]
    skipped = [example.source for example in test.examples if example.options.get(doctest.SKIP)]
    assert not skipped or name in ALLOWED_TO_SKIP, f"{name} skips {skipped}"
    monkeypatch.chdir(tmp_path)
    test.globs = dict(test.globs, kt=kt, np=np, tf=tf, keras=keras)
    report = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    result = runner.run(test, out=report.append, clear_globs=True)
    assert result.failed == 0, "".join(report)
