"""Check a reference kernel against onnxruntime on a single-node model.

Tolerances (``tolerance``): the reference accumulates floating point in float64, onnxruntime in
the input's precision, so the difference is the onnxruntime side's rounding. float32 ops that sum
up to a few hundred terms (Conv, Gemm, reductions) stay within ~1e-5 relative; transcendental
functions (exp, erf, tanh) are implemented with a few ulps of error in onnxruntime's vectorized
code. Hence rtol 1e-4 / atol 1e-5 for float32; float64 is near-exact (1e-10); float16 has an eps
of ~1e-3 so 1e-2 relative; integers and booleans must match exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper
from optimizer.kernels import registry

Inputs = Sequence[np.ndarray | None] | Callable[[np.random.Generator], Sequence[np.ndarray | None]]


@dataclass
class Case:
    """One single-node check: op, inputs (or a function of an RNG making them), attributes."""

    op: str
    inputs: Inputs
    attrs: dict[str, Any] = field(default_factory=dict)
    opset: int = 17
    n_outputs: int = 1
    id: str = ""
    rtol: float | None = None
    atol: float | None = None

    def __str__(self) -> str:
        return f"{self.op}-{self.id}" if self.id else self.op


def case_ids(cases: Sequence[Case]) -> list[str]:
    """Unique pytest ids for ``cases``."""
    seen: dict[str, int] = {}
    ids = []
    for c in cases:
        name = str(c)
        seen[name] = seen.get(name, 0) + 1
        ids.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return ids


def tolerance(dtype: np.dtype) -> tuple[float, float]:
    """(rtol, atol) for outputs of ``dtype``; see the module docstring for why."""
    if dtype == np.float32:
        return 1e-4, 1e-5
    if dtype == np.float64:
        return 1e-10, 1e-12
    if dtype == np.float16:
        return 1e-2, 1e-3
    return 0.0, 0.0


def rand(
    rng: np.random.Generator,
    *shape: int,
    dtype: Any = np.float32,
    low: float = -2.0,
    high: float = 2.0,
) -> np.ndarray:
    """Uniform random values of ``dtype`` in [low, high)."""
    if np.issubdtype(np.dtype(dtype), np.integer):
        return rng.integers(int(low), int(high), size=shape).astype(dtype)
    if np.dtype(dtype) == np.bool_:
        return rng.random(shape) < 0.5
    return rng.uniform(low, high, size=shape).astype(dtype)


def _onnx_attr(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return numpy_helper.from_array(value)
    return value


def build_model(case: Case, inputs: Sequence[np.ndarray | None]) -> onnx.ModelProto:
    """A single-node model whose graph inputs are the non-omitted ``inputs``."""
    names = [f"in{i}" if x is not None else "" for i, x in enumerate(inputs)]
    while names and names[-1] == "":
        names.pop()
    outputs = [f"out{i}" for i in range(case.n_outputs)]
    node = helper.make_node(
        case.op, names, outputs, name="node0", **{k: _onnx_attr(v) for k, v in case.attrs.items()}
    )
    graph = helper.make_graph(
        [node],
        "single_node",
        [
            helper.make_tensor_value_info(
                n, helper.np_dtype_to_tensor_dtype(x.dtype), list(x.shape)
            )
            for n, x in zip(names, inputs)
            if n
        ],
        [onnx.ValueInfoProto(name=n) for n in outputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", case.opset)])
    model.ir_version = 8
    # Output types come from ONNX shape inference (strict, so a malformed case fails here).
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def run_ort(model: onnx.ModelProto, inputs: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    """Run ``model`` in onnxruntime on one thread with graph optimizations off."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    feeds = {f"in{i}": x for i, x in enumerate(inputs) if x is not None}
    return session.run(None, feeds)


def node_info(case: Case, inputs: Sequence[np.ndarray | None]) -> registry.NodeInfo:
    """The registry's view of the case's node."""
    return registry.NodeInfo(
        op=case.op,
        opset=case.opset,
        name="node0",
        attrs=dict(case.attrs),
        input_shapes=[None if x is None else tuple(x.shape) for x in inputs],
        input_dtypes=[None if x is None else str(x.dtype) for x in inputs],
        output_dtypes=["unknown"] * case.n_outputs,
        output_shapes=[None] * case.n_outputs,
    )


def check_case(case: Case, seed: int = 0) -> None:
    """Assert that ``reference.<op>`` matches onnxruntime on ``case``."""
    rng = np.random.default_rng(seed)
    inputs = list(case.inputs(rng) if callable(case.inputs) else case.inputs)
    spec = registry.get(f"reference.{case.op}")
    node = node_info(case, inputs)
    support = spec.supports(node, "cpu")
    assert support.ok, support.reason
    got = spec.build(node)(inputs, dict(case.attrs), case.opset)[: case.n_outputs]
    expected = run_ort(build_model(case, inputs), inputs)
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        g = np.asarray(g)
        assert g.dtype == e.dtype, f"output {i}: dtype {g.dtype} != {e.dtype}"
        assert g.shape == e.shape, f"output {i}: shape {g.shape} != {e.shape}"
        rtol, atol = tolerance(e.dtype)
        rtol = case.rtol if case.rtol is not None else rtol
        atol = case.atol if case.atol is not None else atol
        if rtol == 0 and atol == 0:
            np.testing.assert_array_equal(g, e, err_msg=f"output {i}")
        else:
            np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=f"output {i}")
