"""Dynamic-range int8 weights for the ONNX graphs (`export_onnx(quantization="int8")`).

ONNX Runtime's `quantize_dynamic` turns each MatMul by a constant weight W into

    y = MatMulInteger(q(x), q(W)) · s_x · s_W,   q(x) = round(x / s_x) + z_x

with W quantized once (int8, symmetric) and x per call (uint8, DynamicQuantizeLinear),
and leaves every other node in float32 (embedding Gathers, layer norms, softmax). It
quantizes neither a Gemm nor an Einsum, and tf2onnx writes the decoder step's attention
projections as Gemm nodes (transB, the weight a Reshape of a constant) and the
encoder's as Einsum nodes. So `quantize_int8` first lets ONNX Runtime fold the
constants (`quant_pre_process`), then turns each Gemm and Einsum by a constant weight
into a MatMul by the weight as a matrix (`_products_as_matmuls`), then quantizes: every
weight product is int8, 13 of them per decoder step in the decode benchmark's model
(2 + 2 layers) where 5 were otherwise (README, "Beside CTranslate2").
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
    _products_as_matmuls(model.graph)
    quantization.quantize_dynamic(model, path, weight_type=quantization.QuantType.QInt8)


# The two products by a weight that tf2onnx writes as Einsum (the attention's input
# projections, `MultiHeadAttention._project`, and its output projection,
# `_combine_heads`, where their length axis is not 1), in tf2onnx's letters.
_PROJECT = "abc,cdef->abdef"  # x (b, l, d) · W (d, n, h, k) -> (b, l, n, h, k)
_COMBINE = "abcd,bde->ace"  # heads (b, h, l, k) · W^O (h, k, d) -> (b, l, d)


def _products_as_matmuls(graph):
    """Replaces, in place, each product of `graph` by a weight W (an initializer) that
    tf2onnx wrote as a Gemm or an Einsum by nodes around one MatMul with W as a matrix:

        Gemm A · op(W) (alpha 1, A not transposed, no bias or beta 0)
                   MatMul(A, op(W))
        Einsum _PROJECT
                   Reshape(MatMul(x, W (d, n·h·k)), (0, 0, n, h, k))
        Einsum _COMBINE
                   MatMul(Reshape(Transpose(heads, (0, 2, 1, 3)), (0, 0, h·k)), W (h·k, d))

    (Reshape's 0 keeps the input's dimension: the batch and length stay dynamic.) Other
    nodes stay. The matrices are new initializers; W, when no node reads it any more, is
    dropped by `quantize_dynamic`, which removes the initializers nothing reads.

    Returns:
        The number of nodes replaced.
    """
    onnx = import_extra("onnx", "export")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper

    weights = {tensor.name: tensor for tensor in graph.initializer}
    nodes, replaced = [], 0
    for node in graph.node:
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        operands = list(node.input)
        if (
            node.op_type not in ("Gemm", "Einsum")
            or len(operands) < 2
            or operands[1] not in weights
        ):
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(weights[node.input[1]])
        x, (output,), name = node.input[0], node.output, node.name

        def constant(suffix, value):
            graph.initializer.append(numpy_helper.from_array(value, f"{name}_{suffix}"))
            return f"{name}_{suffix}"

        def matmul(a, matrix, result):
            matrix = constant("matrix", np.ascontiguousarray(matrix))
            return helper.make_node("MatMul", [a, matrix], [result], f"{name}_matmul")

        equation = attributes.get("equation", b"").decode()
        if node.op_type == "Gemm" and (
            attributes.get("alpha", 1.0) == 1.0
            and attributes.get("transA", 0) == 0
            and (len(node.input) < 3 or attributes.get("beta", 1.0) == 0.0)
        ):
            new = [matmul(x, weight.T if attributes.get("transB", 0) else weight, output)]
        elif node.op_type == "Einsum" and equation == _PROJECT:
            d, *heads = weight.shape
            shape = constant("shape", np.array([0, 0, *heads], np.int64))
            new = [
                matmul(x, weight.reshape(d, -1), f"{name}_product"),
                helper.make_node("Reshape", [f"{name}_product", shape], [output], name),
            ]
        elif node.op_type == "Einsum" and equation == _COMBINE:
            h, k, d = weight.shape
            shape = constant("shape", np.array([0, 0, h * k], np.int64))
            new = [
                helper.make_node("Transpose", [x], [f"{name}_t"], f"{name}_t", perm=[0, 2, 1, 3]),
                helper.make_node("Reshape", [f"{name}_t", shape], [f"{name}_c"], f"{name}_c"),
                matmul(f"{name}_c", weight.reshape(h * k, d), output),
            ]
        else:
            new = [node]
        nodes += new
        replaced += new[0] is not node
    del graph.node[:]
    graph.node.extend(nodes)
    return replaced
