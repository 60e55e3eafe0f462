"""The graph builder of the fuzz strategies: :class:`Builder` grows one ONNX graph a step at a
time and tracks the static shape of every float32 value it made; :class:`FuzzCase` is what a
strategy draws (model, feeds, the module's thread count).

Each step picks its inputs among all values made so far, so a value often feeds several
consumers (random DAGs, and near-misses of fusions that require a single consumer). Constants
come from a NumPy generator seeded by a drawn integer; structure, shapes and attributes are
drawn from hypothesis so that failures shrink.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64


@dataclass
class FuzzCase:
    """One generated model with inputs to run it on."""

    model: onnx.ModelProto
    feeds: dict[str, np.ndarray]
    ops: list[str] = field(default_factory=list)
    threads: int = 1  # the compiled module's kernel threads (parallel splits are tested too)

    def __repr__(self) -> str:  # hypothesis prints this for a failing example
        opset = self.model.opset_import[0].version
        return f"FuzzCase(opset={opset}, threads={self.threads}, ops={self.ops})"


@dataclass
class Val:
    name: str
    shape: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


class Builder:
    """Grows one graph; ``draw`` is hypothesis's draw function."""

    def __init__(self, draw: Callable, opset: int, seed: int) -> None:
        self.draw = draw
        self.opset = opset
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, np.ndarray] = {}
        self.inputs: list[tuple[str, int, tuple[int, ...]]] = []
        self.feeds: dict[str, np.ndarray] = {}
        self.values: list[Val] = []
        self.count = 0
        self.big = False  # larger tensors and channel counts (vectorized / blocked kernels)
        self.scale = 1.0  # of the float inputs: 10 and 100 reach overflow and saturation
        self.unbounded: set[str] = set()  # values that may be +-inf: graph outputs only

    # -- naming, constants, inputs -------------------------------------------------------------

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, array: np.ndarray, prefix: str = "c") -> str:
        name = self.fresh(prefix)
        self.inits[name] = np.asarray(array)
        return name

    def randn(self, *shape: int, scale: float = 1.0) -> np.ndarray:
        return (scale * self.rng.standard_normal(shape)).astype(np.float32)

    def ints(self, values) -> str:
        return self.const(np.asarray(values, dtype=np.int64), "i")

    def add_input(self, shape: tuple[int, ...]) -> Val:
        name = self.fresh("x")
        self.inputs.append((name, FLOAT, shape))
        self.feeds[name] = (self.scale * self.rng.standard_normal(shape)).astype(np.float32)
        val = Val(name, tuple(shape))
        self.values.append(val)
        return val

    def node(self, op: str, inputs: list[str], shapes: list[tuple[int, ...]], **attrs) -> list[Val]:
        """Appends ``op``; its float32 outputs (with ``shapes``) become available values."""
        outs = [Val(self.fresh("v"), tuple(int(d) for d in s)) for s in shapes]
        self.nodes.append(
            helper.make_node(
                op, inputs, [o.name for o in outs], name=self.fresh(op.lower()), **attrs
            )
        )
        self.values.extend(outs)
        return outs

    def varied(self, x: Val) -> Val:
        """``x`` plus a random constant of its shape: no constant rows along any axis.

        Normalizing a constant row divides rounding noise (~1 ulp of x - mean) by sqrt(eps):
        1e-7 / 1e-3 = 1e-4 with eps = 1e-6, so two correct implementations differ by more than
        any useful tolerance; every normalization step reads a varied input."""
        return self.node("Add", [x.name, self.const(self.randn(*x.shape))], [x.shape])[0]

    def raw(self, op: str, inputs: list[str], n_out: int = 1, **attrs) -> list[str]:
        """Appends ``op`` whose outputs are not float32 values to pick (int64 shape math)."""
        outs = [self.fresh("t") for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.fresh(op.lower()), **attrs))
        return outs

    # -- drawing -------------------------------------------------------------------------------

    def pick(
        self, ok: Callable[[Val], bool] = lambda v: True, any_value: bool = False
    ) -> Val | None:
        """A value made so far satisfying ``ok`` (shrinks toward the most recent one); values
        that may hold infinities only with ``any_value`` (ops over infinities differ legitimately
        between implementations: a + (b - a) * w and a * (1 - w) + b * w)."""
        cands = [v for v in reversed(self.values)
                 if ok(v) and (any_value or v.name not in self.unbounded)]  # fmt: skip
        if not cands:
            return None
        return cands[self.draw(st.integers(0, len(cands) - 1))]

    def choice(self, options):
        return self.draw(st.sampled_from(list(options)))

    def boolean(self) -> bool:
        return self.draw(st.booleans())

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def broadcastable(self, shape: tuple[int, ...], grow: bool = True) -> tuple[int, ...]:
        """A shape that broadcasts with ``shape`` (dims set to 1, leading dims dropped/added
        unless not ``grow``)."""
        dims = [d if self.boolean() else 1 for d in shape]
        drop = self.integer(0, len(dims))
        dims = dims[drop:]
        if grow and self.integer(0, 5) == 0 and len(shape) < 5:
            dims = [1, *dims]
        return tuple(dims)

    # -- building ------------------------------------------------------------------------------

    def finish(self, extra_outputs: int) -> FuzzCase:
        made = [v for v in self.values if v.name not in self.feeds]
        outputs = [made[-1]]
        for _ in range(extra_outputs):
            v = self.pick(lambda v: v.name not in self.feeds and v not in outputs, any_value=True)
            if v is not None:
                outputs.append(v)
        graph = helper.make_graph(
            self.nodes,
            "fuzz",
            [helper.make_tensor_value_info(n, t, s) for n, t, s in self.inputs],
            [helper.make_tensor_value_info(v.name, FLOAT, v.shape) for v in outputs],
            [numpy_helper.from_array(a, k) for k, a in self.inits.items()],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = 8
        return FuzzCase(model, dict(self.feeds), [n.op_type for n in self.nodes])


def _broadcasts(s1: tuple[int, ...], s2: tuple[int, ...]) -> bool:
    try:
        np.broadcast_shapes(s1, s2)
    except ValueError:
        return False
    return True


def _positive(v: Val) -> bool:
    return v.size > 0
