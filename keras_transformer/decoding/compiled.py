"""Compiled decoding loops, traced once per model and settings.

The loops in this package are plain functions of (model, src_ids, settings). Called
eagerly, each would retrace and recompile on every call; `decode_in_buckets` keeps one
tf.function per (loop, model, settings, source width) with a (batch, width) signature,
so the loop's buffers are sized from the source (width + 50, not the model's
max_length). XLA
compiles one program per input shape, so both dimensions are bucketed: source columns
are padded to a multiple of `SOURCE_BUCKET` (padding is masked, so it changes no
result), and the batch is filled up to a power of two (then a multiple of
`BATCH_BUCKET`) with copies of its first row, which are decoded and dropped. A test set
of any size and mix of lengths then compiles a handful of programs, not one per batch.
(Copies, not empty rows: a copy finishes when its original does, where an empty
source could keep the loop running to its length limit.) Inside a traced function (a
SavedModel signature, a TFLite conversion) the loop is called directly and joins that
graph.
"""

import weakref

import numpy as np
import tensorflow as tf

from keras_transformer.constants import PAD_ID
from keras_transformer.errors import InputError
from keras_transformer.model import check_id_range

SOURCE_BUCKET = 16
BATCH_BUCKET = 64

_FUNCTIONS = weakref.WeakKeyDictionary()


def pad_to_bucket(src_ids, max_length):
    """Pads (batch, src_len) ids with 0-columns to a multiple of SOURCE_BUCKET (at most
    `max_length`); raises InputError when src_len is already beyond `max_length`."""
    src_len = src_ids.shape[1]
    if src_len > max_length:
        raise InputError(
            f"src ids have length {src_len}, longer than the model's max_length="
            f"{max_length}; truncate the input or build with a larger max_length"
        )
    bucket = min(-(-max(src_len, 1) // SOURCE_BUCKET) * SOURCE_BUCKET, max_length)
    return tf.pad(src_ids, [[0, 0], [0, bucket - src_len]], constant_values=PAD_ID)


def batch_bucket(batch):
    """The batch size a batch of `batch` rows is filled up to: the next power of two up
    to BATCH_BUCKET, then the next multiple of BATCH_BUCKET."""
    if batch <= BATCH_BUCKET:
        return 1 << max(batch - 1, 0).bit_length()
    return -(-batch // BATCH_BUCKET) * BATCH_BUCKET


def _fill_batch(src_ids):
    """(batch, width) -> (batch_bucket(batch), width), the new rows copies of row 0."""
    batch = src_ids.shape[0]
    extra = batch_bucket(batch) - batch
    if batch == 0 or extra == 0:
        return src_ids
    return tf.concat([src_ids, tf.repeat(src_ids[:1], extra, axis=0)], axis=0)


def decode_in_buckets(loop, model, src_ids, args, jit_compile=True, max_steps=None):
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
    src_ids = _fill_batch(pad_to_bucket(tf.cast(src_ids, tf.int32), model.config.max_length))
    functions = _FUNCTIONS.setdefault(model, {})
    shape = tuple(src_ids.shape)
    key = (loop, tuple(args), jit_compile, shape, capped)
    if key not in functions:
        # A weak reference, so that the cached function does not keep the model alive.
        model_ref = weakref.ref(model)
        if capped:

            def function(ids, steps):
                return loop(model_ref(), ids, *args, max_steps=steps)

            signature = [tf.TensorSpec(shape, tf.int32), tf.TensorSpec([], tf.int32)]
        else:

            def function(ids):
                return loop(model_ref(), ids, *args)

            signature = [tf.TensorSpec(shape, tf.int32)]
        functions[key] = tf.function(function, jit_compile=jit_compile, input_signature=signature)
    outputs = functions[key](src_ids, steps) if capped else functions[key](src_ids)
    return tf.nest.map_structure(lambda t: t[:batch], outputs)
