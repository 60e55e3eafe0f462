"""An independent check of a memory plan: it shares no code with the planner.

Liveness is re-derived from the schedule's steps; then every pair of values live at the same
step must occupy disjoint bytes, unless the plan declares an in-place write that is legal:
the input dies at the step that writes the output, both have the same size and block, and
the step's kernel works element by element (or is a pure view of its input). A view step
may also alias an input that stays live (``InPlace.view``): both then name the same bytes,
and every other pair sharing them is still checked.
"""

from __future__ import annotations

import math

from optimizer import ir
from optimizer.errors import InvariantError
from optimizer.lower import ops
from optimizer.lower.memory import MemoryPlan


def plan_problems(plan: MemoryPlan) -> list[str]:
    """Every broken rule of the plan, one line each (empty when the plan is sound)."""
    problems: list[str] = []
    steps = plan.schedule.steps
    graph = plan.schedule.model.graph
    interface = {v.name for v in [*graph.inputs, *graph.outputs]}

    # Liveness, from scratch: name -> [written at, last read at].
    spans: dict[str, list[int]] = {}
    values = {}
    for index, group in enumerate(steps):
        for value in [*group.inputs, *group.implicit_inputs]:
            if value is not None and value.name in spans:
                spans[value.name][1] = max(spans[value.name][1], index)
        for value in group.outputs:
            if value is None or value.name in interface:
                continue
            if value.name in spans:
                problems.append(
                    f"value '{value.name}' written twice (steps {spans[value.name][0]} and {index})"
                )
            spans[value.name] = [index, index]
            values[value.name] = value

    for name in sorted(set(spans) - set(plan.placements)):
        problems.append(f"value '{name}' has no placement")
    for name in sorted(set(plan.placements) - set(spans)):
        problems.append(f"placement for '{name}', which is not an intermediate value")

    for name, p in plan.placements.items():
        if name not in values:
            continue
        shape, dtype = ir.static_shape(values[name]), ir.numpy_dtype_of(values[name])
        if shape is not None and dtype is not None:
            expect = math.prod(shape) * dtype.itemsize
            if p.nbytes != expect:
                problems.append(f"value '{name}': nbytes {p.nbytes} != {expect} ({shape}, {dtype})")
        if p.offset % plan.alignment:
            problems.append(f"value '{name}': offset {p.offset} not a multiple of {plan.alignment}")
        if p.offset < 0 or p.offset + p.nbytes > plan.arena_size:
            problems.append(
                f"value '{name}': offset {p.offset} + nbytes {p.nbytes} exceeds arena_size "
                f"{plan.arena_size}"
            )

    legal = _legal_inplace(plan, spans, problems)
    placed = sorted(
        (name for name in spans if name in plan.placements and plan.placements[name].nbytes > 0),
        key=lambda n: spans[n][0],
    )
    for i, a in enumerate(placed):
        a_first, a_last = spans[a]
        pa = plan.placements[a]
        for b in placed[i + 1 :]:
            b_first, b_last = spans[b]
            if b_first > a_last:
                break  # sorted by first step: no later value overlaps ``a`` in time
            pb = plan.placements[b]
            if pa.offset < pb.offset + pb.nbytes and pb.offset < pa.offset + pa.nbytes:
                if (a, b) in legal or (b, a) in legal:
                    continue
                problems.append(
                    f"values '{a}' (steps {a_first}..{a_last}, bytes {pa.offset}+{pa.nbytes}) and "
                    f"'{b}' (steps {b_first}..{b_last}, bytes {pb.offset}+{pb.nbytes}) overlap "
                    "while both live"
                )
    return problems


def assert_plan_valid(plan: MemoryPlan) -> None:
    """Raises InvariantError listing the problems when the plan is not sound."""
    problems = plan_problems(plan)
    if problems:
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        raise InvariantError("invalid memory plan: " + "; ".join(problems[:5]) + more)


def _legal_inplace(
    plan: MemoryPlan, spans: dict[str, list[int]], problems: list[str]
) -> set[tuple[str, str]]:
    legal = set()
    views_of: dict[str, list[str]] = {}
    steps = plan.schedule.steps
    for reuse in plan.inplace:
        where = f"in-place step {reuse.step} ('{reuse.input}' -> '{reuse.output}')"
        if not 0 <= reuse.step < len(steps):
            problems.append(f"{where}: no such step")
            continue
        group = steps[reuse.step]
        reads = {v.name: v for v in group.inputs if v is not None}
        writes = {v.name: v for v in group.outputs if v is not None}
        src, dst = reads.get(reuse.input), writes.get(reuse.output)
        pi, po = plan.placements.get(reuse.input), plan.placements.get(reuse.output)
        elementwise = all(ops.is_elementwise(n.op) for n in group.nodes)
        view = len(group.nodes) == 1 and group.nodes[0].op in ops.VIEW_OPS
        if src is None or dst is None or pi is None or po is None:
            problems.append(f"{where}: the step does not read / write these arena values")
        elif spans.get(reuse.input, [0, -1])[1] != reuse.step and not (reuse.view and view):
            problems.append(f"{where}: the input is still read after the step")
        elif len(writes) != 1 or not (elementwise or view):
            problems.append(f"{where}: the step's kernel cannot run in place")
        elif (pi.offset, pi.nbytes) != (po.offset, po.nbytes):
            problems.append(f"{where}: input and output do not share one block")
        elif elementwise and ir.static_shape(src) != ir.static_shape(dst):
            problems.append(f"{where}: elementwise in place needs equal shapes")
        else:
            legal.add((reuse.input, reuse.output))
            if view:
                views_of.setdefault(reuse.input, []).append(reuse.output)
    # Views of one value hold its bytes unchanged: they may share them with each other.
    for views in views_of.values():
        legal.update((a, b) for a in views for b in views if a != b)
    return legal
