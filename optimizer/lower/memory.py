"""Memory planning: every intermediate value gets an offset in one activation arena.

1. **Liveness.** A value is live from the step writing it to the last step reading it, both
   inclusive (a step's inputs and outputs are live together while it runs). Graph inputs and
   outputs live in the caller's buffers and constants in weights.bin: neither is planned.
2. **In place.** An elementwise step (or a pure view: Reshape, Squeeze...) may write its output
   over an input that dies at that step and has the same size (and, for elementwise, the same
   shape, so element ``i`` is read before it is written). The two values then form one buffer.
3. **Offsets** by the greedy-by-size heuristic of TFLite's and MNN's planners: buffers in
   decreasing size, each placed in the smallest gap (``best_fit``) or the lowest gap
   (``first_fit``) between the already placed buffers whose lifetimes overlap its own, or
   above the highest of them. Offsets and sizes are rounded to ``alignment`` bytes.

``verify_plan.plan_problems`` re-derives liveness on its own and checks the result.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import numpy as np

from optimizer import ir
from optimizer.errors import UnsupportedModelError
from optimizer.ir import Value
from optimizer.lower import ops
from optimizer.lower.partition import ELEMENTWISE, SINGLE, FusionGroup
from optimizer.lower.schedule import Schedule

log = logging.getLogger(__name__)

ALIGNMENT = 64
STRATEGIES = ("best_fit", "first_fit")


@dataclass(frozen=True)
class Block:
    """A request for arena space: ``size`` bytes live from step ``start`` to ``end`` inclusive."""

    key: str
    size: int
    start: int
    end: int

    def overlaps_in_time(self, other: Block) -> bool:
        return self.start <= other.end and other.start <= self.end


@dataclass(frozen=True)
class Placement:
    """Where an intermediate value lives in the arena.

    Attributes:
        offset: Byte offset in the arena (a multiple of the alignment).
        nbytes: Exact size (element count times element size).
        first: Step writing it.
        last: Last step reading it (``first`` when nothing reads it).
        buffer: The value whose block it occupies (itself, unless written in place).
    """

    offset: int
    nbytes: int
    first: int
    last: int
    buffer: str


@dataclass(frozen=True)
class InPlace:
    """Step ``step`` writes ``output`` over ``input``, which dies there.

    With ``view``, the step is a view (Reshape: the ``copy`` kernel is a no-op on one buffer)
    and ``input`` may stay live: both name the same unchanged bytes.
    """

    step: int
    output: str
    input: str
    view: bool = False


@dataclass
class MemoryPlan:
    """The arena layout of a schedule.

    Attributes:
        schedule: The steps the plan is for.
        alignment: Offsets are multiples of this.
        strategy: ``best_fit`` or ``first_fit``.
        arena_size: Bytes of the arena (the peak).
        placements: Intermediate value name -> placement.
        inplace: The in-place writes the plan relies on.
        naive_size: Arena bytes without any reuse (every value its own aligned block).
        live_peak: Most aligned bytes live at one step: a lower bound for ``arena_size``.
    """

    schedule: Schedule
    alignment: int
    strategy: str
    arena_size: int
    placements: dict[str, Placement] = field(default_factory=dict)
    inplace: list[InPlace] = field(default_factory=list)
    naive_size: int = 0
    live_peak: int = 0

    def summary(self) -> str:
        saved = 1 - self.arena_size / self.naive_size if self.naive_size else 0.0
        return (
            f"arena {self.arena_size} bytes for {len(self.placements)} values "
            f"({len(self.inplace)} in place), naive {self.naive_size} (-{saved:.0%}), "
            f"live peak {self.live_peak}"
        )


def align(n: int, alignment: int = ALIGNMENT) -> int:
    return -(-n // alignment) * alignment


def value_nbytes(value: Value) -> int:
    """Element count times element size of a value with a static shape and known dtype."""
    shape = ir.static_shape(value)
    dtype = ir.numpy_dtype_of(value)
    if shape is None or dtype is None:
        raise UnsupportedModelError(f"value '{value.name}' has no static shape or known type")
    if dtype.kind in "OUSV" and dtype.name != "bfloat16":  # ml_dtypes' bfloat16 is kind V
        raise UnsupportedModelError(
            f"value '{value.name}' has element type {dtype}: compiled modules hold numeric "
            "tensors only"
        )
    return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def intermediate_values(schedule: Schedule) -> dict[str, tuple[Value, int, int]]:
    """name -> (value, first step, last step) for every value the arena must hold."""
    graph = schedule.model.graph
    outputs = {id(v) for v in graph.outputs}
    live: dict[str, tuple[Value, int, int]] = {}
    for step, group in enumerate(schedule.steps):
        for value in group.values_read():
            if value.name in live:
                v, first, _ = live[value.name]
                live[value.name] = (v, first, step)
        for value in group.values_written():
            if id(value) not in outputs:
                live[value.name] = (value, step, step)
    return live


def plan_memory(
    schedule: Schedule,
    alignment: int = ALIGNMENT,
    strategy: str = "best_fit",
    inplace: bool = True,
    views: Collection[str] = (),
) -> MemoryPlan:
    """Assigns every intermediate value an arena offset.

    Args:
        schedule: The groups in run order.
        alignment: Offset alignment in bytes (a power of two).
        strategy: ``best_fit`` (smallest fitting gap) or ``first_fit`` (lowest fitting gap).
        inplace: Let elementwise and view steps write over an input dying there.
        views: Outputs of view steps that share their input's block even while the input
            stays live (tactics' reshaped operands, read only by the step right after its
            view steps, so no in-place write can reach the block while they live).

    Returns:
        The plan; ``verify_plan.assert_plan_valid`` checks it independently.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy '{strategy}' (use {' or '.join(STRATEGIES)})")
    if alignment <= 0 or alignment & (alignment - 1):
        raise ValueError(f"alignment must be a power of two, got {alignment}")
    live = intermediate_values(schedule)
    nbytes = {name: value_nbytes(v) for name, (v, _, _) in live.items()}
    buffer_of = {name: name for name in live}
    reuses = _inplace_reuses(schedule, live, nbytes, set(views)) if inplace else []
    for reuse in reuses:
        buffer_of[reuse.output] = buffer_of[reuse.input]

    spans: dict[str, list[int]] = {}
    for name, (_, first, last) in live.items():
        root = buffer_of[name]
        span = spans.setdefault(root, [first, last, 0])
        span[0] = min(span[0], first)
        span[1] = max(span[1], last)
        span[2] = max(span[2], align(nbytes[name], alignment))
    blocks = [Block(root, size, start, end) for root, (start, end, size) in spans.items()]
    offsets, arena_size = assign_offsets(blocks, strategy)

    placements = {
        name: Placement(offsets[buffer_of[name]], nbytes[name], first, last, buffer_of[name])
        for name, (_, first, last) in live.items()
    }
    plan = MemoryPlan(
        schedule=schedule,
        alignment=alignment,
        strategy=strategy,
        arena_size=arena_size,
        placements=placements,
        inplace=reuses,
        naive_size=sum(align(n, alignment) for n in nbytes.values()),
        live_peak=live_peak(blocks),
    )
    log.debug("memory plan: %s", plan.summary())
    return plan


def assign_offsets(
    blocks: Iterable[Block], strategy: str = "best_fit"
) -> tuple[dict[str, int], int]:
    """Greedy by size: the core of the planner, on abstract blocks.

    Block sizes must already be multiples of the alignment wanted (offsets then are too).

    Returns:
        (key -> offset, arena size).
    """
    order = sorted(blocks, key=lambda b: (-b.size, b.start, b.end, b.key))
    placed: list[tuple[int, Block]] = []  # (offset, block), kept sorted by offset
    offsets: dict[str, int] = {}
    arena = 0
    for block in order:
        if block.size == 0:
            offsets[block.key] = 0
            continue
        best: int | None = None
        best_gap = 0
        cursor = 0
        for offset, other in placed:
            if not block.overlaps_in_time(other):
                continue
            gap = offset - cursor
            if gap >= block.size and (best is None or gap < best_gap):
                best, best_gap = cursor, gap
                if strategy == "first_fit":
                    break
            cursor = max(cursor, offset + other.size)
        if best is None:
            best = cursor
        offsets[block.key] = best
        _insert_sorted(placed, (best, block))
        arena = max(arena, best + block.size)
    return offsets, arena


def live_peak(blocks: Iterable[Block]) -> int:
    """The most bytes live at any one step (no placement can use less arena)."""
    events: dict[int, int] = {}
    for b in blocks:
        events[b.start] = events.get(b.start, 0) + b.size
        events[b.end + 1] = events.get(b.end + 1, 0) - b.size
    peak = current = 0
    for step in sorted(events):
        current += events[step]
        peak = max(peak, current)
    return peak


def inplace_eligible(group: FusionGroup) -> str | None:
    """``elementwise`` or ``view`` when the group's kernel may write over an input, else None."""
    if group.kind == ELEMENTWISE:
        return "elementwise"
    if group.kind == SINGLE:
        op = group.nodes[0].op
        if ops.is_elementwise(op):
            return "elementwise"
        if op in ops.VIEW_OPS:
            return "view"
    return None


def _inplace_reuses(
    schedule: Schedule,
    live: dict[str, tuple[Value, int, int]],
    nbytes: dict[str, int],
    views: set[str] = frozenset(),  # type: ignore[assignment]
) -> list[InPlace]:
    reuses = []
    for step, group in enumerate(schedule.steps):
        how = inplace_eligible(group)
        written = group.values_written()
        if how is None or len(written) != 1 or written[0].name not in live:
            continue
        out = written[0]
        for value in group.values_read():
            entry = live.get(value.name)
            if entry is None or nbytes[value.name] != nbytes[out.name]:
                continue
            if entry[2] != step:
                if how == "view" and out.name in views:
                    reuses.append(InPlace(step, out.name, value.name, view=True))
                    break
                continue
            if how == "elementwise" and ir.static_shape(value) != ir.static_shape(out):
                continue
            reuses.append(InPlace(step, out.name, value.name))
            break
    return reuses


def _insert_sorted(placed: list[tuple[int, Block]], item: tuple[int, Block]) -> None:
    lo, hi = 0, len(placed)
    while lo < hi:
        mid = (lo + hi) // 2
        if placed[mid][0] <= item[0]:
            lo = mid + 1
        else:
            hi = mid
    placed.insert(lo, item)
