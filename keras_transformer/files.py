"""Files that appear whole or not at all.

A process killed while it writes leaves either the previous file or the new one, never
a truncated mix: the content goes to a temporary name in the same directory, is flushed
to disk, and `os.replace` (atomic on POSIX within one file system) puts it in place.

Example:
>>> atomic_write_text("runs/fr/config.json", json.dumps(config))
>>> with atomic_path("runs/fr/model.keras") as tmp:
...     model.save(tmp)
"""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path` to write to; on success renames it to `path`,
    on error removes it (and leaves `path` as it was). The temporary name keeps the
    extension, since savers such as Keras' choose the format from it."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base, extension = os.path.splitext(os.path.basename(path))
    if base.endswith(".weights"):  # Keras requires the whole ".weights.h5" suffix
        base, extension = base[:-len(".weights")], ".weights" + extension
    handle, temporary = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{extension}",
                                         dir=directory)
    os.close(handle)
    os.remove(temporary)  # savers that refuse to overwrite get a free name
    try:
        yield temporary
        if os.path.isfile(temporary):
            with open(temporary, "rb+") as written:
                os.fsync(written.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def atomic_write_text(path, text):
    """Writes `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
