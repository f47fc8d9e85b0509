"""keras_transformer: the Transformer of "Attention Is All You Need" as Keras 3 layers,
trained with `model.fit` and exported to TF Serving, LiteRT and ONNX Runtime."""

import os

from keras_transformer.startup_logs import honour_log_level, run_as_command

if run_as_command():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TensorFlow's CPU tensors come from malloc by default, and every large one is a fresh
# mapping whose pages fault in on first touch; its BFC allocator reuses freed memory
# instead. On 2 CPU cores that made a training step 9 % faster (README, "The training
# step on CPU"). Read when TensorFlow makes its CPU device, so it must be set before the
# first op; set TF_CPU_ALLOCATOR_USE_BFC=false to keep malloc.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

with honour_log_level():
    from keras_transformer import (
        data,
        decoding,
        distribute,
        errors,
        export,
        layers,
        runtimes,
        text,
        training,
    )
    from keras_transformer.config import TransformerConfig
    from keras_transformer.evaluation import evaluate
    from keras_transformer.model import Transformer
    from keras_transformer.translator import Translator

__version__ = "0.1.0"
