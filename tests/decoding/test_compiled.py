"""Shape buckets of the compiled loops, and translating a test set in length order."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import strip

from keras_transformer import decoding
from keras_transformer.decoding import compiled
from keras_transformer.errors import InputError
from keras_transformer.translator import translate_in_batches


def test_batch_buckets():
    assert [compiled.batch_bucket(n) for n in (0, 1, 2, 3, 5, 33, 64, 65, 130)] == [
        1,
        1,
        2,
        4,
        8,
        64,
        64,
        128,
        192,
    ]


def test_source_buckets_are_powers_of_two_capped_at_max_length():
    # Catches: a program per multiple of 16 (one per width a test set holds), and the
    # cap ignored (a 100-token model asked for a 128-wide buffer).
    widths = [compiled.source_bucket(n, 256) for n in (0, 1, 16, 17, 33, 64, 65, 200)]
    assert widths == [16, 16, 16, 32, 64, 64, 128, 256]
    assert compiled.source_bucket(70, 100) == 100


def test_a_short_batch_reuses_a_compiled_program_within_fill_up_to(tiny_model, sources):
    # Catches: a short batch compiling its own program although fill_up_to allows a
    # compiled one; reuse beyond fill_up_to, or across source widths; the filler rows
    # leaking into the results.
    functions = compiled._FUNCTIONS.setdefault(tiny_model, {})
    functions.clear()
    settings = decoding.DecodingSettings(beam_size=2, alpha=0.6, max_length=10)
    loop = decoding.beam_loop

    def decode(src_ids, fill_up_to):
        ids, scores = compiled.decode_in_buckets(
            loop, tiny_model, src_ids, (settings,), fill_up_to=fill_up_to
        )
        return ids.numpy(), scores.numpy()

    decode(np.concatenate([sources, sources]), 0)  # 8 rows: the (8, 16) program
    assert len(functions) == 1
    ids, scores = decode(sources[:3], 8)  # 3 rows: bucket 4, filled to the compiled 8
    assert len(functions) == 1 and ids.shape[0] == 3
    for row in range(3):
        alone_ids, alone_scores = decode(sources[row : row + 1], 0)
        assert strip(ids[row, 0]) == strip(alone_ids[0, 0])
        np.testing.assert_allclose(scores[row], alone_scores[0], atol=1e-4)
    assert len(functions) == 2  # the rows alone: their own (1, 16) program
    decode(sources[:3], 4)  # 8 rows are more than 4: the (4, 16) program
    assert len(functions) == 3
    wide = np.pad(sources[:3], [[0, 0], [0, 14]])  # 20 columns: width 32
    decode(wide, 8)  # nothing compiled for width 32 yet
    assert {shape for *_, shape, _ in functions} == {(8, 16), (1, 16), (4, 16), (4, 32)}


def test_batches_of_one_bucket_share_one_program_and_match_row_by_row(tiny_model, sources):
    # Catches: the filler rows leaking into the results (rows cut wrongly), a program per
    # batch size (the cache key keeping the unfilled shape), filler rows that change the
    # real rows' decoding.
    functions = compiled._FUNCTIONS.setdefault(tiny_model, {})
    functions.clear()
    beam = dict(max_length=10, beam_size=2, jit_compile=True)
    ids5, scores5 = decoding.beam_search(tiny_model, np.concatenate([sources, sources[:1]]), **beam)
    ids7, _ = decoding.beam_search(tiny_model, np.concatenate([sources, sources[:3]]), **beam)
    assert len(functions) == 1 and ids5.shape[0] == 5 and ids7.shape[0] == 7
    for row in range(4):
        alone_ids, alone_scores = decoding.beam_search(tiny_model, sources[row : row + 1], **beam)
        assert strip(ids5[row]) == strip(alone_ids[0]) == strip(ids7[row])
        np.testing.assert_allclose(scores5[row], alone_scores[0], atol=1e-4)


def test_translate_in_batches_sorts_by_length_and_restores_the_order():
    # Catches: translations returned in sorted order, batches not grouped by length.
    calls = []

    def upper(batch):
        calls.append(batch)
        return [s.upper() for s in batch]

    sentences = ["a much longer sentence", "hi", "medium one", "x", "", "another long one"]
    assert translate_in_batches(upper, sentences, batch_size=2) == [s.upper() for s in sentences]
    assert calls == [
        ["", "x"],
        ["hi", "medium one"],
        ["another long one", "a much longer sentence"],
    ]
    assert translate_in_batches(upper, [], batch_size=2) == []


@pytest.mark.parametrize(
    "bad,dtype",
    [
        (lambda v: v, np.int32),
        (lambda v: v + 1000, np.int32),
        (lambda v: -1, np.int32),
        (lambda v: 2**32 + 10, np.int64),
    ],
    ids=["V", "V+1000", "-1", "2^32+10"],
)
def test_out_of_range_ids_are_refused_with_the_offending_value(tiny_model, sources, bad, dtype):
    # Catches: ids clamped or wrapped by the compiled gathers (V + 1000 decoding as V - 1,
    # -1 as the last id), and int64 ids wrapped by the cast to int32 (2^32 + 10 -> 10).
    bad = bad(tiny_model.config.src_vocab_size)
    src_ids = sources.astype(dtype)
    src_ids[1, 2] = bad
    for search in (decoding.greedy_search, decoding.beam_search):
        with pytest.raises(ValueError, match=rf"got {bad} at position \(1, 2\)"):
            search(tiny_model, src_ids, max_length=5)


def test_an_unbuilt_model_decodes():
    # Catches: decoding a model that was created but never called or trained, which
    # failed inside the traced loop with "no attribute 'key_value_kernel'".
    import keras_transformer as kt

    model = kt.Transformer(
        num_layers=1,
        d_model=8,
        num_heads=2,
        d_ff=16,
        src_vocab_size=12,
        tgt_vocab_size=12,
        max_length=16,
    )
    greedy = decoding.greedy_search(model, np.array([[5, 6, 7]], np.int32), max_length=4)
    beams = decoding.beam_search(model, np.array([[5, 6]], np.int32), beam_size=2, max_length=4)
    assert np.asarray(greedy[0]).shape[0] == np.asarray(beams[0]).shape[0] == 1


@pytest.mark.parametrize(
    "search,settings,message",
    [
        ("greedy_search", dict(max_length=0), "max_length must be None or a positive int"),
        ("greedy_search", dict(max_length=10**6), "longer than the model's max_length"),
        ("greedy_search", dict(min_length=-1), "min_length must be an int >= 0"),
        ("beam_search", dict(beam_size=0), "beam_size must be a positive int"),
        ("beam_search", dict(num_return=5), "num_return must be an int in [1, beam_size=4]"),
        ("beam_search", dict(alpha=float("nan")), "alpha must be a number >= 0, finite"),
        ("sample", dict(temperature=float("inf")), "temperature must be a finite number > 0"),
        ("sample", dict(max_length=0), "max_length must be None or a positive int"),
    ],
)
def test_settings_are_refused_before_anything_is_traced(tiny_model, search, settings, message):
    # Catches: a setting checked only inside the traced loop, where the InputError
    # arrives wrapped in TensorFlow's StagingError with the trace around it (and
    # alpha = NaN, which no check refused: every score came back NaN).
    src_ids = np.array([[5, 6, 7]], np.int32)
    with pytest.raises(InputError) as caught:
        getattr(decoding, search)(tiny_model, src_ids, **settings)
    assert type(caught.value) is InputError and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_compile_ahead_compiles_the_programs_the_stream_then_runs(tiny_model, sources):
    # Catches: the helper thread keying its programs differently from decode_in_buckets
    # (unpadded widths, no fill_up_to: the stream then compiles its own), a helper that
    # compiles nothing (the second program untraced after wait), and one that takes the
    # first program, which the stream compiles at once (the two would then compile one
    # after the other instead of side by side).
    functions = compiled._FUNCTIONS.setdefault(tiny_model, {})
    functions.clear()
    settings = decoding.DecodingSettings(beam_size=2, alpha=0.6, max_length=10)
    stream = [sources, np.pad(sources, [[0, 0], [0, 16]]), np.pad(sources[:3], [[0, 0], [0, 16]])]
    shapes = [batch.shape for batch in stream]  # widths 4, 20, 20: buckets 16, 32, 32
    with compiled.CompileAhead(
        decoding.beam_loop, tiny_model, shapes, (settings,), capped=True, fill_up_to=4
    ) as ahead:
        ahead.wait()
    assert {
        shape: f.experimental_get_tracing_count() for (*_, shape, _), f in functions.items()
    } == {
        (4, 16): 0,  # left to the stream
        (4, 32): 1,
    }
    for src_ids in stream:
        compiled.decode_in_buckets(
            decoding.beam_loop, tiny_model, src_ids, (settings,), max_steps=10, fill_up_to=4
        )
    assert len(functions) == 2
    assert all(f.experimental_get_tracing_count() == 1 for f in functions.values())


# Decodes two queues (widths 16 and 32, one program each, the second compiled ahead) with
# a seeded untrained model and prints the ids; "busy" first runs a traced while loop and
# some eager ops, which move TensorFlow's process-wide name counter.
CACHE_WORKER = """
import json, sys
import keras, numpy as np, tensorflow as tf
import keras_transformer as kt
from keras_transformer import decoding
from keras_transformer.decoding import continuous

if sys.argv[1] == "busy":
    tf.function(lambda x: tf.while_loop(lambda i: i < 3, lambda i: i + 1, [x]))(tf.constant(0))
    for _ in range(50):
        tf.constant(1) + 1
keras.utils.set_random_seed(1)
model = kt.Transformer(num_layers=1, d_model=16, num_heads=2, d_ff=32, src_vocab_size=20,
                       tgt_vocab_size=20, dropout=0.0, max_length=64)
model.build()
sources = [np.arange(n, dtype=np.int32) % 16 + 4 for n in (2, 3, 4, 5, 17, 18, 19, 20)]
settings = decoding.DecodingSettings(beam_size=2, max_length=6)
ids, _ = continuous.decode_queue(model, sources, settings, slots=1)
print(json.dumps([row.tolist() for row in ids]))
"""


@pytest.mark.slow
def test_a_later_process_finds_every_decoding_program_in_the_xla_cache(tmp_path):
    # Catches: programs traced under TensorFlow's own name numbering (the busier second
    # process then names them otherwise, misses the cache and writes both again), and
    # stable names that leave out the program's shape (the two programs would share
    # names and the second one would not trace under its own).
    cache = tmp_path / "xla_cache"
    env = dict(
        os.environ,
        TF_XLA_FLAGS=f"--tf_xla_persistent_cache_directory={cache}",
        TF_CPP_MIN_LOG_LEVEL="3",
    )

    def decode(mode):
        out = subprocess.run(
            [sys.executable, "-c", CACHE_WORKER, mode],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return json.loads(out.strip().splitlines()[-1])

    first = decode("quiet")
    programs = sorted(os.listdir(cache))
    assert len(programs) == 2
    second = decode("busy")
    assert sorted(os.listdir(cache)) == programs
    assert second == first
