"""Export a trained Translator to TF Serving (SavedModel), LiteRT (TFLite) and ONNX Runtime.

    kt.export.export_saved_model(translator, "saved_models/en_de", version=1)
    kt.export.export_tflite(translator, "saved_models/en_de.tflite", quantization=None)
    kt.export.export_onnx(translator, "saved_models/en_de_onnx")

Each function returns the path(s) it wrote. `kt.runtimes` runs the .tflite file and the
ONNX directory (`TFLiteTranslator`, `OnnxTranslator`); the README's "Export and serving"
section shows the servers and runtimes around them.

This package holds the converters: it may import TensorFlow (and its TFLite converter),
the model, `decoding`, `translator`, `text`, `files`, and `runtimes` for the names of
the files and signatures the runtimes read. tf2onnx and onnx (the [export] extra) and
tensorflow-serving-api (the [serving] extra) are imported when an export needs them.
"""

from keras_transformer.export.onnx import export_onnx
from keras_transformer.export.saved_model import (
    export_saved_model,
    read_warmup_requests,
    write_warmup_requests,
)
from keras_transformer.export.tflite import export_tflite
