"""Hypothesis strategies: small random valid ONNX graphs over the supported op set.

A graph is grown one step at a time by :class:`~tests.fuzz.builder.Builder`; steps are single
ops (``ops.py``, ``more_ops.py``), fusion patterns and their near-misses (``patterns.py``) and
constant subgraphs that folding must evaluate. Shapes include broadcasting, size-1 and
zero-size dims; a fifth of the graphs has larger tensors (past the native kernels' vector
widths), inputs are scaled by 1, 10 or 100, opsets range over 13..18 (and 20 for patterns).

Entry points: :func:`graphs` (random graphs over everything), :func:`pattern_graphs` (mostly
fusion patterns), :func:`broadcast_graphs` (elementwise and movement ops over broadcasting
shapes, some zero-size) and :func:`folding_graphs` (constant subgraphs). Each draws a
:class:`FuzzCase` (model, feeds, the module's thread count).
"""

from __future__ import annotations

from hypothesis import strategies as st

from tests.fuzz.builder import FLOAT, Builder, FuzzCase, Val, _broadcasts, _positive
from tests.fuzz.ops import (
    RANDOM_OPS,
    _binary,
    _concat,
    _pad,
    _reduce,
    _reshape,
    _slice,
    _softmax,
    _transpose,
    _unary,
)  # fmt: skip
from tests.fuzz.patterns import PATTERNS

__all__ = ["FLOAT", "Builder", "FuzzCase", "Val", "_broadcasts", "_positive", "broadcast_graphs",
           "folding_graphs", "graphs", "pattern_graphs"]  # fmt: skip

OPSETS = (13, 14, 15, 16, 17, 18)
_ELEMENTWISE = {"unary": (_unary, 2), "binary": (_binary, 3), "transpose": (_transpose, 1),
                "concat": (_concat, 1), "reshape": (_reshape, 1), "slice": (_slice, 1),
                "reduce": (_reduce, 1), "pad": (_pad, 1), "softmax": (_softmax, 1)}  # fmt: skip


def _input_shape(draw, zero: bool, big: bool = False) -> tuple[int, ...]:
    rank = draw(st.sampled_from([4, 4, 3, 2, 1]))
    hi = 5 if rank >= 3 else 6
    dims = [draw(st.integers(1, hi)) for _ in range(rank)]
    if rank == 4:
        dims[0] = draw(st.integers(1, 2))
    if big:  # past the native kernels' vector widths and blocking (8, 16, 64 pixels...)
        dims[-1] = draw(st.sampled_from([7, 8, 9, 16, 17, 24]))
        if rank >= 2:
            dims[-2] = draw(st.sampled_from([7, 8, 12, 15]))
        if rank >= 3:
            dims[1] = draw(st.sampled_from([dims[1], 8, 16, 17]))
    if zero:
        dims[draw(st.integers(0, rank - 1))] = 0
    return tuple(dims)


def _grow(draw, table, max_steps: int, zero: bool = False, opsets=OPSETS) -> FuzzCase:
    opset = draw(st.sampled_from(opsets))
    b = Builder(draw, opset, draw(st.integers(0, 2**32 - 1)))
    b.big = draw(st.integers(0, 4)) == 4  # a fifth of the graphs has larger tensors
    b.scale = draw(st.sampled_from([1.0, 1.0, 1.0, 1.0, 10.0, 100.0]))
    for _ in range(draw(st.integers(1, 2))):
        b.add_input(_input_shape(draw, zero, b.big))
    names = list(table)
    weights = [table[n][1] for n in names]
    expanded = [n for n, w in zip(names, weights) for _ in range(w)]
    # steps that built something (a step finding no fitting value builds nothing): at least
    # two, so that trivial one-op graphs are not most of a long run
    steps = draw(st.integers(min(2, max_steps), max_steps))
    built = 0
    for _ in range(3 * steps):
        fn = table[draw(st.sampled_from(expanded))][0]
        built += bool(fn(b))
        if built >= steps:
            break
    if all(v.name in b.feeds for v in b.values):
        b.node("Relu", [b.values[-1].name], [b.values[-1].shape])
    case = b.finish(draw(st.integers(0, 2)))
    case.threads = draw(st.sampled_from([1, 2, 3]))
    return case


@st.composite
def graphs(draw, max_steps: int = 10) -> FuzzCase:
    """Random graphs over the whole op set (plus patterns), opsets 13..18."""
    from tests.fuzz.more_ops import FOLDING_OPS, MORE_OPS  # they build on Builder

    table = dict(RANDOM_OPS)
    table.update(MORE_OPS)
    table.update(FOLDING_OPS)
    table.update({f"pattern_{k}": v for k, v in PATTERNS.items()})
    return _grow(draw, table, max_steps)


@st.composite
def pattern_graphs(draw, max_steps: int = 4) -> FuzzCase:
    """Graphs made mostly of fusion patterns and their near-misses (Gelu also at opset 20)."""
    table = dict(PATTERNS)
    table.update({"unary": (_unary, 1), "binary": (_binary, 1)})
    return _grow(draw, table, max_steps, opsets=(*OPSETS, 20))


@st.composite
def broadcast_graphs(draw, max_steps: int = 6) -> FuzzCase:
    """Elementwise and movement ops over broadcasting shapes, some with a zero-size dim."""
    return _grow(draw, _ELEMENTWISE, max_steps, zero=draw(st.booleans()))


@st.composite
def folding_graphs(draw, max_steps: int = 6) -> FuzzCase:
    """Graphs rich in constant subgraphs (folding, shape arithmetic, computed weights)."""
    from tests.fuzz.more_ops import FOLDING_OPS

    table = dict(FOLDING_OPS)
    table.update({k: RANDOM_OPS[k] for k in ("constant_subgraph", "shape_math", "int_path",
                                              "unary", "binary", "reshape")})  # fmt: skip
    table.update({"conv_bn": PATTERNS["conv_bn"], "conv_affine": PATTERNS["conv_affine"]})
    return _grow(draw, table, max_steps)
