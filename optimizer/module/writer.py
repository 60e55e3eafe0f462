"""Writing a compiled module directory (docs/module-format.md).

CPU modules are format version 1. CUDA modules (``targets=["cuda"]``, ``cuda_arch``) are
version 2: cubin kernels with launch metadata, steps with grid and args, values on ``cuda``.

``write_module`` turns a memory plan and the kernel chosen for each step into the module's
files, builds them in a temporary sibling directory and renames it into place, so the target
is never half-written. ``build_tables`` is the pure part: the value table, steps, kernel
table and weights layout, without touching the disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from optimizer import ir
from optimizer.errors import InvariantError, UnsupportedModelError, UsageError
from optimizer.ir import Model, Value
from optimizer.ir.export import save_with_external_weights
from optimizer.lower.memory import MemoryPlan, align
from optimizer.module import format as fmt
from optimizer.module.atomic_dir import atomic_directory
from optimizer.module.init_template import INIT_SOURCE

log = logging.getLogger(__name__)


@dataclass
class KernelBinding:
    """The kernel selected for one step of the schedule, as the writer needs it.

    Attributes:
        name: ``<backend>.<op>_<variant>``.
        backend: ``native``, ``numba``...
        kind: ``builtin``, ``shared_library`` or ``python`` (see the format).
        entry: Registered name, symbol, or ``module:function``.
        version: Kernel version (part of the timing-cache key).
        artifact: A built file (``.so``...) copied into the module's ``kernels/``.
        iparams: The step's integer parameters.
        fparams: The step's float parameters (finite).
        workspace: Scratch bytes the step needs.
        inputs: Value names in the kernel's argument order (None: omitted); defaults to the
            fusion group's inputs.
        outputs: Value names the kernel writes, in order; defaults to the group's outputs.
        launch: ``cubin`` kernels: ``{"num_warps", "shared", "params"}`` (the kernel table's).
        grid: ``cubin`` kernels: the step's grid ``[gx, gy, gz]``.
        args: ``cubin`` kernels: one ``{kind: value}`` per launch parameter.
        tactics: ``cubin`` kernels: alternative launches of the step (each a binding with its
            own kernel, grid, args and workspace) the runtime may time and pick at load.
        tactic_key: The step's key in the known-tactics table (``--tune`` modules).
        tactic_name: The launch configuration's name (``m64n128k32g8w4s3``).
    """

    name: str
    backend: str
    kind: str
    entry: str
    version: int = 1
    artifact: Path | None = None
    iparams: list[int] = field(default_factory=list)
    fparams: list[float] = field(default_factory=list)
    workspace: int = 0
    inputs: list[str | None] | None = None
    outputs: list[str | None] | None = None
    launch: dict | None = None
    grid: list[int] | None = None
    args: list[dict[str, int | float]] | None = None
    tactics: list[KernelBinding] | None = None
    tactic_key: str | None = None
    tactic_name: str | None = None


@dataclass
class ModuleTables:
    """Everything in a module but the bytes: what ``write_module`` serializes."""

    manifest: fmt.Manifest
    plan: fmt.Plan
    weights: list[tuple[str, np.ndarray, int]]  # (name, array, offset in weights.bin)
    weights_size: int
    artifacts: dict[str, Path]  # module-relative path -> source file


def dtype_name(value: Value) -> str:
    dtype = ir.numpy_dtype_of(value)
    name = dtype.name if dtype is not None else "unknown"
    if name not in fmt.DTYPES:
        raise UnsupportedModelError(
            f"value '{value.name}' has element type {name}, which compiled modules do not support "
            f"(supported: {', '.join(fmt.DTYPES)})"
        )
    return name


def build_tables(
    model: Model,
    plan: MemoryPlan,
    kernels: Sequence[KernelBinding],
    targets: Sequence[str] = ("cpu",),
    source_sha256: str | None = None,
    cuda_arch: str | None = None,
) -> ModuleTables:
    """Builds manifest (without ``files``), plan and weights layout from a memory plan.

    With ``cuda_arch`` the module targets CUDA (format version 2): every value lives on
    ``cuda`` and cubin kernels carry their launch metadata, their steps grid and args.

    Value ids: graph inputs first, then in step order each step's new constants and outputs.
    """
    if plan.schedule.model is not model:
        raise UsageError("write_module: the memory plan was made for another model")
    steps = plan.schedule.steps
    if len(kernels) != len(steps):
        raise UsageError(f"write_module: {len(kernels)} kernel bindings for {len(steps)} steps")
    graph = model.graph
    output_ids = {id(v) for v in graph.outputs}
    values: list[fmt.PlanValue] = []
    id_of: dict[str, int] = {}
    weights: list[tuple[str, np.ndarray, int]] = []
    weights_size = 0
    device = "cuda" if cuda_arch is not None else "cpu"
    if cuda_arch is not None and list(targets) != ["cuda"]:
        raise UsageError(f"write_module: a CUDA module has targets ['cuda'], not {list(targets)}")

    def add(
        value: Value, storage: str, offset: int | None = None, nbytes: int | None = None
    ) -> int:
        shape = ir.static_shape(value)
        if shape is None:
            raise UnsupportedModelError(f"value '{value.name}' has no static shape")
        vid = len(values)
        values.append(
            fmt.PlanValue(
                vid, value.name, dtype_name(value), list(shape), storage, device, offset, nbytes
            )
        )
        id_of[value.name] = vid
        return vid

    for value in graph.inputs:
        add(value, "input")
    plan_steps: list[fmt.PlanStep] = []
    kernel_ids: dict[tuple, int] = {}
    kernel_table: list[fmt.KernelEntry] = []
    artifacts: dict[str, Path] = {}
    for index, (group, binding) in enumerate(zip(steps, kernels)):
        for value in group.values_read():
            if value.name in id_of:
                continue
            array = ir.const_value(value)
            if array is None:
                raise InvariantError(
                    f"step {index} ('{group.name}') reads '{value.name}' before it is written"
                )
            weights_size = align(weights_size, _weights_alignment(plan))
            add(value, "weights", weights_size, array.nbytes)
            weights.append((value.name, array, weights_size))
            weights_size += array.nbytes
        for value in group.values_written():
            if value.name in id_of:
                raise InvariantError(f"value '{value.name}' written twice")
            if id(value) in output_ids:
                add(value, "output")
            elif value.name in plan.placements:
                placed = plan.placements[value.name]
                add(value, "arena", placed.offset, placed.nbytes)
            else:
                raise InvariantError(f"value '{value.name}' (step {index}) has no arena placement")
        key = _kernel_id(binding, kernel_ids, kernel_table, artifacts)
        in_names = (
            binding.inputs if binding.inputs is not None else [v and v.name for v in group.inputs]
        )
        out_names = (
            binding.outputs
            if binding.outputs is not None
            else [v and v.name for v in group.outputs]
        )
        plan_steps.append(
            fmt.PlanStep(
                kernel=key,
                node=group.name,
                inputs=[_ref(id_of, n, group.name) for n in in_names],
                outputs=[_ref(id_of, n, group.name) for n in out_names],
                iparams=[int(x) for x in binding.iparams],
                fparams=[float(x) for x in binding.fparams],
                workspace=int(binding.workspace),
                grid=None if binding.grid is None else [int(g) for g in binding.grid],
                args=None if binding.args is None else [dict(a) for a in binding.args],
                **_tactic_fields(binding, kernel_ids, kernel_table, artifacts),
            )
        )
    signatures = []
    for values_of in (graph.inputs, graph.outputs):
        sigs = []
        for value in values_of:
            if value.name not in id_of:
                raise UnsupportedModelError(
                    f"output '{value.name}' is not computed by any step (a constant or an input "
                    "passed through); compiled modules need every output written by a kernel"
                )
            pv = values[id_of[value.name]]
            sigs.append(fmt.TensorSignature(pv.name, pv.dtype, pv.shape, pv.id))
        signatures.append(sigs)
    for sig in signatures[1]:
        if values[sig.value].storage != "output":
            raise UnsupportedModelError(f"output '{sig.name}' is also a graph input")
    manifest = fmt.Manifest(
        source_model_sha256=source_sha256 or _source_hash(model),
        inputs=signatures[0],
        outputs=signatures[1],
        kernels=kernel_table,
        files={},
        targets=list(targets),
        producer=fmt.Producer(fmt.PRODUCER_NAME, _producer_version()),
        format_version=fmt.FORMAT_VERSION if cuda_arch is None else fmt.FORMAT_VERSION_CUDA,
        cuda=None if cuda_arch is None else {"arch": cuda_arch},
    )
    module_plan = fmt.Plan(
        arena_size=plan.arena_size, values=values, steps=plan_steps, alignment=plan.alignment
    )
    return ModuleTables(
        manifest, module_plan, weights, align(weights_size, _weights_alignment(plan)), artifacts
    )


def _kernel_id(
    binding: KernelBinding,
    kernel_ids: dict[tuple, int],
    kernel_table: list[fmt.KernelEntry],
    artifacts: dict[str, Path],
) -> int:
    """The kernel table id of ``binding``'s kernel, added to the table on first use."""
    key = (binding.name, binding.backend, binding.kind, binding.entry, binding.version,
           str(binding.artifact) if binding.artifact else None,
           json.dumps(binding.launch, sort_keys=True))  # fmt: skip
    if key not in kernel_ids:
        kid = len(kernel_table)
        file = None
        if binding.artifact is not None:
            file = f"{fmt.KERNELS_DIR}/{kid}{Path(binding.artifact).suffix}"
            artifacts[file] = Path(binding.artifact)
        kernel_ids[key] = kid
        kernel_table.append(
            fmt.KernelEntry(
                kid,
                binding.name,
                binding.backend,
                binding.kind,
                binding.entry,
                file,
                binding.version,
                binding.launch,
            )
        )
    return kernel_ids[key]


def _tactic_fields(
    binding: KernelBinding,
    kernel_ids: dict[tuple, int],
    kernel_table: list[fmt.KernelEntry],
    artifacts: dict[str, Path],
) -> dict:
    """A step's ``tactics`` (alternative launches, their kernels added to the table),
    ``tactic_key`` and ``tactic_name``; empty for a step without alternatives."""
    if not binding.tactics:
        return {}
    tactics = []
    for alt in binding.tactics:
        tactic = {
            "kernel": _kernel_id(alt, kernel_ids, kernel_table, artifacts),
            "grid": [int(g) for g in alt.grid or []],
            "args": [dict(a) for a in alt.args or []],
            "workspace": int(alt.workspace),
        }
        if alt.tactic_name:
            tactic["name"] = alt.tactic_name
        tactics.append(tactic)
    return {"tactics": tactics, "tactic_key": binding.tactic_key,
            "tactic_name": binding.tactic_name}  # fmt: skip


def write_module(
    model: Model,
    plan: MemoryPlan,
    kernels: Sequence[KernelBinding],
    out_dir: str | os.PathLike[str],
    targets: Sequence[str] = ("cpu",),
    source_sha256: str | None = None,
    cuda_arch: str | None = None,
) -> Path:
    """Writes the compiled module directory ``out_dir`` atomically.

    Files: manifest.json (written last, listing every other file with size and SHA-256),
    plan.json, weights.bin (constants 64-byte aligned, little-endian, C order), graph.onnx
    (the optimized graph, its weights pointing into weights.bin), kernels/ (artifacts) and
    ``__init__.py`` (``import <dir>; <dir>.run(feeds)``).

    Args:
        model: The optimized, shape-pinned model the plan was made for.
        plan: Its memory plan (schedule included).
        kernels: The kernel of each scheduled step, in schedule order.
        out_dir: The module directory; an existing module there is replaced, any other
            non-empty directory is refused.
        targets: Target names recorded in the manifest.
        source_sha256: Hash of the source model (default: of ``model.source_path``).
        cuda_arch: For a CUDA module (format version 2, ``targets=["cuda"]``): the
            architecture its cubins were built for (``sm_90``).

    Returns:
        The module directory.

    Raises:
        InvalidModuleError: the tables break a format rule (a bug upstream).
        UsageError: ``out_dir`` is a file or a non-module directory.
    """
    tables = build_tables(model, plan, kernels, targets, source_sha256, cuda_arch)
    out = Path(out_dir)
    tables.plan.validate(tables.weights_size, len(tables.manifest.kernels))
    for rel, src in tables.artifacts.items():
        if not src.is_file():
            raise UsageError(f"kernel artifact {src} (for {rel}) does not exist")
    with atomic_directory(out, replaceable=_is_module_dir) as tmp:
        files: dict[str, fmt.FileEntry] = {}
        files[fmt.WEIGHTS_FILE] = _write_weights(tmp / fmt.WEIGHTS_FILE, tables)
        files[fmt.PLAN_FILE] = _write_bytes(tmp / fmt.PLAN_FILE, tables.plan.to_json().encode())
        files[fmt.GRAPH_FILE] = _write_graph(tmp / fmt.GRAPH_FILE, model, tables)
        files[fmt.INIT_FILE] = _write_bytes(tmp / fmt.INIT_FILE, INIT_SOURCE.encode())
        for rel, src in sorted(tables.artifacts.items()):
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp / rel)
            files[rel] = _file_entry(tmp / rel)
        tables.manifest.files = files
        fmt.validate_module(tables.manifest, tables.plan, tables.weights_size)
        _write_bytes(tmp / fmt.MANIFEST_FILE, tables.manifest.to_json().encode())
    log.info(
        "wrote module %s: %d steps, %d kernels, arena %d bytes, weights %d bytes",
        out, len(tables.plan.steps), len(tables.manifest.kernels), tables.plan.arena_size,
        tables.weights_size,
    )  # fmt: skip
    if not out.name.isidentifier():
        log.debug("%s: not an identifier, so not importable as a Python package by name", out.name)
    return out


def _weights_alignment(plan: MemoryPlan) -> int:
    """weights.bin uses the arena's alignment (64 bytes by default)."""
    return max(plan.alignment, 64)


def _ref(id_of: dict[str, int], name: str | None, where: str) -> int:
    if name is None or name == "":
        return -1
    if name not in id_of:
        raise InvariantError(f"step '{where}' refers to '{name}', which is not in the value table")
    return id_of[name]


def _write_weights(path: Path, tables: ModuleTables) -> fmt.FileEntry:
    digest = hashlib.sha256()
    pos = 0
    with open(path, "wb") as f:
        for _, array, offset in tables.weights:
            pad = b"\0" * (offset - pos)
            data = _le_bytes(array)
            for chunk in (pad, data):
                f.write(chunk)
                digest.update(chunk)
            pos = offset + len(data)
        tail = b"\0" * (tables.weights_size - pos)
        f.write(tail)
        digest.update(tail)
    return fmt.FileEntry(tables.weights_size, digest.hexdigest())


def _le_bytes(array: np.ndarray) -> bytes:
    """Raw little-endian, C-order bytes of an array."""
    array = np.asarray(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array).tobytes()


def _write_graph(path: Path, model: Model, tables: ModuleTables) -> fmt.FileEntry:
    ranges = {name: (offset, array.nbytes) for name, array, offset in tables.weights}
    save_with_external_weights(model, path, fmt.WEIGHTS_FILE, ranges)
    return _file_entry(path)


def _write_bytes(path: Path, data: bytes) -> fmt.FileEntry:
    path.write_bytes(data)
    return fmt.FileEntry(len(data), hashlib.sha256(data).hexdigest())


def _file_entry(path: Path) -> fmt.FileEntry:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return fmt.FileEntry(path.stat().st_size, digest.hexdigest())


def _is_module_dir(path: Path) -> bool:
    manifest = path / fmt.MANIFEST_FILE
    try:
        return manifest.is_file() and fmt.FORMAT_NAME.encode() in manifest.read_bytes()[:4096]
    except OSError:
        return False


def _source_hash(model: Model) -> str:
    path = model.source_path
    if path is not None and Path(path).is_file():
        return _file_entry(Path(path)).sha256
    return hashlib.sha256(model.to_proto().SerializeToString()).hexdigest()


def _producer_version() -> str:
    try:
        return metadata.version("onnx-deploy-optimizer")
    except metadata.PackageNotFoundError:
        return "0.0.0"
