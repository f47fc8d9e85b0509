"""The README's Python code runs: every ```python block of README.md, in order, in one
namespace (later blocks use the model and tokenizer of "The API in ten lines"), in a
temporary working directory.

The README shows real sizes (20,000 sentence pairs, 10 epochs, the base preset); the test
runs them small through SUBSTITUTIONS, named text replacements in the blocks. Each must
match exactly once, so a README edit that moves or drops one fails here instead of
silently running the big settings.
"""

import os
import re

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")

SUBSTITUTIONS = {
    "small corpus": ("train_size=20000)", "train_size=300, dev_size=10, test_size=10)"),
    "tiny model": (
        "num_layers=3, d_model=128, num_heads=4, d_ff=512",
        "num_layers=1, d_model=16, num_heads=2, d_ff=32",
    ),
    "optimizer of the tiny model": (
        "paper_optimizer(128, warmup_steps=500)",
        "paper_optimizer(16, warmup_steps=500)",
    ),
    "one epoch": ("model.fit(train, epochs=10)", "model.fit(train, epochs=1, verbose=0)"),
    "tiny preset instead of base": (
        'from_preset("base", src_vocab_size=V',
        'from_preset("tiny", src_vocab_size=V',
    ),
    "one distributed epoch": ("epochs=20,", "epochs=1, verbose=0,"),
}


def python_blocks(text):
    """[(line number of the block's first line, source)] of every ```python block."""
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```$", text, re.MULTILINE | re.DOTALL):
        blocks.append((text.count("\n", 0, match.start(1)) + 1, match.group(1)))
    return blocks


def substituted(blocks):
    """`blocks` with every SUBSTITUTIONS entry applied; each must match exactly once."""
    blocks = list(blocks)
    for name, (old, new) in SUBSTITUTIONS.items():
        hits = [i for i, (_, source) in enumerate(blocks) if old in source]
        count = sum(source.count(old) for _, source in blocks)
        assert count == 1, (
            f"substitution {name!r}: {old!r} occurs {count} times in the "
            "README's python blocks; expected exactly once: update SUBSTITUTIONS"
        )
        line, source = blocks[hits[0]]
        blocks[hits[0]] = (line, source.replace(old, new))
    return blocks


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path, monkeypatch):
    with open(README, encoding="utf-8") as handle:
        blocks = substituted(python_blocks(handle.read()))
    assert len(blocks) >= 7, "expected the README's python blocks; found fewer"
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme"}
    for line, source in blocks:
        # Padded so that a traceback names the README's own line numbers.
        exec(compile("\n" * (line - 1) + source, README, "exec"), namespace)
    # What the blocks claim to leave behind.
    assert isinstance(namespace["translator"](["twenty-one"])[0], str)
    for path in (
        "saved_models/numbers/1/saved_model.pb",
        "saved_models/en_fr/1/saved_model.pb",
        "saved_models/en_fr.tflite",
        "saved_models/en_fr_int8.tflite",
        "saved_models/en_fr_text.tflite",
        "saved_models/en_fr_onnx/encoder.onnx",
    ):
        assert os.path.exists(tmp_path / path), path
