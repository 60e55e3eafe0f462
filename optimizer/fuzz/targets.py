"""What ``optimize fuzz`` compares against onnxruntime on the original model.

* ``graph``: the optimized graph (``optimize_model``, its own check off), run in onnxruntime;
* ``compiled``: the model compiled into a temporary module, run by the C++ runtime;
* ``module``: an existing module directory (``--module DIR``), run by the C++ runtime.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optimizer.check import Session
from optimizer.errors import UsageError
from optimizer.ir import Model
from optimizer.optimize import OptimizeOptions, optimize_model

log = logging.getLogger(__name__)


@dataclass
class BuildOptions:
    """How the fuzzed artifacts are made (the main CLI's flags of the same names)."""

    level: str = "O2"
    disable: frozenset[str] = frozenset()
    target_opset: int | None = None
    no_fallback: bool = False
    threads: int = 0


class Target:
    """Something that maps input arrays to output arrays, compared against the reference."""

    name: str
    summary: str
    input_shapes: dict[str, tuple[int, ...]] | None = None  # fixed by a module, else None

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Releases temporary files."""


class GraphTarget(Target):
    """The optimized graph in onnxruntime (graph optimizations off, as the reference)."""

    def __init__(
        self,
        model: Model,
        pinned: Mapping[str, Sequence[int]],
        options: BuildOptions,
        output_names: Sequence[str],
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.name = "graph"
        optimized, report = optimize_model(
            model,
            OptimizeOptions(
                level=options.level,
                input_shapes={k: list(v) for k, v in pinned.items()},
                target_opset=options.target_opset,
                disable=set(options.disable),
                check=False,
            ),
            progress,
        )
        self.summary = (
            f"optimized graph ({options.level}): {report.nodes_before} -> "
            f"{report.nodes_after} nodes"
        )
        self.session = Session(optimized, options.threads)
        _same_outputs(self.session.output_names, output_names, "the optimized graph")
        self.output_names = list(output_names)
        self._input_names = {i.name for i in self.session.inputs}

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        feeds = {k: v for k, v in feeds.items() if k in self._input_names}
        return self.session.sess.run(self.output_names, feeds)


class ModuleTarget(Target):
    """A compiled module run by the C++ runtime."""

    def __init__(
        self, path: str | os.PathLike[str], output_names: Sequence[str], threads: int = 0
    ) -> None:
        from optimizer.runtime import load

        self.name = "module"
        self.module = load(path)
        if threads:
            self.module.set_num_threads(threads)
        self.summary = f"module {os.fspath(path)}: {len(self.module.steps)} steps"
        self.input_shapes = {i.name: tuple(i.shape) for i in self.module.inputs}
        _same_outputs([o.name for o in self.module.outputs], output_names, "the module")
        self.output_names = list(output_names)

    def check_inputs(self, reference: Session) -> None:
        """The module's signature must fit the model's inputs (names, dtypes, fixed dims)."""
        from optimizer.check import _ORT_TYPES

        want = {i.name: i for i in reference.inputs}
        have = {i.name: i for i in self.module.inputs}
        hint = "was it compiled from this model?"
        if sorted(want) != sorted(have):
            raise UsageError(
                f"--module: the module's inputs {sorted(have)} are not the model's "
                f"{sorted(want)}: {hint}"
            )
        for name, info in have.items():
            dtype = _ORT_TYPES.get(want[name].type)
            declared = list(want[name].shape)
            fits = len(declared) == len(info.shape) and all(
                not isinstance(d, int) or d <= 0 or d == m for d, m in zip(declared, info.shape)
            )
            if dtype is None or np.dtype(dtype).name != info.dtype or not fits:
                raise UsageError(
                    f"--module: input {name} is {info.dtype}{list(info.shape)} in the module, "
                    f"{want[name].type}{declared} in the model: {hint}"
                )

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        out = self.module.run(feeds)
        return [out[n] for n in self.output_names]


class CompiledTarget(ModuleTarget):
    """The model compiled now into a temporary module (``--compiled``)."""

    def __init__(
        self,
        model: Model,
        shapes: Mapping[str, Sequence[int]],
        options: BuildOptions,
        output_names: Sequence[str],
        progress: Callable[[str], None] | None = None,
    ) -> None:
        from optimizer.lower.compile import CompileOptions, compile_model

        self._tmp = tempfile.TemporaryDirectory(prefix="optimize-fuzz-")
        path = Path(self._tmp.name) / "module"
        try:
            report = compile_model(
                model,
                path,
                CompileOptions(
                    OptimizeOptions(
                        level=options.level,
                        input_shapes={k: list(v) for k, v in shapes.items()},
                        target_opset=options.target_opset,
                        disable=set(options.disable),
                        check=False,
                    ),
                    no_fallback=options.no_fallback,
                ),
                progress,
            )
            super().__init__(path, output_names, options.threads)
        except BaseException:
            self._tmp.cleanup()
            raise
        self.name = "compiled"
        fallback = sum(1 for s in report.steps if s.fallback)
        self.summary = f"compiled module: {len(report.steps)} steps" + (
            f", {fallback} on reference (NumPy) kernels" if fallback else ""
        )

    def close(self) -> None:
        self.module = None  # the runtime maps the weights: unmap before deleting
        self._tmp.cleanup()


def _same_outputs(have: Sequence[str], want: Sequence[str], what: str) -> None:
    if sorted(have) != sorted(want):
        missing = [n for n in want if n not in have]
        raise UsageError(
            f"{what} has outputs {list(have)}, the model {list(want)}"
            + (f" (missing {', '.join(missing)})" if missing else "")
        )
