"""read_parallel: sentence pairs from a TSV file or from two aligned files.

Formats:

- TSV: one pair per line, `source<TAB>target`. A line is malformed unless it
  has exactly one tab and text on both sides.
- Aligned files: line i of the source file translates line i of the target
  file. Both must have the same number of lines; a pair with an empty side is
  malformed.

Files are read as UTF-8 (a leading byte-order mark is dropped); `\\r\\n` line
ends are accepted; each side is stripped of surrounding whitespace.

A malformed line raises ValueError naming the file and line number, unless
`skip_bad_lines=True`: then it is skipped, and one warning on the
`keras_transformer.data` logger says how many were skipped and where the first
was.

Example:

>>> for name, text in [("train.tsv", "Hello, world!\\tHallo, Welt!\\n"),
...                    ("train.en", "Hello, world!\\n"), ("train.de", "Hallo, Welt!\\n")]:
...     with open(name, "w", encoding="utf-8") as f:
...         _ = f.write(text)
>>> read_parallel("train.tsv")
[('Hello, world!', 'Hallo, Welt!')]
>>> read_parallel("train.en", "train.de")
[('Hello, world!', 'Hallo, Welt!')]
"""

import itertools
import logging
import os

from keras_transformer.errors import InputError

logger = logging.getLogger("keras_transformer.data")


def read_parallel(path, target_path=None, skip_bad_lines=False):
    """Returns the (source, target) pairs of a TSV file or two aligned files.

    Args:
        path: a TSV file, or the source side when `target_path` is given.
        target_path: the target side, aligned line by line with `path`.
        skip_bad_lines: skip malformed lines (with a warning) instead of
            raising.

    Returns:
        list of (str, str), in file order.

    Raises:
        FileNotFoundError: a file does not exist.
        ValueError: bytes that are not UTF-8, aligned files of different line
            counts, a malformed line (unless skipped), or no pairs at all.
    """
    if target_path is None:
        numbered = _read_tsv(path)
        files = os.fspath(path)
        expected = "one 'source<TAB>target' pair per line, both sides non-empty"
    else:
        numbered = _read_aligned(path, target_path)
        files = f"{os.fspath(path)} and {os.fspath(target_path)}"
        expected = "a non-empty sentence on the same line of both files"

    pairs = []
    skipped = []
    for line_number, pair, problem in numbered:
        if problem is None:
            pairs.append(pair)
        elif skip_bad_lines:
            skipped.append((line_number, problem))
        else:
            raise InputError(
                f"{problem} at line {line_number}; expected {expected}. Fix the "
                f"line or pass skip_bad_lines=True."
            )
    if skipped:
        first_line, first_problem = skipped[0]
        logger.warning(
            "skipped %d malformed line(s) of %s (first: %s at line %d)",
            len(skipped),
            files,
            first_problem,
            first_line,
        )
    if not pairs:
        raise InputError(
            f"{files} holds no sentence pairs"
            + (f" ({len(skipped)} malformed lines skipped)" if skipped else "")
        )
    return pairs


def iter_parallel(path, target_path=None, skip_bad_lines=False):
    """Yields the (source, target) pairs of a TSV file or two aligned files as it reads
    them, a line at a time: memory does not grow with the file. The formats and checks
    are `read_parallel`'s, except that aligned files of different lengths are found
    when the shorter one ends, and a file without any pair yields nothing.

    Yields:
        (line number, pair or None, problem or None): a malformed line has a problem
        and no pair; with `skip_bad_lines=False` it raises InputError instead.
    """
    if target_path is None:
        numbered = _read_tsv(path, _stream_lines(path))
    else:
        numbered = _stream_aligned(path, target_path)
    for line_number, pair, problem in numbered:
        if problem is not None and not skip_bad_lines:
            raise InputError(
                f"{problem} at line {line_number}; fix the line or pass skip_bad_lines=True."
            )
        yield line_number, pair, problem


def _read_tsv(path, lines=None):
    """Yields (line number, pair or None, problem or None) for a TSV file (its `lines`
    when given)."""
    for line_number, line in enumerate(_read_lines(path) if lines is None else lines, start=1):
        fields = line.split("\t")
        if len(fields) != 2:
            problem = "empty line" if not line.strip() else f"{len(fields) - 1} tabs"
            yield line_number, None, f"{os.fspath(path)}: {problem}"
            continue
        source, target = fields[0].strip(), fields[1].strip()
        if not source or not target:
            side = "source" if not source else "target"
            yield line_number, None, f"{os.fspath(path)}: empty {side}"
            continue
        yield line_number, (source, target), None


def _read_aligned(source_path, target_path):
    """Yields (line number, pair or None, problem or None) for aligned files."""
    sources = _read_lines(source_path)
    targets = _read_lines(target_path)
    if len(sources) != len(targets):
        raise InputError(
            f"aligned files differ in length: {os.fspath(source_path)} has "
            f"{len(sources)} lines, {os.fspath(target_path)} has {len(targets)}; "
            f"line i of one must translate line i of the other"
        )
    for line_number, (source, target) in enumerate(zip(sources, targets), start=1):
        yield _aligned_pair(line_number, source, target, source_path, target_path)


def _stream_aligned(source_path, target_path):
    """`_read_aligned` a line at a time."""
    sources, targets = _stream_lines(source_path), _stream_lines(target_path)
    line_number = 0
    for line_number, (source, target) in enumerate(
        itertools.zip_longest(sources, targets), start=1
    ):
        if source is None or target is None:
            shorter = source_path if source is None else target_path
            raise InputError(
                f"aligned files differ in length: {os.fspath(shorter)} ends after "
                f"{line_number - 1} lines while the other goes on; line i of one must "
                "translate line i of the other"
            )
        yield _aligned_pair(line_number, source, target, source_path, target_path)


def _aligned_pair(line_number, source, target, source_path, target_path):
    """(line_number, (source, target), None) for two stripped non-empty lines, else
    (line_number, None, why)."""
    source, target = source.strip(), target.strip()
    if not source or not target:
        empty = source_path if not source else target_path
        return line_number, None, f"{os.fspath(empty)}: empty line"
    return line_number, (source, target), None


def _stream_lines(path):
    """The lines of a UTF-8 file, without line ends, read one at a time."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"parallel corpus file not found: {path}")
    with open(path, "rb") as f:
        yield from decode_lines(f, path)


def decode_lines(handle, name):
    """The lines of a binary stream, decoded as UTF-8 (a leading byte-order mark
    dropped), without their line ends (\\n or \\r\\n: only \\n ends a line, as in
    `_read_lines`). Bytes that are not UTF-8 raise InputError naming `name` and the
    line, where Python's own decoding error names neither."""
    for number, raw in enumerate(handle, start=1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            raise InputError(
                f"{name} is not valid UTF-8: byte 0x{raw[error.start]:02x} on line {number}; "
                "re-encode it as UTF-8"
            ) from None
        yield line.removesuffix("\n").removesuffix("\r")


def _read_lines(path):
    """The lines of a UTF-8 file, without line ends."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"parallel corpus file not found: {path}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line_number = data.count(b"\n", 0, error.start) + 1
        raise InputError(
            f"{path} is not valid UTF-8: byte 0x{data[error.start]:02x} at byte "
            f"offset {error.start} (line {line_number}); re-encode the file as "
            f"UTF-8"
        ) from error
    # splitlines() would also split on \x0b, \x1c, U+2028, ... inside sentences.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline ending the last line does not start a new one
    return [line[:-1] if line.endswith("\r") else line for line in lines]
