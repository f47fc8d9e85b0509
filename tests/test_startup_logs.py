"""TF_CPP_MIN_LOG_LEVEL honoured for the lines native libraries log while loading."""

import os
import subprocess
import sys

from keras_transformer.startup_logs import kept_lines

LOADING = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796218714.006316    1487 port.cc:153] oneDNN custom operations are on.\n"
    "I0000 00:00:1796218714.090299    1487 cpu_feature_guard.cc:227] This binary is optimized\n"
    "To enable the following instructions: AVX2 AVX512F, rebuild TensorFlow.\n"
    "W0000 00:00:1796218714.100000    1487 some.cc:1] a warning\n"
    "E0000 00:00:1796218714.200000    1487 other.cc:2] an error\n"
    "with a second line\n"
)


def test_each_level_drops_the_entries_below_it_with_their_continuations():
    # Catches: continuation lines printed without their entry, errors dropped at level 2,
    # the filter applied at level 0.
    assert kept_lines(LOADING, 0) == LOADING.split("\n", 1)[1]
    assert kept_lines(LOADING, 1) == LOADING[LOADING.index("W0000") :]
    assert kept_lines(LOADING, 2) == LOADING[LOADING.index("E0000") :]
    assert kept_lines(LOADING, 3) == ""
    assert kept_lines("a Python warning\n", 3) == "a Python warning\n"


def test_litert_lines_count_by_their_prefix_and_its_flag_notice_always_goes():
    # Catches: LiteRT's "INFO: " lines kept at level 1 (they are not absl entries), its
    # "ERROR: " lines dropped at level 2, or its notice about the deprecated flag that
    # its own Python interpreter sets printed as an error to every TFLiteTranslator user.
    litert = (
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
        "ERROR: Subgraph reshaping is enabled by default, TFLITE_XNNPACK_DELEGATE_FLAG_"
        "ENABLE_SUBGRAPH_RESHAPING is deprecated and will be removed in the future.\n"
        "ERROR: a real error\n"
    )
    assert kept_lines(litert, 0) == "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n" + (
        "ERROR: a real error\n"
    )
    assert kept_lines(litert, 1) == kept_lines(litert, 2) == "ERROR: a real error\n"
    assert kept_lines(litert, 3) == ""


def importing(level, code="import keras_transformer"):
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_importing_the_package_at_level_2_prints_nothing():
    # Catches: the package's imports not wrapped (TensorFlow's start-up lines reach
    # stderr whatever the level), or stderr left redirected after them.
    quiet = importing("2")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr[-2000:]
    failing = importing("2", "import keras_transformer; raise SystemExit('after import')")
    assert failing.stderr.strip() == "after import"
