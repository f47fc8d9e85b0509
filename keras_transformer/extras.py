"""Optional dependencies, imported when first needed.

Training needs only TensorFlow, Keras and the text stack. The runtimes and converters
of the exports, the TF Serving client protos and the plots come with extras, so that a
user who only trains does not install them:

| extra     | packages                                   | needed by                       |
|-----------|--------------------------------------------|---------------------------------|
| `export`  | tf2onnx, onnx, onnxruntime, ai-edge-litert | `export_onnx`, `export_tflite`, |
|           |                                            | `OnnxTranslator`, `TFLiteTranslator` |
| `serving` | tensorflow-serving-api                     | `write_warmup_requests`         |
| `plots`   | matplotlib                                 | `keras-transformer plot`        |

`make demo` and `make test` install all of them (`.[all,test]`).

Example:
>>> import_extra("json", "export").dumps([1])
'[1]'
>>> import_extra("no_such_module_here", "plots")
Traceback (most recent call last):
...
ImportError: no_such_module_here is missing; it comes with keras_transformer's [plots] extra: pip install "keras_transformer[plots]"
"""

import importlib


def import_extra(module, extra):
    """Imports `module` (a dotted name) and returns it, or raises ImportError naming the
    extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{module} is missing; it comes with keras_transformer's [{extra}] extra: "
            f'pip install "keras_transformer[{extra}]"'
        ) from error
