"""The compiled-module format, version 1 (docs/module-format.md): dataclasses, JSON, checks.

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
KERNEL_KINDS = ("builtin", "shared_library", "python")
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
    """One row of the kernel table (``file`` is set for ``shared_library`` kernels)."""

    id: int
    name: str
    backend: str
    kind: str
    entry: str
    file: str | None = None
    version: int = 1


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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        order = ["format", "format_version", "producer", "source_model_sha256", "targets"]
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
        if self.format_version != FORMAT_VERSION:
            newer = "newer than" if self.format_version > FORMAT_VERSION else "not supported by"
            p.append(
                f"{where}: format_version {self.format_version} is {newer} this reader ({FORMAT_VERSION})"
            )
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
            if k.kind == "shared_library" and not k.file:
                p.append(f"{at}: a shared_library kernel needs a file")
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
            "steps": [asdict(s) for s in self.steps],
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
    if version != FORMAT_VERSION:
        newer = "newer than" if version > FORMAT_VERSION else "not supported by"
        r.fail(f"format_version {version} is {newer} this reader ({FORMAT_VERSION})")


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
    )
