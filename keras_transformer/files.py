"""Files that appear whole or not at all.

A process killed while it writes leaves either the previous file or the new one, never
a truncated mix: the content goes to a temporary name in the same directory, is flushed
to disk, and `os.replace` (atomic on POSIX within one file system) puts it in place.

Example:
>>> import json
>>> atomic_write_text("runs/fr/config.json", json.dumps({"d_model": 512}))
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
>>> with atomic_path("runs/fr/model.keras") as tmp:
...     model.save(tmp)
>>> sorted(os.listdir("runs/fr"))
['config.json', 'model.keras']
"""

import contextlib
import os
import re
import signal
import tempfile

# The temporary names `atomic_path` makes: "." + base name + "." + mkstemp's 8 random
# characters + ".tmp" + extension.
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\..+)?$")

# Test hook: with KERAS_TRANSFORMER_KILL_BEFORE_REPLACE="NAME" (or "NAME#N" for the N-th
# time), the process kills itself with SIGKILL when the new content of a file named
# NAME is complete under its temporary name but not yet in place: the worst instant of a
# write, which tests/test_kill_anywhere.py uses to prove that every write resumes.
KILL_HOOK = "KERAS_TRANSFORMER_KILL_BEFORE_REPLACE"
_writes = {}


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path` to write to; on success renames it to `path`,
    on error removes it (and leaves `path` as it was). The temporary name keeps the
    extension, since savers such as Keras' choose the format from it."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base, extension = os.path.splitext(os.path.basename(path))
    if base.endswith(".weights"):  # Keras requires the whole ".weights.h5" suffix
        base, extension = base[: -len(".weights")], ".weights" + extension
    handle, temporary = tempfile.mkstemp(
        prefix=f".{base}.", suffix=f".tmp{extension}", dir=directory
    )
    os.close(handle)
    os.remove(temporary)  # savers that refuse to overwrite get a free name
    try:
        yield temporary
        if os.path.isfile(temporary):
            with open(temporary, "rb+") as written:
                os.fsync(written.fileno())
        _kill_hook(path)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def atomic_write_text(path, text):
    """Writes `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)


def remove_temporaries(directory):
    """Removes the temporary files that writes killed before their `os.replace` left in
    `directory` (names of `atomic_path`'s pattern only); returns their names."""
    if not os.path.isdir(directory):
        return []
    stale = sorted(name for name in os.listdir(directory) if _TEMPORARY.match(name))
    for name in stale:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            os.remove(path)
    return stale


def _kill_hook(path):
    target = os.environ.get(KILL_HOOK)
    if not target:
        return
    name, _, count = target.partition("#")
    if os.path.basename(path) == name:
        _writes[name] = _writes.get(name, 0) + 1
        if _writes[name] == int(count or 1):
            os.kill(os.getpid(), signal.SIGKILL)
