"""`import keras_transformer` needs none of the [export] extra's packages; the
functions that do name the extra when it is missing."""

import os
import subprocess
import sys
import textwrap

# Run in a fresh interpreter where the [export] extra's packages cannot be imported.
SCRIPT = textwrap.dedent("""
    import sys

    MISSING = {"tf2onnx", "onnx", "onnxruntime", "ai_edge_litert"}

    class Missing:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in MISSING:
                raise ImportError(f"No module named {name!r} (hidden by the test)")
            return None

    sys.meta_path.insert(0, Missing())

    import keras_transformer as kt

    loaded = sorted(m for m in sys.modules if m.split(".")[0] in MISSING)
    assert not loaded, loaded

    model = kt.Transformer.from_preset("tiny", num_layers=1, src_vocab_size=20,
                                       tgt_vocab_size=20)
    calls = {
        "export_onnx": lambda: kt.export.export_onnx(model, sys.argv[1] + "/onnx"),
        "OnnxTranslator": lambda: kt.runtimes.OnnxTranslator(sys.argv[1]),
        "TFLiteTranslator": lambda: kt.runtimes.TFLiteTranslator(sys.argv[1]),
    }
    for name, call in calls.items():
        try:
            call()
        except ImportError as error:
            print(name, "->", error)
        else:
            print(name, "-> no ImportError")
""")


def test_import_works_without_the_export_extra(tmp_path):
    """Catches: a module-level `import onnxruntime` (or tf2onnx, onnx, ai_edge_litert)
    anywhere under `import keras_transformer`, or an import at the point of use that
    does not name the [export] extra."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join(sys.path))
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" -> ", 1) for line in result.stdout.splitlines() if " -> " in line)
    assert set(lines) == {"export_onnx", "OnnxTranslator", "TFLiteTranslator"}, result.stdout
    for name, message in lines.items():
        assert 'pip install "keras_transformer[export]"' in message, (name, message)
