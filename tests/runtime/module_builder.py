"""Writes small compiled modules by hand (docs/module-format.md), for the runtime tests.

The modules use the runtime's test kernels (csrc/src/test_kernels.cpp): test.add_f32,
test.relu_f32, test.matmul_f32_naive, test.scale_f32, test.fail, test.copy_workspace.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ALIGN = 64


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


class ModuleBuilder:
    """Collects values, kernels and steps; ``write(dir)`` emits manifest, plan and weights."""

    def __init__(self, target: str = "cpu", arch: str = "sm_90") -> None:
        """``target="cuda"`` writes a format-2 module for the CUDA runtime (values on the
        device, kernels of kind ``cubin``)."""
        self.target = target
        self.arch = arch
        self.values: list[dict[str, Any]] = []
        self.kernels: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []
        self.inputs: list[dict[str, Any]] = []
        self.outputs: list[dict[str, Any]] = []
        self.weights = bytearray()
        self.arena_size = 0
        self.extra_files: dict[str, bytes] = {}

    def _value(self, name: str, shape: Sequence[int], dtype: str, storage: str, **kw) -> int:
        vid = len(self.values)
        self.values.append(
            {
                "id": vid,
                "name": name,
                "dtype": dtype,
                "shape": list(shape),
                "storage": storage,
                "device": self.target,
                **kw,
            }
        )
        return vid

    def input(self, name: str, shape: Sequence[int], dtype: str = "float32") -> int:
        vid = self._value(name, shape, dtype, "input")
        self.inputs.append({"name": name, "dtype": dtype, "shape": list(shape), "value": vid})
        return vid

    def output(self, name: str, shape: Sequence[int], dtype: str = "float32") -> int:
        vid = self._value(name, shape, dtype, "output")
        self.outputs.append({"name": name, "dtype": dtype, "shape": list(shape), "value": vid})
        return vid

    def weight(self, name: str, array: np.ndarray) -> int:
        array = np.ascontiguousarray(array)
        offset = _align(len(self.weights))
        self.weights.extend(b"\0" * (offset - len(self.weights)))
        self.weights.extend(array.tobytes())
        return self._value(
            name, array.shape, str(array.dtype), "weights", offset=offset, nbytes=array.nbytes
        )

    def arena(self, name: str, shape: Sequence[int], dtype: str = "float32") -> int:
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        offset = self.arena_size
        self.arena_size = _align(offset + nbytes)
        return self._value(name, shape, dtype, "arena", offset=offset, nbytes=nbytes)

    def kernel(self, entry: str, kind: str = "builtin", file: str | None = None) -> int:
        kid = len(self.kernels)
        self.kernels.append(
            {
                "id": kid,
                "name": f"{kind}.{entry}",
                "backend": "test",
                "kind": kind,
                "entry": entry,
                "file": file,
                "version": 1,
            }
        )
        return kid

    def cubin_kernel(
        self,
        name: str,
        entry: str,
        cubin: bytes,
        params: Sequence[str],
        *,
        num_warps: int = 4,
        shared: int = 0,
    ) -> int:
        """A kernel of kind ``cubin``: ``cubin`` is written to kernels/<id>.cubin."""
        kid = len(self.kernels)
        file = f"kernels/{kid}.cubin"
        self.extra_files[file] = cubin
        self.kernels.append(
            {
                "id": kid,
                "name": name,
                "backend": "test",
                "kind": "cubin",
                "file": file,
                "entry": entry,
                "version": 1,
                "launch": {"num_warps": num_warps, "shared": shared, "params": list(params)},
            }
        )
        return kid

    def step(
        self,
        kernel: int,
        inputs: Sequence[int],
        outputs: Sequence[int],
        *,
        iparams: Sequence[int] = (),
        fparams: Sequence[float] = (),
        node: str = "",
        workspace: int = 0,
        grid: Sequence[int] | None = None,
        args: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        step: dict[str, Any] = {
            "kernel": kernel,
            "node": node or f"node{len(self.steps)}",
            "inputs": list(inputs),
            "outputs": list(outputs),
            "iparams": list(iparams),
            "fparams": list(fparams),
            "workspace": workspace,
        }
        if grid is not None:
            step["grid"] = list(grid)
        if args is not None:
            step["args"] = [dict(a) for a in args]
        self.steps.append(step)

    def plan(self) -> dict[str, Any]:
        return {
            "alignment": ALIGN,
            "arena_size": self.arena_size,
            "values": self.values,
            "steps": self.steps,
        }

    def manifest(self) -> dict[str, Any]:
        cuda = self.target == "cuda"
        return {
            "format": "onnx-deploy-module",
            "format_version": 2 if cuda else 1,
            "producer": {"name": "tests.runtime.module_builder", "version": "0.1.0"},
            "source_model_sha256": "0" * 64,
            "targets": [self.target],
            **({"cuda": {"arch": self.arch}} if cuda else {}),
            "inputs": self.inputs,
            "outputs": self.outputs,
            "kernels": self.kernels,
            "files": {},
        }

    def write(self, directory: Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "plan.json").write_text(json.dumps(self.plan(), indent=1))
        (directory / "weights.bin").write_bytes(bytes(self.weights))
        for rel, data in self.extra_files.items():
            (directory / rel).parent.mkdir(parents=True, exist_ok=True)
            (directory / rel).write_bytes(data)
        manifest = self.manifest()
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=1))
        refresh_files(directory, ["plan.json", "weights.bin", *self.extra_files])
        return directory


def file_entry(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def refresh_files(directory: Path, names: Sequence[str] | None = None) -> None:
    """Recomputes the manifest's files table (size + sha256) from the files on disk."""
    manifest = json.loads((directory / "manifest.json").read_text())
    names = list(names) if names is not None else list(manifest["files"])
    manifest["files"] = {n: file_entry(directory / n) for n in names if (directory / n).exists()}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1))


def edit_json(
    directory: Path, name: str, edit: Callable[[dict], Any], *, refresh: bool = True
) -> None:
    """Applies ``edit`` to manifest.json or plan.json; refreshes hashes unless told not to."""
    path = directory / name
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=1))
    if refresh and name != "manifest.json":
        refresh_files(directory)


# The standard test module: y = relu(x @ w + b) + z ;  s = y * 2 - 1  (both outputs).
W = np.arange(12, dtype=np.float32).reshape(3, 4) / 10 - 0.5
B = np.array([0.1, -0.2, 0.3, -0.4], dtype=np.float32)


def standard_module(directory: Path) -> Path:
    m = ModuleBuilder()
    x = m.input("x", [2, 3])
    z = m.input("z", [2, 4])
    w = m.weight("w", W)
    b = m.weight("b", B)
    h = m.arena("h", [2, 4])
    r = m.arena("r", [2, 4])
    y = m.output("y", [2, 4])
    s = m.output("s", [2, 4])
    k_mm = m.kernel("test.matmul_f32_naive")
    k_relu = m.kernel("test.relu_f32")
    k_add = m.kernel("test.add_f32")
    k_scale = m.kernel("test.scale_f32")
    m.step(k_mm, [x, w, b], [h], node="fc")
    m.step(k_relu, [h], [r], node="act")
    m.step(k_add, [r, z], [y], node="residual")
    m.step(k_scale, [y], [s], iparams=[0], fparams=[2.0, -1.0], node="affine")
    return m.write(directory)


def standard_reference(x: np.ndarray, z: np.ndarray) -> dict[str, np.ndarray]:
    y = np.maximum(x @ W + B, 0) + z
    return {"y": y, "s": y * 2 - 1}


def standard_feeds(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((2, 3)).astype(np.float32),
        "z": rng.standard_normal((2, 4)).astype(np.float32),
    }
