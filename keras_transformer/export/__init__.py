"""Export a trained Translator to TF Serving (SavedModel), LiteRT (TFLite) and ONNX Runtime.

    kt.export.export_saved_model(translator, "saved_models/en_de", version=1)
    kt.export.export_tflite(translator, "saved_models/en_de.tflite", quantization=None)
    kt.export.export_onnx(translator, "saved_models/en_de_onnx")

Each function returns the path(s) it wrote. `TFLiteTranslator` and `OnnxTranslator` run
the exported files with the LiteRT interpreter and ONNX Runtime. docs/serving.md shows
the servers and runtimes around them.
"""

from keras_transformer.export.tflite import TFLiteTranslator, export_tflite
from keras_transformer.export.onnx import OnnxTranslator, export_onnx
from keras_transformer.export.saved_model import (
    export_saved_model,
    read_warmup_requests,
    write_warmup_requests,
)
