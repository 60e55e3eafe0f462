"""The compiled-module format, versions 1 and 2 (docs/module-format.md): dataclasses, JSON, checks.

Version 2 adds CUDA modules: ``targets: ["cuda"]`` with a ``cuda`` section (``arch``), kernels
of kind ``cubin`` with ``launch`` metadata (``num_warps``, ``shared``, ``params``), steps with
a ``grid`` and one ``args`` entry per cubin parameter, values on device ``cuda``. CPU modules
are still written as version 1.

``Manifest`` and ``Plan`` mirror manifest.json and plan.json field by field. ``from_dict``
parses strictly (a missing or mistyped field is an ``InvalidModuleError`` naming it), and
``problems()`` / ``validate()`` apply the rules the C++ runtime applies at load, with the same
one-line messages (``invalid module: plan.json: values[12]: offset ...``), so the writer
refuses to produce a module the runtime would reject.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any

from optimizer.module.json_io import InvalidModuleError, Reader, dumps, loads

FORMAT_NAME = "onnx-deploy-module"
FORMAT_VERSION = 1
#: Version of modules with CUDA kernels (cubins); this reader takes 1 and 2.
FORMAT_VERSION_CUDA = 2
FORMAT_VERSIONS = (1, 2)
PRODUCER_NAME = "onnx-deploy-optimizer"

# dtype name -> (ONNX TensorProto number, as in the ABI's odc_dtype; element size in bytes)
DTYPES: dict[str, tuple[int, int]] = {
    "float32": (1, 4),
    "uint8": (2, 1),
    "int8": (3, 1),
    "uint16": (4, 2),
    "int16": (5, 2),
    "int32": (6, 4),
    "int64": (7, 8),
    "bool": (9, 1),
    "float16": (10, 2),
    "float64": (11, 8),
    "uint32": (12, 4),
    "uint64": (13, 8),
    "bfloat16": (16, 2),
}
STORAGES = ("input", "output", "weights", "arena")
DEVICES = ("cpu", "cuda", "opencl")
KERNEL_KINDS = ("builtin", "shared_library", "python", "cubin")
#: Launch parameter types of a cubin kernel and the step argument kinds each accepts.
PARAM_TYPES = ("ptr", "i32", "i64", "f32")
ARG_KINDS = {"ptr": ("in", "out", "null", "workspace"), "i32": ("i32",), "i64": ("i64",),
             "f32": ("f32",)}  # fmt: skip
_ARCH = re.compile(r"^sm_[0-9]{2,3}a?$")
MANIFEST_FILE = "manifest.json"
PLAN_FILE = "plan.json"
WEIGHTS_FILE = "weights.bin"
GRAPH_FILE = "graph.onnx"
INIT_FILE = "__init__.py"
KERNELS_DIR = "kernels"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


# -- manifest.json -----------------------------------------------------------------------------


@dataclass
class Producer:
    name: str = PRODUCER_NAME
    version: str = "0.0.0"


@dataclass
class TensorSignature:
    """An input or output of the module; ``value`` is its id in plan.json."""

    name: str
    dtype: str
    shape: list[int]
    value: int


@dataclass
class KernelEntry:
    """One row of the kernel table (``file`` is set for ``shared_library`` and ``cubin``).

    ``launch`` (cubin kernels, version 2): ``{"num_warps", "shared", "params"}``.
    """

    id: int
    name: str
    backend: str
    kind: str
    entry: str
    file: str | None = None
    version: int = 1
    launch: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.launch is None:
            del d["launch"]
        return d


@dataclass
class FileEntry:
    size: int
    sha256: str


@dataclass
class Manifest:
    """manifest.json: what the module is. ``files`` lists every file but manifest.json."""

    source_model_sha256: str
    inputs: list[TensorSignature]
    outputs: list[TensorSignature]
    kernels: list[KernelEntry]
    files: dict[str, FileEntry]
    targets: list[str] = field(default_factory=lambda: ["cpu"])
    producer: Producer = field(default_factory=Producer)
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION
    cuda: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kernels"] = [k.to_dict() for k in self.kernels]
        order = ["format", "format_version", "producer", "source_model_sha256", "targets"]
        if self.cuda is not None:
            order.append("cuda")
        order += ["inputs", "outputs", "kernels", "files"]
        return {k: d[k] for k in order}

    @classmethod
    def from_dict(cls, d: Any) -> Manifest:
        r = Reader(MANIFEST_FILE)
        r.obj(d, "")
        _check_format(r, d)
        producer = r.obj(r.get(d, "producer", dict), "producer")
        return cls(
            format=r.get(d, "format", str),
            format_version=r.get(d, "format_version", int),
            producer=Producer(
                r.get(producer, "name", str, "producer"),
                r.get(producer, "version", str, "producer"),
            ),
            source_model_sha256=r.get(d, "source_model_sha256", str),
            cuda=r.get(d, "cuda", dict, optional=True),
            targets=[
                r.typed(t, str, f"targets[{i}]") for i, t in enumerate(r.get(d, "targets", list))
            ],
            inputs=[
                _signature(r, s, f"inputs[{i}]") for i, s in enumerate(r.get(d, "inputs", list))
            ],
            outputs=[
                _signature(r, s, f"outputs[{i}]") for i, s in enumerate(r.get(d, "outputs", list))
            ],
            kernels=[
                _kernel(r, k, f"kernels[{i}]") for i, k in enumerate(r.get(d, "kernels", list))
            ],
            files={
                r.typed(name, str, "files"): FileEntry(
                    r.get(r.obj(e, f"files[{name}]"), "size", int, f"files[{name}]"),
                    r.get(e, "sha256", str, f"files[{name}]"),
                )
                for name, e in r.get(d, "files", dict).items()
            },
        )

    def to_json(self) -> str:
        return dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        return cls.from_dict(loads(text, MANIFEST_FILE))

    def problems(self) -> list[str]:
        """Every rule broken (messages without the ``invalid module:`` prefix)."""
        p: list[str] = []
        where = MANIFEST_FILE
        if self.format != FORMAT_NAME:
            p.append(f"{where}: format '{self.format}' is not '{FORMAT_NAME}'")
        if self.format_version not in FORMAT_VERSIONS:
            newer = "newer than" if self.format_version > FORMAT_VERSION_CUDA else "not supported by"
            p.append(
                f"{where}: format_version {self.format_version} is {newer} this reader "
                f"({FORMAT_VERSION_CUDA})"
            )
        cubins = any(k.kind == "cubin" for k in self.kernels)
        if "cuda" in self.targets or cubins or self.cuda is not None:
            if self.format_version < FORMAT_VERSION_CUDA:
                p.append(f"{where}: CUDA modules need format_version {FORMAT_VERSION_CUDA}")
            if "cuda" not in self.targets:
                p.append(f"{where}: cubin kernels or a cuda section need 'cuda' in targets")
            arch = (self.cuda or {}).get("arch")
            if not isinstance(arch, str) or not _ARCH.match(arch):
                p.append(f"{where}: cuda: arch {arch!r} is not an architecture like 'sm_90'")
        if not _SHA256.match(self.source_model_sha256):
            p.append(f"{where}: source_model_sha256 is not a lower-case SHA-256 hex digest")
        if not self.targets:
            p.append(f"{where}: targets is empty")
        for kind, sigs in (("inputs", self.inputs), ("outputs", self.outputs)):
            names = [s.name for s in sigs]
            for dup in sorted({n for n in names if names.count(n) > 1}):
                p.append(f"{where}: {kind}: name '{dup}' appears twice")
            for i, s in enumerate(sigs):
                p += _tensor_problems(f"{where}: {kind}[{i}]", s.dtype, s.shape)
                if s.value < 0:
                    p.append(f"{where}: {kind}[{i}]: value {s.value} is negative")
        for i, k in enumerate(self.kernels):
            at = f"{where}: kernels[{i}]"
            if k.id != i:
                p.append(f"{at}: id {k.id} != its index {i}")
            if k.kind not in KERNEL_KINDS:
                p.append(f"{at}: kind '{k.kind}' is not one of {', '.join(KERNEL_KINDS)}")
            if not k.entry:
                p.append(f"{at}: entry is empty")
            if k.kind in ("shared_library", "cubin") and not k.file:
                p.append(f"{at}: a {k.kind} kernel needs a file")
            if k.kind == "cubin":
                p += _launch_problems(at, k.launch)
            elif k.launch is not None:
                p.append(f"{at}: launch is for cubin kernels only")
            if k.file is not None:
                if not _safe_relative(k.file):
                    p.append(f"{at}: file '{k.file}' is not a relative path inside the module")
                elif k.file not in self.files:
                    p.append(f"{at}: file '{k.file}' is not listed in files")
        for name, entry in self.files.items():
            at = f"{where}: files[{name}]"
            if name == MANIFEST_FILE or not _safe_relative(name):
                p.append(f"{at}: not a relative path inside the module (other than manifest.json)")
            if entry.size < 0:
                p.append(f"{at}: size {entry.size} is negative")
            if not _SHA256.match(entry.sha256):
                p.append(f"{at}: sha256 is not a lower-case SHA-256 hex digest")
        for required in (PLAN_FILE, WEIGHTS_FILE):
            if required not in self.files:
                p.append(f"{where}: files: {required} is not listed")
        return p

    def validate(self) -> None:
        _raise(self.problems())


# -- plan.json ---------------------------------------------------------------------------------


@dataclass
class PlanValue:
    """A tensor of the run: where it lives (``storage``) and, in an arena or weights.bin, where."""

    id: int
    name: str
    dtype: str
    shape: list[int]
    storage: str
    device: str = "cpu"
    offset: int | None = None
    nbytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"id": self.id, "name": self.name, "dtype": self.dtype, "shape": self.shape}
        d["storage"] = self.storage
        if self.offset is not None:
            d["offset"] = self.offset
        if self.nbytes is not None:
            d["nbytes"] = self.nbytes
        d["device"] = self.device
        return d

    def expected_nbytes(self) -> int:
        return math.prod(self.shape) * DTYPES[self.dtype][1]


@dataclass
class PlanStep:
    """One kernel call; ids refer to values, ``-1`` is an omitted optional tensor."""

    kernel: int
    node: str
    inputs: list[int]
    outputs: list[int]
    iparams: list[int] = field(default_factory=list)
    fparams: list[float] = field(default_factory=list)
    workspace: int = 0
    grid: list[int] | None = None
    args: list[dict[str, int | float]] | None = None
    tactics: list[dict[str, Any]] | None = None  # alternative launches (kernel, grid, args...)
    tactic_key: str | None = None
    tactic_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("grid", "args", "tactics", "tactic_key", "tactic_name"):
            if d[key] is None:
                del d[key]
        return d


@dataclass
class Plan:
    """plan.json: the value table and the ordered steps."""

    arena_size: int
    values: list[PlanValue]
    steps: list[PlanStep]
    alignment: int = 64

    def to_dict(self) -> dict[str, Any]:
        return {
            "alignment": self.alignment,
            "arena_size": self.arena_size,
            "values": [v.to_dict() for v in self.values],
            "steps": [s.to_dict() for s in self.steps],
        }

    @classmethod
    def from_dict(cls, d: Any) -> Plan:
        r = Reader(PLAN_FILE)
        r.obj(d, "")
        values = []
        for i, v in enumerate(r.get(d, "values", list)):
            at = f"values[{i}]"
            r.obj(v, at)
            values.append(
                PlanValue(
                    id=r.get(v, "id", int, at),
                    name=r.get(v, "name", str, at),
                    dtype=r.get(v, "dtype", str, at),
                    shape=r.ints(r.get(v, "shape", list, at), f"{at}: shape"),
                    storage=r.get(v, "storage", str, at),
                    device=r.get(v, "device", str, at),
                    offset=r.get(v, "offset", int, at, optional=True),
                    nbytes=r.get(v, "nbytes", int, at, optional=True),
                )
            )
        steps = []
        for i, s in enumerate(r.get(d, "steps", list)):
            at = f"steps[{i}]"
            r.obj(s, at)
            steps.append(
                PlanStep(
                    kernel=r.get(s, "kernel", int, at),
                    node=r.get(s, "node", str, at),
                    inputs=r.ints(r.get(s, "inputs", list, at), f"{at}: inputs"),
                    outputs=r.ints(r.get(s, "outputs", list, at), f"{at}: outputs"),
                    iparams=r.ints(r.get(s, "iparams", list, at), f"{at}: iparams"),
                    fparams=[
                        float(r.typed(x, (int, float), f"{at}: fparams[{j}]"))
                        for j, x in enumerate(r.get(s, "fparams", list, at))
                    ],
                    workspace=r.get(s, "workspace", int, at),
                    grid=_opt_ints(r, s, "grid", at),
                    args=_args(r, s, at),
                    **_tactics(r, s, at),
                )
            )
        return cls(
            alignment=r.get(d, "alignment", int),
            arena_size=r.get(d, "arena_size", int),
            values=values,
            steps=steps,
        )

    def to_json(self) -> str:
        return dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str | bytes) -> Plan:
        return cls.from_dict(loads(text, PLAN_FILE))

    def problems(
        self, weights_size: int | None = None, kernel_count: int | None = None
    ) -> list[str]:
        """Every rule broken; region bounds and kernel ids are checked when their sizes are given."""
        w = PLAN_FILE
        p: list[str] = []
        if self.alignment <= 0 or self.alignment & (self.alignment - 1):
            p.append(f"{w}: alignment {self.alignment} is not a power of two")
        if self.arena_size < 0:
            p.append(f"{w}: arena_size {self.arena_size} is negative")
        storage_of: dict[int, str] = {}
        for i, v in enumerate(self.values):
            at = f"{w}: values[{i}]"
            if v.id < 0 or v.id in storage_of:
                p.append(f"{at}: id {v.id} is negative or repeated")
            storage_of[v.id] = v.storage
            tensor = _tensor_problems(at, v.dtype, v.shape)
            p += tensor
            if v.storage not in STORAGES:
                p.append(f"{at}: storage '{v.storage}' is not one of {', '.join(STORAGES)}")
            if v.device not in DEVICES:
                p.append(f"{at}: device '{v.device}' is not one of {', '.join(DEVICES)}")
            if v.storage in ("arena", "weights"):
                if v.offset is None or v.nbytes is None:
                    p.append(f"{at}: {v.storage} values need offset and nbytes")
                    continue
                if v.offset < 0 or v.offset % max(self.alignment, 1):
                    p.append(
                        f"{at}: offset {v.offset} is not a non-negative multiple of {self.alignment}"
                    )
                if not tensor and v.nbytes != v.expected_nbytes():
                    p.append(
                        f"{at}: nbytes {v.nbytes} != {v.expected_nbytes()} (shape x element size)"
                    )
                limit = self.arena_size if v.storage == "arena" else weights_size
                region = "arena_size" if v.storage == "arena" else "weights.bin size"
                if limit is not None and v.offset + v.nbytes > limit:
                    p.append(
                        f"{at}: offset {v.offset} + nbytes {v.nbytes} exceeds {region} {limit}"
                    )
        written: set[int] = set()
        for i, s in enumerate(self.steps):
            at = f"{w}: steps[{i}]"
            if s.kernel < 0 or (kernel_count is not None and s.kernel >= kernel_count):
                p.append(f"{at}: kernel {s.kernel} is not in the kernel table")
            for kind, ids in (("inputs", s.inputs), ("outputs", s.outputs)):
                for j, vid in enumerate(ids):
                    if vid != -1 and vid not in storage_of:
                        p.append(f"{at}: {kind}[{j}]: no value with id {vid}")
            for j, vid in enumerate(s.outputs):
                if storage_of.get(vid) in ("input", "weights"):
                    p.append(f"{at}: outputs[{j}]: writes {storage_of[vid]} value {vid}")
                if vid in written:
                    p.append(f"{at}: outputs[{j}]: value {vid} was already written")
                written.add(vid)
            for j, x in enumerate(s.fparams):
                if not math.isfinite(x):
                    p.append(f"{at}: fparams[{j}] is not finite")
            if s.workspace < 0:
                p.append(f"{at}: workspace {s.workspace} is negative")
        return p

    def validate(self, weights_size: int | None = None, kernel_count: int | None = None) -> None:
        _raise(self.problems(weights_size, kernel_count))


def module_problems(manifest: Manifest, plan: Plan, weights_size: int | None = None) -> list[str]:
    """Both files' rules plus the links between them (signatures <-> values, kernel ids)."""
    p = manifest.problems() + plan.problems(weights_size, len(manifest.kernels))
    by_id = {v.id: v for v in plan.values}
    p += _cuda_plan_problems(manifest, plan)
    for kind, sigs, storage in (
        ("inputs", manifest.inputs, "input"),
        ("outputs", manifest.outputs, "output"),
    ):
        for i, s in enumerate(sigs):
            v = by_id.get(s.value)
            at = f"{MANIFEST_FILE}: {kind}[{i}]"
            if v is None:
                p.append(f"{at}: value {s.value} is not in plan.json")
            elif (v.name, v.dtype, v.shape, v.storage) != (s.name, s.dtype, s.shape, storage):
                p.append(f"{at}: does not match plan.json values id {s.value}")
    return p


def validate_module(manifest: Manifest, plan: Plan, weights_size: int | None = None) -> None:
    """Raises InvalidModuleError with the first problem (and a count of the others)."""
    _raise(module_problems(manifest, plan, weights_size))


# -- version 2: CUDA -----------------------------------------------------------------------------


def _launch_problems(at: str, launch: dict[str, Any] | None) -> list[str]:
    if not isinstance(launch, dict):
        return [f"{at}: a cubin kernel needs launch {{num_warps, shared, params}}"]
    p = []
    warps = launch.get("num_warps")
    if not _is_int(warps) or warps not in (1, 2, 4, 8, 16, 32):
        p.append(f"{at}: launch: num_warps {warps!r} is not a power of two in 1..32")
    shared = launch.get("shared")
    if not _is_int(shared) or not 0 <= shared <= 1 << 20:
        p.append(f"{at}: launch: shared {shared!r} is not a byte count in 0..1048576")
    params = launch.get("params")
    if not isinstance(params, list) or any(t not in PARAM_TYPES for t in params):
        p.append(f"{at}: launch: params must be a list of {', '.join(PARAM_TYPES)}")
    elif len(params) > 256:
        p.append(f"{at}: launch: {len(params)} params exceed 256")
    return p


def _cuda_plan_problems(manifest: Manifest, plan: Plan) -> list[str]:
    """Steps of cubin kernels: grid and args against the launch params; value devices."""
    p: list[str] = []
    kernels = manifest.kernels
    cuda = "cuda" in manifest.targets and manifest.targets == ["cuda"]
    for i, v in enumerate(plan.values):
        if cuda and v.device != "cuda":
            p.append(f"{PLAN_FILE}: values[{i}]: device '{v.device}' in a cuda module")
        if not cuda and v.device != "cpu":
            p.append(f"{PLAN_FILE}: values[{i}]: device '{v.device}' in a cpu module")
    for i, s in enumerate(plan.steps):
        at = f"{PLAN_FILE}: steps[{i}]"
        kernel = kernels[s.kernel] if 0 <= s.kernel < len(kernels) else None
        if kernel is None:
            continue
        if kernel.kind != "cubin":
            if s.grid is not None or s.args is not None:
                p.append(f"{at}: grid and args are for cubin kernels only")
            continue
        p += _step_launch_problems(at, s, kernel, s.grid, s.args)
        for t, tactic in enumerate(s.tactics or []):
            k = tactic["kernel"]
            alt = kernels[k] if 0 <= k < len(kernels) else None
            where = f"{at}: tactics[{t}]"
            if alt is None or alt.kind != "cubin":
                p.append(f"{where}: kernel {k} is not a cubin kernel of the kernel table")
            elif tactic["workspace"] < 0:
                p.append(f"{where}: workspace {tactic['workspace']} is negative")
            else:
                p += _step_launch_problems(where, s, alt, tactic["grid"], tactic["args"])
    return p


def _step_launch_problems(
    at: str, s: PlanStep, kernel: KernelEntry, grid_: list[int] | None, args_: list | None
) -> list[str]:
    """A cubin launch's grid and args (of a step or one of its tactics) against the kernel."""
    p: list[str] = []
    grid = grid_ or []
    if len(grid) != 3 or any(g < 1 for g in grid) or grid[0] >= 2**31 or any(
        g >= 2**16 for g in grid[1:]
    ):
        p.append(f"{at}: grid {grid_} is not 3 positive counts within CUDA's limits")
    params = (kernel.launch or {}).get("params") or []
    args = args_ or []
    if len(args) != len(params):
        p.append(f"{at}: {len(args)} args for {len(params)} params of kernel {kernel.id}")
        return p
    for j, (arg, ptype) in enumerate(zip(args, params)):
        (kind, value), = arg.items()
        if kind not in ARG_KINDS.get(ptype, ()):
            p.append(f"{at}: args[{j}]: {kind} does not fit a {ptype} parameter")
        elif kind == "in" and not 0 <= value < len(s.inputs):
            p.append(f"{at}: args[{j}]: input {value} of {len(s.inputs)}")
        elif kind == "out" and not 0 <= value < len(s.outputs):
            p.append(f"{at}: args[{j}]: output {value} of {len(s.outputs)}")
        elif kind == "i32" and not -(2**31) <= value < 2**31:
            p.append(f"{at}: args[{j}]: {value} does not fit i32")
        elif kind == "i64" and not -(2**63) <= value < 2**63:
            p.append(f"{at}: args[{j}]: {value} does not fit i64")
        elif kind == "f32" and not math.isfinite(value):
            p.append(f"{at}: args[{j}]: f32 {value} is not finite")
        elif kind in ("null", "workspace") and value != 0:
            p.append(f"{at}: args[{j}]: {kind} takes 0")
    return p


def _tactics(r: Reader, d: dict[str, Any], at: str) -> dict[str, Any]:
    """A step's optional ``tactics`` / ``tactic_key`` / ``tactic_name`` (structure only)."""
    out: dict[str, Any] = {
        "tactic_key": r.get(d, "tactic_key", str, at, optional=True),
        "tactic_name": r.get(d, "tactic_name", str, at, optional=True),
    }
    values = r.get(d, "tactics", list, at, optional=True)
    if values is None:
        return out
    tactics = []
    for t, v in enumerate(values):
        where = f"{at}: tactics[{t}]"
        r.obj(v, where)
        tactic = {
            "kernel": r.get(v, "kernel", int, where),
            "grid": r.ints(r.get(v, "grid", list, where), f"{where}: grid"),
            "args": _args(r, v, where) or [],
            "workspace": r.get(v, "workspace", int, where),
        }
        name = r.get(v, "name", str, where, optional=True)
        if name is not None:
            tactic["name"] = name
        tactics.append(tactic)
    out["tactics"] = tactics
    return out


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _opt_ints(r: Reader, d: dict[str, Any], key: str, at: str) -> list[int] | None:
    values = r.get(d, key, list, at, optional=True)
    return None if values is None else r.ints(values, f"{at}: {key}")


def _args(r: Reader, d: dict[str, Any], at: str) -> list[dict[str, int | float]] | None:
    values = r.get(d, "args", list, at, optional=True)
    if values is None:
        return None
    out = []
    kinds = {k for ks in ARG_KINDS.values() for k in ks}
    for j, a in enumerate(values):
        r.obj(a, f"{at}: args[{j}]")
        if len(a) != 1 or next(iter(a)) not in kinds:
            r.fail(f"{at}: args[{j}]: expected one of {sorted(kinds)} with a number")
        (kind, value), = a.items()
        r.typed(value, (int, float) if kind == "f32" else int, f"{at}: args[{j}]: {kind}")
        out.append({kind: value})
    return out


# -- helpers -----------------------------------------------------------------------------------


def _raise(problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise InvalidModuleError(f"invalid module: {problems[0]}{more}")


def _tensor_problems(at: str, dtype: str, shape: list[int]) -> list[str]:
    p = []
    if dtype not in DTYPES:
        p.append(f"{at}: dtype '{dtype}' is not one of {', '.join(DTYPES)}")
    if any(d < 0 for d in shape):
        p.append(f"{at}: shape {shape} has a negative dimension")
    if len(shape) > 8:
        p.append(f"{at}: rank {len(shape)} exceeds 8")
    return p


def _safe_relative(path: str) -> bool:
    pure = PurePosixPath(path)
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts and "\\" not in path


def _check_format(r: Reader, d: dict[str, Any]) -> None:
    """Format name and version come first: a newer module must say so, not fail on a field."""
    if d.get("format") != FORMAT_NAME:
        r.fail(f"format {d.get('format')!r} is not '{FORMAT_NAME}'")
    version = d.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        r.fail("format_version is missing or not an integer")
    if version not in FORMAT_VERSIONS:
        newer = "newer than" if version > FORMAT_VERSION_CUDA else "not supported by"
        r.fail(f"format_version {version} is {newer} this reader ({FORMAT_VERSION_CUDA})")


def _signature(r: Reader, s: Any, at: str) -> TensorSignature:
    r.obj(s, at)
    return TensorSignature(
        name=r.get(s, "name", str, at),
        dtype=r.get(s, "dtype", str, at),
        shape=r.ints(r.get(s, "shape", list, at), f"{at}: shape"),
        value=r.get(s, "value", int, at),
    )


def _kernel(r: Reader, k: Any, at: str) -> KernelEntry:
    r.obj(k, at)
    return KernelEntry(
        id=r.get(k, "id", int, at),
        name=r.get(k, "name", str, at),
        backend=r.get(k, "backend", str, at),
        kind=r.get(k, "kind", str, at),
        entry=r.get(k, "entry", str, at),
        file=r.get(k, "file", str, at, optional=True),
        version=r.get(k, "version", int, at),
        launch=r.get(k, "launch", dict, at, optional=True),
    )
