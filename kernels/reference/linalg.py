"""Reference kernels: Gemm, MatMul and Einsum."""

from __future__ import annotations

from typing import Any

import numpy as np
from optimizer.kernels.reference._common import NO_EXOTIC_DTYPES, opt, ref, s_attr
from optimizer.kernels.registry import NodeInfo, Support, register


def _wide(x: np.ndarray) -> np.ndarray:
    # Accumulate floating point in float64 so the oracle is more accurate than what it checks.
    return x.astype(np.float64) if np.issubdtype(x.dtype, np.floating) else x


def gemm(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Gemm: ``alpha * A' @ B' + beta * C`` (C optional from opset 11, unidirectional broadcast)."""
    a, b, c = np.asarray(inputs[0]), np.asarray(inputs[1]), opt(inputs, 2)
    if attrs.get("transA", 0):
        a = a.T
    if attrs.get("transB", 0):
        b = b.T
    y = attrs.get("alpha", 1.0) * (_wide(a) @ _wide(b))
    if c is not None:
        y = y + attrs.get("beta", 1.0) * _wide(np.asarray(c))
    return [y.astype(inputs[0].dtype)]


def matmul(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """MatMul with NumPy semantics (1-D promotion, batch broadcasting)."""
    a, b = np.asarray(inputs[0]), np.asarray(inputs[1])
    return [np.asarray(np.matmul(_wide(a), _wide(b))).astype(a.dtype)]


def einsum(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Einsum through ``numpy.einsum`` (explicit and implicit output, ellipsis)."""
    xs = [np.asarray(x) for x in inputs]
    equation = s_attr(attrs, "equation", "").replace(" ", "")
    y = np.einsum(equation, *(_wide(x) for x in xs))
    return [np.asarray(y).astype(xs[0].dtype)]


def _einsum_check(node: NodeInfo, target: str) -> Support:
    equation = s_attr(node.attrs, "equation", "").replace(" ", "")
    if not equation:
        return Support.no("missing equation attribute")
    lhs = equation.split("->")[0].split(",")
    if len(lhs) != max(1, len(node.input_dtypes)):
        return Support.no(f"equation {equation!r} has {len(lhs)} operands")
    return NO_EXOTIC_DTYPES(node, target)


register(ref("Gemm", gemm, check=NO_EXOTIC_DTYPES))
register(ref("MatMul", matmul, check=NO_EXOTIC_DTYPES))
register(ref("Einsum", einsum, since=12, check=_einsum_check))
