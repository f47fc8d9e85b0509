"""SavedModel export: TF Serving layout, both signatures, warmup records, bad input.

The export is loaded in a fresh Python process that never imports keras_transformer,
through tf.saved_model.load, as TF Serving's loader does.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from keras_transformer.export import export_saved_model, read_warmup_requests

LOADER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  registers the FastWordpiece ops before loading
    from tensorflow_serving.apis import prediction_log_pb2

    export_dir, inputs_path, outputs_path = sys.argv[1:]
    with open(inputs_path) as f:
        inputs = json.load(f)
    loaded = tf.saved_model.load(export_dir, tags=["serve"])
    serve = loaded.signatures["serving_default"]
    translate_ids = loaded.signatures["translate_ids"]
    results = {"signatures": sorted(loaded.signatures.keys())}
    out = serve(text=tf.constant(inputs["texts"], tf.string))
    results["translation"] = [t.decode("utf-8") for t in out["translation"].numpy()]
    results["score"] = out["score"].numpy().tolist()
    out = serve(text=tf.constant([], tf.string))
    results["empty_batch"] = [list(out["translation"].shape), list(out["score"].shape)]
    out = translate_ids(src_ids=tf.constant(inputs["src_ids"], tf.int32))
    results["ids"] = out["ids"].numpy().tolist()
    results["ids_score"] = out["score"].numpy().tolist()
    out = translate_ids(src_ids=tf.zeros([0, 5], tf.int32))
    results["empty_ids"] = [list(out["ids"].shape), list(out["score"].shape)]
    results["warmup"] = []
    path = export_dir + "/assets.extra/tf_serving_warmup_requests"
    for record in tf.data.TFRecordDataset(path):
        request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        signature = loaded.signatures[request.model_spec.signature_name]
        feeds = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        out = signature(**feeds)
        results["warmup"].append({
            "model": request.model_spec.name,
            "text": [t.decode("utf-8") for t in feeds["text"].numpy()],
            "translation": [t.decode("utf-8") for t in out["translation"].numpy()]})
    with open(outputs_path, "w") as f:
        json.dump(results, f)
""")


@pytest.fixture(scope="module")
def export(trained, tmp_path_factory):
    base = tmp_path_factory.mktemp("saved_models") / "numbers"
    return export_saved_model(trained.beam_translator, base, version=3)


def test_layout_tf_serving_reads(export, trained):
    assert os.path.basename(export) == "3"
    for path in (
        "saved_model.pb",
        "variables",
        "assets/source_vocab.txt",
        "assets/target_vocab.txt",
        "assets.extra/tf_serving_warmup_requests",
    ):
        assert os.path.exists(os.path.join(export, path)), path
    with open(os.path.join(export, "assets", "target_vocab.txt"), encoding="utf-8") as f:
        assert f.read().splitlines() == trained.tokenizer.vocabulary
    # Only the version directory: no staging directory left beside it.
    assert os.listdir(os.path.dirname(export)) == ["3"]
    # TF Serving has XLA:CPU JIT off: no function may demand XLA compilation.
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(export, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    functions = saved_model.meta_graphs[0].graph_def.library.function
    assert not [
        f.signature.name
        for f in functions
        if "_XlaMustCompile" in f.attr and f.attr["_XlaMustCompile"].b
    ]
    requests = read_warmup_requests(export)
    assert [signature for signature, _ in requests] == ["serving_default"] * len(requests)
    assert all(set(inputs) == {"text"} for _, inputs in requests)


def test_refuses_to_overwrite_a_version(export, trained):
    base = os.path.dirname(export)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_saved_model(trained.beam_translator, base, version=3)
    with pytest.raises(ValueError, match="positive int"):
        export_saved_model(trained.beam_translator, base, version=0)
    with pytest.raises(TypeError, match="kt.Translator"):
        export_saved_model(trained.model, base, version=4)


def test_translate_ids_refuses_bad_ids_in_the_graph(export, trained):
    """TF Serving runs no Python: the signature itself refuses bad ids, naming them."""
    import tensorflow_text  # noqa: F401  registers the FastWordpiece ops before loading

    translate_ids = tf.saved_model.load(export).signatures["translate_ids"]
    max_length = trained.model.config.max_length
    for ids, value, position in trained.bad_src_ids():
        if ids.dtype == np.int64:
            # The signature takes int32 only: an int64 tensor is refused for its type.
            with pytest.raises(tf.errors.InvalidArgumentError, match="int32"):
                translate_ids(src_ids=tf.constant(ids))
            continue
        message = (
            rf"got\] \[{value}\] \[at position\] \[\[{position[0]} {position[1]}\]\]"
            if position
            else rf"length\] \[{value}\] \[longer than .* max_length={max_length}"
        )
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            translate_ids(src_ids=tf.constant(ids, tf.int32))


@pytest.mark.slow
def test_fresh_process_matches_the_translator(export, trained, tmp_path):
    overlong = " ".join(["one"] * 80)  # more tokens than max_length=48: truncated
    texts = trained.dev_sources[:6] + ["", "zzz qqq", overlong]
    src_ids = trained.src_ids(trained.dev_sources[6:10])
    inputs_path, outputs_path = tmp_path / "in.json", tmp_path / "out.json"
    inputs_path.write_text(json.dumps({"texts": texts, "src_ids": src_ids.tolist()}))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run(
        [sys.executable, "-c", LOADER, export, str(inputs_path), str(outputs_path)],
        check=True,
        env=env,
        timeout=300,
    )
    results = json.loads(outputs_path.read_text())

    assert results["signatures"] == ["serving_default", "translate_ids"]
    expected = trained.beam_translator.translate(tf.constant(texts))
    assert results["translation"] == [t.decode() for t in expected["translation"].numpy()]
    np.testing.assert_allclose(results["score"], expected["score"].numpy(), rtol=1e-6)
    assert results["translation"][6] == ""
    assert results["translation"][:6] == trained.beam_translator(texts[:6])

    expected = trained.beam_translator.translate_ids(tf.constant(src_ids))
    np.testing.assert_array_equal(results["ids"], expected["ids"].numpy())
    np.testing.assert_allclose(results["ids_score"], expected["score"].numpy(), rtol=1e-6)

    assert results["empty_batch"] == [[0], [0]]
    assert results["empty_ids"][0][0] == 0 and results["empty_ids"][1] == [0]
    assert trained.beam_translator([]) == []

    assert [r["model"] for r in results["warmup"]] == ["numbers"] * len(results["warmup"])
    for replay in results["warmup"]:
        assert replay["translation"] == trained.beam_translator(replay["text"])
