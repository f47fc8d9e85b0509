"""Command-line flags generated from a settings dataclass.

Every field `name` of the dataclass becomes `--name` (underscores as dashes), typed
by its annotation and helped by the field's entry in the class docstring's "Args:"
section, so a new field is a new flag with no edit of the command line:

    int, float, str    --name VALUE
    bool (or bool | …) --name / --no-name

Every flag defaults to None, "not given": the dataclass's own default (or a value
from a config file) then stands.
"""

import argparse
import dataclasses
import inspect
import re
import types
import typing

# "    name: text" or "    first, second: text" at the Args section's indentation.
_ARG_LINE = re.compile(r"^(\s*)(\w+(?:,\s*\w+)*):\s*(.*)$")


def docstring_help(settings_class) -> dict[str, str]:
    """{field name: its description} from the "Args:" section of the class docstring;
    an entry naming several fields ("warmup_steps, learning_rate_scale: ...") helps
    each of them."""
    lines = inspect.cleandoc(settings_class.__doc__ or "").splitlines()
    if "Args:" not in (line.strip() for line in lines):
        return {}
    start = [line.strip() for line in lines].index("Args:") + 1
    helps, names, indent = {}, [], None
    for line in lines[start:]:
        if not line.strip():
            continue
        entry = _ARG_LINE.match(line)
        if entry and (indent is None or len(entry.group(1)) == indent):
            indent = len(entry.group(1))
            names = [name.strip() for name in entry.group(2).split(",")]
            for name in names:
                helps[name] = entry.group(3)
        elif indent is not None and len(line) - len(line.lstrip()) > indent:
            for name in names:
                helps[name] += " " + line.strip()
        else:
            break
    return helps


def _value_types(annotation):
    """The types an annotation allows, None left out: `float | None` -> (float,)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return tuple(t for t in typing.get_args(annotation) if t is not type(None))
    return (annotation,)


def add_settings_flags(
    parser: argparse.ArgumentParser, settings_class, aliases: dict[str, str] | None = None
) -> None:
    """Adds one flag per field of `settings_class` to `parser` (see the module
    docstring); `aliases` maps a field to one more flag name, e.g. {"jit_compile":
    "--jit"}, for flags users already know."""
    helps = docstring_help(settings_class)
    hints = typing.get_type_hints(settings_class)
    for field in dataclasses.fields(settings_class):
        names = ["--" + field.name.replace("_", "-")]
        if aliases and field.name in aliases:
            names.append(aliases[field.name])
        allowed = _value_types(hints[field.name])
        help_text = helps.get(field.name)
        options = dict(
            dest=field.name, default=None, help=help_text and help_text.replace("%", "%%")
        )
        if bool in allowed:
            parser.add_argument(*names, action=argparse.BooleanOptionalAction, **options)
        else:
            kind = next((t for t in (int, float, str) if t in allowed), str)
            parser.add_argument(*names, type=kind, **options)


def given_settings(args: argparse.Namespace, settings_class) -> dict:
    """{field: value} of the flags `add_settings_flags` added that were given."""
    values = {}
    for field in dataclasses.fields(settings_class):
        value = getattr(args, field.name, None)
        if value is not None:
            values[field.name] = value
    return values
