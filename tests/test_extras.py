"""The package without its optional extras: matplotlib ([plots]) and tensorflow_serving
([serving]) made unimportable in a fresh interpreter."""

import subprocess
import sys
import textwrap

WITHOUT_EXTRAS = textwrap.dedent("""
    import importlib.abc
    import sys

    class Missing(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("matplotlib", "tensorflow_serving"):
                raise ImportError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, Missing())
""")


def run_without_extras(code):
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_package_trains_without_the_plots_and_serving_extras(tmp_path):
    """`import keras_transformer` (and its command line) work, a tiny model trains a
    step, and plotting raises ImportError naming the [plots] extra.

    Catches: matplotlib imported at the top of plots.py or of anything
    `keras_transformer` imports (the import itself fails), or plots importing it
    without `import_extra` (an ImportError that does not say which extra to install)."""
    stdout = run_without_extras(f"""
        import numpy as np
        import keras_transformer as kt
        import keras_transformer.cli
        from keras_transformer import plots

        model = kt.Transformer.from_preset("tiny", num_layers=1, d_model=16, num_heads=2,
                                           d_ff=32, src_vocab_size=12, tgt_vocab_size=12)
        model.compile(optimizer="adam", loss=kt.training.LabelSmoothedCrossEntropy(0.1))
        ids = np.array([[4, 5, 6, 3]] * 2, np.int32)
        history = model.fit((ids, ids), ids, epochs=1, verbose=0)
        print("trained", np.isfinite(history.history["loss"][0]))
        try:
            plots.plot_learning_rate(
                kt.training.NoamSchedule(16, 10), 20, {str(tmp_path / "lr.png")!r})
        except ImportError as error:
            print("plots:", error)
        print("matplotlib loaded:", "matplotlib" in sys.modules)
    """)
    assert "trained True" in stdout
    assert (
        "plots: matplotlib.figure is missing; it comes with keras_transformer's [plots] extra"
        in stdout
    )
    assert "matplotlib loaded: False" in stdout
    assert not (tmp_path / "lr.png").exists()
