"""Compiled decoding loops, traced once per model and settings.

The loops in this package are plain functions of (model, src_ids, settings). Called
eagerly, each would retrace and recompile on every call; `decode_in_buckets` keeps one
tf.function per (loop, model, settings, source width) with a (batch, width) signature,
so the loop's buffers are sized from the source (width + 50, not the model's
max_length). Each new program costs a trace and an XLA compilation, about 2 s for beam
search on CPU (1 s with TensorFlow's persistent XLA cache, which the CLI keeps in the
run directory), so both dimensions are bucketed coarsely:

- source columns are padded to a power of two, at least `SOURCE_BUCKET` (padding is
  masked, so it changes no result; it widens the attention's buffers, a small share of
  a step beside the projections);
- the batch is filled up to a power of two (then a multiple of `BATCH_BUCKET`) with
  copies of its first row, which are decoded and dropped. (Copies, not empty rows: a
  copy finishes when its original does, where an empty source could keep the loop
  running to its length limit.) A caller decoding a stream of batches may also let a
  short batch (the last one, or the rows decoded again by `stragglers`) fill up to the
  rows of a program already compiled for its width: the extra rows cost far less than
  a new program.

A test set of any size and mix of lengths then compiles a handful of programs, not one
per batch, and `CompileAhead` compiles them on a helper thread while the first batches
decode. The functions are traced without autograph (the loops use tf.while_loop
themselves), which takes a third off the cost of a trace. Inside a traced function (a SavedModel
signature, a TFLite conversion) the loop is called directly and joins that graph.

Each program is traced under names of its own (`_trace`), the same in every process, so
that TensorFlow's persistent XLA cache finds it again: the cache keys a program by the
traced function's name and a hash of its HLO, and TensorFlow numbers both the function
and the while loops inside it from one process-wide counter (`ops.uid()`), which every
eager tensor also advances. Traced as they come, a program got other numbers in every
process (decoding beside it moves the counter), and a later process compiled it again.
"""

import hashlib
import itertools
import threading
import weakref

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops

from keras_transformer.constants import PAD_ID
from keras_transformer.errors import InputError
from keras_transformer.layers.attention import cache_writes
from keras_transformer.model import check_id_range

SOURCE_BUCKET = 16
BATCH_BUCKET = 64

_FUNCTIONS = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()  # guards _FUNCTIONS for CompileAhead's thread

# The numbers `_trace` names a program's functions from: 2**16 of them per program, far
# above any count TensorFlow's own counter reaches.
_NAMES_BASE = 1 << 60
_NAMES_PER_PROGRAM = 1 << 16
_TRACE_LOCK = threading.Lock()  # one trace at a time, while `ops.uid` is replaced
_NAMED = {}  # description of a program -> the first of its numbers, in this process


def source_bucket(src_len, max_length):
    """The width a source of `src_len` columns is padded to: the next power of two, at
    least SOURCE_BUCKET, at most `max_length`."""
    return min(max(SOURCE_BUCKET, 1 << max(src_len - 1, 0).bit_length()), max_length)


def pad_to_bucket(src_ids, max_length):
    """Pads (batch, src_len) ids with 0-columns to `source_bucket(src_len, max_length)`;
    raises InputError when src_len is already beyond `max_length`."""
    src_len = src_ids.shape[1]
    if src_len > max_length:
        raise InputError(
            f"src ids have length {src_len}, longer than the model's max_length="
            f"{max_length}; truncate the input or build with a larger max_length"
        )
    bucket = source_bucket(src_len, max_length)
    return tf.pad(src_ids, [[0, 0], [0, bucket - src_len]], constant_values=PAD_ID)


def batch_bucket(batch):
    """The batch size a batch of `batch` rows is filled up to: the next power of two up
    to BATCH_BUCKET, then the next multiple of BATCH_BUCKET."""
    if batch <= BATCH_BUCKET:
        return 1 << max(batch - 1, 0).bit_length()
    return -(-batch // BATCH_BUCKET) * BATCH_BUCKET


def _fill_batch(src_ids, rows):
    """(batch, width) -> (rows, width), the new rows copies of row 0."""
    batch = src_ids.shape[0]
    if batch == 0 or rows == batch:
        return src_ids
    return tf.concat([src_ids, tf.repeat(src_ids[:1], rows - batch, axis=0)], axis=0)


def _rows(functions, key, fill_up_to):
    """The rows a batch is decoded with, for `key` = (loop, args, jit_compile,
    (batch, width), capped): its batch bucket, or the fewest rows of a program already
    compiled for the same loop, settings and width, if that is no more than `fill_up_to`."""
    *same, (batch, width), capped = key
    bucket = batch_bucket(batch)
    reusable = [
        shape[0]
        for (*other, shape, other_capped) in functions
        if other == same
        and other_capped == capped
        and shape[1] == width
        and bucket < shape[0] <= fill_up_to
    ]
    return min(reusable, default=bucket)


def _key(loop, model, src_shape, args, jit_compile, capped, fill_up_to):
    """The program a batch of `src_shape` = (batch, padded width) is decoded with:
    (loop, args, jit_compile, (rows, width), capped)."""
    functions = _FUNCTIONS.setdefault(model, {})
    rows = _rows(functions, (loop, tuple(args), jit_compile, src_shape, capped), fill_up_to)
    return (loop, tuple(args), jit_compile, (rows, src_shape[1]), capped)


def _function(model, key):
    """The tf.function of `key`, created on first use (not yet traced or compiled)."""
    functions = _FUNCTIONS.setdefault(model, {})
    if key in functions:
        return functions[key]
    loop, args, jit_compile, shape, capped = key
    # A weak reference, so that the cached function does not keep the model alive.
    model_ref = weakref.ref(model)
    # Under XLA the cache is written by slices, in place (see `cache_writes`).
    writes = "slices" if jit_compile else "scatter"
    if capped:

        def function(ids, steps):
            with cache_writes(writes):
                return loop(model_ref(), ids, *args, max_steps=steps)

        signature = [tf.TensorSpec(shape, tf.int32), tf.TensorSpec([], tf.int32)]
    else:

        def function(ids):
            with cache_writes(writes):
                return loop(model_ref(), ids, *args)

        signature = [tf.TensorSpec(shape, tf.int32)]
    functions[key] = tf.function(
        function, jit_compile=jit_compile, input_signature=signature, autograph=False
    )
    return functions[key]


def _first_name_number(description):
    """The first of the numbers a program's functions are named with, taken from a hash
    of its `description` (so the same in every process); None if this process already
    named a program so (the same program of another model), or a different one from the
    same numbers (a hash collision): TensorFlow's own numbers then keep names unique."""
    digest = hashlib.blake2b(description.encode(), digest_size=5).digest()
    first = _NAMES_BASE + int.from_bytes(digest, "big") * _NAMES_PER_PROGRAM
    if description in _NAMED or first in _NAMED.values():
        return None
    _NAMED[description] = first
    return first


def _trace(model, key, function):
    """Traces `function`, the program of `key` for `model`, unless it is traced: the
    names TensorFlow gives its functions (`__inference_function_N`, the while loops'
    bodies and conditions) numbered from `_first_name_number` instead of the
    process-wide counter, so that the persistent XLA cache finds the program in a later
    process whatever ran before it. (`ops.uid` is TensorFlow's private counter, which
    those names are read from; it is replaced only during the trace, under a lock. A
    number another thread takes from it meanwhile is still unique.)"""
    if function.experimental_get_tracing_count():
        return
    loop, args, jit_compile, shape, capped = key
    description = repr(
        (loop.__module__, loop.__qualname__, args, jit_compile, shape, capped, model.config)
    )
    with _TRACE_LOCK:
        if function.experimental_get_tracing_count():  # traced while this thread waited
            return
        first = _first_name_number(description)
        if first is None:
            function.get_concrete_function()
            return
        numbers, counter = itertools.count(first), tf_ops.uid
        tf_ops.uid = lambda: next(numbers)
        try:
            function.get_concrete_function()
        finally:
            tf_ops.uid = counter


def decode_in_buckets(loop, model, src_ids, args, jit_compile=True, max_steps=None, fill_up_to=0):
    """`loop(model, src_ids, *args)` on the source padded to its bucket shape, compiled
    once per bucket and cached when called eagerly; the answer cut back to the batch.

    Args:
        loop: a decoding loop such as `greedy_loop` or `beam_loop`.
        model: the model it decodes with.
        src_ids: (batch, src_len) int ids.
        args: tuple of the loop's arguments after src_ids (a `DecodingSettings`, ...);
            hashable, as they key the cache.
        jit_compile: compile with XLA.
        max_steps: None, or an int passed to the loop as a tensor, so that every value
            shares one compiled program (the loop then also returns its done flags).
        fill_up_to: a batch may be filled up to this many rows to run a program
            already compiled for them instead of compiling its own.
    """
    capped = max_steps is not None
    if capped:
        steps = tf.constant(max_steps, tf.int32)
    if not tf.executing_eagerly():
        return (
            loop(model, src_ids, *args, max_steps=steps) if capped else loop(model, src_ids, *args)
        )
    if not hasattr(src_ids, "dtype"):
        src_ids = np.asarray(src_ids)
    src_ids = tf.convert_to_tensor(src_ids)
    if not src_ids.dtype.is_integer or src_ids.shape.rank != 2:
        raise InputError(
            f"src ids must be int32 of shape (batch, length); got {src_ids.dtype.name} "
            f"{tuple(src_ids.shape)}"
        )
    # The model checks its ids only when called eagerly; the loop below is traced.
    check_id_range(src_ids.numpy(), "src", model.config.src_vocab_size)
    if not getattr(model, "built", True):  # variables must exist before the trace reads them
        model.build()
    batch = src_ids.shape[0]
    src_ids = pad_to_bucket(tf.cast(src_ids, tf.int32), model.config.max_length)
    with _LOCK:
        key = _key(loop, model, tuple(src_ids.shape), args, jit_compile, capped, fill_up_to)
        function = _function(model, key)
    _trace(model, key, function)
    src_ids = _fill_batch(src_ids, key[3][0])
    outputs = function(src_ids, steps) if capped else function(src_ids)
    return tf.nest.map_structure(lambda t: t[:batch], outputs)


class CompileAhead:
    """Compiles, on a helper thread, the programs that `decode_in_buckets` will pick for
    a stream of batches, while the caller decodes the first ones.

    Decoding keeps about 1.5 of 2 cores busy and a compilation (tracing, then XLA) uses
    one, so a program compiled ahead costs the stream less than one compiled when its
    batch arrives. Use as a context manager around the stream; leaving it stops the
    thread after the compilation under way. The helper leaves the first batch's program
    to the stream, which needs it at once, and starts on the next ones. Each program is
    run once on an empty batch (all padding: every row's limit is 0, so the loop ends
    at once). A program the stream reaches first is compiled by the stream (TensorFlow
    lets one thread trace and compile it, the other waits), and one whose compilation
    fails here is compiled again, and fails with its error, when its batch arrives.

    Args:
        loop, model, args, jit_compile, fill_up_to: as `decode_in_buckets`.
        shapes: the (batch, src_len) of the stream's batches, in the order they come.
        capped: whether the stream passes `max_steps`.
    """

    def __init__(self, loop, model, shapes, args, jit_compile=True, capped=False, fill_up_to=0):
        self._loop, self._args, self._jit_compile = loop, tuple(args), jit_compile
        self._model_ref = weakref.ref(model)
        self._shapes, self._capped, self._fill_up_to = list(shapes), capped, fill_up_to
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="compile-ahead", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()

    def wait(self):
        """Blocks until every program of the stream is compiled (a server warming up)."""
        self._thread.join()

    def _run(self):
        seen = set()
        for index, (batch, src_len) in enumerate(self._shapes):
            model = self._model_ref()
            if self._stop.is_set() or model is None:
                return
            width = source_bucket(src_len, model.config.max_length)
            with _LOCK:
                key = _key(
                    self._loop,
                    model,
                    (batch, width),
                    self._args,
                    self._jit_compile,
                    self._capped,
                    self._fill_up_to,
                )
                function = _function(model, key)
            if index == 0:
                # The stream compiles its first program at once: start on the next one,
                # so that the two compilations run side by side on two cores.
                seen.add(key)
            if key in seen or function.experimental_get_tracing_count():
                continue  # compiled, or being compiled by the stream
            seen.add(key)
            empty = tf.zeros(key[3], tf.int32)
            try:
                _trace(model, key, function)
                function(empty, tf.constant(0)) if self._capped else function(empty)
            except Exception:  # noqa: BLE001 - the stream meets and reports it
                continue
