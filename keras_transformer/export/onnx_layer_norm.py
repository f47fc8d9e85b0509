"""Layer normalisation as one ONNX `LayerNormalization` node in the graphs tf2onnx writes.

    LayerNorm(x) = γ ⊙ (x − μ) / √(σ² + ε) + β,   μ, σ² over the last axis of x

tf2onnx writes Keras's `LayerNormalization` (TensorFlow's moments, then a batch-norm
formula) as thirteen nodes:

    μ = GlobalAveragePool(x)          d = Sub(x, μ)          σ² = GlobalAveragePool(Mul(d, d))
    g = Mul(Reciprocal(Sqrt(Add(σ², ε))), γ)
    y = Add(Mul(x, g), Add(Mul(Neg(μ), g), β))

(GlobalAveragePool averages every axis after the second: the last one for the (batch,
length, d_model) tensors of the model.) ONNX Runtime spends 5–15 µs on each node of a
decoding step whatever its size, and fuses none of these, so `fuse_layer_norms` replaces
each such group by `LayerNormalization(x, γ, β, axis=2, epsilon=ε)` (opset 17: over
every axis from the third on, as GlobalAveragePool averages), in the graph and in the
bodies of its Loop and If nodes. γ and β become vectors: constants reshaped when they
are initializers of shape (1, …, 1, d), else flattened by a Reshape node (inside a Loop
the weights come in as loop inputs). A group is fused only when it is exactly this
pattern, ε is an initializer, and no node of the group but the last gives a graph
output; anything else is left as tf2onnx wrote it.
"""

import numpy as np


def fuse_layer_norms(model):
    """Fuses every layer-norm group of `model` (an onnx.ModelProto), in place.

    Returns:
        The number of groups replaced.
    """
    unread = set()
    fused = _fuse_graph(model.graph, {}, unread)
    # The groups' constants that no node reads any more (ONNX Runtime warns of each).
    _drop_initializers(model.graph, unread - _read_names(model.graph))
    return fused


def _read_names(graph):
    """Every name a node of `graph` or of its subgraphs reads."""
    from onnx import AttributeProto

    names = set()
    for node in graph.node:
        names.update(node.input)
        for attribute in node.attribute:
            if attribute.type == AttributeProto.GRAPH:
                names |= _read_names(attribute.g)
    return names


def _drop_initializers(graph, names):
    from onnx import AttributeProto

    kept = [i for i in graph.initializer if i.name not in names]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == AttributeProto.GRAPH:
                _drop_initializers(attribute.g, names)


def _fuse_graph(graph, outer_initializers, unread):
    """Fuses the groups of `graph` and its subgraphs; adds the names the removed nodes
    read to `unread`."""
    from onnx import AttributeProto, helper, numpy_helper

    initializers = dict(outer_initializers)
    initializers.update({i.name: i for i in graph.initializer})
    fused = 0
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == AttributeProto.GRAPH:
                fused += _fuse_graph(attribute.g, initializers, unread)

    consumers = {}
    for node in graph.node:
        for name in dict.fromkeys(node.input):  # a node reading x twice reads it once here
            consumers.setdefault(name, []).append(node)

    def only(name, op_type):
        """The one node that reads `name`, if it is of `op_type`."""
        readers = consumers.get(name, [])
        return readers[0] if len(readers) == 1 and readers[0].op_type == op_type else None

    graph_outputs = {v.name for v in graph.output}
    removed, fused_at, made = set(), {}, {}
    for mean in [n for n in graph.node if n.op_type == "GlobalAveragePool"]:
        group = _match(mean, mean.input[0], consumers, only)
        if group is None or None in (group["gamma"], group["beta"]):
            continue
        if group["epsilon"] not in initializers:
            continue
        epsilon = numpy_helper.to_array(initializers[group["epsilon"]])
        inner = [out for n in group["nodes"][:-1] for out in n.output]
        if epsilon.size != 1 or graph_outputs.intersection(inner):
            continue
        vectors = [_vector(graph, group[k], initializers, made) for k in ("gamma", "beta")]
        if None in vectors:
            continue
        output = group["nodes"][-1]
        fused_at[id(output)] = [
            *(node for _, node in vectors if node is not None),
            helper.make_node(
                "LayerNormalization",
                [group["x"], vectors[0][0], vectors[1][0]],
                list(output.output),
                name=f"{output.name}/LayerNormalization",
                # Over every axis from the third on, as GlobalAveragePool averages.
                axis=2,
                epsilon=float(epsilon.reshape(())),
            ),
        ]
        removed.update(id(n) for n in group["nodes"])
        unread.update(name for n in group["nodes"] for name in n.input)

    if fused_at:
        # Each fused group takes the place of its last node, before its readers.
        rebuilt = []
        for node in graph.node:
            if id(node) in fused_at:
                rebuilt.extend(fused_at[id(node)])
            elif id(node) not in removed:
                rebuilt.append(node)
        del graph.node[:]
        graph.node.extend(rebuilt)
    return fused + len(fused_at)


def _vector(graph, name, initializers, made):
    """γ or β as a vector: (its name, None) for an initializer reshaped here, (its name,
    the Reshape node to run first) for a tensor computed in the graph, or None for an
    initializer with an axis other than the last above 1. `made`: the vectors already
    made in `graph`, by name; a tensor several groups share is made once."""
    from onnx import helper, numpy_helper

    if name in made:
        return made[name], None
    flat = f"{name}/vector"
    if name in initializers:
        value = numpy_helper.to_array(initializers[name])
        if value.ndim == 0 or value.size != value.shape[-1]:
            return None
        graph.initializer.append(numpy_helper.from_array(value.reshape(-1), flat))
        made[name] = flat
        return flat, None
    shape = f"{name}/vector_shape"
    graph.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), shape))
    made[name] = flat
    return flat, helper.make_node("Reshape", [name, shape], [flat], name=flat)


def _match(mean, x, consumers, only):
    """The thirteen nodes of one layer norm around `mean` = GlobalAveragePool(x), with
    the names of ε, γ and β, or None."""
    readers = {n.op_type: n for n in consumers.get(mean.output[0], [])}
    if len(consumers.get(mean.output[0], [])) != 2 or set(readers) != {"Sub", "Neg"}:
        return None
    sub, neg = readers["Sub"], readers["Neg"]
    if list(sub.input) != [x, mean.output[0]]:
        return None
    square = only(sub.output[0], "Mul")
    if square is None or list(square.input) != [sub.output[0]] * 2:
        return None
    variance = only(square.output[0], "GlobalAveragePool")
    add_epsilon = variance and only(variance.output[0], "Add")
    sqrt = add_epsilon and only(add_epsilon.output[0], "Sqrt")
    reciprocal = sqrt and only(sqrt.output[0], "Reciprocal")
    scale = reciprocal and only(reciprocal.output[0], "Mul")
    if scale is None:
        return None
    scaled = consumers.get(scale.output[0], [])
    if len(scaled) != 2 or any(n.op_type != "Mul" for n in scaled):
        return None
    times_x = [n for n in scaled if x in n.input and neg.output[0] not in n.input]
    times_mean = [n for n in scaled if neg.output[0] in n.input]
    if len(times_x) != 1 or len(times_mean) != 1 or only(neg.output[0], "Mul") is None:
        return None
    (times_x,), (times_mean,) = times_x, times_mean
    shift = only(times_mean.output[0], "Add")
    output = only(times_x.output[0], "Add")
    if shift is None or output is None or only(shift.output[0], "Add") is not output:
        return None
    if times_mean.output[0] not in shift.input:
        return None

    def other(node, name):
        """The input of `node` besides `name`; None when it reads `name` twice."""
        rest = [i for i in node.input if i != name]
        return rest[0] if len(rest) == 1 else None

    return {
        "x": x,
        "epsilon": other(add_epsilon, variance.output[0]),
        "gamma": other(scale, reciprocal.output[0]),
        "beta": other(shift, times_mean.output[0]),
        "nodes": [
            mean,
            sub,
            neg,
            square,
            variance,
            add_epsilon,
            sqrt,
            reciprocal,
            scale,
            times_x,
            times_mean,
            shift,
            output,
        ],
    }
