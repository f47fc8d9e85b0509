"""Writing GNU gettext .mo catalogs for tests (the format Python's gettext reads)."""

import os
import struct


def write_mo(path, messages):
    """Writes a GNU .mo catalog (little-endian, revision 0) of {msgid: msgstr}; a tuple
    msgid (singular, plural) with a list msgstr makes a plural entry."""
    entries = {"": "Content-Type: text/plain; charset=UTF-8\n"}
    for msgid, msgstr in messages.items():
        if isinstance(msgid, tuple):
            entries["\0".join(msgid)] = "\0".join(msgstr)
        else:
            entries[msgid] = msgstr
    keys = sorted(entries)
    ids = [k.encode("utf-8") for k in keys]
    strs = [entries[k].encode("utf-8") for k in keys]
    header_size = 7 * 4
    ids_table = header_size
    strs_table = ids_table + 8 * len(keys)
    data = strs_table + 8 * len(keys)
    blob, ids_entries, strs_entries = b"", [], []
    for table, items in ((ids_entries, ids), (strs_entries, strs)):
        for item in items:
            table.append((len(item), data + len(blob)))
            blob += item + b"\0"
    out = struct.pack("<7I", 0x950412DE, 0, len(keys), ids_table, strs_table, 0, 0)
    out += b"".join(struct.pack("<2I", n, o) for n, o in ids_entries)
    out += b"".join(struct.pack("<2I", n, o) for n, o in strs_entries)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(out + blob)
