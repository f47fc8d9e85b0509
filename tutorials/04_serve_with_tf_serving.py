"""Tutorial 04 — serve the translator with TF Serving.

Run:  python tutorials/04_serve_with_tf_serving.py [--tiny] [--output-dir DIR]

1. Export a versioned SavedModel: saved_models/<name>/<version>/ with the `serve` tag,
   a `serving_default` signature (text → translation, score), a `translate_ids`
   signature, the vocabularies as assets and warmup requests in assets.extra/.
2. Print the real server command and a REST request.
3. Without a server at hand, do what the server does: load the export with
   TensorFlow's SavedModel loader, replay the warmup requests, and answer requests in
   the shapes TF Serving takes them: REST `:predict` bodies in the row format
   (`instances`) and the columnar one (`inputs`), for both signatures
   (`rest_predict`), and a gRPC `PredictRequest` (`grpc_predict`).

`main` returns the loaded SavedModel, the Translator and the answers, which
tests/test_tutorials.py checks against the requests README.md documents.
"""

import argparse
import json
import os
import shutil

import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the tokenizer ops the export uses
from tensorflow_serving.apis import predict_pb2

import keras_transformer as kt
from keras_transformer.runs import TrainingSettings, train


def _json_value(value):
    """A tensor's .tolist() item as JSON has it: bytes become str."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def rest_predict(loaded, body):
    """Answers a REST `:predict` body as TF Serving does.

    Row format: {"signature_name": ..., "instances": [v1, v2, ...]}, each instance a
    value of the signature's one input -> {"predictions": [{output: value, ...}, ...]},
    one object per instance. Columnar format: {"inputs": {input: [values]}} ->
    {"outputs": {output: [values]}}. The signature defaults to serving_default.
    """
    signature = loaded.signatures[body.get("signature_name", "serving_default")]
    input_names = list(signature.structured_input_signature[1])
    if "instances" in body:
        (name,) = input_names
        outputs = signature(**{name: tf.constant(body["instances"])})
        columns = {key: _json_value(tensor.numpy().tolist()) for key, tensor in outputs.items()}
        return {"predictions": [dict(zip(columns, row)) for row in zip(*columns.values())]}
    outputs = signature(**{key: tf.constant(value) for key, value in body["inputs"].items()})
    return {
        "outputs": {key: _json_value(tensor.numpy().tolist()) for key, tensor in outputs.items()}
    }


def grpc_predict(loaded, request):
    """Answers a `predict_pb2.PredictRequest` as TF Serving's PredictionService does:
    TensorProtos in, TensorProtos out."""
    signature = loaded.signatures[request.model_spec.signature_name or "serving_default"]
    inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(request.model_spec)
    for name, tensor in signature(**inputs).items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(tensor.numpy()))
    return response


def main(tiny=False, output_dir="tutorial_output"):
    corpus = kt.data.numbers_corpus(
        target_lang="de",
        seed=0,
        **(dict(train_size=600, dev_size=50, test_size=50) if tiny else dict(train_size=20000)),
    )
    model_config = kt.TransformerConfig.from_preset(
        "tiny", **(dict(num_layers=1, d_model=32, d_ff=64) if tiny else dict(d_model=128, d_ff=512))
    )
    run_dir = os.path.join(output_dir, "04_run")
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run each time the tutorial runs
    run = train(
        run_dir,
        corpus,
        model_config,
        TrainingSettings(
            epochs=1 if tiny else 8,
            tokens_per_batch=2048,
            max_length=40,
            warmup_steps=800,
            vocab_size=400,
            average_last=1,
        ),
        verbose=0,
    )
    translator = kt.Translator(run.model, run.source_tokenizer, run.target_tokenizer)

    base = os.path.abspath(os.path.join(output_dir, "numbers"))
    export_dir = kt.export.export_saved_model(translator, base, version=1, overwrite=True)
    print("exported", export_dir, "containing", sorted(os.listdir(export_dir)))

    print("\nServe it (Docker; the image's TensorFlow version must match the export's):")
    print(
        f"  docker run --rm -p 8500:8500 -p 8501:8501 "
        f"--mount type=bind,source={base},target=/models/numbers"
        " -e MODEL_NAME=numbers -t tensorflow/serving:2.21.0"
    )
    body = {"signature_name": "serving_default", "instances": ["twenty-one", "three hundred"]}
    print("and ask it:")
    print(
        f"  curl -s -X POST http://localhost:8501/v1/models/numbers:predict -d '{json.dumps(body)}'"
    )

    loaded = tf.saved_model.load(export_dir, tags=["serve"])
    for signature_name, inputs in kt.export.read_warmup_requests(export_dir):
        loaded.signatures[signature_name](**inputs)
    print("\nwarmup requests replayed")

    response = rest_predict(loaded, body)
    print("the server would answer:\n" + json.dumps(response, indent=2, ensure_ascii=False))
    assert [p["translation"] for p in response["predictions"]] == translator(body["instances"])

    columnar = rest_predict(loaded, {"inputs": {"text": ["twenty-one"]}})
    print("columnar format:", json.dumps(columnar, ensure_ascii=False))
    src_ids = translator.source_tokenizer.tokenize(["twenty-one"]).to_tensor().numpy().tolist()
    ids_response = rest_predict(loaded, {"signature_name": "translate_ids", "instances": src_ids})
    print("ids in, ids out:", json.dumps(ids_response))

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "numbers"
    request.model_spec.signature_name = "serving_default"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(["twenty-one"]))
    print(
        "\ngRPC (port 8500): PredictionServiceStub(grpc.insecure_channel('localhost:8500'))"
        ".Predict(request, 10.0) answers"
    )
    grpc_response = grpc_predict(loaded, request)
    print({name: tf.make_ndarray(proto) for name, proto in grpc_response.outputs.items()})
    return dict(
        loaded=loaded,
        translator=translator,
        export_dir=export_dir,
        rest=response,
        rest_columnar=columnar,
        rest_ids=ids_response,
        grpc=grpc_response,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--output-dir", default="tutorial_output")
    args = parser.parse_args()
    main(args.tiny, args.output_dir)
