"""Tactic selection: among the native kernels that can run a group, the fastest on its shapes.

After ``bind_group`` picked the rule-based kernel of a group, ``select`` looks for a *family*
whose ``match`` accepts that binding. A family lists candidate builders (data: add a
``Family`` to ``FAMILIES`` to tune more groups); each builds a :class:`Candidate` — the kernel,
its timing arrays (random non-constant inputs of the real pinned shapes, the real weights) and
how to materialize its binding — or raises :class:`Skip` with a reason.

With ``tune`` on, every candidate is called through ``optimizer._runtime.time_builtin`` on the
same arrays, interleaved (A B A B ...) until each has run a few milliseconds; the median per
call decides. Each candidate's outputs are checked against the rule-based kernel's (1e-4 abs +
1e-3 rel); one that disagrees is discarded with a warning. The winner is stored in a JSON
timing cache keyed by the candidates' names, the group's input shapes / dtypes, the
parameters, the CPU ISA the native kernels dispatch to, the thread count and the runtime
library build. Without ``tune`` a cached winner for the key is used, else the rule-based
binding (compiles stay fast and deterministic).

pointwise Conv (1x1, stride 1, no padding, group 1): ``conv2d_packed_f32`` or ``gemm_f32``
(through [N, C, H*W] views, see :class:`Splice`); depthwise Conv: ``depthwise_conv2d_f32`` or
``conv2d_packed_f32`` with group = C.

Cache file: ``$ODC_CACHE_DIR/tactics.json``, default ``~/.cache/onnx-deploy-optimizer/``;
written atomically (temporary file + rename); an unreadable or corrupt cache is ignored with a
warning.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from optimizer import ir
from optimizer.ir import Graph, Node, Value
from optimizer.lower.bind import Bound, _builtin, pack_conv_weights
from optimizer.lower.partition import SINGLE, FusionGroup
from optimizer.module.writer import KernelBinding

log = logging.getLogger(__name__)

CACHE_VERSION = 1
ATOL, RTOL = 1e-4, 1e-3
SECONDS_PER_CANDIDATE = 0.004  # timed per candidate, in interleaved rounds
ROUNDS = 6
MARGIN = 0.97  # another candidate replaces the rule-based kernel only when 3% faster (noise)


class Skip(Exception):
    """A candidate cannot run this group (the reason)."""


@dataclass
class Candidate:
    """One way to run a group.

    Attributes:
        name: The tactic's name (the kernel entry, unless a family runs one kernel two ways).
        entry: The builtin kernel.
        inputs: Timing arrays in the kernel's argument order (None: omitted).
        output_shapes: Shapes of the outputs (float32), in the kernel's order.
        iparams / fparams / workspace: The step's parameters.
        bind: Materializes the binding (adds constants to the graph), or a :class:`Splice`
            when the kernel needs reshaped operands; None for the default.
    """

    name: str
    entry: str
    inputs: list[np.ndarray | None]
    output_shapes: list[tuple[int, ...]]
    iparams: list[int]
    fparams: list[float]
    workspace: int = 0
    bind: Callable[[], KernelBinding | Splice] | None = None


@dataclass
class Splice:
    """A binding that reads / writes reshaped views of the group's values.

    ``before`` / ``after``: view steps (a Reshape group bound to ``copy``) run right before /
    after the group; ``views``: the ``before`` outputs, which the memory plan places on their
    input's bytes (``plan_memory(views=...)``), so every copy is a no-op.
    """

    binding: KernelBinding
    before: list[tuple[FusionGroup, KernelBinding]] = field(default_factory=list)
    after: list[tuple[FusionGroup, KernelBinding]] = field(default_factory=list)
    views: list[str] = field(default_factory=list)


@dataclass
class Context:
    """What a candidate builder sees: the group, its rule-based binding and timing arrays."""

    graph: Graph
    group: FusionGroup
    default: KernelBinding
    values: dict[str, Value]
    arrays: dict[str, np.ndarray]

    def array(self, name: str | None) -> np.ndarray | None:
        return None if name is None else self.arrays[name]

    def inputs(self) -> list[np.ndarray | None]:
        return [self.array(n) for n in self.default.inputs]


@dataclass
class Family:
    """Groups whose rule-based binding ``match`` accepts, and their candidate builders."""

    name: str
    match: Callable[[KernelBinding], bool]
    builders: list[Callable[[Context], Candidate]]


@dataclass
class TacticRecord:
    """How one step's kernel was chosen (for the compile report)."""

    step: int
    node: str
    family: str
    winner: str
    source: str  # tuned, tuned (same key), cache, default
    seconds: dict[str, float] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)

    def format(self) -> str:
        times = ", ".join(
            f"{n} {s * 1e6:.1f} us{' *' if n == self.winner else ''}"
            for n, s in sorted(self.seconds.items(), key=lambda kv: kv[1])
        )
        out = f"step {self.step} {self.node} [{self.family}]: {self.winner} ({self.source})"
        if times:
            out += f": {times}"
        for name, reason in self.rejected.items():
            out += f"; {name} rejected: {reason}"
        return out


# -- candidate builders -----------------------------------------------------------------------------


def _default(ctx: Context) -> Candidate:
    d = ctx.default
    shapes = [tuple(ir.static_shape(ctx.values[n]) or ()) for n in d.outputs]
    return Candidate(d.entry, d.entry, ctx.inputs(), shapes, list(d.iparams), list(d.fparams),
                     d.workspace)  # fmt: skip


def _is_depthwise(b: KernelBinding) -> bool:
    return b.kind == "builtin" and b.entry == "depthwise_conv2d_f32"


def _depthwise_as_packed(ctx: Context) -> Candidate:
    """The depthwise conv as ``conv2d_packed_f32`` with group = C (packed [C, 1, KH*KW, 32])."""
    d = ctx.default
    x_name, w_name, b_name, r_name = d.inputs
    w = ir.const_value(ctx.values[w_name])
    if w is None:
        raise Skip("weights are not constant")
    group = int(d.iparams[8])
    co, kh, kw = int(w.shape[0]), int(w.shape[2]), int(w.shape[3])
    packed = pack_conv_weights(np.asarray(w, dtype=np.float32), group)
    iparams = [*d.iparams, co, kh, kw]
    out_shapes = _default(ctx).output_shapes

    def bind() -> KernelBinding:
        wv = ctx.values[w_name]
        pv = ir.make_constant(ctx.graph, packed, f"{w_name}_packed")
        ctx.group.inputs = [pv if v is wv else v for v in ctx.group.inputs]
        values = [ctx.values[x_name], pv, _value(ctx, b_name), _value(ctx, r_name)]
        return _builtin("conv2d_packed_f32", values, [ctx.values[n] for n in d.outputs],
                        iparams, list(d.fparams))  # fmt: skip

    inputs = [ctx.array(x_name), packed, ctx.array(b_name), ctx.array(r_name)]
    return Candidate("conv2d_packed_f32", "conv2d_packed_f32", inputs, out_shapes, iparams,
                     list(d.fparams), 0, bind)  # fmt: skip


def _is_pointwise(b: KernelBinding) -> bool:
    if b.kind != "builtin" or b.entry != "conv2d_packed_f32" or len(b.iparams) < 14:
        return False
    p = b.iparams
    return list(p[0:9]) == [1, 1, 0, 0, 0, 0, 1, 1, 1] and list(p[11:14])[1:] == [1, 1]


def _pointwise_as_gemm(ctx: Context) -> Candidate:
    """Y[n] = W[Co, C] @ X[n] over X viewed as [N, C, H*W]: ``gemm_f32`` (bias as [Co, 1]).

    The module format has no strided views, so X (and the residual) are handed over through
    Reshape steps whose outputs share their input's bytes (no-op ``copy``), and Y through one
    written in place (see :class:`Splice`). Skipped where such a step would really copy: X or
    the residual a graph input, Y a graph output.
    """
    d = ctx.default
    x_name, w_name, b_name, r_name = d.inputs
    (y_name,) = d.outputs
    wp = ir.const_value(ctx.values[w_name])
    if wp is None:
        raise Skip("weights are not constant")
    graph = ctx.graph
    interface = {v.name for v in graph.inputs}
    if x_name in interface or r_name in interface:
        raise Skip("X or the residual is a graph input: its view would be a real copy")
    if y_name in {v.name for v in graph.outputs}:
        raise Skip("Y is a graph output: its view would be a real copy")
    if b_name is not None and ir.const_value(ctx.values[b_name]) is None:
        raise Skip("the bias is computed")
    co = int(d.iparams[11])
    x = ctx.arrays[x_name]
    n, c = x.shape[0], x.shape[1]
    hw = int(np.prod(x.shape[2:]))
    # unpack Wp[1, q, k, j] = W[q*32 + j, k]
    w = np.ascontiguousarray(np.asarray(wp).transpose(0, 1, 3, 2).reshape(-1, c)[:co])
    bias = ctx.array(b_name)
    bcol = None if bias is None else np.ascontiguousarray(bias.reshape(co, 1))
    inputs = [w, x.reshape(n, c, hw), bcol,
              None if r_name is None else ctx.arrays[r_name].reshape(n, co, hw)]  # fmt: skip
    act, after = int(d.iparams[9]), int(d.iparams[10])
    iparams, fparams = [0, 0, act, after], [1.0, 1.0, float(d.fparams[0]), float(d.fparams[1])]

    def bind() -> Splice:
        group, base = ctx.group, ctx.group.name
        splice = Splice(binding=None)  # type: ignore[arg-type]

        def view(src: Value, shape: tuple[int, ...], tag: str, before: bool) -> Value:
            out = ir.make_value(graph, f"{base}/{tag}", np.float32, list(shape))
            a, b = (src, out) if before else (out, src)
            node = Node(op="Reshape", name=f"{base}/{tag}_view")
            vg = FusionGroup([node], [a], [b], "reshape", SINGLE)
            (splice.before if before else splice.after).append(
                (vg, _builtin("copy", [a], [b], [], []))
            )
            if before:
                splice.views.append(out.name)
            return out

        x3 = view(ctx.values[x_name], (n, c, hw), "x_rows", True)
        r3 = None if r_name is None else view(ctx.values[r_name], (n, co, hw), "r_rows", True)
        y3 = view(ctx.values[y_name], (n, co, hw), "y_rows", False)
        wv = ir.make_constant(graph, w, f"{w_name}_rows")
        bv = None if bcol is None else ir.make_constant(graph, bcol, f"{b_name}_col")
        group.inputs = [wv, x3, bv, r3]
        group.outputs = [y3]
        splice.binding = _builtin("gemm_f32", [wv, x3, bv, r3], [y3], iparams, fparams)
        return splice

    return Candidate("gemm_f32", "gemm_f32", inputs, [(n, co, hw)], iparams, fparams, 0, bind)


FAMILIES: list[Family] = [
    Family("depthwise_conv", _is_depthwise, [_default, _depthwise_as_packed]),
    Family("pointwise_conv", _is_pointwise, [_default, _pointwise_as_gemm]),
]


def _value(ctx: Context, name: str | None) -> Value | None:
    return None if name is None else ctx.values[name]


# -- the timing cache -------------------------------------------------------------------------------


def cache_path() -> Path:
    from optimizer.kernels.cache import cache_root

    return cache_root() / "tactics.json"


class TimingCache:
    """The JSON timing cache: key string -> {"winner", "seconds"}."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_path()
        self.entries: dict[str, dict[str, Any]] = self._read()
        self.dirty = False

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as err:
            log.warning("tactic cache %s unreadable (%s): ignored", self.path, err)
            return {}
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
                raise ValueError(
                    f"version {data.get('version') if isinstance(data, dict) else '?'}"
                )
            entries = data["entries"]
            if not isinstance(entries, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("winner"), str) for v in entries.values()
            ):
                raise ValueError("malformed entries")
            return entries
        except (ValueError, KeyError, TypeError) as err:
            log.warning("tactic cache %s is corrupt (%s): ignored", self.path, err)
            return {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, winner: str, seconds: dict[str, float]) -> None:
        self.entries[key] = {"winner": winner, "seconds": seconds}
        self.dirty = True

    def save(self) -> None:
        """Merges into the file on disk (another compile may have written it) atomically."""
        if not self.dirty:
            return
        merged = {**self._read(), **self.entries}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tactics.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(
                    {"version": CACHE_VERSION, "entries": merged}, f, indent=1, sort_keys=True
                )
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.entries = merged
        self.dirty = False


def native_isa() -> str:
    from optimizer import _runtime

    return str(_runtime.builtin_isa())


@functools.lru_cache(maxsize=1)
def native_build() -> str:
    """SHA-256 prefix of the runtime library holding the kernels: a rebuilt kernel is retuned."""
    from optimizer import _runtime

    try:
        return hashlib.sha256(Path(_runtime.__file__).read_bytes()).hexdigest()[:16]
    except (OSError, TypeError):  # pragma: no cover - a runtime without a file
        return "unknown"


def cache_key(family: str, names: list[str], default: KernelBinding,
              shapes: list[tuple[str, tuple[int, ...]] | None], isa: str, threads: int) -> str:  # fmt: skip
    """The cache key: candidates, input dtypes / shapes, parameters, ISA, threads, and the
    runtime library's build (kernels change between builds)."""
    key = {
        "family": family,
        "candidates": sorted(names),
        "inputs": [None if s is None else [s[0], list(s[1])] for s in shapes],
        "iparams": [int(x) for x in default.iparams],
        "fparams": [float(x) for x in default.fparams],
        "isa": isa,
        "threads": int(threads),
        "build": native_build(),
    }
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


# -- timing -----------------------------------------------------------------------------------------


def _outputs(c: Candidate) -> list[np.ndarray]:
    return [np.zeros(s, dtype=np.float32) for s in c.output_shapes]


def time_candidates(
    candidates: list[Candidate], threads: int
) -> tuple[dict[str, float], dict[str, list[np.ndarray]], dict[str, str]]:
    """Median seconds per call of each candidate (interleaved), its outputs, failures."""
    from optimizer import _runtime
    from optimizer.errors import ModuleError

    outs: dict[str, list[np.ndarray]] = {}
    failed: dict[str, str] = {}
    samples: dict[str, list[float]] = {}
    iters: dict[str, int] = {}
    live = []
    for c in candidates:
        outs[c.name] = _outputs(c)
        try:
            first = _runtime.time_builtin(c.entry, c.inputs, outs[c.name], c.iparams, c.fparams,
                                          c.workspace, threads, 2)  # fmt: skip
        except ModuleError as err:
            failed[c.name] = str(err)
            continue
        per = max(min(first), 1e-7)
        iters[c.name] = max(1, min(1000, int(SECONDS_PER_CANDIDATE / ROUNDS / per)))
        samples[c.name] = []
        live.append(c)
    for _ in range(ROUNDS):
        for c in live:
            samples[c.name] += _runtime.time_builtin(
                c.entry, c.inputs, outs[c.name], c.iparams, c.fparams, c.workspace, threads,
                iters[c.name],
            )  # fmt: skip
    return {n: statistics.median(s) for n, s in samples.items()}, outs, failed


def _disagreement(got: list[np.ndarray], want: list[np.ndarray]) -> str | None:
    for g, w in zip(got, want):
        g = g.reshape(w.shape)
        bad = ~(np.abs(g - w) <= ATOL + RTOL * np.abs(w))  # NaN counts as bad
        if bad.any():
            err = float(np.max(np.abs(g - w)))
            return f"disagrees with the rule-based kernel (max abs error {err:.3g})"
    return None


# -- entry point --------------------------------------------------------------------------------------


@dataclass
class Tuner:
    """Tactic selection for one compile job.

    Attributes:
        tune: Time the candidates (else: cached winner, or the rule-based default).
        threads: Threads the kernels are timed with (part of the key).
        cache: The timing cache (None: no cache at all).
    """

    tune: bool = False
    threads: int = 1
    cache: TimingCache | None = None
    records: list[TacticRecord] = field(default_factory=list)
    splices: dict[int, Splice] = field(default_factory=dict)
    tuned: dict[str, tuple[str, str, dict[str, float]]] = field(default_factory=dict)
    seed: int = 0

    def select(self, graph: Graph, group: FusionGroup, bound: Bound, step: int) -> Bound:
        """``bound`` or a faster candidate's binding for the same group."""
        if bound.fallback:
            return bound
        family = next((f for f in FAMILIES if f.match(bound.binding)), None)
        if family is None:
            return bound
        ctx = self._context(graph, group, bound.binding)
        if ctx is None:
            return bound
        candidates: list[Candidate] = []
        rejected: dict[str, str] = {}
        for builder in family.builders:
            try:
                candidates.append(builder(ctx))
            except Skip as why:
                rejected[getattr(builder, "__name__", "?")] = str(why)
        if len(candidates) < 2:
            return bound
        shapes = [None if n is None else (_dtype_name(ctx.values[n]), tuple(ir.static_shape(ctx.values[n]) or ()))
                  for n in bound.binding.inputs]  # fmt: skip
        key = cache_key(family.name, [c.name for c in candidates], bound.binding, shapes,
                        native_isa(), self.threads)  # fmt: skip
        record = TacticRecord(step, group.name, family.name, candidates[0].name, "default",
                              rejected=rejected)  # fmt: skip
        by_name = {c.name: c for c in candidates}
        if self.tune and key in self.tuned:  # the same shapes again in this compile
            record.winner, record.source, record.seconds = self.tuned[key]
            record.source = "tuned (same key)"
        elif self.tune:
            seconds, outs, failed = time_candidates(candidates, self.threads)
            record.rejected.update(failed)
            reference = outs.get(candidates[0].name)
            for c in candidates[1:]:
                if c.name not in seconds or reference is None:
                    continue
                why = _disagreement(outs[c.name], reference)
                if why:
                    log.warning("tactic %s for %s discarded: %s", c.name, group.name, why)
                    record.rejected[c.name] = why
                    del seconds[c.name]
            record.seconds = seconds
            default = candidates[0].name
            usable = {
                n: s if n == default else s / MARGIN
                for n, s in seconds.items()
                if n == default or by_name[n].bind
            }
            if usable:
                record.winner = min(usable, key=usable.__getitem__)
                record.source = "tuned"
                self.tuned[key] = (record.winner, "tuned", seconds)
                if self.cache is not None:
                    self.cache.put(key, record.winner, seconds)
        elif self.cache is not None and (hit := self.cache.get(key)) is not None:
            winner = hit["winner"]
            if winner in by_name and (winner == candidates[0].name or by_name[winner].bind):
                record.winner, record.source = winner, "cache"
                record.seconds = {k: float(v) for k, v in hit.get("seconds", {}).items()}
        self.records.append(record)
        chosen = by_name[record.winner]
        if chosen.bind is None or chosen is candidates[0]:
            return bound
        result = chosen.bind()
        if isinstance(result, Splice):
            self.splices[step] = result
            return Bound(result.binding)
        return Bound(result)

    def splice(
        self, steps: list[FusionGroup], bounds: list[Bound]
    ) -> tuple[list[FusionGroup], list[Bound], list[str]]:
        """The steps with every splice's view steps inserted (records renumbered), views."""
        if not self.splices:
            return steps, bounds, []
        out_steps: list[FusionGroup] = []
        out_bounds: list[Bound] = []
        views: list[str] = []
        new_index: dict[int, int] = {}
        for i, (group, bound) in enumerate(zip(steps, bounds)):
            sp = self.splices.get(i)
            extra_before = sp.before if sp else []
            for vg, vb in extra_before:
                out_steps.append(vg)
                out_bounds.append(Bound(vb))
            new_index[i] = len(out_steps)
            out_steps.append(group)
            out_bounds.append(bound)
            for vg, vb in sp.after if sp else []:
                out_steps.append(vg)
                out_bounds.append(Bound(vb))
            if sp:
                views.extend(sp.views)
        for r in self.records:
            r.step = new_index[r.step]
        self.splices = {}
        return out_steps, out_bounds, views

    def _context(self, graph: Graph, group: FusionGroup, b: KernelBinding) -> Context | None:
        values = {v.name: v for v in [*group.inputs, *group.outputs] if v is not None}
        rng = np.random.default_rng(self.seed)
        arrays: dict[str, np.ndarray] = {}
        for name in [*b.inputs, *b.outputs]:
            if name is None:
                continue
            v = values.get(name) or _find(graph, name)
            if v is None:
                return None
            values[name] = v
            const = ir.const_value(v)
            if const is not None:
                arrays[name] = np.ascontiguousarray(const)
                continue
            shape, dtype = ir.static_shape(v), ir.numpy_dtype_of(v)
            if shape is None or dtype != np.float32:
                return None
            arrays[name] = rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
        return Context(graph, group, b, values, arrays)

    def report_lines(self) -> list[str]:
        return [r.format() for r in self.records if r.source != "default" or r.seconds]


def _find(graph: Graph, name: str) -> Value | None:
    for node in graph.nodes:
        for v in [*node.inputs, *node.outputs]:
            if v is not None and v.name == name:
                return v
    for v in [*graph.inputs, *graph.outputs]:
        if v.name == name:
            return v
    return None


def _dtype_name(v: Value) -> str:
    dt = ir.numpy_dtype_of(v)
    return "?" if dt is None else dt.name


def default_threads() -> int:
    env = os.environ.get("ODC_TUNE_THREADS")
    if env:
        return max(1, int(env))
    return os.cpu_count() or 1
