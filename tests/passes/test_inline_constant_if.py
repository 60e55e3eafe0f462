from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from optimizer import ir
from optimizer.passes.base import PassContext
from optimizer.passes.inline_constant_if import InlineConstantIf
from tests.helpers import (
    FLOAT,
    assert_equivalent,
    assert_rewrites,
    assert_unchanged,
    make_model,
    op_list,
    run_ort,
    run_pass,
)

BOOL = TensorProto.BOOL


def _branch(name, nodes, out, inits=None, shape=(2,)):
    return helper.make_graph(
        nodes,
        name,
        [],
        [helper.make_tensor_value_info(out, FLOAT, list(shape))],
        [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()],
    )


def _then():
    return _branch(
        "then",
        [helper.make_node("Add", ["x", "w"], ["t"]), helper.make_node("Relu", ["t"], ["r"])],
        "r",
        {"w": np.array([1.0, -5.0], np.float32)},
    )


def _else():
    return _branch("else", [helper.make_node("Neg", ["x"], ["t2"])], "t2")


def _model(cond, then=None, other=None, extra_nodes=(), outputs=None, inits=None):
    nodes = [
        helper.make_node(
            "If", ["c"], ["o"], then_branch=then or _then(), else_branch=other or _else()
        ),
        helper.make_node("Sigmoid", ["o"], ["y"]),
        *extra_nodes,
    ]
    return make_model(
        nodes,
        [("x", FLOAT, [2])],
        outputs or [("y", FLOAT, [2])],
        {"c": np.array(cond), **(inits or {})},
    )


def test_then_branch_taken():
    assert_rewrites(InlineConstantIf(), _model(True), ["Add", "Relu", "Sigmoid"], {"If inlined": 1})


def test_else_branch_taken():
    assert_rewrites(InlineConstantIf(), _model(False), ["Neg", "Sigmoid"], {"If inlined": 1})


def test_condition_from_constant_node():
    proto = _model(True)
    proto.graph.initializer.pop()
    proto.graph.node.insert(
        0,
        helper.make_node(
            "Constant", [], ["c"], value=numpy_helper.from_array(np.array([True]), "c")
        ),
    )
    assert_rewrites(
        InlineConstantIf(), proto, ["Constant", "Add", "Relu", "Sigmoid"], {"If inlined": 1}
    )


def test_runtime_condition_kept():
    nodes = [
        helper.make_node("If", ["c"], ["o"], then_branch=_then(), else_branch=_else()),
        helper.make_node("Sigmoid", ["o"], ["y"]),
    ]
    proto = make_model(nodes, [("x", FLOAT, [2]), ("c", BOOL, [])], [("y", FLOAT, [2])])
    assert op_list(proto) == ["If", "Sigmoid"]
    assert_unchanged(InlineConstantIf(), proto)


def test_computed_condition_kept():
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0),
        helper.make_node("Greater", ["m", "zero"], ["c"]),
        helper.make_node("If", ["c"], ["o"], then_branch=_then(), else_branch=_else()),
        helper.make_node("Sigmoid", ["o"], ["y"]),
    ]
    proto = make_model(nodes, [("x", FLOAT, [2])], [("y", FLOAT, [2])], {"zero": np.float32(0)})
    assert op_list(proto) == ["ReduceMax", "Greater", "If", "Sigmoid"]
    assert_unchanged(InlineConstantIf(), proto)


def test_clashing_names_are_renamed():
    # The parent computes its own 't' after the If (legal: not yet in scope for the branch).
    extra = [helper.make_node("Mul", ["x", "x"], ["t"]), helper.make_node("Add", ["y", "t"], ["z"])]
    proto = _model(True, extra_nodes=extra, outputs=[("y", FLOAT, [2]), ("z", FLOAT, [2])])
    model = assert_rewrites(
        InlineConstantIf(), proto, ["Add", "Relu", "Sigmoid", "Mul", "Add"], {"If inlined": 1}
    )
    names = [o.name for n in model.graph.nodes for o in n.outputs]
    assert len(names) == len(set(names))
    assert model.graph.nodes[3].outputs[0].name == "t"


def test_clashing_initializer_renamed():
    # The parent computes a 'w' after the If; the branch's initializer 'w' must get another name.
    extra = [helper.make_node("Mul", ["x", "x"], ["w"]), helper.make_node("Add", ["y", "w"], ["z"])]
    proto = _model(True, extra_nodes=extra, outputs=[("y", FLOAT, [2]), ("z", FLOAT, [2])])
    model = assert_rewrites(
        InlineConstantIf(), proto, ["Add", "Relu", "Sigmoid", "Mul", "Add"], {"If inlined": 1}
    )
    weights = {i.name: numpy_helper.to_array(i) for i in model.to_proto().graph.initializer}
    assert "w" not in weights
    assert len(weights) == 1


def test_branch_value_clashing_with_sibling_subgraph_renamed():
    # Another If in the parent has a branch value named 't': the inlined 't' must not
    # become an outer-scope name that sibling subgraph would then redefine.
    sibling = helper.make_node(
        "If",
        ["d"],
        ["o2"],
        then_branch=_branch("then2", [helper.make_node("Abs", ["x"], ["t"])], "t"),
        else_branch=_branch("else2", [helper.make_node("Exp", ["x"], ["t"])], "t"),
    )
    nodes = [
        helper.make_node("If", ["c"], ["o"], then_branch=_then(), else_branch=_else()),
        sibling,
        helper.make_node("Add", ["o", "o2"], ["y"]),
    ]
    proto = make_model(
        nodes,
        [("x", FLOAT, [2]), ("d", BOOL, [])],
        [("y", FLOAT, [2])],
        {"c": np.array(True)},
    )
    model, res = run_pass(InlineConstantIf(), proto)
    assert op_list(model) == ["Add", "Relu", "If", "Add"]
    assert dict(res.stats) == {"If inlined": 1}
    assert model.graph.nodes[0].outputs[0].name != "t"
    feeds = {"x": np.array([1.5, -2.0], np.float32)}
    for d in (True, False):
        assert_equivalent(proto, model, {**feeds, "d": np.array(d)})


def test_nested_if():
    inner = helper.make_node(
        "If",
        ["c2"],
        ["io"],
        then_branch=_branch("ithen", [helper.make_node("Abs", ["x"], ["a"])], "a"),
        else_branch=_branch("ielse", [helper.make_node("Exp", ["x"], ["b"])], "b"),
    )
    outer_then = helper.make_graph(
        [inner, helper.make_node("Neg", ["io"], ["r"])],
        "then",
        [],
        [helper.make_tensor_value_info("r", FLOAT, [2])],
        [numpy_helper.from_array(np.array(False), "c2")],
    )
    assert_rewrites(
        InlineConstantIf(),
        _model(True, then=outer_then),
        ["Exp", "Neg", "Sigmoid"],
        {"If inlined": 2},
    )


def test_if_inside_loop_body_and_outer_scope_read():
    # The Loop body holds a constant If whose branch reads 'x' from the main graph.
    body = helper.make_graph(
        [
            helper.make_node("If", ["k"], ["bo"], then_branch=_then(), else_branch=_else()),
            helper.make_node("Add", ["acc", "bo"], ["acc_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", BOOL, []),
            helper.make_tensor_value_info("acc", FLOAT, [2]),
        ],
        [
            helper.make_tensor_value_info("cond_out", BOOL, []),
            helper.make_tensor_value_info("acc_out", FLOAT, [2]),
        ],
        [numpy_helper.from_array(np.array(True), "k")],
    )
    nodes = [helper.make_node("Loop", ["n", "", "x"], ["y"], body=body)]
    proto = make_model(nodes, [("x", FLOAT, [2])], [("y", FLOAT, [2])], {"n": np.int64(3)})
    model, res = run_pass(InlineConstantIf(), proto)
    assert dict(res.stats) == {"If inlined": 1}
    loop_body = model.graph.nodes[0].attrs["body"]
    assert [n.op for n in loop_body.nodes] == ["Add", "Relu", "Add", "Identity"]
    assert_equivalent(proto, model)


def test_branch_output_is_constant():
    then = _branch("then", [], "k", {"k": np.float32([7, 8])})
    # If output read by a node: the reader takes the constant, no node is left.
    assert_rewrites(InlineConstantIf(), _model(True, then=then), ["Sigmoid"], {"If inlined": 1})
    assert_rewrites(
        InlineConstantIf(), _model(False, then=then), ["Neg", "Sigmoid"], {"If inlined": 1}
    )
    # If output is a graph output: an Identity keeps its name.
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=_else())]
    proto = make_model(nodes, [("x", FLOAT, [2])], [("y", FLOAT, [2])], {"c": np.array(True)})
    assert_rewrites(InlineConstantIf(), proto, ["Identity"], {"If inlined": 1})


def test_branch_output_is_outer_value():
    # ONNX wants an Identity between an outer value and a branch output, but IR rewrites can
    # leave the outer value as the output itself: inlining must still keep names intact.
    then = _branch("then", [helper.make_node("Identity", ["x"], ["t"])], "t")
    for graph_output in (False, True):
        if graph_output:
            nodes = [helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=_else())]
            proto = make_model(
                nodes, [("x", FLOAT, [2])], [("y", FLOAT, [2])], {"c": np.array(True)}
            )
        else:
            proto = _model(True, then=then)
        model = ir.Model.from_proto(proto)
        ir.infer_shapes(model)
        branch = model.graph.nodes[0].attrs["then_branch"]
        x = branch.nodes[0].inputs[0]
        ir.remove_node(branch, branch.nodes[0])
        branch.outputs = [x]
        res = InlineConstantIf()(model, PassContext(verify=True))
        assert dict(res.stats) == {"If inlined": 1}
        assert op_list(model) == (["Identity"] if graph_output else ["Sigmoid"])
        assert model.graph.inputs[0].name == "x"
        assert_equivalent(proto, model)


def test_two_outputs_from_one_branch_value():
    then = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"])],
        "then",
        [],
        [
            helper.make_tensor_value_info("r", FLOAT, [2]),
            helper.make_tensor_value_info("r", FLOAT, [2]),
        ],
    )
    other = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["n1"]), helper.make_node("Abs", ["x"], ["n2"])],
        "else",
        [],
        [
            helper.make_tensor_value_info("n1", FLOAT, [2]),
            helper.make_tensor_value_info("n2", FLOAT, [2]),
        ],
    )
    nodes = [helper.make_node("If", ["c"], ["y1", "y2"], then_branch=then, else_branch=other)]
    proto = make_model(
        nodes,
        [("x", FLOAT, [2])],
        [("y1", FLOAT, [2]), ("y2", FLOAT, [2])],
        {"c": np.array(True)},
    )
    # onnxruntime mis-evaluates the original (one value twice as a branch output): compare
    # with numpy instead.
    model, res = run_pass(InlineConstantIf(), proto)
    assert op_list(model) == ["Relu", "Identity"]
    assert dict(res.stats) == {"If inlined": 1}
    x = np.array([0.5, -2.0], np.float32)
    got = run_ort(model.to_proto(), {"x": x})
    onnx.checker.check_model(model.to_proto(), full_check=True)
    for out in got:
        np.testing.assert_array_equal(out, np.maximum(x, 0))


def test_graph_output_names_kept():
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=_then(), else_branch=_else())]
    proto = make_model(nodes, [("x", FLOAT, [2])], [("y", FLOAT, [2])], {"c": np.array(True)})
    model = assert_rewrites(InlineConstantIf(), proto, ["Add", "Relu"], {"If inlined": 1})
    assert model.graph.nodes[-1].outputs[0].name == "y"
    onnx.checker.check_model(model.to_proto(), full_check=True)
