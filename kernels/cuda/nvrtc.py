"""Compiles this package's CUDA C++ sources (``*.cu``) to cubins with NVRTC, without a GPU.

``compile_source("resize.cu", "sm_90")`` runs NVRTC (through NVIDIA's ``cuda-bindings``:
``nvrtcCreateProgram`` / ``nvrtcCompileProgram`` with ``--gpu-architecture=sm_90`` /
``nvrtcGetCUBIN``) on the source, with this package's headers (``common.cuh``) given to NVRTC by
name, and returns a :class:`CompiledSource`: the cubin (every ``extern "C"`` kernel of the
source) and each kernel's parameter types read from the PTX NVRTC produces alongside.

NVRTC is the ``cuda`` extra: ``cuda-bindings`` (the Python bindings) and ``nvidia-cuda-nvrtc``
(``libnvrtc.so``). ``cuda-bindings`` finds the library through ``cuda-pathfinder``, which looks
in the environment's ``site-packages/nvidia/cu13/lib`` (where the wheel puts it), then in
``CUDA_HOME`` / ``CUDA_PATH`` and the system's library path: no ``LD_LIBRARY_PATH`` needed.

Cubins are cached in ``$ODC_CACHE_DIR/cubins/`` (the Triton cache's directory, see
``kernels/triton/aot.py``) keyed by the source and header text, the architecture, the NVRTC
version and the options; entries are written atomically (temporary file + rename).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optimizer.kernels.cache import cache_root, load_cubin, store_cubin

log = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).resolve().parent
#: Headers every source may include by name.
HEADERS = ("common.cuh",)
#: Bump when the cache entry layout or the compile recipe changes.
CACHE_VERSION = 1
#: NVRTC options besides the architecture (fmad: fused multiply-adds, as Triton's fp fusion).
OPTIONS = ("--std=c++17", "--fmad=true")

_HINT = "install the cuda extra: pip install 'onnx-deploy-optimizer[cuda]'"
_ENTRY = re.compile(r"\.(?:visible\s+)?\.entry\s+([A-Za-z_$][\w$]*)\s*\(([^)]*)\)", re.S)
_PARAM = re.compile(r"\.param\s+\.(\w+)(?:\s+\.[\w]+)*\s+[\w$]+")
#: PTX parameter type -> the module's parameter types it can carry.
_PTX_TYPES = {"u64": ("ptr", "i64"), "s64": ("ptr", "i64"), "b64": ("ptr", "i64"),
              "u32": ("i32",), "s32": ("i32",), "b32": ("i32",), "f32": ("f32",)}  # fmt: skip


class NvrtcError(Exception):
    """NVRTC is missing or could not compile a source (one line: what and why)."""


@dataclass(frozen=True)
class CompiledSource:
    """One source compiled for one architecture.

    Attributes:
        source: The source's file name (``resize.cu``).
        arch: ``sm_90``...
        path: The cubin file.
        kernels: Each ``extern "C"`` kernel's PTX parameter types (``u64``, ``s32``, ``f32``...).
        key: The cache key (hex).
        cached: Whether it came from the cache.
    """

    source: str
    arch: str
    path: Path
    kernels: dict[str, list[str]] = field(default_factory=dict)
    key: str = ""
    cached: bool = False

    def check_params(self, entry: str, params: list[str]) -> None:
        """Raises NvrtcError unless ``entry`` is a kernel whose parameters can carry ``params``
        (module parameter types ``ptr`` / ``i32`` / ``i64`` / ``f32``)."""
        if entry not in self.kernels:
            raise NvrtcError(f"{self.source}: no kernel '{entry}' (has {sorted(self.kernels)})")
        ptx = self.kernels[entry]
        ok = len(ptx) == len(params) and all(
            p in _PTX_TYPES.get(t, ()) for t, p in zip(ptx, params)
        )
        if not ok:
            raise NvrtcError(f"{self.source}: kernel '{entry}' takes PTX parameters {ptx}, the "
                             f"launch passes {params}")  # fmt: skip


def _bindings() -> Any:
    try:
        from cuda.bindings import nvrtc
    except ImportError:
        raise NvrtcError(f"NVRTC is not installed (cuda-bindings): {_HINT}") from None
    return nvrtc


def _check(nvrtc: Any, result: Any, what: str) -> Any:
    """Unpacks a cuda-bindings ``(status, *values)`` tuple; raises NvrtcError on failure."""
    status, *values = result if isinstance(result, tuple) else (result,)
    if status != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        _, name = nvrtc.nvrtcGetErrorString(status)
        raise NvrtcError(f"{what}: {name.decode(errors='replace') if name else status}")
    return values[0] if len(values) == 1 else values


def nvrtc_version() -> str:
    """NVRTC's ``major.minor``; raises NvrtcError when NVRTC (or its library) is missing."""
    nvrtc = _bindings()
    try:
        major, minor = _check(nvrtc, nvrtc.nvrtcVersion(), "nvrtcVersion")
    except NvrtcError:
        raise
    except Exception as err:  # the library itself could not be loaded
        raise NvrtcError(f"NVRTC library not found ({type(err).__name__}: {err}); "
                         f"{_HINT}") from None  # fmt: skip
    return f"{major}.{minor}"


def available() -> str | None:
    """None when NVRTC works here, else the reason it does not."""
    try:
        nvrtc_version()
    except NvrtcError as err:
        return str(err)
    return None


def sources() -> list[str]:
    """The ``.cu`` files of this package."""
    return sorted(p.name for p in SOURCE_DIR.glob("*.cu"))


def cache_dir() -> Path:
    """``$ODC_CACHE_DIR/cubins`` (default ``~/.cache/onnx-deploy-optimizer/cubins``)."""
    return cache_root() / "cubins"


def compile_source(
    source: str,
    arch: str = "sm_90",
    *,
    use_cache: bool = True,
    directory: Path | None = None,
) -> CompiledSource:
    """Compiles ``source`` (a file name of this package) for ``arch`` (cached).

    Raises:
        NvrtcError: NVRTC is missing, the source does not exist, or it does not compile (the
            message carries the NVRTC log's first error line).
    """
    from optimizer.kernels.triton.aot import ARCHS

    if arch not in ARCHS:
        raise NvrtcError(f"unknown CUDA architecture '{arch}' (use one of {', '.join(ARCHS)})")
    path = SOURCE_DIR / source
    if path.suffix != ".cu" or not path.is_file():
        raise NvrtcError(f"no CUDA source '{source}' in {SOURCE_DIR}")
    text = path.read_text()
    headers = {h: (SOURCE_DIR / h).read_text() for h in HEADERS}
    version = nvrtc_version()
    options = [f"--gpu-architecture={arch}", *OPTIONS]
    payload = {"v": CACHE_VERSION, "source": source, "text": text, "headers": headers,
               "arch": arch, "nvrtc": version, "options": options}  # fmt: skip
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    root = directory or cache_dir()
    if use_cache:
        hit = load_cubin(root, key, source, CACHE_VERSION,
                         lambda record, cubin: _compiled(source, record, cubin, key))  # fmt: skip
        if hit is not None:
            return hit
    cubin, ptx = _compile(source, text, headers, options)
    kernels = {name: _PARAM.findall(plist) for name, plist in _ENTRY.findall(ptx)}
    if not kernels:
        raise NvrtcError(f'{source}: NVRTC produced no kernel (no extern "C" __global__)')
    record = {"version": CACHE_VERSION, "source": source, "arch": arch, "nvrtc": version,
              "kernels": kernels}  # fmt: skip
    out = store_cubin(root, key, cubin, record, use_cache)
    log.debug("nvrtc: compiled %s for %s: %d bytes, %d kernels", source, arch, len(cubin),
              len(kernels))  # fmt: skip
    return CompiledSource(source, arch, out, kernels, key, cached=False)


def _compile(
    source: str, text: str, headers: dict[str, str], options: list[str]
) -> tuple[bytes, str]:
    nvrtc = _bindings()
    names = list(headers)
    prog = _check(nvrtc, nvrtc.nvrtcCreateProgram(
        text.encode(), source.encode(), len(names), [headers[n].encode() for n in names],
        [n.encode() for n in names]), f"{source}: nvrtcCreateProgram")  # fmt: skip
    try:
        status = nvrtc.nvrtcCompileProgram(prog, len(options), [o.encode() for o in options])[0]
        if status != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise NvrtcError(f"{source}: NVRTC failed to compile for "
                             f"{options[0].split('=')[1]}: {_first_error(nvrtc, prog)}")  # fmt: skip
        size = _check(nvrtc, nvrtc.nvrtcGetCUBINSize(prog), f"{source}: nvrtcGetCUBINSize")
        cubin = b" " * size
        _check(nvrtc, nvrtc.nvrtcGetCUBIN(prog, cubin), f"{source}: nvrtcGetCUBIN")
        size = _check(nvrtc, nvrtc.nvrtcGetPTXSize(prog), f"{source}: nvrtcGetPTXSize")
        ptx = b" " * size
        _check(nvrtc, nvrtc.nvrtcGetPTX(prog, ptx), f"{source}: nvrtcGetPTX")
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
    if not cubin.startswith(b"\x7fELF"):
        raise NvrtcError(f"{source}: NVRTC returned a cubin that is not an ELF file")
    return cubin, ptx.rstrip(b"\0").decode(errors="replace")


def _first_error(nvrtc: Any, prog: Any) -> str:
    """The NVRTC log's first error line (``resize.cu(12): error: ...``)."""
    size = _check(nvrtc, nvrtc.nvrtcGetProgramLogSize(prog), "nvrtcGetProgramLogSize")
    buf = b" " * size
    _check(nvrtc, nvrtc.nvrtcGetProgramLog(prog, buf), "nvrtcGetProgramLog")
    lines = [ln.strip() for ln in buf.rstrip(b"\0").decode(errors="replace").splitlines()]
    errors = [ln for ln in lines if "error" in ln]
    return (errors or [ln for ln in lines if ln] or ["no log"])[0]


def _compiled(source: str, record: dict[str, Any], cubin: Path, key: str) -> CompiledSource:
    """A cache entry's record as a :class:`CompiledSource`."""
    kernels = {str(k): [str(t) for t in v] for k, v in record["kernels"].items()}
    return CompiledSource(source, str(record["arch"]), cubin, kernels, key, cached=True)
