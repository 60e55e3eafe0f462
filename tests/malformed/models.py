"""Malformed ONNX models, generated deterministically, by category.

Every case writes one model file (and, for external data, its neighbours) into a directory and
says what must happen: ``must_fail`` cases must be rejected with a one-line OptimizerError;
the others (random bit flips, which may hit only a weight byte) may also load and optimize.

``all_cases()`` is the full list (over 1,000); ``CATEGORIES`` names every category.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64


@dataclass(frozen=True)
class Case:
    category: str
    name: str
    write: Callable[[Path], Path]  # writes into a directory, returns the model path
    must_fail: bool = True
    # Valid to the ONNX checker, broken for any runtime (a weight of the wrong shape, a
    # dimension of 2**40): ``optimizer.load`` may accept it, optimizing/compiling must fail.
    load_may_pass: bool = False

    @property
    def id(self) -> str:
        return f"{self.category}/{self.name}"


# -- base models ------------------------------------------------------------------------------


def _cnn() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = {
        "W": rng.standard_normal((2, 3, 3, 3)).astype(np.float32),
        "B": rng.standard_normal(2).astype(np.float32),
        "shape": np.array([1, 32], np.int64),
        "W2": rng.standard_normal((32, 4)).astype(np.float32),
        "B2": rng.standard_normal(4).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], "conv", pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["c"], ["r"], "relu"),
        helper.make_node("MaxPool", ["r"], ["p"], "pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["p", "shape"], ["f"], "flatten"),
        helper.make_node("Gemm", ["f", "W2", "B2"], ["g"], "fc", alpha=1.0, transB=0),
        helper.make_node("Softmax", ["g"], ["y"], "softmax", axis=1),
    ]
    return _model(nodes, [("x", [1, 3, 8, 8])], [("y", [1, 4])], inits, 13)


def _mlp() -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    inits = {
        "W": rng.standard_normal((6, 6)).astype(np.float32),
        "b": rng.standard_normal(6).astype(np.float32),
        "scale": np.ones(6, np.float32),
        "bias": np.zeros(6, np.float32),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["m"], "mm"),
        helper.make_node("Add", ["m", "b"], ["a"], "add"),
        helper.make_node("Tanh", ["a"], ["t"], "tanh"),
        helper.make_node(
            "LayerNormalization", ["t", "scale", "bias"], ["n"], "ln", axis=-1, epsilon=1e-5
        ),
        helper.make_node("Transpose", ["n"], ["tr"], "transpose", perm=[1, 0]),
        helper.make_node("Concat", ["tr", "tr"], ["y"], "concat", axis=0),
        helper.make_node("ReduceSum", ["n"], ["z"], "sum", keepdims=1),
    ]
    return _model(nodes, [("x", [2, 6])], [("y", [12, 2]), ("z", [1, 1])], inits, 17)


def _model(nodes, inputs, outputs, inits, opset: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, FLOAT, s) for n, s in outputs],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


BASES: dict[str, Callable[[], onnx.ModelProto]] = {"cnn": _cnn, "mlp": _mlp}
_cache: dict[str, bytes] = {}


def base_bytes(name: str) -> bytes:
    if name not in _cache:
        _cache[name] = BASES[name]().SerializeToString()
    return _cache[name]


def base(name: str) -> onnx.ModelProto:
    return onnx.ModelProto.FromString(base_bytes(name))


def _bytes_case(category: str, name: str, data: bytes, must_fail: bool = True) -> Case:
    def write(d: Path) -> Path:
        path = d / "model.onnx"
        path.write_bytes(data)
        return path

    return Case(category, name, write, must_fail)


def _proto_case(
    category: str,
    name: str,
    base_name: str,
    edit: Callable[[onnx.ModelProto], object],
    load_may_pass: bool = False,
) -> Case:
    def write(d: Path) -> Path:
        model = base(base_name)
        edit(model)
        path = d / "model.onnx"
        path.write_bytes(model.SerializeToString())
        return path

    return Case(category, f"{base_name}.{name}", write, load_may_pass=load_may_pass)


# -- byte-level damage ------------------------------------------------------------------------


def truncated() -> Iterator[Case]:
    for b in BASES:
        data = base_bytes(b)
        rng = random.Random(f"trunc-{b}")
        cuts = sorted(
            {*range(0, len(data), max(1, len(data) // 60)), *rng.sample(range(len(data)), 40)}
        )
        for cut in cuts[:100]:
            yield _bytes_case("truncated", f"{b}.{cut}", data[:cut])
    yield _bytes_case("truncated", "empty_file", b"")
    yield _bytes_case("truncated", "text_file", b"this is not a model\n" * 20)
    yield _bytes_case("truncated", "json_file", b'{"graph": {"node": []}}')
    yield _bytes_case("truncated", "zeros", b"\0" * 4096)
    for seed in range(16):
        junk = random.Random(seed).randbytes(64 + 97 * seed)
        yield _bytes_case("truncated", f"random_bytes{seed}", junk)


def bit_flips() -> Iterator[Case]:
    for b in BASES:
        data = base_bytes(b)
        for seed in range(160):
            rng = random.Random(f"flip-{b}-{seed}")
            out = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(out))
                out[i] ^= 1 << rng.randrange(8)
            yield _bytes_case("bit_flip", f"{b}.{seed}", bytes(out), must_fail=False)


# -- wrong field types ------------------------------------------------------------------------


def _node(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.name == name)


def _init(model: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(t for t in model.graph.initializer if t.name == name)


def _set_attr(node: onnx.NodeProto, attr: AttributeProto) -> None:
    kept = [a for a in node.attribute if a.name != attr.name]
    del node.attribute[:]
    node.attribute.extend([*kept, attr])


def _retype(node_name: str, attr_name: str, kind: str):
    """An attribute replaced by one of another type (same name)."""

    def edit(m: onnx.ModelProto) -> None:
        node = _node(m, node_name)
        if kind == "float":
            attr = helper.make_attribute(attr_name, 1.5)
        elif kind == "int":
            attr = helper.make_attribute(attr_name, 2)
        elif kind == "floats":
            attr = helper.make_attribute(attr_name, [1.0, 2.0])
        elif kind == "ints":
            attr = helper.make_attribute(attr_name, [1, 2, 3])
        elif kind == "string":
            attr = helper.make_attribute(attr_name, "seven")
        elif kind == "tensor":
            attr = helper.make_attribute(attr_name, numpy_helper.from_array(np.ones(2, np.float32)))
        elif kind == "type_only":  # declared INT but no payload in `i`: payload in `f`
            attr = AttributeProto(name=attr_name, type=AttributeProto.INT, f=2.0)
        elif kind == "undefined":
            attr = AttributeProto(name=attr_name, type=AttributeProto.UNDEFINED)
        else:  # graph where a number is expected
            attr = helper.make_attribute(attr_name, helper.make_graph([], "sub", [], []))
        _set_attr(node, attr)

    return edit


ATTRS = {
    "cnn": [
        ("conv", "strides", "ints"),
        ("conv", "pads", "ints"),
        ("pool", "kernel_shape", "ints"),
        ("fc", "alpha", "float"),
        ("fc", "transB", "int"),
        ("softmax", "axis", "int"),
    ],
    "mlp": [
        ("ln", "axis", "int"),
        ("ln", "epsilon", "float"),
        ("transpose", "perm", "ints"),
        ("concat", "axis", "int"),
        ("sum", "keepdims", "int"),
    ],
}
KINDS = ["float", "int", "floats", "ints", "string", "tensor", "type_only", "undefined", "graph"]


def _tensor_edit(tensor_name: str, variant: str):
    def edit(m: onnx.ModelProto) -> None:
        t = _init(m, tensor_name)
        n = len(t.raw_data)
        if variant == "raw_short":
            t.raw_data = t.raw_data[: n // 2]
        elif variant == "raw_long":
            t.raw_data = t.raw_data + b"\0" * 12
        elif variant == "raw_off_by_one":
            t.raw_data = t.raw_data[:-1]
        elif variant == "raw_empty_dims_kept":
            t.raw_data = b""
        elif variant == "float_data_count":  # typed field, wrong element count
            values = np.frombuffer(t.raw_data, dtype=helper.tensor_dtype_to_np_dtype(t.data_type))
            t.ClearField("raw_data")
            if t.data_type == FLOAT:
                t.float_data.extend(values.astype(np.float32)[:-1].tolist())
            else:
                t.int64_data.extend(values.astype(np.int64)[:-1].tolist())
        elif variant == "both_raw_and_typed":
            t.float_data.extend([1.0, 2.0])
            t.int64_data.extend([1])
        elif variant == "dtype_undefined":
            t.data_type = 0
        elif variant == "dtype_unknown":
            t.data_type = 99
        elif variant == "dtype_negative":
            t.data_type = -3
        elif variant == "dtype_double":  # raw bytes reinterpreted: wrong size and wrong type
            t.data_type = TensorProto.DOUBLE
        elif variant == "dtype_int32":  # same element size, wrong type for the op
            t.data_type = TensorProto.INT32 if t.data_type == FLOAT else FLOAT
        elif variant == "dtype_string":
            t.data_type = TensorProto.STRING
        elif variant == "dtype_bool":
            t.data_type = TensorProto.BOOL
        elif variant == "extra_dim":
            t.dims.append(3)
        elif variant == "dropped_dim":
            del t.dims[0]
        else:  # swapped dims: same element count, wrong shape for the graph
            dims = list(t.dims)
            del t.dims[:]
            t.dims.extend(reversed(dims) if len(dims) > 1 else [*dims, 1, 1])

    return edit


TENSOR_VARIANTS = [
    "raw_short",
    "raw_long",
    "raw_off_by_one",
    "raw_empty_dims_kept",
    "float_data_count",
    "both_raw_and_typed",
    "dtype_undefined",
    "dtype_unknown",
    "dtype_negative",
    "dtype_double",
    "dtype_int32",
    "dtype_string",
    "dtype_bool",
    "extra_dim",
    "dropped_dim",
    "swapped_dims",
]


def _io_type(which: str, index: int, elem: int):
    def edit(m: onnx.ModelProto) -> None:
        vi = (m.graph.input if which == "input" else m.graph.output)[index]
        vi.type.tensor_type.elem_type = elem

    return edit


def wrong_types() -> Iterator[Case]:
    for b, attrs in ATTRS.items():
        for node, attr, right in attrs:
            for kind in KINDS:
                if kind == right:
                    continue
                yield _proto_case(
                    "wrong_type", f"{node}.{attr}.as_{kind}", b, _retype(node, attr, kind)
                )
    for b in BASES:
        for t in base(b).graph.initializer:
            for variant in TENSOR_VARIANTS:
                if variant == "swapped_dims" and len(set(t.dims)) == 1 and len(t.dims) > 1:
                    continue  # a square matrix: swapping changes nothing
                yield _proto_case(
                    "wrong_type",
                    f"{t.name}.{variant}",
                    b,
                    _tensor_edit(t.name, variant),
                    load_may_pass=variant == "swapped_dims",
                )
        for elem, label in [
            (INT64, "int64"),
            (TensorProto.STRING, "string"),
            (0, "undefined"),
            (77, "unknown"),
            (TensorProto.BOOL, "bool"),
        ]:
            yield _proto_case("wrong_type", f"input0_{label}", b, _io_type("input", 0, elem))
            yield _proto_case("wrong_type", f"output0_{label}", b, _io_type("output", 0, elem))


# -- dimensions -------------------------------------------------------------------------------


def _input_dims(index: int, dims: list[int]):
    def edit(m: onnx.ModelProto) -> None:
        shape = m.graph.input[index].type.tensor_type.shape
        for d, v in zip(shape.dim, dims):
            d.dim_value = v

    return edit


def _init_dims(name: str, dims: list[int], keep_data: bool):
    def edit(m: onnx.ModelProto) -> None:
        t = _init(m, name)
        del t.dims[:]
        t.dims.extend(dims)
        if not keep_data:
            t.ClearField("raw_data")

    return edit


def _reshape_target(values: list[int]):
    def edit(m: onnx.ModelProto) -> None:
        t = _init(m, "shape")
        t.raw_data = np.array(values, np.int64).tobytes()
        del t.dims[:]
        t.dims.append(len(values))

    return edit


BAD_DIMS = [-1, -2, -7, -(2**31), -(2**63), 2**31, 2**40, 2**62, 2**63 - 1]


def dimensions() -> Iterator[Case]:
    for b in BASES:
        inputs = base(b).graph.input
        for i, vi in enumerate(inputs):
            rank = len(vi.type.tensor_type.shape.dim)
            for axis in range(rank):
                for bad in BAD_DIMS:
                    dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
                    dims[axis] = bad
                    yield _proto_case(
                        "dims",
                        f"input{i}.axis{axis}={bad}",
                        b,
                        _input_dims(i, dims),
                        load_may_pass=bad > 0,
                    )
        for t in base(b).graph.initializer:
            for bad in [*BAD_DIMS[:3], 2**40, 2**62]:
                for keep in (True, False):
                    dims = [bad, *list(t.dims)[1:]]
                    yield _proto_case(
                        "dims",
                        f"{t.name}.dims0={bad}.{'data' if keep else 'nodata'}",
                        b,
                        _init_dims(t.name, dims, keep),
                    )
    for values in ([1, -5], [-1, -1], [2**40, 2**40], [1, 2**62], [5, 32], [3, 11], [-(2**63), 1]):
        yield _proto_case(
            "dims", f"reshape_to_{values}", "cnn", _reshape_target(values), load_may_pass=True
        )


# -- graph structure --------------------------------------------------------------------------


def _rewire(node_index: int, input_index: int, source: str):
    def edit(m: onnx.ModelProto) -> None:
        node = m.graph.node[node_index]
        if source == "self":
            node.input[input_index] = node.output[0]
        elif source.startswith("later:"):
            node.input[input_index] = m.graph.node[int(source[6:])].output[0]
        else:
            node.input[input_index] = source

    return edit


def _swap_order(m: onnx.ModelProto) -> None:
    nodes = list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend(reversed(nodes))


def _two_cycle(i: int, j: int):
    def edit(m: onnx.ModelProto) -> None:
        a, b = m.graph.node[i], m.graph.node[j]
        a.input[0] = b.output[0]  # i reads j's output while j (transitively) reads i's

    return edit


def structure() -> Iterator[Case]:
    for b in BASES:
        nodes = base(b).graph.node
        n = len(nodes)
        for i in range(n):
            yield _proto_case("cycle", f"self_loop{i}", b, _rewire(i, 0, "self"))
            for j in range(i + 1, n):
                yield _proto_case("cycle", f"back_edge{i}<-{j}", b, _two_cycle(i, j))
        yield _proto_case("cycle", "reversed_order", b, _swap_order)
        for i, node in enumerate(nodes):
            for k in range(len(node.input)):
                yield _proto_case("dangling", f"node{i}.in{k}", b, _rewire(i, k, f"ghost_{i}_{k}"))
            yield _proto_case(
                "dangling", f"node{i}.in_extra", b, _append_input(i, "nobody_makes_this")
            )
        for o in range(len(base(b).graph.output)):
            yield _proto_case(
                "dangling", f"output{o}_unproduced", b, _rename_output(o, "not_computed")
            )
        for t in base(b).graph.initializer:
            yield _proto_case("missing_initializer", f"{t.name}", b, _drop_initializer(t.name))
            yield _proto_case(
                "missing_initializer",
                f"{t.name}.renamed",
                b,
                _rename_initializer(t.name, t.name + "_x"),
            )
        yield _proto_case(
            "missing_initializer", "all", b, lambda m: m.graph.ClearField("initializer")
        )
        for i in range(n):
            for j in range(n):
                if i != j:
                    yield _proto_case("duplicate_output", f"node{i}=node{j}", b, _dup_output(i, j))
            yield _proto_case("duplicate_output", f"node{i}=input", b, _output_named(i, "x"))
            inits = base(b).graph.initializer
            yield _proto_case(
                "duplicate_output", f"node{i}=init", b, _output_named(i, inits[0].name)
            )
        yield _proto_case("duplicate_output", "graph_output_twice", b, _dup_graph_output)
        yield _proto_case("duplicate_output", "graph_input_twice", b, _dup_graph_input)
        yield _proto_case("duplicate_output", "initializer_twice", b, _dup_initializer)


def _append_input(i: int, name: str):
    return lambda m: m.graph.node[i].input.append(name)


def _rename_output(o: int, name: str):
    def edit(m: onnx.ModelProto) -> None:
        m.graph.output[o].name = name

    return edit


def _drop_initializer(name: str):
    def edit(m: onnx.ModelProto) -> None:
        kept = [t for t in m.graph.initializer if t.name != name]
        m.graph.ClearField("initializer")
        m.graph.initializer.extend(kept)

    return edit


def _rename_initializer(name: str, new: str):
    def edit(m: onnx.ModelProto) -> None:
        _init(m, name).name = new

    return edit


def _dup_output(i: int, j: int):
    def edit(m: onnx.ModelProto) -> None:
        m.graph.node[i].output[0] = m.graph.node[j].output[0]

    return edit


def _output_named(i: int, name: str):
    def edit(m: onnx.ModelProto) -> None:
        m.graph.node[i].output[0] = name

    return edit


def _dup_graph_output(m: onnx.ModelProto) -> None:
    m.graph.output.append(m.graph.output[0])


def _dup_graph_input(m: onnx.ModelProto) -> None:
    m.graph.input.append(m.graph.input[0])


def _dup_initializer(m: onnx.ModelProto) -> None:
    t = onnx.TensorProto()
    t.CopyFrom(m.graph.initializer[0])
    t.raw_data = bytes(len(t.raw_data))
    m.graph.initializer.append(t)


# -- opsets and domains -----------------------------------------------------------------------


def _opset(domain: str, version: int, replace: bool = True):
    def edit(m: onnx.ModelProto) -> None:
        if replace:
            m.ClearField("opset_import")
        m.opset_import.append(helper.make_opsetid(domain, version))

    return edit


def _node_domain(i: int, domain: str, import_it: bool):
    def edit(m: onnx.ModelProto) -> None:
        m.graph.node[i].domain = domain
        if import_it:
            m.opset_import.append(helper.make_opsetid(domain, 1))

    return edit


def _op_type(i: int, op: str):
    def edit(m: onnx.ModelProto) -> None:
        m.graph.node[i].op_type = op

    return edit


def opsets() -> Iterator[Case]:
    for b in BASES:
        for v in (-1, 0, 5000, 2**31 - 1, 2**62):
            yield _proto_case("opset", f"default_v{v}", b, _opset("", v))
        yield _proto_case("opset", "no_opset_import", b, lambda m: m.ClearField("opset_import"))
        yield _proto_case("opset", "only_ml", b, _opset("ai.onnx.ml", 3))
        yield _proto_case("opset", "ml_v99_used", b, _ml_used(99))
        n = len(base(b).graph.node)
        for i in range(n):
            for dom in ("com.example", "org.pytorch.aten", "x" * 300):
                yield _proto_case(
                    "domain", f"node{i}.{dom[:20]}.imported", b, _node_domain(i, dom, True)
                )
                yield _proto_case(
                    "domain", f"node{i}.{dom[:20]}.not_imported", b, _node_domain(i, dom, False)
                )
            for op in ("FooBar", "", "conv", "Conv2D"):
                yield _proto_case("domain", f"node{i}.op_{op or 'empty'}", b, _op_type(i, op))
        # an op too new for the declared opset (Gelu: opset 20)
        yield _proto_case("opset", "op_newer_than_opset", b, _op_type(0, "Gelu"))


def _ml_used(version: int):
    def edit(m: onnx.ModelProto) -> None:
        m.opset_import.append(helper.make_opsetid("ai.onnx.ml", version))
        m.graph.node[0].domain = "ai.onnx.ml"

    return edit


# -- empty graphs -----------------------------------------------------------------------------


def empty() -> Iterator[Case]:
    def no_graph(m: onnx.ModelProto) -> None:
        m.ClearField("graph")

    def no_nodes(m: onnx.ModelProto) -> None:
        m.graph.ClearField("node")

    def nothing(m: onnx.ModelProto) -> None:
        m.graph.ClearField("node")
        m.graph.ClearField("output")

    def no_outputs(m: onnx.ModelProto) -> None:
        m.graph.ClearField("output")

    def no_inputs(m: onnx.ModelProto) -> None:
        m.graph.ClearField("input")

    def ir_zero(m: onnx.ModelProto) -> None:
        m.ir_version = 0

    def ir_huge(m: onnx.ModelProto) -> None:
        m.ir_version = 10**6

    def empty_graph_field(m: onnx.ModelProto) -> None:
        m.graph.CopyFrom(onnx.GraphProto())

    for b in BASES:
        for fn in (
            no_graph,
            no_nodes,
            nothing,
            no_outputs,
            no_inputs,
            ir_zero,
            ir_huge,
            empty_graph_field,
        ):
            yield _proto_case("empty", fn.__name__, b, fn)
    yield _bytes_case(
        "empty", "model_proto_only_ir", onnx.ModelProto(ir_version=8).SerializeToString()
    )


# -- non-UTF-8 names --------------------------------------------------------------------------

_BAD_UTF8 = [
    b"\xff",
    b"\xc3\x28",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\x80abc",
]


def _bad_name_case(b: str, where: str, k: int) -> Case:
    bad = _BAD_UTF8[k % len(_BAD_UTF8)]
    marker = f"Q{k:03d}".encode()[: len(bad)].ljust(len(bad), b"Z")

    def write(d: Path) -> Path:
        m = base(b)
        placeholder = marker.decode()
        target = where.split(":")
        if target[0] == "node_name":
            m.graph.node[int(target[1])].name = placeholder
        elif target[0] == "op_type":
            m.graph.node[int(target[1])].op_type = placeholder
        elif target[0] == "value":  # a value name: producer and consumer renamed alike
            node = m.graph.node[int(target[1])]
            old = node.output[0]
            node.output[0] = placeholder
            for other in m.graph.node:
                other.input[:] = [placeholder if x == old else x for x in other.input]
        elif target[0] == "input":
            old = m.graph.input[0].name
            m.graph.input[0].name = placeholder
            for other in m.graph.node:
                other.input[:] = [placeholder if x == old else x for x in other.input]
        elif target[0] == "initializer":
            t = m.graph.initializer[int(target[1])]
            old = t.name
            t.name = placeholder
            for other in m.graph.node:
                other.input[:] = [placeholder if x == old else x for x in other.input]
        elif target[0] == "attr_name":
            node = next(n for n in m.graph.node if n.attribute)
            node.attribute[0].name = placeholder
        elif target[0] == "graph_name":
            m.graph.name = placeholder
        elif target[0] == "string_attr":  # a STRING attribute's payload is bytes: allowed
            m.graph.node[0].attribute.append(helper.make_attribute("note", placeholder))
        elif target[0] == "metadata":
            m.metadata_props.add(key=placeholder, value="v")
        elif target[0] == "domain":
            m.graph.node[0].domain = placeholder
        data = m.SerializeToString()
        assert data.count(marker) == data.count(marker), where
        data = data.replace(marker, bad)
        path = d / "model.onnx"
        path.write_bytes(data)
        return path

    return Case("non_utf8", f"{b}.{where}.{k}", write)


def non_utf8() -> Iterator[Case]:
    for b in BASES:
        m = base(b)
        targets = [f"node_name:{i}" for i in range(len(m.graph.node))]
        targets += [f"op_type:{i}" for i in range(len(m.graph.node))]
        targets += [f"value:{i}" for i in range(len(m.graph.node) - 1)]
        targets += [f"initializer:{i}" for i in range(len(m.graph.initializer))]
        targets += ["input", "attr_name", "graph_name", "metadata", "domain"]
        for k, where in enumerate(targets):
            yield _bad_name_case(b, where, k)


# -- external data ----------------------------------------------------------------------------


def _external_case(
    name: str,
    tensor: str,
    location: str,
    offset: int | None = None,
    length: int | None = None,
    setup: str = "",
) -> Case:
    def write(d: Path) -> Path:
        model_dir = d / "model"
        model_dir.mkdir()
        m = base("cnn")
        t = _init(m, tensor)
        raw = t.raw_data
        (model_dir / "weights.bin").write_bytes(raw)
        (d / "outside.bin").write_bytes(raw)
        if setup == "dir":
            (model_dir / "adir").mkdir()
        elif setup == "symlink_out":
            (model_dir / "link.bin").symlink_to(d / "outside.bin")
        elif setup == "fifo":
            import os

            os.mkfifo(model_dir / "pipe.bin")
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        del t.external_data[:]
        t.external_data.add(key="location", value=location)
        if offset is not None:
            t.external_data.add(key="offset", value=str(offset))
        if length is not None:
            t.external_data.add(key="length", value=str(length))
        path = model_dir / "model.onnx"
        path.write_bytes(m.SerializeToString())
        return path

    return Case("external_data", name, write)


def external_data() -> Iterator[Case]:
    for tensor in ("W", "W2", "shape"):
        for loc in (
            "../outside.bin",
            "/etc/hostname",
            "sub/../../outside.bin",
            "missing.bin",
            "nested/missing.bin",
            "adir",
            "link.bin",
            "pipe.bin",
            "",
            "weights.bin\0x",
        ):
            setup = {"adir": "dir", "link.bin": "symlink_out", "pipe.bin": "fifo"}.get(loc, "")
            yield _external_case(
                f"{tensor}.{loc.replace('/', '_') or 'empty'}", tensor, loc, setup=setup
            )
        for offset, length in ((10**9, None), (0, 10**9), (-1, None), (0, -5), (4, None), (1, 7)):
            yield _external_case(
                f"{tensor}.off{offset}.len{length}", tensor, "weights.bin", offset, length
            )


CATEGORIES: dict[str, Callable[[], Iterator[Case]]] = {
    "truncated": truncated,
    "bit_flip": bit_flips,
    "wrong_type": wrong_types,
    "dims": dimensions,
    "structure": structure,
    "opsets": opsets,
    "empty": empty,
    "non_utf8": non_utf8,
    "external_data": external_data,
}


def all_cases() -> list[Case]:
    cases = [c for gen in CATEGORIES.values() for c in gen()]
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases
