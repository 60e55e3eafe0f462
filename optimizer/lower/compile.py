"""The compile driver: ONNX model -> compiled module directory.

``compile_model``: pin shapes -> optimize (O2 by default) -> pre-pack weights -> partition ->
schedule -> bind a kernel to every group (native, else the reference fallback, which warns) ->
plan memory (checked independently) -> ``write_module``. Returns a :class:`CompileReport`
(peak arena, kernel table, fallbacks).

``target="cuda"``: the graph gets CUDA's rewrites first and the partition CUDA's fusions
(``target_cuda.prepare_graph`` / ``partition_options``: one GEMM for Q, K, V, attention
groups), the bound groups are lowered to Triton cubins (``target_cuda.py``; no fallback, no
CPU tactics) and the module is written in format version 2.

``target="cpu,cuda"``: ``multi_target.py`` optimizes once and runs ``lower_model`` per target
into one module directory (format version 3) that picks its target at load.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optimizer import ir
from optimizer.errors import UnsupportedModelError, UsageError
from optimizer.ir import Model
from optimizer.kernels.registry import UnsupportedOpError
from optimizer.lower.bind import Bound, bind_group, prepack_weights
from optimizer.lower.memory import plan_memory
from optimizer.lower.partition import partition
from optimizer.lower.schedule import Schedule, schedule
from optimizer.lower.static_shapes import _unpinned_input_message, require_static_shapes
from optimizer.lower.tactics import TacticRecord, TimingCache, Tuner, default_threads
from optimizer.lower.verify_plan import assert_plan_valid
from optimizer.module.writer import KernelBinding, write_module
from optimizer.optimize import OptimizeOptions, OptimizeReport, optimize_model

log = logging.getLogger(__name__)


@dataclass
class CompileOptions:
    """Settings of one compile job.

    Attributes:
        optimize: The graph optimizer's settings (level, ``input_shapes``, check...).
        no_fallback: Refuse the reference fallback (``UnsupportedOpError`` instead).
        target: ``cpu``, ``cuda``, or several separated by commas (``cpu,cuda``).
        tune: Time the qualifying native candidates of each group and keep the fastest
            (``optimizer.lower.tactics``); without it a cached winner is used, else the
            rule-based kernel. ``target="cuda"``: compile each GEMM / convolution step's
            alternative launches into the module (tactics the runtime times at load).
        tune_threads: Threads candidates are timed with (None: ``$ODC_TUNE_THREADS`` or the
            CPU count, the runtime's default).
        tactic_cache: Use the timing cache (``$ODC_CACHE_DIR/tactics.json``).
        arch: ``target="cuda"``: the architecture cubins are built for.
        precision: ``target="cuda"``: ``fp32``, ``fp16`` or ``bf16`` storage of float tensors.
        allow_tf32: ``target="cuda"``: fp32 dots may use TF32.
        kernel_cache: ``target="cuda"``: use the cubin cache (``$ODC_CACHE_DIR/cubins``).
    """

    optimize: OptimizeOptions = field(default_factory=lambda: OptimizeOptions(check=False))
    no_fallback: bool = False
    target: str = "cpu"
    tune: bool = False
    tune_threads: int | None = None
    tactic_cache: bool = True
    arch: str = "sm_90"
    precision: str = "fp32"
    allow_tf32: bool = False
    kernel_cache: bool = True


@dataclass
class KernelRow:
    """One step of the compiled module."""

    step: int
    node: str
    pattern: str
    kernel: str
    fallback: bool


@dataclass
class CompileReport:
    """What a compile job produced."""

    output: str
    arena_size: int
    naive_arena_size: int
    steps: list[KernelRow]
    fallbacks: list[dict[str, str]]
    optimize: OptimizeReport | None
    seconds: float
    tactics: list[TacticRecord] = field(default_factory=list)
    cuda: Any = None  # target cuda: the CudaLowering (launches per step, for emulation)

    @property
    def fallback_ops(self) -> list[str]:
        """Distinct ops that run on reference kernels, sorted."""
        return sorted({f["op"] for f in self.fallbacks})

    def kernel_counts(self) -> dict[str, int]:
        return dict(Counter(row.kernel for row in self.steps).most_common())

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "arena_size": self.arena_size,
            "naive_arena_size": self.naive_arena_size,
            "steps": [vars(r) for r in self.steps],
            "kernels": self.kernel_counts(),
            "fallbacks": self.fallbacks,
            "seconds": round(self.seconds, 3),
            "tactics": [vars(t) for t in self.tactics],
        }

    def format(self) -> str:
        native = sum(1 for r in self.steps if not r.fallback)
        lines = [
            f"compiled module: {self.output}",
            f"  steps: {len(self.steps)} ({native} native, {len(self.steps) - native} fallback)",
            f"  peak arena: {self.arena_size} bytes (without reuse {self.naive_arena_size})",
            "  kernels: " + ", ".join(f"{k} x{n}" for k, n in self.kernel_counts().items()),
        ]
        if self.fallbacks:
            lines.append("  reference fallback: " + ", ".join(self.fallback_ops))
        if self.cuda is not None and getattr(self.cuda, "tuned", 0):
            lines.append(f"  tactics: {self.cuda.tuned} steps carry alternative launches, timed "
                         "on the GPU at load with load(..., tune=True) / odc-run --tune")  # fmt: skip
        shown = [t for t in self.tactics if t.source != "default" or t.seconds]
        if shown:
            tuned = Counter(t.winner for t in shown)
            lines.append(f"  tactics ({len(shown)} steps): "
                         + ", ".join(f"{k} x{n}" for k, n in tuned.most_common()))  # fmt: skip
            lines.extend(f"    {t.format()}" for t in shown)
        lines.append(f"  time: {self.seconds:.2f} s")
        return "\n".join(lines)


def require_pinned_inputs(model: Model) -> None:
    """Raises UnsupportedModelError naming an input with a symbolic dim and ``--input-shape``."""
    for value in model.graph.inputs:
        if ir.static_shape(value) is None:
            raise UnsupportedModelError(_unpinned_input_message(value))


def compile_model(
    model: Model,
    out_dir: str | os.PathLike[str],
    options: CompileOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> Any:
    """Compiles ``model`` (not modified) into the module directory ``out_dir``.

    ``options.target`` names one target (``cpu``, ``cuda``) or several separated by commas
    (``cpu,cuda``: one module carrying a plan per target, ``multi_target.py``; the report is
    then a ``MultiTargetReport``).

    Raises:
        UnsupportedModelError: an unpinned symbolic input dimension, a data-dependent shape.
        UnsupportedOpError: a node without a native kernel under ``no_fallback`` (or without
            any kernel).
    """
    options = options or CompileOptions()
    targets = parse_targets(options.target)
    if len(targets) > 1:
        from optimizer.lower.multi_target import compile_multi_target

        return compile_multi_target(model, out_dir, options, targets, progress)
    start = time.perf_counter()
    _cuda_options(options)  # usage errors before the (slow) optimizer runs
    optimized, opt_report = optimize_for_lowering(model, options, progress)
    return lower_model(optimized, out_dir, options, opt_report, start)


def parse_targets(target: str | Sequence[str]) -> list[str]:
    """``"cpu,cuda"`` (or ``["cpu", "cuda"]``) -> ``["cpu", "cuda"]``, checked (UsageError)."""
    from optimizer.module.multi_target import check_targets

    names = target.split(",") if isinstance(target, str) else list(target)
    names = [n.strip() for n in names]
    check_targets(names)
    return names


def optimize_for_lowering(
    model: Model, options: CompileOptions, progress: Callable[[str], None] | None = None
) -> tuple[Model, OptimizeReport | None]:
    """The target-independent front: pin input shapes, optimize, require static shapes."""
    pinned = model.copy()
    if options.optimize.input_shapes:
        ir.pin_input_shapes(pinned, options.optimize.input_shapes)
    require_pinned_inputs(pinned)
    optimized, opt_report = optimize_model(model, options.optimize, progress)
    require_static_shapes(optimized)
    return optimized, opt_report


def lower_model(
    optimized: Model,
    out_dir: str | os.PathLike[str],
    options: CompileOptions,
    opt_report: OptimizeReport | None = None,
    start: float | None = None,
) -> CompileReport:
    """Lowers an optimized model (modified: weights pre-packed...) for ``options.target`` (one
    target) and writes the module ``out_dir``."""
    start = time.perf_counter() if start is None else start
    cuda = _cuda_options(options)
    prepack_weights(optimized)
    if cuda is not None:
        from optimizer.lower.target_cuda import prepare_graph

        prepare_graph(optimized)
    ir.toposort(optimized.graph)
    sched = schedule(optimized, partition(optimized, _partition_options(cuda)))
    opset = optimized.opset
    if cuda is not None:
        from optimizer.lower.target_cuda import lower_cuda

        bounds = [_bind_for_cuda(optimized.graph, group, opset) for group in sched.steps]
        lowered = lower_cuda(optimized, sched.steps, bounds, cuda)
        sched = Schedule(optimized, lowered.steps)
        plan = plan_memory(sched)
        assert_plan_valid(plan)
        out = write_module(optimized, plan, [b.binding for b in lowered.bounds], out_dir,
                           ["cuda"], cuda_arch=cuda.arch)  # fmt: skip
        report = _report(out, plan, sched, lowered.bounds, opt_report, start, [])
        report.cuda = lowered
        return report
    bounds: list[Bound] = [
        bind_group(optimized.graph, group, opset, allow_fallback=not options.no_fallback)
        for group in sched.steps
    ]
    tuner = Tuner(
        tune=options.tune,
        threads=options.tune_threads or default_threads(),
        cache=TimingCache() if options.tactic_cache else None,
    )
    bounds = [tuner.select(optimized.graph, group, bound, step)
              for step, (group, bound) in enumerate(zip(sched.steps, bounds))]  # fmt: skip
    if tuner.cache is not None:
        try:
            tuner.cache.save()
        except OSError as err:
            log.warning("tactic cache %s not written: %s", tuner.cache.path, err)
    steps, bounds, views = tuner.splice(sched.steps, bounds)
    sched = Schedule(optimized, steps)
    plan = plan_memory(sched, views=views)
    assert_plan_valid(plan)
    out = write_module(optimized, plan, [b.binding for b in bounds], out_dir, [options.target])
    return _report(out, plan, sched, bounds, opt_report, start, tuner.records)


def _report(out: Path, plan: Any, sched: Schedule, bounds: list[Bound],
            opt_report: OptimizeReport | None, start: float,
            tactics: list[TacticRecord]) -> CompileReport:  # fmt: skip
    rows, fallbacks = [], []
    for index, (group, bound) in enumerate(zip(sched.steps, bounds)):
        rows.append(KernelRow(index, group.name, group.pattern, bound.binding.name, bound.fallback))
        if bound.fallback:
            for node in group.nodes:
                fallbacks.append({"op": node.op, "node": node.name, "pattern": group.pattern,
                                  "reason": "; ".join(bound.reasons)})  # fmt: skip
    if fallbacks:
        ops = Counter(f["op"] for f in fallbacks)
        log.warning(
            "%d node(s) fall back to reference kernels (Python, slow): %s",
            len(fallbacks),
            ", ".join(f"{op} x{n}" for op, n in ops.most_common()),
        )
    report = CompileReport(
        output=str(out),
        arena_size=plan.arena_size,
        naive_arena_size=plan.naive_size,
        steps=rows,
        fallbacks=fallbacks,
        optimize=opt_report,
        seconds=time.perf_counter() - start,
        tactics=tactics,
    )
    log.info("%s", report.format())
    return report


def _cuda_options(options: CompileOptions) -> Any:
    """The CUDA lowering's options for ``target="cuda"`` (checked), else None."""
    if options.target == "cpu":
        if (options.arch, options.precision) != ("sm_90", "fp32") or options.allow_tf32:
            raise UsageError("--arch, --precision and --tf32 apply to --target cuda only")
        return None
    if options.target != "cuda":
        raise UsageError(f"--target {options.target}: unknown target (use cpu or cuda)")
    from optimizer.lower.target_cuda import CudaOptions, check_options

    cuda = CudaOptions(options.arch, options.precision, options.allow_tf32, options.kernel_cache,
                       tune=options.tune)  # fmt: skip
    check_options(cuda)
    if options.tune_threads:
        raise UsageError("--tune-threads times CPU kernels; it does not apply to --target cuda")
    return cuda


def _partition_options(cuda: Any) -> Any:
    """The target's fusions (None: the CPU defaults)."""
    if cuda is None:
        return None
    from optimizer.lower.target_cuda import partition_options

    return partition_options()


def _bind_for_cuda(graph: Any, group: Any, opset: int) -> Bound:
    """The native binding of ``group`` (a fallback binding says why there is none)."""
    try:
        return bind_group(graph, group, opset, allow_fallback=True)
    except UnsupportedOpError as err:
        reasons = "; ".join(f"{spec.name}: {why}" for spec, why in err.rejected)
        reason = reasons or "no kernel is registered for this op"
        return Bound(KernelBinding("none", "none", "python", "none"), True, [reason])


def compile_file(
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    options: CompileOptions | None = None,
) -> CompileReport:
    """Loads ``src`` and compiles it into ``out_dir``."""
    return compile_model(ir.load(Path(src)), out_dir, options)
