from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from optimizer.passes.eliminate_noops import EliminateNoops, reshape_is_noop
from tests.helpers import (
    FLOAT,
    INT64,
    assert_equivalent,
    assert_rewrites,
    assert_unchanged,
    make_model,
    run_pass,
)

BOOL = TensorProto.BOOL
I64 = np.int64


def _sandwich(node, inits=None, shape=(2, 3), out_shape=None, opset=17, x_type=FLOAT):
    """x -> Neg -> a -> NODE -> b -> Neg -> y, so the no-op sits between two real ops."""
    nodes = [helper.make_node("Neg", ["x"], ["a"]), node, helper.make_node("Neg", ["b"], ["y"])]
    out = list(shape) if out_shape is None else out_shape
    return make_model(nodes, [("x", x_type, list(shape))], [("y", x_type, out)], inits, opset)


POSITIVE = {
    "identity": (helper.make_node("Identity", ["a"], ["b"]), None, {}),
    "dropout_no_mode": (helper.make_node("Dropout", ["a"], ["b"]), None, {}),
    "dropout_false": (
        helper.make_node("Dropout", ["a", "r", "t"], ["b"]),
        {"r": np.array(0.5, np.float32), "t": np.array(False)},
        {},
    ),
    "dropout_unused_mask": (helper.make_node("Dropout", ["a"], ["b", "mask"]), None, {}),
    "cast_same": (helper.make_node("Cast", ["a"], ["b"], to=FLOAT), None, {}),
    "castlike_same": (
        helper.make_node("CastLike", ["a", "like"], ["b"]),
        {"like": np.zeros(1, np.float32)},
        {},
    ),
    "reshape_static": (
        helper.make_node("Reshape", ["a", "s"], ["b"]),
        {"s": np.array([0, -1], I64)},
        {},
    ),
    "expand_same": (
        helper.make_node("Expand", ["a", "s"], ["b"]),
        {"s": np.array([1, 3], I64)},
        {},
    ),
    "transpose_identity": (helper.make_node("Transpose", ["a"], ["b"], perm=[0, 1]), None, {}),
    "slice_all": (
        helper.make_node("Slice", ["a", "st", "en", "ax", "sp"], ["b"]),
        {
            "st": np.array([0, -3], I64),
            "en": np.array([2**62, 3], I64),
            "ax": np.array([0, 1], I64),
            "sp": np.array([1, 1], I64),
        },
        {},
    ),
    "pad_zero": (
        helper.make_node("Pad", ["a", "p"], ["b"]),
        {"p": np.zeros(4, I64)},
        {},
    ),
    "concat_one": (helper.make_node("Concat", ["a"], ["b"], axis=0), None, {}),
    "sum_one": (helper.make_node("Sum", ["a"], ["b"]), None, {}),
    "max_one": (helper.make_node("Max", ["a"], ["b"]), None, {}),
    "min_one": (helper.make_node("Min", ["a"], ["b"]), None, {}),
    "squeeze_no_ones": (helper.make_node("Squeeze", ["a"], ["b"]), None, {}),
    "unsqueeze_empty": (
        helper.make_node("Unsqueeze", ["a", "ax"], ["b"]),
        {"ax": np.array([], I64)},
        {},
    ),
    "split_one": (helper.make_node("Split", ["a"], ["b"], axis=0), None, {}),
    "flatten_rank2": (helper.make_node("Flatten", ["a"], ["b"], axis=1), None, {}),
    "mul_one": (helper.make_node("Mul", ["c", "a"], ["b"]), {"c": np.ones((1, 1), np.float32)}, {}),
    "div_one": (helper.make_node("Div", ["a", "c"], ["b"]), {"c": np.ones(3, np.float32)}, {}),
    "add_zero": (helper.make_node("Add", ["a", "c"], ["b"]), {"c": np.float32(0)}, {}),
    "sub_zero": (helper.make_node("Sub", ["a", "c"], ["b"]), {"c": np.zeros(3, np.float32)}, {}),
    "pow_one": (helper.make_node("Pow", ["a", "c"], ["b"]), {"c": np.array(1, I64)}, {}),
}


@pytest.mark.parametrize("case", sorted(POSITIVE))
def test_noop_removed(case):
    node, inits, _ = POSITIVE[case]
    proto = _sandwich(node, inits)
    assert_rewrites(EliminateNoops(), proto, ["Neg", "Neg"], {f"{node.op_type} removed": 1})


NEGATIVE = {
    "dropout_training": (
        helper.make_node("Dropout", ["a", "r", "t"], ["b"]),
        {"r": np.array(0.5, np.float32), "t": np.array(True)},
    ),
    "castlike_other": (
        helper.make_node("CastLike", ["a", "like"], ["b"]),
        {"like": np.zeros(1, np.float16)},
    ),
    "reshape_changes": (
        helper.make_node("Reshape", ["a", "s"], ["b"]),
        {"s": np.array([3, 2], I64)},
    ),
    "expand_broadcasts": (
        helper.make_node("Expand", ["a", "s"], ["b"]),
        {"s": np.array([4, 1, 1], I64)},
    ),
    "transpose_swaps": (helper.make_node("Transpose", ["a"], ["b"], perm=[1, 0]), None),
    "transpose_default_perm": (helper.make_node("Transpose", ["a"], ["b"]), None),
    "slice_part": (
        helper.make_node("Slice", ["a", "st", "en"], ["b"]),
        {"st": np.array([0, 1], I64), "en": np.array([2, 3], I64)},
    ),
    "slice_reversed": (
        helper.make_node("Slice", ["a", "st", "en", "ax", "sp"], ["b"]),
        {
            "st": np.array([-1], I64),
            "en": np.array([-(2**62)], I64),
            "ax": np.array([1], I64),
            "sp": np.array([-1], I64),
        },
    ),
    "pad_nonzero": (helper.make_node("Pad", ["a", "p"], ["b"]), {"p": np.array([0, 0, 0, 1], I64)}),
    "concat_two": (helper.make_node("Concat", ["a", "a"], ["b"], axis=0), None),
    "unsqueeze_axes": (
        helper.make_node("Unsqueeze", ["a", "ax"], ["b"]),
        {"ax": np.array([0], I64)},
    ),
    "flatten_axis0": (helper.make_node("Flatten", ["a"], ["b"], axis=0), None),
    "mul_two": (helper.make_node("Mul", ["a", "c"], ["b"]), {"c": np.float32(2)}),
    "mul_one_broadcasts": (
        helper.make_node("Mul", ["a", "c"], ["b"]),
        {"c": np.ones((4, 1, 1), np.float32)},
    ),
    "one_div_x": (helper.make_node("Div", ["c", "a"], ["b"]), {"c": np.float32(1)}),
    "zero_sub_x": (helper.make_node("Sub", ["c", "a"], ["b"]), {"c": np.float32(0)}),
    "add_mixed": (
        helper.make_node("Add", ["a", "c"], ["b"]),
        {"c": np.array([0, 0, 1], np.float32)},
    ),
    "pow_two": (helper.make_node("Pow", ["a", "c"], ["b"]), {"c": np.float32(2)}),
}


_NEGATIVE_OUT = {
    "reshape_changes": [3, 2],
    "expand_broadcasts": [4, 2, 3],
    "transpose_swaps": [3, 2],
    "transpose_default_perm": [3, 2],
    "slice_part": [2, 2],
    "pad_nonzero": [2, 4],
    "concat_two": [4, 3],
    "unsqueeze_axes": [1, 2, 3],
    "flatten_axis0": [1, 6],
    "mul_one_broadcasts": [4, 2, 3],
}


@pytest.mark.parametrize("case", sorted(NEGATIVE))
def test_near_miss_kept(case):
    node, inits = NEGATIVE[case]
    if case == "castlike_other":
        nodes = [helper.make_node("Neg", ["x"], ["a"]), node, helper.make_node("Neg", ["b"], ["y"])]
        proto = make_model(
            nodes, [("x", FLOAT, [2, 3])], [("y", TensorProto.FLOAT16, [2, 3])], inits
        )
    else:
        proto = _sandwich(node, inits, out_shape=_NEGATIVE_OUT.get(case, [2, 3]))
    assert_unchanged(EliminateNoops(), proto)


def test_cast_to_other_dtype_kept():
    nodes = [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT64)]
    assert_unchanged(EliminateNoops(), make_model(nodes, [("x", FLOAT, [2])], [("y", INT64, [2])]))


def test_dropout_mask_used_kept():
    nodes = [helper.make_node("Dropout", ["x"], ["y", "mask"])]
    proto = make_model(nodes, [("x", FLOAT, [2])], [("y", FLOAT, [2]), ("mask", BOOL, [2])])
    assert_unchanged(EliminateNoops(), proto)


def test_dropout_runtime_training_mode_kept():
    nodes = [helper.make_node("Dropout", ["x", "", "t"], ["y"])]
    proto = make_model(nodes, [("x", FLOAT, [2]), ("t", BOOL, [])], [("y", FLOAT, [2])])
    assert_unchanged(EliminateNoops(), proto)


def test_squeeze_with_unit_dim_kept():
    proto = _sandwich(helper.make_node("Squeeze", ["a"], ["b"]), shape=(1, 3), out_shape=[3])
    assert_unchanged(EliminateNoops(), proto)


def test_squeeze_symbolic_dim_kept():
    proto = _sandwich(helper.make_node("Squeeze", ["a"], ["b"]), shape=("N", 3), out_shape=None)
    assert_unchanged(EliminateNoops(), proto)


def test_identity_chain():
    nodes = [
        helper.make_node("Identity", ["x"], ["a"]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Identity", ["b"], ["c"]),
        helper.make_node("Identity", ["c"], ["y"]),
    ]
    proto = make_model(nodes, [("x", FLOAT, [2])], [("y", FLOAT, [2])])
    assert_rewrites(EliminateNoops(), proto, ["Relu"], {"Identity removed": 3})


def test_identity_keeping_interface_name_stays():
    nodes = [helper.make_node("Identity", ["x"], ["y"])]
    assert_unchanged(EliminateNoops(), make_model(nodes, [("x", FLOAT, [2])], [("y", FLOAT, [2])]))


def test_identity_between_two_outputs_stays():
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Identity", ["y"], ["z"])]
    proto = make_model(nodes, [("x", FLOAT, [2])], [("y", FLOAT, [2]), ("z", FLOAT, [2])])
    assert_unchanged(EliminateNoops(), proto)


def test_noop_from_input_to_output_becomes_identity():
    nodes = [helper.make_node("Cast", ["x"], ["y"], to=FLOAT)]
    proto = make_model(nodes, [("x", FLOAT, [2])], [("y", FLOAT, [2])])
    assert_rewrites(EliminateNoops(), proto, ["Identity"], {"Cast removed": 1})


def test_noop_at_graph_output_hands_over_name():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Transpose", ["a"], ["y"], perm=[0, 1]),
    ]
    proto = make_model(nodes, [("x", FLOAT, [2, 3])], [("y", FLOAT, [2, 3])])
    model = assert_rewrites(EliminateNoops(), proto, ["Relu"], {"Transpose removed": 1})
    assert model.graph.nodes[0].outputs[0].name == "y"


def test_reshape_symbolic_copy_dims():
    node = helper.make_node("Reshape", ["a", "s"], ["b"])
    proto = _sandwich(node, {"s": np.array([0, 3], I64)}, shape=("N", 3))
    assert_rewrites(EliminateNoops(), proto, ["Neg", "Neg"], {"Reshape removed": 1})


def test_reshape_symbolic_minus_one_kept():
    # -1 beside a symbolic dimension is not provably that dimension (it may be 0): refused.
    node = helper.make_node("Reshape", ["a", "s"], ["b"])
    proto = _sandwich(node, {"s": np.array([0, -1, 4], I64)}, shape=("N", 3, 4))
    assert_unchanged(EliminateNoops(), proto)


def test_reshape_is_noop_resolution():
    assert reshape_is_noop(["N", 3], [-1, 3], allowzero=False)
    assert reshape_is_noop([2, 0], [2, 0], allowzero=True)
    assert not reshape_is_noop(["N", "M"], [0, -1], allowzero=False)
    assert not reshape_is_noop([2, 3], [2, 0], allowzero=True)
    assert not reshape_is_noop([2, 3], [6], allowzero=False)
    assert not reshape_is_noop(None, [2, 3], allowzero=False)


def test_add_zero_symbolic_shape():
    node = helper.make_node("Add", ["a", "c"], ["b"])
    proto = _sandwich(node, {"c": np.zeros((1,), np.float32)}, shape=("N", 3))
    assert_rewrites(EliminateNoops(), proto, ["Neg", "Neg"], {"Add removed": 1})


def test_mul_unknown_shape_with_broadcasting_constant_kept():
    node = helper.make_node("Mul", ["a", "c"], ["b"])
    proto = _sandwich(node, {"c": np.ones((1, 3), np.float32)}, shape=("N", "M"), out_shape=None)
    assert_unchanged(EliminateNoops(), proto)


def test_integer_mul_one():
    node = helper.make_node("Mul", ["a", "c"], ["b"])
    nodes = [helper.make_node("Abs", ["x"], ["a"]), node, helper.make_node("Abs", ["b"], ["y"])]
    proto = make_model(nodes, [("x", INT64, [4])], [("y", INT64, [4])], {"c": np.array([1], I64)})
    assert_rewrites(EliminateNoops(), proto, ["Abs", "Abs"], {"Mul removed": 1})


@pytest.mark.parametrize(
    ("node", "inits", "opset"),
    [
        (helper.make_node("Squeeze", ["a"], ["b"]), None, 11),
        (helper.make_node("Slice", ["a"], ["b"], starts=[0], ends=[9], axes=[1]), None, 9),
        (helper.make_node("Pad", ["a"], ["b"], pads=[0, 0, 0, 0]), None, 10),
        (helper.make_node("Split", ["a"], ["b"], split=[2]), None, 11),
    ],
    ids=["squeeze11", "slice9", "pad10", "split11"],
)
def test_old_opsets(node, inits, opset):
    assert_rewrites(
        EliminateNoops(),
        _sandwich(node, inits, opset=opset),
        ["Neg", "Neg"],
        {f"{node.op_type} removed": 1},
    )


def test_dropout_opset6_training_kept():
    assert_unchanged(
        EliminateNoops(), _sandwich(helper.make_node("Dropout", ["a"], ["b"]), opset=6)
    )


def _if_model(then_nodes, then_out, cond_init=False):
    then = helper.make_graph(
        then_nodes, "then", [], [helper.make_tensor_value_info(then_out, FLOAT, [2])]
    )
    other = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", FLOAT, [2])],
    )
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)]
    return make_model(nodes, [("x", FLOAT, [2]), ("c", BOOL, [])], [("y", FLOAT, [2])])


def test_inside_if_branch():
    proto = _if_model(
        [
            helper.make_node("Relu", ["x"], ["t1"]),
            helper.make_node("Identity", ["t1"], ["t2"]),
            helper.make_node("Cast", ["t2"], ["t3"], to=FLOAT),
        ],
        "t3",
    )
    model, res = run_pass(EliminateNoops(), proto)
    assert dict(res.stats) == {"Identity removed": 1, "Cast removed": 1}
    branch = model.graph.nodes[0].attrs["then_branch"]
    assert [n.op for n in branch.nodes] == ["Relu"]
    assert branch.outputs[0].name == "t3"
    feeds = {"x": np.array([-1.0, 2.0], np.float32)}
    for c in (True, False):
        assert_equivalent(proto, model, {**feeds, "c": np.array(c)})


def test_branch_output_of_outer_value_keeps_identity():
    # Renaming the outer 'x' to the branch output name would break the parent graph.
    proto = _if_model([helper.make_node("Identity", ["x"], ["t"])], "t")
    assert_unchanged(EliminateNoops(), proto)
    proto = _if_model([helper.make_node("Cast", ["x"], ["t"], to=FLOAT)], "t")
    model, res = run_pass(EliminateNoops(), proto)
    assert dict(res.stats) == {"Cast removed": 1}
    branch = model.graph.nodes[0].attrs["then_branch"]
    assert [n.op for n in branch.nodes] == ["Identity"]
    assert model.graph.inputs[0].name == "x"
    feeds = {"x": np.array([-1.0, 2.0], np.float32)}
    assert_equivalent(proto, model, {**feeds, "c": np.array(True)})
