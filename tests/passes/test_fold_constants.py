from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from optimizer import ir
from optimizer.passes.base import PassContext
from optimizer.passes.constant_evaluators import EVALUATORS
from optimizer.passes.fold_constants import FoldConstants
from tests.helpers import (
    FLOAT,
    INT64,
    assert_equivalent,
    assert_rewrites,
    assert_unchanged,
    make_model,
    op_list,
    run_ort,
)

F16 = TensorProto.FLOAT16
I32 = TensorProto.INT32
BOOL = TensorProto.BOOL
I64 = np.int64
node = helper.make_node


def _const_input(model, op, index):
    user = next(n for n in model.graph.nodes if n.op == op)
    assert ir.is_constant(user.inputs[index])
    return ir.const_value(user.inputs[index])


def test_arithmetic_chain_folds():
    inits = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": np.full((2, 3), 2.0, np.float32),
        "c": np.array([1.0, -1.0, 0.5], np.float32),
    }
    proto = make_model(
        [
            node("Add", ["a", "b"], ["t"]),
            node("Mul", ["t", "c"], ["u"]),
            node("Add", ["x", "u"], ["y"]),
        ],
        [("x", FLOAT, [2, 3])],
        [("y", FLOAT, [2, 3])],
        inits,
    )
    model = assert_rewrites(FoldConstants(), proto, ["Add"], {"node folded": 2})
    np.testing.assert_array_equal(_const_input(model, "Add", 1), (inits["a"] + 2) * inits["c"])


def _shape_chain(x_shape, out_shape, index=0, opset=17):
    """x -> Shape -> Gather(index) -> Unsqueeze -> Concat(., [-1]) -> Reshape(x, .)."""
    nodes = [
        node("Shape", ["x"], ["s"]),
        node("Gather", ["s", "i"], ["d"], axis=0),
        node("Unsqueeze", ["d", "axes"], ["u"])
        if opset >= 13
        else node("Unsqueeze", ["d"], ["u"], axes=[0]),
        node("Concat", ["u", "minus1"], ["shape"], axis=0),
        node("Reshape", ["x", "shape"], ["y"]),
    ]
    inits = {"i": np.array(index, I64), "minus1": np.array([-1], I64)}
    if opset >= 13:
        inits["axes"] = np.array([0], I64)
    return make_model(nodes, [("x", FLOAT, x_shape)], [("y", FLOAT, out_shape)], inits, opset)


@pytest.mark.parametrize("opset", [11, 17])
def test_static_shape_chain_collapses_to_reshape(opset):
    proto = _shape_chain([2, 3, 4], [2, 12], opset=opset)
    model = assert_rewrites(
        FoldConstants(), proto, ["Reshape"], {"Shape folded": 1, "node folded": 3}
    )
    shape = _const_input(model, "Reshape", 1)
    assert shape.dtype == np.int64
    np.testing.assert_array_equal(shape, [2, -1])


def test_partially_symbolic_shape_folds_only_the_static_gather():
    nodes = [
        node("Shape", ["x"], ["s"]),
        node("Gather", ["s", "zero"], ["n"], axis=0),
        node("Gather", ["s", "one"], ["c"], axis=0),
        node("Unsqueeze", ["n", "axes"], ["nu"]),
        node("Unsqueeze", ["c", "axes"], ["cu"]),
        node("Concat", ["nu", "cu", "minus1"], ["shape"], axis=0),
        node("Reshape", ["x", "shape"], ["y"]),
    ]
    inits = {
        "zero": np.array(0, I64),
        "one": np.array(1, I64),
        "axes": np.array([0], I64),
        "minus1": np.array([-1], I64),
    }
    proto = make_model(
        nodes, [("x", FLOAT, ["N", 3, "H", "W"])], [("y", FLOAT, ["N", 3, None])], inits
    )
    model = assert_rewrites(
        FoldConstants(),
        proto,
        ["Shape", "Gather", "Unsqueeze", "Concat", "Reshape"],
        {"Gather of Shape folded": 1, "node folded": 1},
    )
    np.testing.assert_array_equal(_const_input(model, "Concat", 1), [3])


def test_gather_of_symbolic_dim_stays():
    assert_unchanged(FoldConstants(), _shape_chain(["N", 3, 4], ["N", 12], index=0))


def test_gather_of_static_dim_drops_the_unused_shape():
    nodes = [
        node("Shape", ["x"], ["s"]),
        node("Gather", ["s", "i"], ["c"], axis=0),
        node("Cast", ["c"], ["cf"], to=FLOAT),
        node("Mul", ["x", "cf"], ["y"]),
    ]
    proto = make_model(
        nodes, [("x", FLOAT, ["N", 3])], [("y", FLOAT, ["N", 3])], {"i": np.array(-1, I64)}
    )
    stats = {"Gather of Shape folded": 1, "node folded": 1, "unused Shape removed": 1}
    model = assert_rewrites(FoldConstants(), proto, ["Mul"], stats)
    assert _const_input(model, "Mul", 1).dtype == np.float32


def test_slice_of_shape_with_static_tail_folds():
    nodes = [
        node("Shape", ["x"], ["s"]),
        node("Slice", ["s", "starts", "ends"], ["tail"]),
        node(
            "ConstantOfShape",
            ["tail"],
            ["ones"],
            value=numpy_helper.from_array(np.ones(1, np.float32)),
        ),
        node("Add", ["x", "ones"], ["y"]),
    ]
    inits = {"starts": np.array([1], I64), "ends": np.array([2**62], I64)}
    proto = make_model(nodes, [("x", FLOAT, ["N", 2, 3])], [("y", FLOAT, ["N", 2, 3])], inits)
    stats = {"Slice of Shape folded": 1, "node folded": 1, "unused Shape removed": 1}
    model = assert_rewrites(FoldConstants(), proto, ["Add"], stats)
    np.testing.assert_array_equal(_const_input(model, "Add", 1), np.ones((2, 3), np.float32))


def test_shape_with_start_end_and_size_of_static_input():
    nodes = [
        node("Shape", ["x"], ["s"], start=-2),
        node("Size", ["x"], ["n"]),
        node("Unsqueeze", ["n", "axes"], ["nu"]),
        node("Concat", ["s", "nu"], ["c"], axis=0),
        node("Add", ["c", "k"], ["y"]),
    ]
    inits = {"axes": np.array([0], I64), "k": np.array([0, 0, 0], I64)}
    proto = make_model(nodes, [("x", FLOAT, [5, 2, 3])], [("y", INT64, [3])], inits, opset=17)
    stats = {"Shape folded": 1, "Size folded": 1, "node folded": 3}
    model = assert_rewrites(FoldConstants(), proto, ["Identity"], stats)
    np.testing.assert_array_equal(ir.const_value(model.graph.nodes[0].inputs[0]), [2, 3, 30])


def test_constant_of_shape_to_a_million_elements_stays():
    nodes = [node("ConstantOfShape", ["s"], ["c"]), node("Add", ["x", "c"], ["y"])]
    proto = make_model(
        nodes,
        [("x", FLOAT, [1000, 1000])],
        [("y", FLOAT, [1000, 1000])],
        {"s": np.array([1000, 1000], I64)},
    )
    assert_unchanged(FoldConstants(), proto)


def test_expand_of_scalar_folds_only_when_tiny():
    def model(n):
        nodes = [node("Expand", ["one", "s"], ["c"]), node("Add", ["x", "c"], ["y"])]
        inits = {"one": np.array(1.0, np.float32), "s": np.array([n], I64)}
        return make_model(nodes, [("x", FLOAT, [n])], [("y", FLOAT, [n])], inits)

    assert_unchanged(FoldConstants(), model(4096))
    assert_rewrites(FoldConstants(), model(8), ["Add"], {"node folded": 1})


def test_fold_size_limit_blocks_growth_but_not_shrinking():
    shared = np.arange(600, dtype=np.float32)
    nodes = [
        node("Add", ["w", "one"], ["t"]),
        node("Mul", ["x", "t"], ["u"]),
        node("Mul", ["u", "w"], ["y"]),
    ]
    proto = make_model(
        nodes,
        [("x", FLOAT, [600])],
        [("y", FLOAT, [600])],
        {"w": shared, "one": np.ones(1, np.float32)},
    )
    ctx = PassContext(fold_size_limit=100)
    model = ir.Model.from_proto(proto)
    ir.infer_shapes(model)
    assert FoldConstants()(model, ctx).modified is False  # 600 new elements, 1 dead
    model = ir.Model.from_proto(proto)
    ir.infer_shapes(model)
    assert FoldConstants()(model, PassContext()).stats == {"node folded": 1}  # within the slack
    # Folding that frees at least as many elements as it creates ignores the limit.
    proto = make_model(
        [node("Add", ["a", "b"], ["t"]), node("Mul", ["x", "t"], ["y"])],
        [("x", FLOAT, [600])],
        [("y", FLOAT, [600])],
        {"a": shared, "b": shared + 1},
    )
    model = ir.Model.from_proto(proto)
    ir.infer_shapes(model)
    assert FoldConstants()(model, ctx).stats == {"node folded": 1}


@pytest.mark.parametrize(
    "nodes",
    [
        [node("RandomNormal", [], ["r"], shape=[2, 3]), node("Add", ["x", "r"], ["y"])],
        [node("RandomUniformLike", ["c"], ["r"]), node("Add", ["x", "r"], ["y"])],
        [
            node("Dropout", ["c", "ratio", "train"], ["r"]),
            node("Add", ["x", "r"], ["y"]),
        ],
    ],
    ids=["RandomNormal", "RandomUniformLike", "Dropout_training"],
)
def test_nondeterministic_ops_stay(nodes):
    inits = {
        "c": np.ones((2, 3), np.float32),
        "ratio": np.array(0.5, np.float32),
        "train": np.array(True),
    }
    used = {i for n in nodes for i in n.input}
    inits = {k: v for k, v in inits.items() if k in used}
    assert_unchanged(
        FoldConstants(), make_model(nodes, [("x", FLOAT, [2, 3])], [("y", FLOAT, [2, 3])], inits)
    )


def test_sequence_ops_stay():
    nodes = [
        node("SequenceConstruct", ["a", "b"], ["seq"]),
        node("ConcatFromSequence", ["seq"], ["t"], axis=0),
        node("Add", ["x", "t"], ["y"]),
    ]
    inits = {"a": np.ones((1, 3), np.float32), "b": np.zeros((1, 3), np.float32)}
    assert_unchanged(
        FoldConstants(), make_model(nodes, [("x", FLOAT, [2, 3])], [("y", FLOAT, [2, 3])], inits)
    )


def test_evaluation_error_skips_the_node():
    nodes = [node("Gather", ["c", "i"], ["g"], axis=0), node("Add", ["x", "g"], ["y"])]
    inits = {"c": np.arange(3, dtype=np.float32), "i": np.array([5], I64)}
    assert_unchanged(
        FoldConstants(), make_model(nodes, [("x", FLOAT, [1])], [("y", FLOAT, [1])], inits)
    )


def test_reference_evaluator_fallback_and_constant_nodes():
    nodes = [
        node("Constant", [], ["m"], value=numpy_helper.from_array(np.eye(2, dtype=np.float32))),
        node("MatMul", ["m", "w"], ["t"]),
        node("Exp", ["t"], ["e"]),
        node("Add", ["x", "e"], ["y"]),
    ]
    w = np.array([[0.5, 1.0], [2.0, -1.0]], np.float32)
    proto = make_model(nodes, [("x", FLOAT, [2, 2])], [("y", FLOAT, [2, 2])], {"w": w})
    model = assert_rewrites(
        FoldConstants(), proto, ["Add"], {"Constant node lifted": 1, "node folded": 2}
    )
    np.testing.assert_allclose(_const_input(model, "Add", 1), np.exp(w), rtol=1e-6)


def test_folded_graph_output_keeps_its_name():
    proto = make_model(
        [node("Add", ["a", "b"], ["y"]), node("Neg", ["x"], ["z"])],
        [("x", FLOAT, [2])],
        [("y", FLOAT, [2]), ("z", FLOAT, [2])],
        {"a": np.ones(2, np.float32), "b": np.ones(2, np.float32)},
    )
    model = assert_rewrites(FoldConstants(), proto, ["Neg", "Identity"], {"node folded": 1})
    assert [o.name for o in model.graph.outputs] == ["y", "z"]


def test_node_inside_if_branch_folds():
    then = helper.make_graph(
        [node("Add", ["a", "b"], ["t"]), node("Mul", ["x", "t"], ["then_out"])],
        "then",
        [],
        [helper.make_tensor_value_info("then_out", FLOAT, [2])],
    )
    other = helper.make_graph(
        [node("Neg", ["x"], ["else_out"])],
        "else",
        [],
        [helper.make_tensor_value_info("else_out", FLOAT, [2])],
    )
    proto = make_model(
        [node("If", ["cond"], ["y"], then_branch=then, else_branch=other)],
        [("x", FLOAT, [2]), ("cond", BOOL, [])],
        [("y", FLOAT, [2])],
        {"a": np.array([1.0, 2.0], np.float32), "b": np.array([3.0, 4.0], np.float32)},
    )
    model = assert_rewrites(FoldConstants(), proto, ["If"], {"node folded": 1})
    branch = model.graph.nodes[0].attrs["then_branch"]
    assert [n.op for n in branch.nodes] == ["Mul"]
    for cond in (True, False):
        feeds = {"x": np.array([1.5, -2.0], np.float32), "cond": np.array(cond)}
        assert_equivalent(proto, model, feeds)


@pytest.mark.parametrize(("elem", "dtype"), [(INT64, np.int64), (I32, np.int32)])
def test_integer_div_truncates_toward_zero(elem, dtype):
    a = np.array([-7, 7, -7, 7, 6, -6, 0], dtype)
    b = np.array([2, 2, -2, -2, 3, 4, -3], dtype)
    proto = make_model(
        [node("Div", ["a", "b"], ["q"]), node("Add", ["x", "q"], ["y"])],
        [("x", elem, [7])],
        [("y", elem, [7])],
        {"a": a, "b": b},
    )
    # assert_rewrites also compares with onnxruntime, which computes the original Div at run time.
    model = assert_rewrites(FoldConstants(), proto, ["Add"], {"node folded": 1})
    q = _const_input(model, "Add", 1)
    assert q.dtype == dtype
    np.testing.assert_array_equal(q, [-3, 3, 3, -3, 2, -1, 0])


def test_dtypes_are_preserved():
    nodes = [
        node("Cast", ["f"], ["h"], to=F16),
        node("Add", ["x", "h"], ["y"]),
        node("Mul", ["i", "i"], ["sq"]),
        node("Add", ["k", "sq"], ["z"]),
    ]
    inits = {"f": np.array([0.1, 70000.0], np.float32), "i": np.array([3, -4], np.int32)}
    proto = make_model(
        nodes,
        [("x", F16, [2]), ("k", I32, [2])],
        [("y", F16, [2]), ("z", I32, [2])],
        inits,
    )
    model = assert_rewrites(FoldConstants(), proto, ["Add", "Add"], {"node folded": 2})
    assert _const_input(model, "Add", 1).dtype == np.float16
    assert model.graph.nodes[1].inputs[1].values.dtype == np.int32


# -- the fast evaluators agree with onnxruntime -------------------------------------------
# (onnxruntime, not the reference evaluator, is the oracle: the reference clamps negative-step
# Slice starts differently from the spec, e.g. Slice2 below.)

INTS = np.arange(24, dtype=np.int64).reshape(2, 3, 4)
FL = np.linspace(-2, 2, 24, dtype=np.float32).reshape(2, 3, 4)
CASES = [
    ("Shape", {"start": 1, "end": -1}, [FL]),
    ("Size", {}, [FL]),
    ("Gather", {"axis": 1}, [INTS, np.array([[-1, 0]], I64)]),
    ("Unsqueeze", {}, [INTS, np.array([-1, 0], I64)]),
    ("Squeeze", {}, [np.ones((1, 3, 1), np.float32), np.array([-1], I64)]),
    ("Squeeze", {}, [np.ones((1, 3, 1), np.float32)]),
    ("Concat", {"axis": -1}, [INTS, INTS]),
    ("Reshape", {}, [INTS, np.array([0, -1], I64)]),
    ("Reshape", {"allowzero": 1}, [np.zeros((0, 3), np.float32), np.array([3, 0], I64)]),
    ("Cast", {"to": F16}, [FL]),
    ("Cast", {"to": INT64}, [FL]),
    ("Cast", {"to": BOOL}, [FL]),
    (
        "Slice",
        {},
        [
            INTS,
            np.array([-1, 5], I64),
            np.array([-100, -1], I64),
            np.array([1, 2], I64),
            np.array([-1, -2], I64),
        ],
    ),
    (
        "Slice",
        {},
        [INTS, np.array([0], I64), np.array([2**62], I64), np.array([-1], I64), np.array([3], I64)],
    ),
    (
        "Slice",
        {},
        [INTS, np.array([-5], I64), np.array([-100], I64), np.array([0], I64), np.array([-1], I64)],
    ),
    ("Range", {}, [np.array(10, I64), np.array(-3, I64), np.array(-4, I64)]),
    ("Range", {}, [np.array(1, np.int32), np.array(1, np.int32), np.array(2, np.int32)]),
    ("Expand", {}, [np.array([[1], [2]], np.int32), np.array([1, 3], I64)]),
    ("ConstantOfShape", {"value": np.array([7], np.int32)}, [np.array([2, 2], I64)]),
    ("ConstantOfShape", {}, [np.array([], I64)]),
    ("Add", {}, [INTS, np.array([1, 2, 3, 4], I64)]),
    ("Sub", {}, [FL, np.float32(1.0) * np.ones(4, np.float32)]),
    ("Mul", {}, [np.array([2**40], I64), np.array([2**30], I64)]),
    ("Div", {}, [FL, np.full(4, 3.0, np.float32)]),
    ("Div", {}, [np.array([-9, 9, -1, 1], np.int32), np.array([4, -4, 3, -3], np.int32)]),
    ("Div", {}, [np.array([7, 8], np.uint8), np.array([2, 3], np.uint8)]),
    ("Equal", {}, [INTS, np.array([0, 1, 2, 3], I64)]),
    ("Less", {}, [FL, np.zeros(4, np.float32)]),
    ("Greater", {}, [INTS, np.array(10, I64)]),
    ("Where", {}, [FL > 0, FL, -FL]),
    ("Transpose", {"perm": [2, 0, 1]}, [INTS]),
    ("Transpose", {}, [INTS]),
    ("Identity", {}, [INTS]),
    ("Neg", {}, [INTS]),
    ("Sqrt", {}, [np.abs(FL)]),
    ("Not", {}, [FL > 0]),
    ("ReduceProd", {"keepdims": 0}, [INTS + 1, np.array([0, -1], I64)]),
    ("ReduceProd", {}, [np.arange(1, 7, dtype=np.int32)]),
    ("Min", {}, [INTS, np.array([5], I64), np.array(3, I64)]),
    ("Max", {}, [FL, np.zeros(4, np.float32)]),
    ("Tile", {}, [INTS, np.array([1, 2, 1], I64)]),
    ("Flatten", {"axis": -1}, [INTS]),
    ("Flatten", {"axis": 0}, [INTS]),
]


@pytest.mark.parametrize(("op", "attrs", "inputs"), CASES, ids=[c[0] for c in CASES])
def test_fast_evaluator_matches_onnxruntime(op, attrs, inputs):
    gs_attrs = {
        k: ir.Constant("v", v) if isinstance(v, np.ndarray) else v for k, v in attrs.items()
    }
    n = ir.Node(op=op, attrs=gs_attrs, inputs=[], outputs=[ir.Variable("o")])
    with np.errstate(all="ignore"):
        (got,) = EVALUATORS[op](n, inputs, 18)
    names = [f"i{k}" for k in range(len(inputs))]
    proto_attrs = {
        k: numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v for k, v in attrs.items()
    }
    graph = helper.make_graph(
        [node(op, names, ["o"], **proto_attrs)],
        "one",
        [
            helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for k, v in zip(names, inputs, strict=True)
        ],
        [helper.make_tensor_value_info("o", helper.np_dtype_to_tensor_dtype(got.dtype), None)],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    proto.ir_version = 8
    (want,) = run_ort(proto, {k: np.asarray(v) for k, v in zip(names, inputs, strict=True)})
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_dropout_in_inference_mode_folds():
    nodes = [node("Dropout", ["c"], ["d"]), node("Add", ["x", "d"], ["y"])]
    proto = make_model(
        nodes, [("x", FLOAT, [3])], [("y", FLOAT, [3])], {"c": np.arange(3, dtype=np.float32)}
    )
    assert_rewrites(FoldConstants(), proto, ["Add"], {"node folded": 1})


def test_node_inside_loop_body_folds():
    body = helper.make_graph(
        [
            node("Add", ["a", "b"], ["step"]),
            node("Add", ["acc_in", "step"], ["acc_out"]),
            node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", INT64, []),
            helper.make_tensor_value_info("cond_in", BOOL, []),
            helper.make_tensor_value_info("acc_in", FLOAT, [2]),
        ],
        [
            helper.make_tensor_value_info("cond_out", BOOL, []),
            helper.make_tensor_value_info("acc_out", FLOAT, [2]),
        ],
    )
    proto = make_model(
        [node("Loop", ["n", "", "x"], ["y"], body=body)],
        [("x", FLOAT, [2]), ("n", INT64, [])],
        [("y", FLOAT, [2])],
        {"a": np.array([1.0, 2.0], np.float32), "b": np.array([0.5, 0.5], np.float32)},
    )
    model = assert_rewrites(FoldConstants(), proto, ["Loop"], {"node folded": 1})
    assert [n.op for n in model.graph.nodes[0].attrs["body"].nodes] == ["Add", "Identity"]
    assert_equivalent(proto, model, {"x": np.zeros(2, np.float32), "n": np.array(3, I64)})


def test_shape_chain_folds_once_input_shapes_are_pinned():
    proto = _shape_chain(["N", 3, 4], ["N", 12])
    model = ir.Model.from_proto(proto)
    ir.pin_input_shapes(model, {"x": [5, 3, 4]})
    ir.infer_shapes(model)
    res = FoldConstants()(model, PassContext(verify=True))
    assert dict(res.stats) == {"Shape folded": 1, "node folded": 3}
    assert op_list(model) == ["Reshape"]
    np.testing.assert_array_equal(_const_input(model, "Reshape", 1), [5, -1])


def test_range_of_one_element_tensors_folds():
    # The AffineGrid function body (node test affine_grid_2d_expanded) gives Range a computed
    # one-element 1-D limit, which onnxruntime accepts. Folding the Identity alone made every
    # Range input an initializer, and strict shape inference rejects a non-scalar initializer
    # there: the optimized model was invalid. Range of one-element tensors now folds too.
    proto = make_model(
        [
            node("Identity", ["n1"], ["lim"]),
            node("Range", ["zero", "lim", "one"], ["r"]),
            node("Cast", ["r"], ["rf"], to=FLOAT),
            node("Add", ["x", "rf"], ["y"]),
        ],
        [("x", FLOAT, [3])],
        [("y", FLOAT, [3])],
        {"n1": np.array([3], I64), "zero": np.array(0, I64), "one": np.array(1, I64)},
    )
    model = assert_rewrites(FoldConstants(), proto, ["Add"], {"node folded": 3})
    np.testing.assert_array_equal(_const_input(model, "Add", 1), [0.0, 1.0, 2.0])
