"""Runtimes: run the files `keras_transformer.export` writes, without the converters.

    kt.runtimes.TFLiteTranslator("saved_models/en_de.tflite")     # LiteRT interpreter
    kt.runtimes.OnnxTranslator("saved_models/en_de_onnx")         # ONNX Runtime

What a phone or a server imports to translate with an export. This package may import
TensorFlow, NumPy, `keras_transformer.constants`, `errors`, `extras`, `model` (its id
check), `text` (the tokenizers) and `decoding.rules` (the rules the ONNX step loop
follows); never `keras_transformer.export` or a converter (tf2onnx, onnx, the TFLite
converter).
onnxruntime and ai_edge_litert come with the [export] extra and are imported when a
runtime is created, so `import keras_transformer` works without them.
"""

from keras_transformer.runtimes.onnx import OnnxTranslator
from keras_transformer.runtimes.tflite import TFLiteTranslator
