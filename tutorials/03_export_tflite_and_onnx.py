"""Tutorial 03 — one trained model on LiteRT (TFLite) and ONNX Runtime, outputs compared.

Run:  python tutorials/03_export_tflite_and_onnx.py [--tiny] [--output-dir DIR]

1. Train a small English→German numbers translator with the run API (`train`).
2. Export the greedy decoder: a .tflite (encoder + cached loop as one WHILE op) in
   float32 and dynamic-range int8, and ONNX graphs (encoder + decoder step).
3. Decode the same source ids with TensorFlow, LiteRT and ONNX Runtime, and compare
   the token ids, the scores and the file sizes.

`main` returns the source ids and every runtime's (ids, scores), which
tests/test_tutorials.py compares with TensorFlow's.
"""

import argparse
import os
import shutil

import numpy as np

import keras_transformer as kt
from keras_transformer.runs import TrainingSettings, train


def main(tiny=False, output_dir="tutorial_output"):
    corpus = kt.data.numbers_corpus(
        target_lang="de",
        seed=0,
        **(dict(train_size=600, dev_size=50, test_size=50) if tiny else dict(train_size=20000)),
    )
    model_config = kt.TransformerConfig.from_preset(
        "tiny", **(dict(num_layers=1, d_model=32, d_ff=64) if tiny else dict(d_model=128, d_ff=512))
    )
    run_dir = os.path.join(output_dir, "03_run")
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
    translator = kt.Translator(run.model, run.source_tokenizer, run.target_tokenizer, beam_size=1)

    tflite_path = kt.export.export_tflite(
        translator, os.path.join(output_dir, "03_numbers.tflite"), overwrite=True
    )
    int8_path = kt.export.export_tflite(
        translator,
        os.path.join(output_dir, "03_numbers_int8.tflite"),
        quantization="int8",
        overwrite=True,
    )
    onnx_dir = os.path.join(output_dir, "03_numbers_onnx")
    kt.export.export_onnx(translator, onnx_dir, overwrite=True)

    sources = [s for s, _ in corpus.test[:8]]
    src_ids = run.source_tokenizer.tokenize(sources).to_tensor().numpy().astype("int32")
    tf_ids, tf_scores = (np.asarray(x) for x in kt.decoding.greedy_search(run.model, src_ids))
    results = {
        "TFLite float32": kt.runtimes.TFLiteTranslator(tflite_path).translate_ids(src_ids),
        "TFLite int8": kt.runtimes.TFLiteTranslator(int8_path).translate_ids(src_ids),
        "ONNX Runtime": kt.runtimes.OnnxTranslator(onnx_dir).translate_ids(src_ids),
    }
    print(f"{'runtime':16s} same ids as TF   max |score - TF|")
    agreement = {}
    for name, (ids, scores) in results.items():
        width = max(ids.shape[1], tf_ids.shape[1])  # pad both with 0 to compare whole rows
        ids, expected = (np.pad(x, ((0, 0), (0, width - x.shape[1]))) for x in (ids, tf_ids))
        same = int(np.sum(np.all(ids == expected, axis=1)))
        agreement[name] = same
        print(f"{name:16s} {same}/{len(sources)}            {np.abs(scores - tf_scores).max():.2e}")
    sizes = {p: os.path.getsize(p) for p in (tflite_path, int8_path)}
    sizes[onnx_dir] = sum(
        os.path.getsize(os.path.join(onnx_dir, f))
        for f in os.listdir(onnx_dir)
        if f.endswith(".onnx")
    )
    for path, size in sizes.items():
        print(f"{size / 1024:8.0f} KiB  {path}")
    return dict(
        src_ids=src_ids, tensorflow=(tf_ids, tf_scores), runtimes=results, agreement=agreement
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--output-dir", default="tutorial_output")
    args = parser.parse_args()
    main(args.tiny, args.output_dir)
