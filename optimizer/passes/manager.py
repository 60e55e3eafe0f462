"""The pass manager: runs a pipeline, with fixed points, timing, verification and dumps.

A pipeline is a list whose entries are passes or :class:`FixedPoint` groups (repeated until
no pass in the group changes anything, at most ``max_iterations`` times). Every pass
application is recorded, so a run can be replayed up to any prefix (``limit``): that is how
the checker bisects a numerical mismatch down to the pass that caused it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from optimizer import ir
from optimizer.errors import InvariantError
from optimizer.ir import Model
from optimizer.passes.base import Pass, PassContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FixedPoint:
    """Passes repeated in order until a full round changes nothing (capped)."""

    passes: tuple[Pass, ...]
    max_iterations: int = 6

    def __init__(self, *passes: Pass, max_iterations: int = 6) -> None:
        object.__setattr__(self, "passes", tuple(passes))
        object.__setattr__(self, "max_iterations", max_iterations)


PipelineEntry = Pass | FixedPoint


@dataclass
class PassRecord:
    """One application of one pass."""

    name: str
    modified: bool
    stats: Counter[str]
    seconds: float


@dataclass
class RunResult:
    """Outcome of running a pipeline."""

    model: Model
    records: list[PassRecord] = field(default_factory=list)

    @property
    def rule_counts(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for rec in self.records:
            total.update(rec.stats)
        return total

    @property
    def pass_seconds(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for rec in self.records:
            out[rec.name] = out.get(rec.name, 0.0) + rec.seconds
        return out

    @property
    def modified(self) -> bool:
        return any(rec.modified for rec in self.records)


class _Stop(Exception):
    """Raised internally when the application limit is reached."""


class PassManager:
    """Runs a pipeline over a model.

    Args:
        pipeline: Passes and fixed-point groups, in order.
        disabled: Names of passes to skip (``--disable``).
        dump_dir: Write the model after each modifying pass here (``--dump-after-each``).
        progress: Called with each pass name before it runs (the CLI's progress display).
    """

    def __init__(
        self,
        pipeline: Sequence[PipelineEntry],
        disabled: set[str] | None = None,
        dump_dir: Path | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.pipeline = list(pipeline)
        self.disabled = set(disabled or ())
        self.dump_dir = Path(dump_dir) if dump_dir else None
        self.progress = progress

    def pass_names(self) -> list[str]:
        names: list[str] = []
        for entry in self.pipeline:
            group = entry.passes if isinstance(entry, FixedPoint) else (entry,)
            names.extend(p.name for p in group if p.name not in names)
        return names

    def run(self, model: Model, ctx: PassContext, limit: int | None = None) -> RunResult:
        """Runs the pipeline; with ``limit``, stops after that many pass applications."""
        run = RunResult(model)
        try:
            for entry in self.pipeline:
                if isinstance(entry, FixedPoint):
                    for _ in range(entry.max_iterations):
                        changed = False
                        for p in entry.passes:
                            changed |= self._apply(p, run, ctx, limit)
                        if not changed:
                            break
                    else:
                        log.debug("fixed point not reached after %d rounds", entry.max_iterations)
                else:
                    self._apply(entry, run, ctx, limit)
        except _Stop:
            pass
        return run

    def _apply(self, p: Pass, run: RunResult, ctx: PassContext, limit: int | None) -> bool:
        if p.name in self.disabled:
            return False
        if limit is not None and len(run.records) >= limit:
            raise _Stop
        if self.progress:
            self.progress(p.name)
        start = time.perf_counter()
        res = p(run.model, ctx)
        seconds = time.perf_counter() - start
        run.model = res.model
        ctx.history.append(p.name)
        run.records.append(PassRecord(p.name, res.modified, res.stats, seconds))
        if res.modified:
            log.info(
                "%s: %s (%.3fs)",
                p.name,
                ", ".join(f"{k} x{v}" for k, v in res.stats.items()),
                seconds,
            )
        if ctx.verify:
            problems = ir.graph_problems(run.model.graph)
            if problems:
                raise InvariantError(
                    f"graph invariant broken by pass {p.name}: {problems[0]}", ctx.history
                )
        if self.dump_dir is not None and res.modified:
            self.dump_dir.mkdir(parents=True, exist_ok=True)
            run.model.save(self.dump_dir / f"{len(run.records):03d}_{p.name}.onnx")
        return res.modified
