"""Tutorial 04 — serve the translator with TF Serving.

Run:  python tutorials/04_serve_with_tf_serving.py [--tiny] [--output-dir DIR]

1. Export a versioned SavedModel: saved_models/<name>/<version>/ with the `serve` tag,
   a `serving_default` signature (text → translation, score), a `translate_ids`
   signature, the vocabularies as assets and warmup requests in assets.extra/.
2. Print the real server command and a REST request.
3. Without a server at hand, do what the server does: load the export with
   TensorFlow's SavedModel loader, replay the warmup requests, and answer the REST
   request's body in TF Serving's JSON response format.
"""

import argparse
import json
import os
import shutil

import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the tokenizer ops the export uses

import keras_transformer as kt
from keras_transformer.training.run import TrainingSettings, train


def main(tiny=False, output_dir="tutorial_output"):
    corpus = kt.data.numbers_corpus(
        target_lang="de", seed=0,
        **(dict(train_size=600, dev_size=50, test_size=50) if tiny else dict(train_size=20000)))
    model_config = kt.TransformerConfig.from_preset(
        "tiny", **(dict(num_layers=1, d_model=32, d_ff=64) if tiny else dict(d_model=128, d_ff=512)))
    run_dir = os.path.join(output_dir, "04_run")
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run each time the tutorial runs
    run = train(run_dir, corpus, model_config,
                TrainingSettings(epochs=1 if tiny else 8, tokens_per_batch=2048, max_length=40,
                                 warmup_steps=800, vocab_size=400, average_last=1),
                verbose=0)
    translator = kt.Translator(run.model, run.source_tokenizer, run.target_tokenizer)

    base = os.path.abspath(os.path.join(output_dir, "numbers"))
    export_dir = kt.export.export_saved_model(translator, base, version=1, overwrite=True)
    print("exported", export_dir, "containing", sorted(os.listdir(export_dir)))

    print("\nServe it (Docker; the image's TensorFlow version must match the export's):")
    print(f"  docker run --rm -p 8501:8501 --mount type=bind,source={base},target=/models/numbers"
          " -e MODEL_NAME=numbers -t tensorflow/serving:2.21.0")
    body = {"signature_name": "serving_default", "instances": ["twenty-one", "three hundred"]}
    print("and ask it:")
    print(f"  curl -s -X POST http://localhost:8501/v1/models/numbers:predict -d '{json.dumps(body)}'")

    loaded = tf.saved_model.load(export_dir, tags=["serve"])
    serving_default = loaded.signatures["serving_default"]
    for signature_name, inputs in kt.export.read_warmup_requests(export_dir):
        loaded.signatures[signature_name](**inputs)
    print("\nwarmup requests replayed")

    outputs = serving_default(text=tf.constant(body["instances"]))
    response = {"predictions": [
        {"translation": t.decode("utf-8"), "score": round(float(s), 4)}
        for t, s in zip(outputs["translation"].numpy(), outputs["score"].numpy())]}
    print("the server would answer:\n" + json.dumps(response, indent=2, ensure_ascii=False))
    assert [p["translation"] for p in response["predictions"]] == translator(body["instances"])
    return response


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--output-dir", default="tutorial_output")
    args = parser.parse_args()
    main(args.tiny, args.output_dir)
