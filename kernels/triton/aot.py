"""Ahead-of-time compilation of one :class:`~.launch.TritonLaunch` into a cubin, without a GPU.

``compile_launch(launch, inputs, outputs, arch="sm_90")`` specializes the launch's
``@triton.jit`` function on the step's tensor dtypes and the launch's constexprs, runs Triton's
compiler for the named architecture (``triton.compile(ASTSource(...), target=GPUTarget("cuda",
90, 32))``: Triton ships ptxas, so no driver or GPU is needed) and returns a :class:`Cubin`:
the cubin file, its entry symbol and the launch metadata the module records (``num_warps``,
dynamic ``shared`` bytes, and ``params``: the cubin function's parameters in order, read back
from the PTX prototype, *including* Triton's hidden trailing pointers for global and profile
scratch, which the runtime passes as NULL).

Pointer parameters are compiled with a 16-byte divisibility hint (module tensors are 64-byte
aligned) and so are integer scalars whose value is a multiple of 16, as Triton's own launcher
specializes them; a cubin is therefore only valid for the scalar values it was compiled with,
which the plan step records next to it.

Compiled cubins are cached on disk in ``$ODC_CACHE_DIR/cubins/`` (default
``~/.cache/onnx-deploy-optimizer/cubins``), keyed by the kernel's source hash (Triton's
``cache_key``: its source and every jit function and global it uses), the signature, the
constexprs, the launch options, the architecture and the Triton version; entries are written
atomically (temporary file + rename). Under ``TRITON_INTERPRET=1`` (CI without a GPU)
``@triton.jit`` returns interpreter objects: the cache key is taken from a ``JITFunction``
rebuilt from them (with every jit function of this package they call), and the compiling is
done by a worker process started without the interpreter (triton.language's own jit functions
are interpreter objects too in this process).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
import tempfile
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optimizer.kernels.cache import cache_root, load_cubin, store_cubin
from optimizer.kernels.triton.launch import TensorDesc, TritonLaunch, Unsupported

log = logging.getLogger(__name__)

#: Architectures ``--arch`` accepts (Triton's NVIDIA backend targets; sm_90 is the default).
ARCHS = ("sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "sm_100", "sm_120")
DEFAULT_ARCH = "sm_90"
#: Parameter types of the module's launch metadata.
PARAM_TYPES = ("ptr", "i32", "i64", "f32")
#: Bump when the cache entry layout or the compile recipe changes.
CACHE_VERSION = 1
#: Dynamic shared memory an sm_90 block may use (227 KiB; smaller parts have less).
MAX_SHARED = {"sm_75": 65536, "sm_80": 166912, "sm_86": 101376, "sm_89": 101376,
              "sm_90": 232448, "sm_100": 232448, "sm_120": 101376}  # fmt: skip

_ARG_PARAM = {"in": "ptr", "out": "ptr", "null": "ptr", "workspace": "ptr",
              "i32": "i32", "i64": "i64", "f32": "f32"}  # fmt: skip
_ENTRY = re.compile(r"\.(?:visible\s+)?\.entry\s+([A-Za-z_$][\w$]*)\s*\(([^)]*)\)", re.S)
_PARAM = re.compile(r"\.param\s+\.(\w+)((?:\s+\.\w+)*)\s+[\w$]+")


class AOTError(Exception):
    """Triton could not compile a launch (the message names the kernel and the cause)."""


@dataclass(frozen=True)
class Cubin:
    """One compiled kernel, as the module's kernel table needs it.

    Attributes:
        name: The launch's registry name (``triton.conv2d_igemm``).
        path: The cubin file (in the cache directory).
        entry: The kernel function's symbol in the cubin.
        num_warps: Warps per block (block size ``32 * num_warps``).
        shared: Dynamic shared memory bytes per block.
        params: The function's parameter types in order, hidden trailing ones included.
        hidden: How many trailing parameters are Triton's own (passed as NULL).
        arch: ``sm_90``...
        key: The cache key (hex).
        cached: Whether it came from the cache.
    """

    name: str
    path: Path
    entry: str
    num_warps: int
    shared: int
    params: list[str] = field(default_factory=list)
    hidden: int = 0
    arch: str = DEFAULT_ARCH
    key: str = ""
    cached: bool = False

    def launch_metadata(self) -> dict[str, Any]:
        """The manifest's ``launch`` object."""
        return {"num_warps": self.num_warps, "shared": self.shared, "params": list(self.params)}


def cache_dir() -> Path:
    """``$ODC_CACHE_DIR/cubins`` (default ``~/.cache/onnx-deploy-optimizer/cubins``)."""
    return cache_root() / "cubins"


def arch_number(arch: str) -> int:
    """``sm_90`` -> 90; raises ValueError naming the accepted architectures."""
    if arch not in ARCHS:
        raise ValueError(f"unknown CUDA architecture '{arch}' (use one of {', '.join(ARCHS)})")
    return int(arch[3:])


def triton_version() -> str:
    import triton

    return str(triton.__version__)


#: Oldest Triton whose cubins were checked end to end on a GPU (zoo modules vs onnxruntime on an
#: H100, 2026-11-24). Triton 3.6 compiled cubins that ran but gave wrong results for some zoo
#: models (resnet fp16, unet fp32 at batch 1) where 3.9's cubins of the same launches were right.
MIN_TRITON = (3, 9)


def check_triton_version() -> None:
    """Raises AOTError when the installed Triton is older than :data:`MIN_TRITON`."""
    version = triton_version()
    parts = tuple(int(p) for p in version.split("+")[0].split(".")[:2] if p.isdigit())
    if parts < MIN_TRITON:
        need = ".".join(map(str, MIN_TRITON))
        raise AOTError(f"Triton {version} is older than {need}, the oldest whose cubins this "
                       f"project has verified on a GPU; install triton>={need}")  # fmt: skip


def step_args(cubin: Cubin, launch: TritonLaunch) -> list[dict[str, int | float]]:
    """The plan step's ``args``: one entry per cubin parameter (hidden ones ``{"null": 0}``)."""
    args: list[dict[str, int | float]] = []
    for arg in launch.args.values():
        if arg.kind in ("null", "workspace"):
            args.append({arg.kind: 0})
        elif arg.kind == "f32":
            args.append({"f32": float(arg.value)})
        else:
            args.append({arg.kind: int(arg.value)})
    args.extend({"null": 0} for _ in range(cubin.hidden))
    return args


def compile_launch(
    launch: TritonLaunch,
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    arch: str = DEFAULT_ARCH,
    *,
    allow_tf32: bool = False,
    use_cache: bool = True,
    directory: Path | None = None,
) -> Cubin:
    """Compiles ``launch`` for ``arch`` (cached); see the module docstring.

    Args:
        launch: What a plan function returned for the step.
        inputs: The step's input descriptions (None where omitted).
        outputs: The step's output descriptions.
        arch: ``sm_90``...
        allow_tf32: Let ``tl.dot`` without an explicit ``input_precision`` use TF32 (Triton's
            default); off, fp32 dots are exact IEEE (``default_dot_input_precision="ieee"``).
        use_cache: Read and write the on-disk cache.
        directory: The cache directory (default :func:`cache_dir`).

    Raises:
        Unsupported: the compiled kernel needs what modules do not provide (global scratch,
            clusters, too much shared memory).
        AOTError: Triton failed to compile the kernel.
    """
    number = arch_number(arch)
    check_triton_version()
    jit_fn = as_jit_function(launch.kernel)
    signature, constexprs, attrs = _specialization(jit_fn, launch, inputs, outputs)
    options = {
        "num_warps": int(launch.num_warps),
        "num_stages": int(launch.num_stages),
        "enable_fp_fusion": True,
        "default_dot_input_precision": "tf32" if allow_tf32 else "ieee",
    }
    key = _cache_key(jit_fn, launch, signature, constexprs, attrs, options, arch)
    root = directory or cache_dir()
    if use_cache:
        hit = load_cubin(root, key, launch.name, CACHE_VERSION,
                         lambda record, path: _cubin(record, path, key, cached=True))  # fmt: skip
        if hit is not None:
            return hit
    cubin_bytes, meta, ptx = _triton_compile(jit_fn, launch.name, signature, constexprs, attrs,
                                             options, number)  # fmt: skip
    entry, ptx_params = _ptx_prototype(ptx, launch.name)
    params, hidden = _check_params(launch, ptx_params)
    shared = int(meta.get("shared", 0))
    if shared > MAX_SHARED.get(arch, 49152):
        raise Unsupported(f"{launch.name}: needs {shared} bytes of shared memory ({arch} allows "
                          f"{MAX_SHARED.get(arch, 49152)})")  # fmt: skip
    if int(meta.get("global_scratch_size", 0) or 0) > 0:
        raise Unsupported(f"{launch.name}: the compiled kernel needs Triton global scratch, "
                          "which modules do not provide")  # fmt: skip
    if (
        int(meta.get("num_ctas", 1) or 1) != 1
        or meta.get("launch_cooperative_grid")
        or meta.get("launch_pdl")
    ):
        raise Unsupported(f"{launch.name}: clusters, cooperative or PDL launches are not supported")
    if not cubin_bytes.startswith(b"\x7fELF"):
        raise AOTError(f"{launch.name}: Triton returned a cubin that is not an ELF file")
    record = {
        "version": CACHE_VERSION,
        "name": launch.name,
        "entry": entry,
        "num_warps": int(meta.get("num_warps", launch.num_warps)),
        "shared": shared,
        "params": params,
        "hidden": hidden,
        "arch": arch,
        "triton": triton_version(),
    }
    path = store_cubin(root, key, cubin_bytes, record, use_cache)
    log.debug("compiled %s for %s: %d bytes, %d params", launch.name, arch, len(cubin_bytes),
              len(params))  # fmt: skip
    return _cubin(record, path, key, cached=False)


# -- JITFunction from interpreter objects -------------------------------------------------------


def as_jit_function(kernel: Any) -> Any:
    """``kernel`` as a ``triton.runtime.jit.JITFunction``, for ``triton.compile``.

    Under ``TRITON_INTERPRET=1`` ``@triton.jit`` returns an ``InterpretedFunction``: it is
    rebuilt as a ``JITFunction`` over a copy of its globals in which every interpreted function
    (and every interpreted function reached through an imported module of this package) is
    itself rebuilt, so the code generator sees jit functions throughout.
    """
    from triton.runtime.jit import JITFunction

    if isinstance(kernel, JITFunction):
        return kernel
    return _Rebuilder().jit(kernel)


class _Rebuilder:
    def __init__(self) -> None:
        self.memo: dict[int, Any] = {}

    def jit(self, obj: Any) -> Any:
        from triton.runtime.jit import JITFunction

        if isinstance(obj, JITFunction):
            return obj
        fn = getattr(obj, "fn", None)
        if not isinstance(fn, types.FunctionType) or not hasattr(obj, "rewriter"):
            raise AOTError(f"{obj!r} is not a @triton.jit function")
        if id(obj) in self.memo:
            return self.memo[id(obj)]
        scope: dict[str, Any] = dict(fn.__globals__)
        clone = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__,
                                   fn.__closure__)  # fmt: skip
        clone.__kwdefaults__ = fn.__kwdefaults__
        clone.__qualname__ = fn.__qualname__
        clone.__module__ = fn.__module__
        clone.__doc__ = fn.__doc__
        clone.__annotations__ = dict(fn.__annotations__)
        accepted = inspect.signature(JITFunction.__init__).parameters
        kwargs = {k: v for k, v in getattr(obj, "kwargs", {}).items()
                  if k in accepted and k != "fn"}  # fmt: skip
        jit = JITFunction(clone, **kwargs)
        self.memo[id(obj)] = jit
        for name, value in list(scope.items()):
            scope[name] = self.convert(value)
        return jit

    def convert(self, value: Any) -> Any:
        if type(value).__name__ == "InterpretedFunction" and hasattr(value, "fn"):
            return self.jit(value)
        if isinstance(value, types.ModuleType) and value.__name__.startswith("optimizer.kernels"):
            if id(value) in self.memo:
                return self.memo[id(value)]
            proxy = types.ModuleType(value.__name__)
            self.memo[id(value)] = proxy
            for name, attr in vars(value).items():
                setattr(proxy, name, self.convert(attr) if not name.startswith("__") else attr)
            return proxy
        return value


# -- compiling -----------------------------------------------------------------------------------


def _specialization(
    jit_fn: Any,
    launch: TritonLaunch,
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
) -> tuple[dict[str, str], dict[str, Any], dict[tuple[int, ...], list[list[Any]]]]:
    """(signature, constexprs, attrs) for ``ASTSource``, checked against the function."""
    try:
        runtime = launch.signature(inputs, outputs)
    except (IndexError, KeyError, ValueError) as err:
        raise AOTError(f"{launch.name}: arguments do not fit the step's tensors ({err})") from None
    constexprs = dict(launch.constexprs)
    signature: dict[str, str] = {}
    attrs: dict[tuple[int, ...], list[list[Any]]] = {}
    runtime_order = []
    params = list(inspect.signature(jit_fn.fn).parameters.values())
    for i, param in enumerate(params):
        name = param.name
        kparam = jit_fn.params[i] if i < len(getattr(jit_fn, "params", [])) else None
        is_constexpr = bool(getattr(kparam, "is_constexpr", "constexpr" in str(param.annotation)))
        if name in runtime:
            if is_constexpr:
                raise AOTError(f"{launch.name}: '{name}' is a tl.constexpr but is given as an "
                               "argument")  # fmt: skip
            signature[name] = runtime[name]
            runtime_order.append(name)
            arg = launch.args[name]
            aligned = arg.kind in ("in", "out", "null", "workspace") or (
                arg.kind in ("i32", "i64") and int(arg.value) % 16 == 0
            )
            if aligned:
                attrs[(i,)] = [["tt.divisibility", 16]]
        elif name in constexprs:
            signature[name] = "constexpr"
        elif param.default is not inspect.Parameter.empty and is_constexpr:
            signature[name] = "constexpr"
            constexprs[name] = param.default
        else:
            raise AOTError(f"{launch.name}: parameter '{name}' of {jit_fn.__name__} is neither an "
                           "argument nor a constexpr of the launch")  # fmt: skip
    if runtime_order != list(launch.args):
        raise AOTError(f"{launch.name}: launch arguments {list(launch.args)} are not in the "
                       f"order of the kernel's parameters {runtime_order}")  # fmt: skip
    unknown = set(constexprs) - {p.name for p in params}
    if unknown:
        raise AOTError(f"{launch.name}: constexprs {sorted(unknown)} are not kernel parameters")
    return signature, constexprs, attrs


def _triton_compile(
    jit_fn: Any,
    name: str,
    signature: dict[str, str],
    constexprs: dict[str, Any],
    attrs: dict[tuple[int, ...], list[list[Any]]],
    options: dict[str, Any],
    arch: int,
) -> tuple[bytes, dict[str, Any], str]:
    """(cubin, metadata, PTX): here, or in the compile worker under the interpreter."""
    if _interpreting():
        return _worker().compile(jit_fn, name, signature, constexprs, attrs, options, arch)
    return _compile_here(jit_fn, name, signature, constexprs, attrs, options, arch)


def _compile_here(
    jit_fn: Any,
    name: str,
    signature: dict[str, str],
    constexprs: dict[str, Any],
    attrs: dict[tuple[int, ...], list[list[Any]]],
    options: dict[str, Any],
    arch: int,
) -> tuple[bytes, dict[str, Any], str]:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend

    target = GPUTarget("cuda", arch, 32)
    try:
        backend = make_backend(target)
        known = getattr(backend.parse_options({"enable_fp_fusion": True}), "__dict__", {})
        opts = {k: v for k, v in options.items() if k in known}
        parsed = backend.parse_options(opts)
        src = ASTSource(fn=jit_fn, signature=signature, constexprs=constexprs, attrs=attrs)
        compiled = triton.compile(src, target=target, options=parsed.__dict__)
    except Unsupported:
        raise
    except Exception as err:  # CompilationError, MLIR / ptxas failures: name the kernel
        raise AOTError(f"{name}: Triton failed to compile {jit_fn.__name__} for sm_{arch}: "
                       f"{_error_line(err)}") from err  # fmt: skip
    full = compiled.metadata._asdict()
    meta = {k: full.get(k) for k in _META_KEYS if k in full}
    return bytes(compiled.asm["cubin"]), meta, str(compiled.asm["ptx"])


_META_KEYS = ("shared", "num_warps", "global_scratch_size", "num_ctas",
              "launch_cooperative_grid", "launch_pdl")  # fmt: skip


def _error_line(err: BaseException) -> str:
    """``Type: message`` with the message's last line (Triton puts the source excerpt first)."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1] if text else ''}".rstrip(": ")


# -- the compile worker (under TRITON_INTERPRET=1) -----------------------------------------------
#
# Under the interpreter ``@triton.jit`` returns interpreter objects, triton.language's own jit
# functions (tl.cdiv, tl.sum's combine function...) included, so the code generator cannot run
# in this process. A worker process without TRITON_INTERPRET imports the kernel's module (by
# name, or from its file for generated modules) and compiles there; it stays up for the next
# request and exits with this process.


def _interpreting() -> bool:
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        return True
    try:
        from triton import knobs

        return bool(knobs.runtime.interpret)
    except (ImportError, AttributeError):  # pragma: no cover - older Triton
        return False


class _Worker:
    def __init__(self) -> None:
        import subprocess
        import sys

        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "optimizer.kernels.triton.aot", "--worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env,
        )  # fmt: skip

    def alive(self) -> bool:
        return self.proc.poll() is None

    def compile(
        self,
        jit_fn: Any,
        name: str,
        signature: dict[str, str],
        constexprs: dict[str, Any],
        attrs: dict[tuple[int, ...], list[list[Any]]],
        options: dict[str, Any],
        arch: int,
    ) -> tuple[bytes, dict[str, Any], str]:
        import base64

        fn = jit_fn.fn
        request = {
            "module": fn.__module__, "qualname": fn.__qualname__,
            "file": fn.__code__.co_filename, "name": name, "signature": signature,
            "constexprs": {k: _encode_const(name, k, v) for k, v in constexprs.items()},
            "attrs": [[list(k), v] for k, v in attrs.items()], "options": options, "arch": arch,
        }  # fmt: skip
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except OSError:
            line = b""
        if not line:
            self.log.seek(0)
            tail = self.log.read().decode(errors="replace").strip().splitlines()[-1:] or ["?"]
            raise AOTError(f"{name}: the Triton compile worker died ({tail[0]})")
        reply = json.loads(line)
        if "error" in reply:
            cls = Unsupported if reply.get("unsupported") else AOTError
            raise cls(reply["error"])
        return base64.b64decode(reply["cubin"]), reply["meta"], reply["ptx"]

    def close(self) -> None:
        if self.alive():
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except Exception:  # pragma: no cover - a stuck worker
                self.proc.kill()


_WORKER: _Worker | None = None


def _worker() -> _Worker:
    global _WORKER
    if _WORKER is None or not _WORKER.alive():
        import atexit

        _WORKER = _Worker()
        atexit.register(_WORKER.close)
    return _WORKER


def _encode_const(name: str, key: str, value: Any) -> dict[str, Any]:
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"v": value}
    from triton import language as tl

    if isinstance(value, tl.dtype):
        return {"dtype": str(value)}
    if isinstance(value, tl.constexpr):
        return _encode_const(name, key, value.value)
    raise AOTError(f"{name}: constexpr {key}={value!r} ({type(value).__name__}) cannot be sent "
                   "to the compile worker")  # fmt: skip


def _decode_const(d: dict[str, Any]) -> Any:
    if "dtype" in d:
        from triton import language as tl

        return tl.dtype(d["dtype"])
    return d["v"]


def _load_kernel(module: str, qualname: str, file: str) -> Any:
    import importlib
    import importlib.util
    import sys

    try:
        obj: Any = importlib.import_module(module)
    except ImportError:
        spec = importlib.util.spec_from_file_location(module, file)
        if spec is None or spec.loader is None:
            raise
        obj = importlib.util.module_from_spec(spec)
        sys.modules[module] = obj
        spec.loader.exec_module(obj)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _serve() -> None:  # pragma: no cover - runs in the worker process
    import base64
    import sys

    for line in sys.stdin.buffer:
        req = json.loads(line)
        try:
            jit_fn = as_jit_function(_load_kernel(req["module"], req["qualname"], req["file"]))
            cubin, meta, ptx = _compile_here(
                jit_fn, req["name"], req["signature"],
                {k: _decode_const(v) for k, v in req["constexprs"].items()},
                {tuple(k): v for k, v in req["attrs"]}, req["options"], req["arch"],
            )  # fmt: skip
            reply = {"cubin": base64.b64encode(cubin).decode(), "meta": meta, "ptx": ptx}
        except Unsupported as err:
            reply = {"error": str(err), "unsupported": True}
        except AOTError as err:
            reply = {"error": str(err)}
        except Exception as err:
            reply = {"error": f"{req.get('name')}: compile worker: {_error_line(err)}"}
        sys.stdout.write(json.dumps(reply, default=str) + "\n")
        sys.stdout.flush()


def _ptx_prototype(ptx: str, name: str) -> tuple[str, list[str]]:
    """(entry symbol, parameter types) of the one ``.entry`` in ``ptx``."""
    entries = _ENTRY.findall(ptx)
    if len(entries) != 1:
        raise AOTError(f"{name}: expected one .entry in the PTX, found {len(entries)}")
    symbol, plist = entries[0]
    types_: list[str] = []
    for ptype, qualifiers in _PARAM.findall(plist):
        if ptype in ("u64", "s64", "b64"):
            types_.append("ptr" if ".ptr" in qualifiers else "i64")
        elif ptype in ("u32", "s32", "b32"):
            types_.append("i32")
        elif ptype == "f32":
            types_.append("f32")
        else:
            raise Unsupported(f"{name}: kernel parameter of PTX type .{ptype} is not supported")
    return symbol, types_


def _check_params(launch: TritonLaunch, ptx_params: list[str]) -> tuple[list[str], int]:
    """The launch's own parameter types, checked against the PTX, and the hidden count."""
    own = [_ARG_PARAM[a.kind] for a in launch.args.values()]
    if len(ptx_params) < len(own) or ptx_params[: len(own)] != own:
        raise AOTError(f"{launch.name}: cubin parameters {ptx_params} do not start with the "
                       f"launch's {own}")  # fmt: skip
    hidden = ptx_params[len(own) :]
    if any(p != "ptr" for p in hidden):
        raise AOTError(f"{launch.name}: unexpected hidden parameters {hidden} (Triton adds "
                       "scratch pointers only)")  # fmt: skip
    return ptx_params, len(hidden)


# -- the cache -----------------------------------------------------------------------------------


def _cache_key(
    jit_fn: Any,
    launch: TritonLaunch,
    signature: dict[str, str],
    constexprs: dict[str, Any],
    attrs: dict[tuple[int, ...], list[list[Any]]],
    options: dict[str, Any],
    arch: str,
) -> str:
    payload = {
        "v": CACHE_VERSION,
        "source": jit_fn.cache_key,
        "fn": f"{jit_fn.__module__}.{jit_fn.__qualname__}",
        "signature": signature,
        "constexprs": {k: _const_repr(v) for k, v in sorted(constexprs.items())},
        "attrs": sorted((list(k), v) for k, v in attrs.items()),
        "options": options,
        "arch": arch,
        "triton": triton_version(),
        "name": launch.name,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _const_repr(value: Any) -> str:
    return f"{type(value).__name__}:{value!r}"


def _cubin(record: dict[str, Any], path: Path, key: str, cached: bool) -> Cubin:
    params = [str(p) for p in record["params"]]
    if any(p not in PARAM_TYPES for p in params):
        raise ValueError(f"unknown parameter types in {params}")
    return Cubin(
        name=str(record["name"]),
        path=path,
        entry=str(record["entry"]),
        num_warps=int(record["num_warps"]),
        shared=int(record["shared"]),
        params=params,
        hidden=int(record["hidden"]),
        arch=str(record["arch"]),
        key=key,
        cached=cached,
    )


if __name__ == "__main__":  # pragma: no cover
    import sys

    if sys.argv[1:] == ["--worker"]:
        _serve()
