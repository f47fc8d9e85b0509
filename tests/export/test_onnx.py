"""ONNX export run by ONNX Runtime: logits within 1e-4 of TensorFlow, greedy and beam ids
equal, bad ids refused by OnnxTranslator, long text truncated."""

import json
import os

import numpy as np
import onnxruntime as ort
import pytest
import tensorflow as tf

from keras_transformer.decoding import greedy_search
from keras_transformer.export import export_onnx
from keras_transformer.runtimes import OnnxTranslator


@pytest.fixture(scope="module")
def onnx_dir(trained, tmp_path_factory):
    """The beam translator's export: the greedy graphs and beam.onnx. The greedy tests
    decode it with decoding="greedy" (one export, converted once)."""
    directory = tmp_path_factory.mktemp("onnx") / "numbers"
    paths = export_onnx(trained.beam_translator, directory)
    assert all(os.path.exists(p) for p in paths)
    return directory


def _session(directory, file):
    return ort.InferenceSession(os.path.join(directory, file), providers=["CPUExecutionProvider"])


def test_files_and_config(onnx_dir, trained):
    for file in ("forward.onnx", "encoder.onnx", "decoder_step.onnx", "beam_step.onnx"):
        assert os.path.exists(onnx_dir / file), file
    config = json.loads((onnx_dir / "config.json").read_text())
    assert config["max_length"] == trained.model.config.max_length
    assert config["num_layers"] == 2 and config["head_dim"] == 16
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_onnx(trained.greedy_translator, onnx_dir)
    with pytest.raises(ValueError, match="decoding must be one of"):
        export_onnx(trained.greedy_translator, onnx_dir, overwrite=True, decoding="beam")


def test_every_layer_norm_is_one_node(onnx_dir, trained):
    # Catches: the fusion of tf2onnx's thirteen-node layer norms not applied (to a graph,
    # or inside beam.onnx's Loop body), or a group half replaced (a GlobalAveragePool
    # left). The graphs' outputs matching TensorFlow (the tests below) catch a wrong
    # epsilon, γ and β swapped, or the normalised axis.
    import collections

    import keras
    import onnx

    def ops(graph, counts):
        for node in graph.node:
            counts[node.op_type] += 1
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    ops(attribute.g, counts)
        return counts

    def norms(layer):
        return sum(isinstance(x, keras.layers.LayerNormalization) for x in layer._flatten_layers())

    encoder, decoder = norms(trained.model.encoder), norms(trained.model.decoder)
    assert encoder >= 4 and decoder >= 6
    expected = {
        "encoder.onnx": encoder,
        "decoder_step.onnx": decoder,
        "beam_step.onnx": decoder,
        "forward.onnx": encoder + decoder,
        "beam.onnx": encoder + decoder,
    }
    for file, count in expected.items():
        counts = ops(onnx.load(str(onnx_dir / file)).graph, collections.Counter())
        assert counts["LayerNormalization"] == count and counts["GlobalAveragePool"] == 0, file


def test_forward_logits_match(onnx_dir, trained):
    src_ids = trained.src_ids(trained.dev_sources[:5])
    tgt_ids = trained.src_ids(trained.dev_references[:5])
    tgt_in = np.concatenate([np.full([5, 1], 2, np.int32), tgt_ids], axis=1)
    (logits,) = _session(onnx_dir, "forward.onnx").run(
        ["logits"], {"src_ids": src_ids, "tgt_in_ids": tgt_in}
    )
    expected = trained.model((src_ids, tgt_in), training=False).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)


def test_encoder_and_decoder_step_match(onnx_dir, trained):
    # Catches: a step whose keys go in or come out transposed (the caches below are the
    # model's, Kᵀ, turned), a row written elsewhere than at `step`, a log-probability
    # left unnormalised, min_length ignored (the fixture model ends these short sources
    # before their third token: a step without the ban chooses [END] there, seen by
    # mutation), [PAD] or [START] chosen.
    model = trained.model
    layers = range(model.config.num_layers)

    def names(*kinds):
        return [f"{kind}_{i}" for kind in kinds for i in layers]

    src_ids = trained.src_ids(trained.dev_sources[:3])
    memory_mask, *cross = _session(onnx_dir, "encoder.onnx").run(
        ["memory_mask", *names("cross_keys", "cross_values")], {"src_ids": src_ids}
    )
    memory, expected_mask = model.encode(src_ids, training=False)
    cache = model.init_cache(memory, 8)
    np.testing.assert_array_equal(memory_mask, expected_mask.numpy())
    for got, expected in zip(cross, cache["cross_keys"] + cache["cross_values"]):
        np.testing.assert_allclose(got, expected, atol=1e-4)

    step_session = _session(onnx_dir, "decoder_step.onnx")
    self_keys = [np.array(c).transpose(0, 1, 3, 2) for c in cache["self_keys"]]
    self_values = [np.array(c) for c in cache["self_values"]]
    tokens = np.full([3, 1], 2, np.int32)
    min_length, end_id = 3, trained.tokenizer.end_id
    ended = False
    for step in range(5):
        token, log_prob, *rows = step_session.run(
            ["token", "log_prob", *names("step_keys", "step_values")],
            {
                "tgt_ids": tokens,
                "step": np.array(step, np.int32),
                "min_length": np.array(min_length, np.int32),
                **dict(zip(names("self_keys", "self_values"), self_keys + self_values)),
                **dict(zip(names("cross_keys", "cross_values"), cross)),
                "memory_mask": memory_mask,
            },
        )
        logits, cache = model.decode_step(tf.constant(tokens), step, cache, expected_mask)
        log_probs = tf.nn.log_softmax(logits[:, 0]).numpy()
        allowed = log_probs.copy()
        allowed[:, [0, 2] + ([end_id] if step < min_length else [])] = -np.inf
        np.testing.assert_array_equal(token, allowed.argmax(-1))
        np.testing.assert_allclose(log_prob, log_probs[np.arange(3), token], atol=1e-4)
        ended |= step >= min_length and (token == end_id).any()
        # Each layer's key and value at `step` come back as their own outputs, in layer
        # order; written at `step`, the caches are the model's.
        for i in layers:
            self_keys[i][:, :, step] = rows[i][:, :, 0]
            self_values[i][:, :, step] = rows[len(layers) + i][:, :, 0]
        for got, want in zip(self_keys, cache["self_keys"]):
            np.testing.assert_allclose(got, np.transpose(want, (0, 1, 3, 2)), atol=1e-4)
        for got, want in zip(self_values, cache["self_values"]):
            np.testing.assert_allclose(got, want, atol=1e-4)
        tokens = token.astype(np.int32)[:, None]
    assert ended, "no row chose [END] once allowed: the min_length check proves nothing"


def test_greedy_driver_matches_greedy_search(onnx_dir, trained):
    onnx_translator = OnnxTranslator(onnx_dir, decoding="greedy")
    trained.assert_decodes_as_greedy_search(
        onnx_translator.translate_ids,
        (trained.dev_sources[:16], ["", "zzz"] + trained.dev_sources[16:18]),
    )
    with pytest.raises(ValueError, match="int32 of shape"):
        onnx_translator.translate_ids(np.zeros((3,), np.int32))


def test_greedy_driver_follows_min_length_and_max_length(onnx_dir, trained):
    """The NumPy step loop applies the same rules as greedy_search, min_length included
    ([END] banned before it) and an int max_length. Catches: a step loop that ignores
    min_length (the trained model ends these short sentences early), or that stops a
    step early or late."""
    onnx_translator = OnnxTranslator(onnx_dir, decoding="greedy")
    src_ids = trained.src_ids(trained.dev_sources[:6])
    for max_length, min_length in ((None, 9), (7, 4), (12, 12)):
        ids, scores = onnx_translator.translate_ids(
            src_ids, max_length=max_length, min_length=min_length
        )
        expected_ids, expected_scores = greedy_search(
            trained.model, src_ids, max_length=max_length, min_length=min_length, jit_compile=False
        )
        np.testing.assert_array_equal(ids, expected_ids.numpy())
        np.testing.assert_allclose(scores, expected_scores.numpy(), atol=1e-4)
        assert ((ids != 0).sum(axis=1) >= min(min_length + 1, max_length or 99)).all()
    with pytest.raises(ValueError, match="min_length"):
        onnx_translator.translate_ids(src_ids, min_length=-1)


def test_int8_export_translates_as_float32_within_the_int8_bounds(trained, onnx_dir, tmp_path):
    """quantization="int8": the graphs with int8 weights, both decodings of the beam
    export within conftest's int8 bounds of TensorFlow's. Catches: a product by a weight
    left in float32 (a Gemm or an Einsum the rewrites of export/onnx_int8.py missed,
    which quantize_dynamic skips), quantization not applied (size), an int8 graph that
    changes more than 5 % of the dev translations or costs more than 1 BLEU, the
    float32 one-Loop graphs written beside int8 steps."""
    import onnx

    directory = tmp_path / "int8"
    paths = export_onnx(trained.beam_translator, directory, quantization="int8")
    config = json.loads((directory / "config.json").read_text())
    assert config["quantization"] == "int8"
    assert not {"greedy.onnx", "beam.onnx"} & {os.path.basename(p) for p in paths}
    for file in ("forward.onnx", "encoder.onnx", "decoder_step.onnx", "beam_step.onnx"):
        graph = onnx.load(str(directory / file)).graph
        weights = {tensor.name for tensor in graph.initializer}
        float_products = [
            node.name
            for node in graph.node
            if node.op_type in ("MatMul", "Gemm", "Einsum") and set(node.input) & weights
        ]
        assert not float_products, (file, float_products)
        assert any(node.op_type == "MatMulInteger" for node in graph.node), file
    # The decoder's weights are mostly matrices (the encoder's, the source embedding).
    for file in ("decoder_step.onnx", "beam_step.onnx"):
        int8, float32 = (os.path.getsize(d / file) for d in (directory, onnx_dir))
        assert int8 < 0.6 * float32, (file, int8, float32)
    trained.assert_int8_keeps(OnnxTranslator(directory).translate_ids, trained.dev_beam[0])
    greedy = OnnxTranslator(directory, decoding="greedy")
    trained.assert_int8_keeps(greedy.translate_ids, trained.dev_greedy[0])
    with pytest.raises(FileNotFoundError, match="use_loop=True needs beam.onnx"):
        OnnxTranslator(directory, use_loop=True)
    with pytest.raises(ValueError, match="quantization must be one of"):
        export_onnx(trained.beam_translator, directory, overwrite=True, quantization="int4")


def test_text_through_saved_tokenizers(onnx_dir, trained):
    onnx_translator = OnnxTranslator(onnx_dir, decoding="greedy")
    translations, _ = onnx_translator(trained.dev_sources[:5] + [""])
    assert translations == trained.greedy_translator(trained.dev_sources[:5]) + [""]
    assert onnx_translator([])[0] == []


def test_greedy_loop_graph(onnx_dir, trained):
    assert os.path.exists(onnx_dir / "greedy.onnx"), "the decoding loop no longer converts"
    trained.assert_decodes_as_greedy_search(
        OnnxTranslator(onnx_dir, use_loop=True, decoding="greedy").translate_ids,
        (trained.dev_sources[:8],),
    )


@pytest.mark.parametrize("use_loop", [False, True])
def test_beam_export_decodes_as_beam_search(onnx_dir, trained, use_loop):
    """Both beam drivers, the NumPy loop over beam_step.onnx and beam.onnx's one Loop,
    give beam_search's ids and scores, empty sources included. Catches: a decoding
    that is greedy (or of another α or beam size) for a beam translator; in the step
    loop, a row written into the wrong block or position, a wrong first state (every
    beam alive), a loop that stops early, an empty source's score; a beam Loop that
    tf2onnx mis-converts."""
    config = json.loads((onnx_dir / "config.json").read_text())
    assert {"beam_step.onnx", "beam.onnx"} <= set(config["files"])
    assert config["beam"] == {"beam_size": 4, "alpha": 0.6, "max_length": None, "min_length": 0}
    onnx_translator = OnnxTranslator(onnx_dir, use_loop=use_loop)
    trained.assert_decodes_as_beam_search(
        onnx_translator.translate_ids,
        (trained.dev_sources[:8], trained.dev_sources[8:11] + [""], ["zzz", ""]),
    )
    translations, _ = onnx_translator(trained.dev_sources[:5] + [""])
    assert translations == trained.beam_translator(trained.dev_sources[:5]) + [""]
    assert onnx_translator(["", ""])[0] == ["", ""]
    trained.assert_runtime_refuses_bad_ids(onnx_translator.translate_ids)
    with pytest.raises(ValueError, match="max_length they were exported with"):
        onnx_translator.translate_ids(trained.src_ids(["one"]), max_length=5)


def test_use_loop_needs_the_loop_graph(onnx_dir, tmp_path):
    """use_loop=True runs beam.onnx, or greedy.onnx with decoding="greedy": an export
    without that file is refused by name, before anything runs."""
    import shutil

    copy = tmp_path / "numbers"
    shutil.copytree(onnx_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config["files"].remove("greedy.onnx")
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match="use_loop=True needs greedy.onnx"):
        OnnxTranslator(copy, use_loop=True, decoding="greedy")
    assert OnnxTranslator(copy, use_loop=True).beam is not None
    with pytest.raises(ValueError, match="decoding must be one of"):
        OnnxTranslator(onnx_dir, decoding="beam")


def test_translator_refuses_the_ids_the_graphs_cannot(onnx_dir, trained):
    for use_loop in (False, True):
        trained.assert_runtime_refuses_bad_ids(
            OnnxTranslator(onnx_dir, use_loop=use_loop, decoding="greedy").translate_ids
        )


@pytest.mark.parametrize("graph", ["greedy.onnx", "encoder.onnx", "beam.onnx"])
def test_the_graph_alone_refuses_an_id_out_of_range(onnx_dir, trained, graph):
    """ONNX has no assert op, and its Gather takes -1 for the last row of the table: the
    graphs map every id outside [0, V) to V, which Gather refuses. Catches: a graph that
    translates -1 silently as the vocabulary's last token."""
    session = _session(onnx_dir, graph)
    output = session.get_outputs()[0].name
    vocab_size = trained.model.config.src_vocab_size
    for bad in (-1, -vocab_size, vocab_size):
        with pytest.raises(Exception, match=f"idx={vocab_size}"):
            session.run([output], {"src_ids": np.array([[5, bad]], np.int32)})
    assert session.run([output], {"src_ids": np.array([[5, vocab_size - 1]], np.int32)})


def test_text_truncates_a_long_source(onnx_dir, trained):
    overlong = " ".join(["one"] * 80)  # 80 tokens, more than max_length=48
    onnx_translator = OnnxTranslator(onnx_dir, decoding="greedy")
    (translation,), _ = onnx_translator([overlong])
    src_ids = trained.src_ids([overlong])
    max_length = trained.model.config.max_length
    assert src_ids.shape[1] > max_length
    ids, _ = onnx_translator.translate_ids(src_ids[:, :max_length])
    assert translation == trained.tokenizer.detokenize(ids).numpy()[0].decode()
    with pytest.warns(UserWarning, match="truncated"):
        assert translation == trained.greedy_translator(overlong)


@pytest.mark.parametrize(
    "damage,message",
    [
        ("config.json", "config.json is damaged"),
        ("encoder.onnx", "encoder.onnx is missing or damaged"),
    ],
)
def test_a_damaged_export_is_reported_in_one_line(onnx_dir, tmp_path, damage, message):
    # Catches: json's JSONDecodeError or ONNX Runtime's InvalidArgument reaching the
    # caller as the library's own words would not.
    import shutil

    from keras_transformer.errors import InputError

    copy = tmp_path / "numbers"
    shutil.copytree(onnx_dir, copy)
    (copy / damage).write_bytes(b"")
    with pytest.raises(InputError, match=message):
        OnnxTranslator(copy, decoding="greedy")


def test_an_export_of_another_format_version_is_refused(onnx_dir, tmp_path):
    # Catches: an export of an older format (1: keys untransposed and stacked; 4: the
    # step takes Kᵀ and gives logits, no beam_step.onnx) fed the inputs and outputs of
    # today's driver, failing inside ONNX Runtime with a shape error or, worse, decoding
    # with keys read transposed.
    import shutil

    from keras_transformer.errors import InputError

    copy = tmp_path / "numbers"
    shutil.copytree(onnx_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    del config["format_version"]
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="format_version 1; .* reads 5"):
        OnnxTranslator(copy, decoding="greedy")
    config["format_version"] = 4
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="format_version 4; .* beam_step.onnx"):
        OnnxTranslator(copy)


def test_only_empty_sources_translate_to_empty_strings(onnx_dir):
    # Catches: a batch of empty sentences, whose ids have no column, crashing inside ONNX
    # Runtime instead of decoding to nothing as TensorFlow does.
    for use_loop in (False, True):
        translations, _ = OnnxTranslator(onnx_dir, use_loop=use_loop, decoding="greedy")(["", ""])
        assert translations == ["", ""]
