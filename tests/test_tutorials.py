"""Every tutorial runs, with tiny settings, and does what it teaches: 01 computes the
paper's equations (written again here in NumPy), 02 trains a translator that gets
test numbers right, 03's LiteRT and ONNX Runtime decode as TensorFlow does, 04's
SavedModel answers the TF Serving requests README.md documents."""

import importlib.util
import json
import os

import numpy as np
import pytest
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIALS = os.path.join(ROOT, "tutorials")


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(TUTORIALS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def scaled_dot_product(q, k, v, mask=None):
    """Equation (1): softmax(Q Kᵀ / √d_k) V, masked logits -∞; returns (output, weights)."""
    logits = q @ k.T / np.sqrt(k.shape[-1])
    if mask is not None:
        logits = np.where(mask, logits, -np.inf)
    weights = softmax(logits)
    return weights @ v, weights


def test_tutorials_are_numbered_and_all_tested():
    names = sorted(n[:-3] for n in os.listdir(TUTORIALS) if n.endswith(".py"))
    assert [n[:2] for n in names] == ["01", "02", "03", "04"]


def test_01_attention_from_scratch(tmp_path):
    r = load("01_attention_from_scratch").main(tiny=True, output_dir=str(tmp_path))
    q, k, v = r["q"], r["k"], r["v"]

    output, weights = scaled_dot_product(q, k, v)
    np.testing.assert_allclose(r["attention"], output, atol=1e-5)
    np.testing.assert_allclose(r["attention_weights"], weights, atol=1e-6)
    np.testing.assert_allclose(r["library_attention"], output, atol=1e-5)

    length = q.shape[0]
    causal = np.arange(length)[None, :] <= np.arange(length)[:, None]
    _, causal_weights = scaled_dot_product(q, k, v, causal)
    np.testing.assert_allclose(r["causal_weights"], causal_weights, atol=1e-6)

    # §3.2.2: MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O + b^O,
    # head_i = Attention(x W_i^Q + b_i^Q, x W_i^K + b_i^K, x W_i^V + b_i^V).
    layer, x = r["layer"], r["x"][0]
    wq, bq = np.asarray(layer.query_kernel), np.asarray(layer.query_bias)
    wkv, bkv = np.asarray(layer.key_value_kernel), np.asarray(layer.key_value_bias)
    wo, bo = np.asarray(layer.output_kernel), np.asarray(layer.output_bias)
    h, d_k, d_model = wo.shape
    heads = [
        scaled_dot_product(
            x @ wq[:, i] + bq[i], x @ wkv[:, 0, i] + bkv[0, i], x @ wkv[:, 1, i] + bkv[1, i]
        )[0]
        for i in range(h)
    ]
    multi_head = np.concatenate(heads, axis=-1) @ wo.reshape(h * d_k, d_model) + bo
    np.testing.assert_allclose(r["multi_head"], multi_head, atol=1e-4)
    np.testing.assert_allclose(r["library_multi_head"], multi_head, atol=1e-4)

    # §3.5: PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(...).
    table = np.zeros((length, d_model))
    for pos in range(length):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            table[pos, 2 * i], table[pos, 2 * i + 1] = np.sin(angle), np.cos(angle)
    np.testing.assert_allclose(r["positional_encoding"], table, atol=1e-6)
    np.testing.assert_allclose(r["library_positional_encoding"], table, atol=1e-6)

    assert os.path.getsize(r["heat_map"]) > 1000


@pytest.mark.slow
def test_02_train_a_translator():
    scores = load("02_train_a_translator").main(tiny=True)
    assert scores["num_sentences"] == 50
    # An untrained or broken model gets none of the unseen test numbers right.
    assert scores["exact_match"] >= 0.5, scores


@pytest.mark.slow
def test_03_export_tflite_and_onnx(tmp_path):
    r = load("03_export_tflite_and_onnx").main(tiny=True, output_dir=str(tmp_path))
    tf_ids, tf_scores = r["tensorflow"]
    assert len(np.unique(tf_scores.round(3))) > 1, "TensorFlow's outputs should differ by source"
    for name in ("TFLite float32", "ONNX Runtime"):
        ids, scores = r["runtimes"][name]
        width = max(ids.shape[1], tf_ids.shape[1])
        np.testing.assert_array_equal(
            np.pad(ids, ((0, 0), (0, width - ids.shape[1]))),
            np.pad(tf_ids, ((0, 0), (0, width - tf_ids.shape[1]))),
            err_msg=name,
        )
        np.testing.assert_allclose(scores, tf_scores, atol=1e-4, err_msg=name)
    ids, scores = r["runtimes"]["TFLite int8"]
    assert ids.shape[0] == len(tf_ids) and scores.shape == tf_scores.shape


def readme_request(text):
    """The JSON request body `text`, after checking README.md documents it verbatim."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        assert text in handle.read(), f"README.md no longer shows the request {text}"
    return json.loads(text)


@pytest.mark.slow
def test_04_serve_with_tf_serving(tmp_path):
    from tensorflow_serving.apis import predict_pb2

    tutorial = load("04_serve_with_tf_serving")
    r = tutorial.main(tiny=True, output_dir=str(tmp_path))
    loaded, translator = r["loaded"], r["translator"]
    warmup = tmp_path / "numbers" / "1" / "assets.extra" / "tf_serving_warmup_requests"
    assert os.path.isfile(warmup)

    # The signatures' inputs as the README's table gives them.
    _, text_inputs = loaded.signatures["serving_default"].structured_input_signature
    assert text_inputs == {"text": tf.TensorSpec([None], tf.string, name="text")}
    _, ids_inputs = loaded.signatures["translate_ids"].structured_input_signature
    assert list(ids_inputs) == ["src_ids"] and ids_inputs["src_ids"].dtype == tf.int32
    assert ids_inputs["src_ids"].shape.as_list() == [None, None]

    # REST, row format: one {"translation", "score"} object per instance.
    body = readme_request(
        '{"signature_name": "serving_default", '
        '"instances": ["twenty-one", "three hundred and five"]}'
    )
    predictions = tutorial.rest_predict(loaded, body)["predictions"]
    assert [sorted(p) for p in predictions] == [["score", "translation"]] * 2
    assert [p["translation"] for p in predictions] == translator(body["instances"])
    assert all(isinstance(p["score"], float) for p in predictions)

    # REST, columnar format: {"outputs": {"translation": [...], "score": [...]}}.
    body = readme_request('{"inputs": {"text": ["twenty-one"]}}')
    outputs = tutorial.rest_predict(loaded, body)["outputs"]
    assert sorted(outputs) == ["score", "translation"]
    assert outputs["translation"] == translator(["twenty-one"]) and len(outputs["score"]) == 1

    # REST, the ids signature: ids in, the Translator's ids out.
    body = readme_request('{"signature_name": "translate_ids", "instances": [[25, 31, 7]]}')
    (prediction,) = tutorial.rest_predict(loaded, body)["predictions"]
    expected = translator.translate_ids(tf.constant(body["instances"], tf.int32))
    assert sorted(prediction) == ["ids", "score"]
    assert prediction["ids"] == expected["ids"].numpy()[0].tolist()

    # gRPC: the PredictRequest of the README; TensorProtos back.
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "numbers"
    request.model_spec.signature_name = "serving_default"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(["twenty-one"]))
    response = tutorial.grpc_predict(loaded, request)
    assert sorted(response.outputs) == ["score", "translation"]
    assert tf.make_ndarray(response.outputs["translation"]).tolist() == [
        t.encode("utf-8") for t in translator(["twenty-one"])
    ]
    assert tf.make_ndarray(response.outputs["score"]).shape == (1,)
    assert r["grpc"].outputs["translation"] == response.outputs["translation"]
