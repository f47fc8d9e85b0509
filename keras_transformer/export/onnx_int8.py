"""Dynamic-range int8 weights for the ONNX graphs (`export_onnx(quantization="int8")`).

ONNX Runtime's `quantize_dynamic` turns each MatMul by a constant weight W into

    y = MatMulInteger(q(x), q(W)) · s_x · s_W,   q(x) = round(x / s_x) + z_x

with W quantized once (int8, symmetric) and x per call (uint8, DynamicQuantizeLinear),
and leaves every other node in float32 (embedding Gathers, layer norms, softmax). It
does not quantize a Gemm, and tf2onnx writes the decoder step's attention projections as
Gemm nodes (transB) whose weight is a Reshape of a constant. So `quantize_int8` first
lets ONNX Runtime fold the constants (`quant_pre_process`), then turns each Gemm by a
constant weight into a MatMul by the transposed weight (`_gemms_to_matmuls`), then
quantizes: every weight product of a decoder step is int8, 13 of them in the decode
benchmark's model (2 + 2 layers) where 5 were otherwise (README, "Beside CTranslate2").
"""

import os
import tempfile

import numpy as np

from keras_transformer.extras import import_extra


def quantize_int8(model, path):
    """Writes `model` (an onnx.ModelProto) to `path` with dynamic-range int8 weights."""
    onnx = import_extra("onnx", "export")
    quantization = import_extra("onnxruntime.quantization", "export")
    shape_inference = import_extra("onnxruntime.quantization.shape_inference", "export")

    with tempfile.TemporaryDirectory() as directory:
        # From a file: given a ModelProto, quant_pre_process moves its weights to
        # external data that its own shape inference then cannot read.
        unfolded, folded = (os.path.join(directory, name) for name in ("in.onnx", "out.onnx"))
        onnx.save(model, unfolded)
        # Symbolic shape inference stays off: it cannot follow the graphs' dynamic
        # batch and cache shapes, and the quantizer does not need it.
        shape_inference.quant_pre_process(unfolded, folded, skip_symbolic_shape=True)
        model = onnx.load(folded)
    _gemms_to_matmuls(model.graph)
    _einsums_to_matmuls(model.graph)
    quantization.quantize_dynamic(model, path, weight_type=quantization.QuantType.QInt8)


def _gemms_to_matmuls(graph):
    """Replaces, in place, each Gemm of `graph` that is a plain product by a constant,
    A · op(B) with B an initializer (alpha 1, A not transposed, no bias or beta 0), by
    MatMul(A, op(B)), op(B) a new initializer; other Gemms stay. Returns the count. (B,
    when no node reads it any more, is dropped by `quantize_dynamic`, which removes the
    initializers nothing reads.)"""
    onnx = import_extra("onnx", "export")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper

    initializers = {tensor.name: tensor for tensor in graph.initializer}
    nodes, replaced = [], 0
    for node in graph.node:
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = (
            node.op_type == "Gemm"
            and node.input[1] in initializers
            and attributes.get("alpha", 1.0) == 1.0
            and attributes.get("transA", 0) == 0
            and (len(node.input) < 3 or attributes.get("beta", 1.0) == 0.0)
        )
        if not plain:
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(initializers[node.input[1]])
        if attributes.get("transB", 0):
            weight = weight.T
        name = f"{node.input[1]}_for_{node.name}"
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(weight), name))
        nodes.append(
            helper.make_node("MatMul", [node.input[0], name], list(node.output), node.name)
        )
        replaced += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return replaced


# The two products by a weight that tf2onnx writes as Einsum (the attention's input
# projections, `MultiHeadAttention._project`, and its output projection,
# `_combine_heads`, where their length axis is not 1), in tf2onnx's letters.
_PROJECT = "abc,cdef->abdef"  # x (b, l, d) · W (d, n, h, k) -> (b, l, n, h, k)
_COMBINE = "abcd,bde->ace"  # heads (b, h, l, k) · W^O (h, k, d) -> (b, l, d)


def _einsums_to_matmuls(graph):
    """Replaces, in place, each Einsum of `graph` by a weight W (an initializer) of the
    forms `_PROJECT` and `_COMBINE` by a MatMul with W reshaped to a matrix:

        _PROJECT   Reshape(MatMul(x, W (d, n·h·k)), (0, 0, n, h, k))
        _COMBINE   MatMul(Reshape(Transpose(heads, (0, 2, 1, 3)), (0, 0, h·k)), W (h·k, d))

    (Reshape's 0 keeps the input's dimension: the batch and length stay dynamic.) Other
    Einsums stay. Returns the count."""
    onnx = import_extra("onnx", "export")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper

    initializers = {tensor.name: tensor for tensor in graph.initializer}
    nodes, replaced = [], 0
    for node in graph.node:
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        equation = attributes.get("equation", b"").decode()
        if node.op_type != "Einsum" or node.input[1] not in initializers:
            nodes.append(node)
            continue
        if equation not in (_PROJECT, _COMBINE):
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(initializers[node.input[1]])
        x, (output,), name = node.input[0], node.output, node.name

        def constant(suffix, value):
            graph.initializer.append(numpy_helper.from_array(value, f"{name}_{suffix}"))
            return f"{name}_{suffix}"

        if equation == _PROJECT:
            d, *heads = weight.shape
            matrix = constant("matrix", np.ascontiguousarray(weight.reshape(d, -1)))
            shape = constant("shape", np.array([0, 0, *heads], np.int64))
            nodes += [
                helper.make_node("MatMul", [x, matrix], [f"{name}_product"], f"{name}_matmul"),
                helper.make_node("Reshape", [f"{name}_product", shape], [output], name),
            ]
        else:
            h, k, d = weight.shape
            matrix = constant("matrix", np.ascontiguousarray(weight.reshape(h * k, d)))
            shape = constant("shape", np.array([0, 0, h * k], np.int64))
            nodes += [
                helper.make_node("Transpose", [x], [f"{name}_t"], f"{name}_t", perm=[0, 2, 1, 3]),
                helper.make_node("Reshape", [f"{name}_t", shape], [f"{name}_c"], f"{name}_c"),
                helper.make_node("MatMul", [f"{name}_c", matrix], [output], name),
            ]
        replaced += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return replaced
