"""What the runtimes check before running an exported graph, which cannot refuse bad
ids itself (TFLite and ONNX have no assert op, and their Gather counts a negative id
from the end of the embedding table)."""

import numpy as np

from keras_transformer.errors import InputError
from keras_transformer.model import check_id_range

# The decodings a caller may ask an export or a runtime for (None: as exported).
DECODINGS = (None, "greedy")


def check_src_ids(src_ids, src_vocab_size, max_length):
    """Source ids as a runtime takes them: an integer array (batch, src_len), ids in
    [0, src_vocab_size), src_len <= max_length. Returns it as int32, or raises
    InputError naming the offending value."""
    src_ids = np.asarray(src_ids)
    if not np.issubdtype(src_ids.dtype, np.integer) or src_ids.ndim != 2:
        raise InputError(
            f"src ids must be int32 of shape (batch, length); got {src_ids.dtype} {src_ids.shape}"
        )
    # Before the int32 cast, which would wrap an int64 id into a valid one.
    check_id_range(src_ids, "src", src_vocab_size)
    if src_ids.shape[1] > max_length:
        raise InputError(
            f"src ids have length {src_ids.shape[1]}, longer than the model's "
            f"max_length={max_length}; truncate the input"
        )
    return src_ids.astype(np.int32)
