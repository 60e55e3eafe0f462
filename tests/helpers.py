"""Shared test utilities: build small models, run one pass, compare with onnxruntime."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from optimizer import ir
from optimizer.passes.base import Pass, PassContext, PassResult

FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[tuple[str, int, Sequence]],
    outputs: Sequence[tuple[str, int, Sequence | None]],
    initializers: dict[str, np.ndarray] | None = None,
    opset: int = 17,
) -> onnx.ModelProto:
    """A checked ModelProto from nodes, (name, elem_type, shape) inputs/outputs and weights."""
    graph = helper.make_graph(
        list(nodes),
        "test",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def run_pass(p: Pass, proto: onnx.ModelProto, infer: bool = True) -> tuple[ir.Model, PassResult]:
    """Runs one pass (after shape inference, as pipelines do) with invariant checking."""
    model = ir.Model.from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))
    if infer:
        ir.infer_shapes(model)
    ctx = PassContext(verify=True)
    res = p(model, ctx)
    problems = ir.graph_problems(res.model.graph)
    assert not problems, problems
    return res.model, res


def op_list(model: ir.Model | onnx.ModelProto) -> list[str]:
    """Op types in graph order (top-level graph)."""
    if isinstance(model, onnx.ModelProto):
        return [n.op_type for n in model.graph.node]
    return [n.op for n in model.graph.nodes]


def random_feeds(
    proto: onnx.ModelProto, seed: int = 0, dims: dict[str, int] | None = None
) -> dict[str, np.ndarray]:
    """Random inputs for every graph input; symbolic dims take ``dims`` or 3."""
    rng = np.random.default_rng(seed)
    inits = {i.name for i in proto.graph.initializer}
    feeds = {}
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [
            d.dim_value if d.HasField("dim_value") else (dims or {}).get(d.dim_param, 3)
            for d in tt.shape.dim
        ]
        dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if np.issubdtype(dtype, np.floating):
            feeds[vi.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[vi.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[vi.name] = rng.integers(0, 5, shape).astype(dtype)
    return feeds


def run_ort(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def assert_equivalent(
    original: onnx.ModelProto,
    optimized: ir.Model | onnx.ModelProto,
    feeds: dict[str, np.ndarray] | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> None:
    """The optimized model passes the full ONNX checker and matches the original in onnxruntime."""
    proto = optimized.to_proto() if isinstance(optimized, ir.Model) else optimized
    onnx.checker.check_model(proto, full_check=True)
    assert [o.name for o in proto.graph.output] == [o.name for o in original.graph.output]
    feeds = feeds if feeds is not None else random_feeds(original)
    want = run_ort(original, feeds)
    got = run_ort(
        proto, {k: v for k, v in feeds.items() if k in {i.name for i in proto.graph.input}}
    )
    for w, g, out in zip(want, got, original.graph.output):
        assert w.shape == g.shape, f"{out.name}: shape {g.shape} != {w.shape}"
        assert w.dtype == g.dtype, f"{out.name}: dtype {g.dtype} != {w.dtype}"
        np.testing.assert_allclose(g, w, atol=atol, rtol=rtol, err_msg=out.name)


def assert_rewrites(
    p: Pass,
    proto: onnx.ModelProto,
    ops: Sequence[str],
    stats: Mapping[str, int],
    feeds: dict[str, np.ndarray] | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> ir.Model:
    """Runs ``p`` on ``proto`` and checks the rewrite it makes.

    Asserts the exact op list and stats, numerical equivalence with the original in
    onnxruntime, and idempotence: a second run on the exported result changes nothing.

    Args:
        p: The pass under test.
        proto: The model to optimize; left untouched.
        ops: The expected top-level op types, in graph order, after the pass.
        stats: The expected ``PassResult.stats``, exactly.
        feeds: Inputs for the onnxruntime comparison; random ones when None.
        atol: Absolute tolerance of the comparison.
        rtol: Relative tolerance of the comparison.

    Returns:
        The optimized model, for further checks.
    """
    model, res = run_pass(p, proto)
    assert op_list(model) == list(ops)
    assert dict(res.stats) == dict(stats)
    assert_equivalent(proto, model, feeds, atol=atol, rtol=rtol)
    again, res2 = run_pass(p, model.to_proto())
    assert res2.modified is False, dict(res2.stats)
    assert op_list(again) == list(ops)
    return model


def assert_unchanged(p: Pass, proto: onnx.ModelProto, reason: str | None = None) -> ir.Model:
    """Runs ``p`` on ``proto`` and checks that it leaves the model alone.

    Asserts that the pass reports no modification and no stats and keeps the op list.

    Args:
        p: The pass under test.
        proto: The model the pass should not touch.
        reason: When given, the pass is run again with ``explain={"all"}`` (after shape
            inference, as ``run_pass`` does); it must again change nothing and this text
            must appear in its explanations.

    Returns:
        The model as the pass returned it.
    """
    model, res = run_pass(p, proto)
    assert res.modified is False
    assert dict(res.stats) == {}
    assert op_list(model) == op_list(proto)
    if reason is not None:
        explained = ir.Model.from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))
        ir.infer_shapes(explained)
        ctx = PassContext(explain={"all"})
        explained_res = p(explained, ctx)
        assert explained_res.modified is False
        text = "\n".join(ctx.explanations)
        assert reason in text, text
    return model
