"""Honours TF_CPP_MIN_LOG_LEVEL for the lines TensorFlow's libraries log while loading.

TensorFlow 2.21 (and the other native libraries we load: TensorFlow Text, LiteRT, ONNX)
log through absl before absl reads its settings, so their start-up lines reach stderr
whatever TF_CPP_MIN_LOG_LEVEL says:

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796218714.006316    1487 port.cc:153] oneDNN custom operations are on. ...

`honour_log_level()` wraps the imports: while they run, file descriptor 2 goes to a
temporary file; afterwards every line is written back except the log entries below the
level (I = 0, W = 1, E = 2: level 1 drops I, level 2 drops I and W, level 3 all three)
and absl's banner. LiteRT's own lines ("INFO: ", "WARNING: ", "ERROR: ") count as I, W
and E. An entry's continuation lines (those without a log prefix) go with it.
Nothing is dropped while the variable is unset or 0 (but for the banner and one known
LiteRT line with `always_filter`), and a Python exception raised by an import still
reaches stderr, after the lines are written back.

The command line sets the level to 3 unless the user set it (at 2, TensorFlow built for
CUDA still logs "failed call to cuInit" as an error on every machine without a GPU), so
a user's mistake prints one line; TF_CPP_MIN_LOG_LEVEL=0 shows TensorFlow's own logs.
"""

import contextlib
import os
import re
import sys
import tempfile

LOG_ENTRY = re.compile(r"^(?:([IWEF])\d{4} |(INFO|WARNING|ERROR): )")
SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3, "INFO": 0, "WARNING": 1, "ERROR": 2}
ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called"
# LiteRT's Python interpreter sets this deprecated flag on the XNNPACK delegate it makes
# for experimental_default_delegate_latest_features, then logs it as an error: a user
# can do nothing about it (runtimes/tflite.py).
LITERT_FLAG_NOTICE = "ERROR: Subgraph reshaping is enabled by default"


def run_as_command():
    """True when this process is the `keras-transformer` command."""
    return os.path.basename(sys.argv[0]) == "keras-transformer" or sys.orig_argv[1:3] == [
        "-m",
        "keras_transformer.cli",
    ]


def kept_lines(text, level):
    """The lines of `text` that a TF_CPP_MIN_LOG_LEVEL of `level` lets through."""
    kept, keeping = [], True
    for line in text.splitlines(keepends=True):
        entry = LOG_ENTRY.match(line)
        if line.startswith((ABSL_BANNER, LITERT_FLAG_NOTICE)):
            keeping = False
            continue
        if entry:
            keeping = SEVERITY[entry.group(1) or entry.group(2)] >= level
        if keeping:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def honour_log_level(always_filter=False):
    """Filters what the wrapped imports write to stderr by TF_CPP_MIN_LOG_LEVEL; with
    `always_filter`, drops the banner and LiteRT's flag notice even at level 0."""
    try:
        level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        level = 0
    if level <= 0 and not always_filter:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = kept_lines(captured.read().decode("utf-8", "replace"), level)
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()
