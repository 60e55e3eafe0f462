"""Shared helpers of the NumPy reference kernels: registration shorthand, attribute access, checks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from optimizer.kernels.registry import ANY_TARGET, Check, KernelFn, KernelSpec, NodeInfo, Support

#: ONNX TensorProto data type numbers -> NumPy dtypes (those NumPy can hold natively).
ONNX_TO_NUMPY: dict[int, np.dtype] = {
    1: np.dtype(np.float32),
    2: np.dtype(np.uint8),
    3: np.dtype(np.int8),
    4: np.dtype(np.uint16),
    5: np.dtype(np.int16),
    6: np.dtype(np.int32),
    7: np.dtype(np.int64),
    9: np.dtype(np.bool_),
    10: np.dtype(np.float16),
    11: np.dtype(np.float64),
    12: np.dtype(np.uint32),
    13: np.dtype(np.uint64),
}


def ref(
    op: str,
    fn: KernelFn,
    *,
    since: int = 1,
    until: int | None = None,
    check: Check | None = None,
) -> KernelSpec:
    """A reference-kernel spec named ``reference.<op>`` that runs on any (host) target."""
    return KernelSpec(
        name=f"reference.{op}",
        op=op,
        backend="reference",
        fn=fn,
        since=since,
        until=until,
        targets=frozenset({ANY_TARGET}),
        check=check,
    )


def all_of(*checks: Check) -> Check:
    """A check that passes when every one of ``checks`` passes (first rejection wins)."""

    def check(node: NodeInfo, target: str) -> Support:
        for c in checks:
            answer = c(node, target)
            if not answer.ok:
                return answer
        return Support.yes()

    return check


def attr_in(name: str, allowed: Iterable[Any], default: Any) -> Check:
    """Reject nodes whose attribute ``name`` (``default`` when absent) is not in ``allowed``."""
    allowed = tuple(allowed)

    def check(node: NodeInfo, target: str) -> Support:
        value = node.attrs.get(name, default)
        if isinstance(value, bytes):
            value = value.decode()
        if value in allowed:
            return Support.yes()
        return Support.no(f"{name}={value!r} not implemented (supported: {list(allowed)})")

    return check


def dtype_not_in(*names: str) -> Check:
    """Reject nodes whose inputs have any of the dtypes ``names`` (e.g. bfloat16, string)."""

    def check(node: NodeInfo, target: str) -> Support:
        for i, dt in enumerate(node.input_dtypes):
            if dt in names:
                return Support.no(f"input {i} dtype {dt} not implemented")
        return Support.yes()

    return check


NO_EXOTIC_DTYPES = dtype_not_in("bfloat16", "string", "float8e4m3fn", "float8e5m2", "int4", "uint4")


def s_attr(attrs: dict[str, Any], name: str, default: str) -> str:
    """A string attribute, decoded if it came as bytes."""
    value = attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else str(value)


def ints(value: Any) -> list[int]:
    """A list of Python ints from an attribute list or a 1-D integer tensor."""
    return [int(v) for v in np.asarray(value).reshape(-1)]


def opt(inputs: Sequence[Any], index: int) -> Any:
    """Input ``index``, or ``None`` when omitted or beyond the list."""
    return inputs[index] if index < len(inputs) else None


def axes_arg(inputs: Sequence[Any], index: int, attrs: dict[str, Any]) -> list[int] | None:
    """Axes given as input ``index`` (newer opsets) or as the ``axes`` attribute (older ones)."""
    value = opt(inputs, index)
    if value is not None:
        return ints(value)
    if "axes" in attrs:
        return ints(attrs["axes"])
    return None


def norm_axis(axis: int, rank: int) -> int:
    """``axis`` made non-negative for a tensor of ``rank``."""
    return axis + rank if axis < 0 else axis


def windows(
    xp: np.ndarray,
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    out: Sequence[int],
) -> np.ndarray:
    """Sliding windows of ``xp`` (N, C, *spatial): shape (N, C, prod(kernel), *out)."""
    n, c = xp.shape[:2]
    cols = np.empty((n, c, int(np.prod(kernel)), *out), dtype=xp.dtype)
    for k, offset in enumerate(np.ndindex(*kernel)):
        index = tuple(
            slice(o * d, o * d + s * (m - 1) + 1, s)
            for o, d, s, m in zip(offset, dilations, strides, out)
        )
        cols[:, :, k] = xp[(slice(None), slice(None), *index)]
    return cols


def spatial_pads(
    in_shape: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    attrs: dict[str, Any],
) -> list[int]:
    """Begin-then-end pads of a Conv or pool, resolving ``auto_pad`` (SAME_*, VALID)."""
    nsp = len(in_shape)
    auto_pad = s_attr(attrs, "auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s, d in zip(in_shape, kernel, strides, dilations):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            small, large = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else large)
            end.append(large if auto_pad == "SAME_UPPER" else small)
        return begin + end
    if auto_pad == "VALID":
        return [0] * (2 * nsp)
    return ints(attrs.get("pads", [0] * (2 * nsp)))
