"""The fuzz loop: input sets -> reference (onnxruntime, original model) vs each target."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optimizer import ir
from optimizer.check import Session, _first_line
from optimizer.errors import UsageError
from optimizer.fuzz.compare import NOISE_FACTOR, OutputStats, tolerance_for
from optimizer.fuzz.inputs import (
    DISTRIBUTIONS,
    LARGE_SCALE,
    InputSpec,
    generate,
    load_samples,
    plan_inputs,
    safe_name,
)
from optimizer.fuzz.targets import BuildOptions, CompiledTarget, GraphTarget, ModuleTarget, Target
from optimizer.ir import Model

log = logging.getLogger(__name__)

#: Target names, in the order they run.
TARGETS = ("graph", "compiled", "module")


@dataclass
class FuzzOptions:
    """Settings of one fuzz run (the ``optimize fuzz`` flags, as an API).

    Attributes:
        targets: Which of ``graph`` (optimized graph in onnxruntime) and ``compiled`` (a module
            compiled now) to fuzz; ``module`` adds an existing module directory.
        module: The module directory for the ``module`` target.
        input_shapes: Pinned input shapes (named dimensions propagate to other inputs).
        samples: The user's input sets, each run once before the random ones.
        sample_specs: More of them, as ``--inputs`` gives them (``NAME=FILE.npy``, ``DIR``).
        ranges: Inclusive value range per input name (overrides the inferred ones).
        distributions: Cycled through by the random input sets.
        iterations: Random input sets.
        seed: Input set ``i`` is drawn from ``numpy.random.default_rng([seed, i])``.
        atol, rtol: Tolerance; None: per output dtype (fp32: 1e-4 / 1e-3).
        noise_factor: An input set fails when ours exceeds ``max(1, noise_factor * floor)``
            times the tolerance, ``floor`` being onnxruntime-optimized's own tolerance ratio
            on it (:mod:`optimizer.fuzz.compare`); 0: the plain tolerance.
        large_scale: Standard deviation of the ``large`` distribution.
        save_worst: Directory for the worst input set of every output.
        build: How the optimized graph / module are made.
    """

    targets: tuple[str, ...] = ("graph",)
    module: Path | None = None
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    samples: list[dict[str, np.ndarray]] = field(default_factory=list)
    sample_specs: list[str] = field(default_factory=list)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    distributions: Sequence[str] = DISTRIBUTIONS
    iterations: int = 20
    seed: int = 0
    atol: float | None = None
    rtol: float | None = None
    noise_factor: float = NOISE_FACTOR
    large_scale: float = LARGE_SCALE
    save_worst: Path | None = None
    build: BuildOptions = field(default_factory=BuildOptions)


@dataclass
class FuzzReport:
    """What a fuzz run saw: per target and output, errors, NaN/Inf counts and the worst case."""

    model: str
    targets: list[tuple[str, str]]  # (name, summary)
    inputs: list[InputSpec]
    options: FuzzOptions
    outputs: list[OutputStats]
    runs: int = 0  # input sets compared
    samples: int = 0  # of them, the user's
    reference_failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)

    def failures(self) -> list[OutputStats]:
        return [o for o in self.outputs if not o.ok]


Progress = Callable[[int, int, float], None]  # (input sets done, total, worst ratio so far)


def fuzz_model(
    model: Model | str | os.PathLike[str],
    options: FuzzOptions | None = None,
    progress: Progress | None = None,
) -> FuzzReport:
    """Fuzzes ``model``'s optimized graph and/or compiled module against onnxruntime.

    Raises:
        UsageError: bad options, an input set the original model cannot run.
        ModelLoadError, InvalidModelError, UnsupportedModelError: the model.
        UnsupportedOpError / ModuleError: the model cannot be compiled / the module loaded.
    """
    options = options or FuzzOptions()
    start = time.perf_counter()
    if not isinstance(model, Model):
        path = Path(model)
        if not path.is_file():
            raise UsageError(f"{path}: no such model file")
        model = ir.load(path)
    if options.iterations < 0:
        raise UsageError(f"--iterations must be >= 0, got {options.iterations}")
    unknown = [t for t in options.targets if t not in TARGETS]
    if unknown:
        raise UsageError(f"unknown fuzz target {unknown[0]!r} (choose from {', '.join(TARGETS)})")
    if ("module" in options.targets) != (options.module is not None):
        raise UsageError("the module target needs a module directory (--module DIR)")
    if options.save_worst is not None:  # fail before the run, not after it
        _make_dir(Path(options.save_worst))
    reference = Session(model, options.build.threads)
    names = reference.output_names
    input_names = [i.name for i in reference.inputs]
    samples = [*options.samples, *load_samples(options.sample_specs, input_names)]
    if not samples and not options.iterations:
        raise UsageError("nothing to run: --iterations 0 and no --inputs")
    targets: list[Target] = []
    try:
        fixed = None
        if "module" in options.targets:
            module_dir = Path(options.module)  # type: ignore[arg-type]
            if not module_dir.is_dir():
                raise UsageError(f"--module {module_dir}: no such module directory")
            mod = ModuleTarget(module_dir, names, options.build.threads)
            mod.check_inputs(reference)
            fixed = mod.input_shapes
            for name, dims in options.input_shapes.items():
                if name in fixed and list(dims) != list(fixed[name]):
                    raise UsageError(
                        f"--input-shape {name}:{'x'.join(map(str, dims))} conflicts with the "
                        f"module's {list(fixed[name])}"
                    )
            targets.append(mod)
        plan = plan_inputs(model, reference, options.input_shapes, samples, options.ranges, fixed)
        if "compiled" in options.targets:
            targets.insert(0, CompiledTarget(model, plan.shapes, options.build, names))
        if "graph" in options.targets:
            targets.insert(0, GraphTarget(model, options.input_shapes, options.build, names))
        alt = NoiseFloor(model, options.build.threads) if options.noise_factor > 0 else None
        report = _loop(reference, alt, targets, plan.specs, plan.samples, options, progress)
        report.model = str(model.source_path) if model.source_path else "<memory>"
        report.targets = [(t.name, t.summary) for t in targets]
    finally:
        for t in targets:
            t.close()
    if options.save_worst is not None:
        save_worst_cases(report, Path(options.save_worst))
    report.seconds = time.perf_counter() - start
    return report


def _loop(
    reference: Session,
    alt: NoiseFloor | None,
    targets: Sequence[Target],
    specs: Sequence[InputSpec],
    samples: Sequence[Mapping[str, np.ndarray]],
    options: FuzzOptions,
    progress: Progress | None,
) -> FuzzReport:
    names = reference.output_names
    out_types = {o.name: o.type for o in reference.sess.get_outputs()}
    stats: dict[tuple[str, str], OutputStats] = {}
    for t in targets:
        for name in names:
            dtype = _ORT_OUT.get(out_types[name], np.float32)
            atol, rtol = tolerance_for(dtype, options.atol, options.rtol)
            stats[(t.name, name)] = OutputStats(t.name, name, atol, rtol, options.noise_factor)
    report = FuzzReport("", [], list(specs), options, list(stats.values()), samples=len(samples))
    total = len(samples) + options.iterations
    for i in range(total):
        if i < len(samples):
            distribution, feeds = "sample", dict(samples[i])
        else:
            k = i - len(samples)
            distribution = options.distributions[k % len(options.distributions)]
            rng = np.random.default_rng([options.seed, k])
            feeds = generate(specs, distribution, rng, options.large_scale)
        try:
            want = reference.run(feeds)
        except Exception as exc:  # onnxruntime's exception types
            if distribution == "sample":
                raise UsageError(
                    f"--inputs set {i + 1}: the original model fails on it: {_first_line(exc)}"
                ) from None
            report.reference_failures.append(f"iteration {i} ({distribution}): {_first_line(exc)}")
            log.info("reference fails on iteration %d (%s): %s", i, distribution, exc)
            continue
        report.runs += 1
        alts = alt.run(feeds, names) if alt is not None else [None] * len(names)
        for t in targets:
            try:
                # overflow in a NumPy reference kernel on large inputs gives inf, compared like
                # any other value: no RuntimeWarning on the user's terminal
                with np.errstate(all="ignore"):
                    got, error = t.run(feeds), ""
            except Exception as exc:  # our side failing on a valid input is a finding
                got, error = [None] * len(names), f"{t.name} failed: {_first_line(exc)}"
            for name, w, g, a in zip(names, want, got, alts):
                stats[(t.name, name)].add(i, distribution, feeds, w, g, error, a)
        if progress is not None:
            progress(i + 1, total, max((s.max_ratio for s in stats.values()), default=0.0))
    if report.runs == 0:
        raise UsageError(
            "the original model failed on every input set (first: "
            f"{report.reference_failures[0]}); pin shapes with --input-shape, give value ranges "
            "with --range NAME=LOW:HIGH or samples with --inputs"
        )
    return report


class NoiseFloor:
    """onnxruntime on the original model with its graph optimizations on: a second fp32
    implementation whose distance to the reference measures each input set's rounding noise."""

    def __init__(self, model: Model, threads: int = 0) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 4
        if threads:
            opts.intra_op_num_threads = threads
        self.sess = None
        try:
            self.sess = ort.InferenceSession(
                model.to_proto().SerializeToString(), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # over 2 GB, or an optimizer failure: judge without a floor
            log.warning("no noise floor (onnxruntime-optimized fails: %s)", _first_line(exc))
        self.inputs = {i.name for i in self.sess.get_inputs()} if self.sess else set()

    def run(self, feeds: Mapping[str, np.ndarray], names: Sequence[str]) -> list[np.ndarray | None]:
        if self.sess is None:
            return [None] * len(names)
        try:
            return self.sess.run(list(names), {k: v for k, v in feeds.items() if k in self.inputs})
        except Exception:  # no floor for this input set
            return [None] * len(names)


_ORT_OUT = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
}


def save_worst_cases(report: FuzzReport, root: Path) -> None:
    """Writes every output's worst input set under ``root/<target>/<output>/``.

    Each folder holds ``<input>.npy`` per input (so ``--inputs root/...`` replays it),
    ``outputs.npz`` (``expected`` from onnxruntime, ``actual`` from the target) and
    ``case.json`` (iteration, distribution, seed, errors). Folders are written aside and
    renamed into place.
    """
    _make_dir(root)
    for stats in report.outputs:
        try:
            _save_case(report, stats, root)
        except OSError as exc:
            raise UsageError(f"--save-worst {root}: cannot write ({exc})") from None


def _make_dir(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--save-worst {root}: cannot create the directory ({exc})") from None


def _save_case(report: FuzzReport, stats: OutputStats, root: Path) -> None:
    worst = stats.worst
    if worst is None:
        return
    final = root / stats.target / safe_name(stats.name)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        for name, array in worst.feeds.items():
            np.save(tmp / f"{safe_name(name)}.npy", array)
        arrays = {"expected": worst.expected}
        if worst.actual is not None:
            arrays["actual"] = worst.actual
        np.savez(tmp / "outputs.npz", **{k: np.asarray(v) for k, v in arrays.items()})
        case = {
            "model": report.model,
            "target": stats.target,
            "output": stats.name,
            "iteration": worst.iteration,
            "distribution": worst.distribution,
            "seed": report.options.seed,
            "tolerance_ratio": _finite(worst.ratio),
            "noise_floor_ratio": _finite(worst.floor),
            "noise_factor": stats.noise_factor,
            "detail": worst.detail,
            "ok": worst.score <= 1.0,
        }
        (tmp / "case.json").write_text(json.dumps(case, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    worst.saved = str(final)


def _finite(x: float) -> float | str:
    return x if np.isfinite(x) else "inf"
