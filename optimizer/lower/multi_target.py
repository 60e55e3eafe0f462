"""``--target cpu,cuda``: one module directory carrying a plan per target, picked at load.

The model is optimized once (the numerical check included); each target then gets its own copy
of the optimized graph and goes through the single-target lowering (``compile.lower_model``:
the CPU path with native kernels, tactics and pre-packed weights; the CUDA path with cubins in
the chosen precision), written straight into its sub-directory of the final layout
(``optimizer/module/multi_target.py``, format version 3). So each part is exactly the module
``--target cpu`` / ``--target cuda`` would write.

Options: ``--arch`` / ``--precision`` / ``--tf32`` apply to the cuda part; ``--tune`` to the
targets that can time tactics (``TUNABLE_TARGETS``), the others use their default selection;
``--no-fallback`` to the cpu part (the cuda part never falls back). The cuda part is compiled
first: an ``UnsupportedOpError`` there fails the job early, names the target, and leaves
nothing behind.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optimizer.ir import Model
from optimizer.kernels.registry import UnsupportedOpError
from optimizer.lower.compile import (
    CompileOptions,
    CompileReport,
    _cuda_options,
    lower_model,
    optimize_for_lowering,
)
from optimizer.module.multi_target import write_multi_target
from optimizer.optimize import OptimizeReport

log = logging.getLogger(__name__)

#: Targets whose lowering can time tactics (``--tune``); for the others ``--tune`` is ignored.
TUNABLE_TARGETS = ("cpu", "cuda")
#: Build order: the part most likely to be refused first.
_BUILD_FIRST = ("cuda", "cpu")


@dataclass
class MultiTargetReport:
    """What a multi-target compile produced: one ``CompileReport`` per target."""

    output: str
    targets: dict[str, CompileReport]
    optimize: OptimizeReport | None
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "targets": {name: report.to_json() for name, report in self.targets.items()},
            "notes": self.notes,
            "seconds": round(self.seconds, 3),
        }

    def format(self) -> str:
        lines = [f"compiled module: {self.output} (targets {', '.join(self.targets)})"]
        for name, report in self.targets.items():
            body = report.format().splitlines()[1:]  # each part's own "compiled module:" line
            lines.append(f"  {name}/:")
            lines.extend("  " + line for line in body)
        lines.extend(f"  note: {note}" for note in self.notes)
        lines.append(f"  time: {self.seconds:.2f} s")
        return "\n".join(lines)


def target_options(options: CompileOptions, target: str) -> CompileOptions:
    """The single-target options of ``target``'s part of a multi-target compile."""
    tune = options.tune and target in TUNABLE_TARGETS
    if target == "cuda":
        return dataclasses.replace(options, target="cuda", tune=tune)
    defaults = CompileOptions()
    return dataclasses.replace(
        options, target=target, tune=tune, arch=defaults.arch, precision=defaults.precision,
        allow_tf32=defaults.allow_tf32,
    )  # fmt: skip


def compile_multi_target(
    model: Model,
    out_dir: str | os.PathLike[str],
    options: CompileOptions,
    targets: Sequence[str],
    progress: Callable[[str], None] | None = None,
) -> MultiTargetReport:
    """Compiles ``model`` once per target into the multi-target module ``out_dir``.

    Raises:
        UsageError: bad options for a target (``--arch sm_1``...), checked before optimizing.
        UnsupportedOpError: a part cannot be compiled; the message starts with the target.
        UnsupportedModelError: as ``compile_model``.
    """
    start = time.perf_counter()
    parts = {target: target_options(options, target) for target in targets}
    for part in parts.values():
        _cuda_options(part)  # usage errors before the (slow) optimizer runs
    notes = []
    if options.tune and any(t not in TUNABLE_TARGETS for t in targets):
        skipped = [t for t in targets if t not in TUNABLE_TARGETS]
        tuned = [t for t in targets if t in TUNABLE_TARGETS]
        notes.append(f"--tune applies to the {' and '.join(tuned) or 'no'} part only; the "
                     f"{' and '.join(skipped)} part uses each kernel's default configuration")  # fmt: skip
    optimized, opt_report = optimize_for_lowering(model, options, progress)

    def build(target: str, directory: Path) -> CompileReport:
        log.info("compiling the %s part", target)
        try:
            return lower_model(optimized.copy(), directory, parts[target], opt_report)
        except UnsupportedOpError as err:
            if err.args:  # name the part: the job compiles several
                err.args = (f"the {target} part of --target {','.join(targets)}: {err.args[0]}",
                            *err.args[1:])  # fmt: skip
            raise

    order = [t for t in _BUILD_FIRST if t in targets]
    out, reports = write_multi_target(out_dir, targets, build, build_order=order)
    for target, report in reports.items():
        report.output = str(out / target)  # it was written in the temporary directory
    for note in notes:
        log.info("%s", note)
    return MultiTargetReport(
        output=str(out),
        targets={t: reports[t] for t in targets},
        optimize=opt_report,
        seconds=time.perf_counter() - start,
        notes=notes,
    )
