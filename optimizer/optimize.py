"""The optimize job: load -> pin shapes -> upgrade opset -> pipeline -> validate -> check -> save.

Nothing is written unless the optimized model passes the ONNX checker and matches the
original numerically; on a mismatch the pipeline is bisected to name the pass at fault.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optimizer import ir
from optimizer.check import CheckReport, Session, check_equivalent, make_trial_feeds, raise_mismatch
from optimizer.errors import InvalidModelError, InvariantError, UsageError
from optimizer.ir import Model
from optimizer.passes import pipelines
from optimizer.passes.base import PassContext
from optimizer.passes.manager import PassManager, RunResult

log = logging.getLogger(__name__)


@dataclass
class OptimizeOptions:
    """Settings of one optimize job (the CLI flags, as an API).

    Attributes:
        level: Pipeline name: ``O0``, ``O1`` or ``O2``.
        input_shapes: Pinned input shapes, ``{"images": [1, 3, 640, 640]}``.
        target_opset: Upgrade the default-domain opset first (unlocks Gelu, LayerNorm...).
        disable: Pass names to skip.
        check: Compare with the original in onnxruntime before writing.
        inputs: User-given input sets for the check (in addition to random ones).
        trials: Random input sets for the check.
        atol, rtol: Check tolerance (``|got - want| <= atol + rtol * |want|``).
        dump_dir: Save the model after every modifying pass here.
        explain: Rule names whose non-matches are reported with reasons.
        verify: Check graph invariants after every pass.
        fold_size_limit: Largest constant (elements) folding may create.
    """

    level: str = "O2"
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    target_opset: int | None = None
    disable: set[str] = field(default_factory=set)
    check: bool = True
    inputs: list[dict[str, np.ndarray]] = field(default_factory=list)
    trials: int = 2
    seed: int = 0
    atol: float = 1e-4
    rtol: float = 1e-3
    dump_dir: Path | None = None
    explain: set[str] = field(default_factory=set)
    verify: bool = False
    fold_size_limit: int = 1 << 20


@dataclass
class OptimizeReport:
    """What an optimize job did, for humans (``format_report``) and machines (``to_json``)."""

    source: str
    output: str | None
    level: str
    opset_before: int
    opset_after: int
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    size_before: int
    size_after: int
    rules: Counter[str]
    pass_seconds: dict[str, float]
    total_seconds: float
    check: CheckReport | None
    explanations: list[str] = field(default_factory=list)

    @property
    def nodes_before(self) -> int:
        return sum(self.ops_before.values())

    @property
    def nodes_after(self) -> int:
        return sum(self.ops_after.values())

    @property
    def modified(self) -> bool:
        return bool(self.rules)


def optimize_model(
    model: Model,
    options: OptimizeOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Model, OptimizeReport]:
    """Optimizes a loaded model (not modified; a copy is). Returns the new model and a report.

    Raises:
        UsageError: bad options (unknown pass, input, level).
        CheckFailedError: the result does not match the original; names the first bad pass.
        InvariantError: a pass produced an invalid graph (a bug in this tool).
    """
    options = options or OptimizeOptions()
    start = time.perf_counter()
    if options.level not in pipelines.PIPELINES:
        raise UsageError(f"unknown optimization level '{options.level}' (use O0, O1 or O2)")
    known = {p.name for p in pipelines.all_passes()}
    unknown = sorted(options.disable - known)
    if unknown:
        raise UsageError(f"--disable: unknown pass {', '.join(unknown)} (see --list-passes)")
    ops_before = ir.count_ops(model.graph)
    size_before = _source_size(model)
    opset_before = model.opset

    def prepare() -> Model:
        work = model.copy()
        if options.input_shapes:
            ir.pin_input_shapes(work, options.input_shapes)
        if options.target_opset is not None:
            work = ir.convert_opset(work, options.target_opset)
        return work

    prepared: list[Model] = [prepare()]  # first: bad --input-shape / --target-opset fail fast
    reference = Session(model) if options.check else None
    feeds: list[dict[str, np.ndarray]] = []
    if reference is not None:
        _validate_user_inputs(options.inputs, reference)
        feeds = make_trial_feeds(
            reference, options.input_shapes, options.inputs, options.trials, options.seed
        )

    def run_pipeline(limit: int | None = None) -> tuple[RunResult, PassContext]:
        ctx = PassContext(
            fold_size_limit=options.fold_size_limit,
            target_opset=options.target_opset,
            explain=set(options.explain),
            verify=options.verify,
        )
        manager = PassManager(
            pipelines.build(options.level),
            options.disable,
            options.dump_dir if limit is None else None,
            progress,
        )
        work = prepared.pop() if prepared else prepare()
        return manager.run(work, ctx, limit=limit), ctx

    run, ctx = run_pipeline()
    result = run.model
    ir.cleanup(result.graph)
    ir.toposort(result.graph)
    try:
        ir.check_model(result.to_proto(), "optimized model")
    except InvalidModelError as exc:
        raise InvariantError(f"the optimized model is invalid ONNX: {exc}", ctx.history) from None

    report = None
    if reference is not None:
        report = check_equivalent(reference, result, feeds, options.atol, options.rtol)
        if not report.ok:
            raise_mismatch(report, _bisect(run, run_pipeline, reference, feeds, options))
    return result, OptimizeReport(
        source=str(model.source_path) if model.source_path else "<memory>",
        output=None,
        level=options.level,
        opset_before=opset_before,
        opset_after=result.opset,
        ops_before=ops_before,
        ops_after=ir.count_ops(result.graph),
        size_before=size_before,
        size_after=result.serialized_size(),
        rules=run.rule_counts,
        pass_seconds=run.pass_seconds,
        total_seconds=time.perf_counter() - start,
        check=report,
        explanations=list(ctx.explanations),
    )


def optimize_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    options: OptimizeOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> OptimizeReport:
    """Loads ``src``, optimizes, checks, and writes ``dst`` atomically (nothing on failure)."""
    if is_module_output(dst):
        raise UsageError(
            f"-o {dst}: a directory means a compiled module: use compile_to_module() "
            "(the CLI does this for -o DIR/)"
        )
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise UsageError(f"-o {dst}: refusing to overwrite the input model; choose another path")
    start = time.perf_counter()
    model = ir.load(src)
    optimized, report = optimize_model(model, options, progress)
    optimized.save(dst)
    report.output = str(dst)
    report.size_after = _file_size(dst)
    report.total_seconds = time.perf_counter() - start
    return report


def is_module_output(dst: str | os.PathLike[str]) -> bool:
    """Whether ``-o dst`` asks for a compiled module: a trailing ``/`` or an existing directory."""
    text = os.fspath(dst)
    return text.endswith(("/", os.sep)) or Path(text).is_dir()


def compile_to_module(
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    options: OptimizeOptions | None = None,
    no_fallback: bool = False,
    progress: Callable[[str], None] | None = None,
    tune: bool = False,
    tune_threads: int | None = None,
    target: str = "cpu",
    arch: str = "sm_90",
    precision: str = "fp32",
):  # -> optimizer.lower.compile.CompileReport (imported lazily: lowering imports this module)
    """Loads ``src``, optimizes it (``options``) and compiles it into the module ``out_dir``.

    Raises:
        UnsupportedModelError: a symbolic input dimension left unpinned (``--input-shape``).
        UnsupportedOpError: with ``no_fallback``, a node without a native kernel.

    ``tune`` / ``tune_threads``: tactic selection; ``target`` / ``arch`` / ``precision``: the
    target (``cpu`` or ``cuda``) and, for CUDA, the architecture and float storage type
    (``CompileOptions``).
    """
    from optimizer.lower.compile import CompileOptions, compile_model

    src = Path(src)
    if not src.is_file():
        raise UsageError(f"{src}: no such model file")
    model = ir.load(src)
    compile_options = CompileOptions(
        optimize=options or OptimizeOptions(),
        no_fallback=no_fallback,
        tune=tune,
        tune_threads=tune_threads,
        target=target,
        arch=arch,
        precision=precision,
    )
    return compile_model(model, Path(out_dir), compile_options, progress)


def _bisect(
    run: RunResult,
    run_pipeline: Callable[[int | None], tuple[RunResult, PassContext]],
    reference: Session,
    feeds: Sequence[Mapping[str, np.ndarray]],
    options: OptimizeOptions,
) -> str | None:
    """Smallest prefix of pass applications that already mismatches: its last pass."""

    def matches(limit: int) -> bool:
        prefix, _ = run_pipeline(limit)
        try:
            return check_equivalent(reference, prefix.model, feeds, options.atol, options.rtol).ok
        except Exception:  # an invalid intermediate model also counts as broken
            return False

    if not matches(0):
        return "input preparation (--input-shape / --target-opset)"
    lo, hi = 0, len(run.records)  # prefix lo matches, prefix hi does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if matches(mid) else (lo, mid)
    if not run.records:
        return None
    log.info("bisection: mismatch first appears after pass application %d", hi)
    return f"{run.records[hi - 1].name}#{hi}"


def _validate_user_inputs(inputs: Sequence[Mapping[str, np.ndarray]], reference: Session) -> None:
    declared = {i.name: i for i in reference.inputs}
    for feed in inputs:
        for name in feed:
            if name not in declared:
                raise UsageError(
                    f"--input {name}: the model has no input of that name (inputs: {', '.join(declared)})"
                )
        missing = [n for n in declared if n not in feed]
        if missing and len(feed):
            raise UsageError(f"--input: missing arrays for inputs {', '.join(missing)}")


def _source_size(model: Model) -> int:
    if model.source_path is not None and model.source_path.exists():
        return _file_size(model.source_path)
    return model.serialized_size()


def _file_size(path: Path) -> int:
    size = path.stat().st_size
    data = path.with_name(path.name + ".data")
    return size + (data.stat().st_size if data.exists() else 0)
