"""Each subpackage imports only what its __init__ docstring allows ("May import from
keras_transformer: ..."), checked on the source (imports inside functions included)."""

import ast
import pathlib
import re

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "keras_transformer"


def allowed_imports(subpackage):
    """The modules of ours the subpackage's docstring allows, plus the subpackage itself."""
    docstring = ast.get_docstring(ast.parse((PACKAGE / subpackage / "__init__.py").read_text()))
    line = re.search(r"^May import from keras_transformer: (.*)\.$", docstring, re.MULTILINE)
    assert line, f"{subpackage}/__init__.py does not say what it may import"
    return {name.strip() for name in line.group(1).split(",")} | {subpackage}


def imports_of_ours(path):
    """(line, first component after keras_transformer) of every import in `path`."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module + "." + alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "keras_transformer" and len(parts) > 1:
                yield node.lineno, parts[1]


@pytest.mark.parametrize("subpackage", ["layers", "text", "data", "training"])
def test_a_subpackage_imports_what_its_docstring_allows(subpackage):
    """Catches: an import reaching up or across (e.g. layers/feed_forward.py importing
    ACTIVATIONS from keras_transformer.config again, or training/ importing data/)."""
    allowed = allowed_imports(subpackage)
    wrong = [
        f"{path.relative_to(PACKAGE)}:{line} imports keras_transformer.{module}"
        for path in sorted((PACKAGE / subpackage).glob("*.py"))
        for line, module in imports_of_ours(path)
        if module not in allowed
    ]
    assert not wrong, f"{subpackage} may import {sorted(allowed)}: " + "; ".join(wrong)
