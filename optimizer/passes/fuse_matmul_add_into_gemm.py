"""Fuse a 2-D MatMul followed by a constant bias Add into one Gemm."""

from __future__ import annotations

import logging

from optimizer import ir
from optimizer.ir import Graph, Model
from optimizer.passes import weights
from optimizer.passes.rewrite import OK, Match, RewritePass, Rule, const, op, var

log = logging.getLogger(__name__)

PATTERN = op("Add", op("MatMul", var("a"), var("b"), name="matmul"), const("c"), name="add")


def _check(model: Model, graph: Graph, m: Match) -> Match:
    matmul, add = m["matmul"], m["add"]
    a, b = m["a"], m["b"]
    rank_a = ir.rank(a)
    if rank_a is None:
        return Match.fail(f"rank of MatMul input '{a.name}' is unknown", matmul)
    if rank_a != 2:
        return Match.fail(
            f"MatMul input '{a.name}' has rank {rank_a}: Gemm takes only a 2-D A "
            "(a batched or vector MatMul has no Gemm form)",
            matmul,
        )
    rank_b = ir.rank(b)
    if rank_b != 2:
        what = "unknown" if rank_b is None else str(rank_b)
        return Match.fail(f"MatMul input '{b.name}' has rank {what}, Gemm needs a 2-D B", matmul)
    dtype = ir.numpy_dtype_of(add.outputs[0]) or ir.numpy_dtype_of(matmul.outputs[0])
    if dtype is None:
        return Match.fail("MatMul output dtype unknown", matmul)
    if not weights.is_float(dtype):
        return Match.fail(f"dtype {dtype} is not float (runtimes lack integer Gemm)", matmul)
    c = ir.const_value(m["c"])
    if c.dtype != dtype:
        return Match.fail(f"bias dtype {c.dtype} != MatMul dtype {dtype}", add)
    out_shape = [a.shape[0] if a.shape is not None else None, None]
    if b.shape is not None:
        out_shape[1] = b.shape[1]
    if c.ndim > 2:
        return Match.fail(
            f"bias shape {c.shape} would broadcast the 2-D output to rank {c.ndim}", add
        )
    padded = (1,) * (2 - c.ndim) + tuple(c.shape)
    for axis, (have, want) in enumerate(zip(padded, out_shape, strict=True)):
        if have == 1:
            continue
        if not isinstance(want, int):
            return Match.fail(
                f"bias shape {c.shape}: output dimension {axis} is not known to be {have}", add
            )
        if have != want:
            return Match.fail(
                f"bias shape {c.shape} does not broadcast to the output [{out_shape[0]}, "
                f"{out_shape[1]}] without changing it",
                add,
            )
    return OK


def _rewrite(model: Model, graph: Graph, m: Match) -> None:
    add = m["add"]
    old = add.outputs[0]
    out = ir.make_value(graph, f"{old.name}_gemm", old.dtype, old.shape)
    ir.add_node(graph, "Gemm", [m["a"], m["b"], m["c"]], [out], name=m["matmul"].name or "Gemm")
    ir.replace_all_uses(graph, old, out)


RULES = [Rule("MatMul+Add -> Gemm", PATTERN, _check, _rewrite, min_opset=7)]


class FuseMatmulAddIntoGemm(RewritePass):
    """Fuses ``Add(MatMul(A, B), C)`` into ``Gemm(A, B, C)`` for 2-D operands.

    Applies when A has static rank 2, B has rank 2 (constant or not), C is a constant that
    broadcasts to the output ``[M, N]`` without changing it (scalar, ``[N]``, ``[1, N]``,
    ``[M, 1]``, ``[M, N]``), the dtype is float, and the MatMul output feeds only the Add.

    Refuses batched (rank-3+) and vector MatMuls (Gemm has no batch or vector form), unknown
    ranks, a bias whose shape is not provably broadcastable to the output, non-float dtypes
    (runtimes have no integer Gemm kernels), and a MatMul output with other consumers or that
    is a graph output.
    """

    name = "fuse_matmul_add_into_gemm"
    summary = "fuse 2-D MatMul + constant bias Add into Gemm"
    rules = RULES
