"""Multi-target modules (format version 3): picking a target at load, and each kind of damage
giving its named one-line error from Python and from odc-run (exit 2), all without a GPU.

The test module carries the standard cuda module (tests/runtime/cuda_modules.py: a placeholder
cubin, never handed to a driver) and a cpu twin computing the same ``y = (2x + w) + z``,
``s = w - y`` with the runtime's test kernels, under one index written by
``optimizer.module.multi_target.write_multi_target``. Every target is validated before one is
picked, so damage to the cuda part fails the load on this CPU-only machine too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from optimizer import runtime
from optimizer.module.multi_target import write_multi_target
from optimizer.runtime import ModuleError
from tests.runtime.cuda_modules import (
    FAKE_CUBIN,
    compile_cubin,
    cuda_standard_module,
    cuda_standard_reference,
    have_cuda_driver,
    weights_for,
)
from tests.runtime.module_builder import (
    ModuleBuilder,
    edit_json,
    file_entry,
    refresh_files,
    standard_module,
)

SHAPE = (2, 4)
NO_DRIVER = "cuda skipped: NVIDIA driver not found"


def cpu_twin_module(directory: Path, shape: tuple[int, ...] = SHAPE) -> Path:
    """The standard cuda module's computation with the test kernels, on the cpu."""
    m = ModuleBuilder()
    x = m.input("x", shape)
    z = m.input("z", shape)
    w = m.weight("w", weights_for(shape))
    a = m.arena("a", shape)
    h = m.arena("h", shape)
    n = m.arena("n", shape)
    y = m.output("y", shape)
    s = m.output("s", shape)
    scale, add = m.kernel("test.scale_f32"), m.kernel("test.add_f32")
    m.step(scale, [x], [a], iparams=[0], fparams=[2.0, 0.0], node="scale")
    m.step(add, [a, w], [h], node="bias")
    m.step(add, [h, z], [y], node="residual")
    m.step(scale, [y], [n], iparams=[0], fparams=[-1.0, 0.0], node="negate")
    m.step(add, [n, w], [s], node="negate_bias")
    return m.write(directory)


def multi_module(directory: Path, cubin: bytes = FAKE_CUBIN, shape=SHAPE) -> Path:
    def build(target: str, part: Path) -> None:
        if target == "cpu":
            cpu_twin_module(part, shape)
        else:
            cuda_standard_module(part, cubin, shape)

    out, _ = write_multi_target(directory, ["cpu", "cuda"], build)
    return out


def _feeds(seed: int = 0, shape=SHAPE) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(shape).astype(np.float32) for k in ("x", "z")}


def _no_driver() -> dict[str, str]:
    return {**os.environ, "ODC_CUDA_DRIVER": "/nonexistent/libcuda.so.1"}


def _runner(directory: Path, *flags: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [runtime.runner_path(), str(directory), "--iterations", "1", *flags],
        capture_output=True, text=True, timeout=60, env=env or _no_driver(),
    )  # fmt: skip


# -- picking -----------------------------------------------------------------------------------


@pytest.mark.skipif(have_cuda_driver(), reason="this machine has an NVIDIA driver")
def test_auto_runs_the_cpu_part_without_a_driver(tmp_path: Path) -> None:
    m = runtime.load(multi_module(tmp_path / "m"))
    assert (m.device, m.targets) == ("cpu", ("cpu", "cuda"))
    assert m.target_note == f"{NO_DRIVER} (libcuda.so.1)"
    feeds = _feeds()
    out, want = m.run(feeds), cuda_standard_reference(**feeds)
    for name in ("y", "s"):
        np.testing.assert_allclose(out[name], want[name], rtol=1e-6, atol=1e-6)


def test_auto_without_a_driver_says_why_in_a_subprocess(tmp_path: Path) -> None:
    """The same, independent of this machine (the driver path is overridden), and the note is
    logged at INFO."""
    directory = multi_module(tmp_path / "m")
    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(message)s')\n"
        "from optimizer import runtime\n"
        f"m = runtime.load({str(directory)!r})\n"
        "print(m.device, m.targets, repr(m.target_note))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=_no_driver())  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    note = f"{NO_DRIVER} (/nonexistent/libcuda.so.1)"
    assert proc.stdout.splitlines() == [
        f"{directory}: {note}; running on cpu",
        f"cpu ('cpu', 'cuda') {note!r}",
    ]


def test_forcing_cuda_without_a_driver_is_the_driver_error(tmp_path: Path) -> None:
    directory = multi_module(tmp_path / "m")
    proc = _runner(directory, "--target", "cuda")
    assert proc.returncode == 2
    assert proc.stderr == (
        "odc-run: module targets cuda: NVIDIA driver not found (/nonexistent/libcuda.so.1)\n"
    )
    if not have_cuda_driver():
        with pytest.raises(ModuleError, match=r"^module targets cuda: NVIDIA driver not found"):
            runtime.load(directory, target="cuda")


def test_runner_prints_the_device_and_why_cuda_was_skipped(tmp_path: Path) -> None:
    directory = multi_module(tmp_path / "m")
    proc = _runner(directory)
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first == (f"device: cpu (targets cpu,cuda; {NO_DRIVER} (/nonexistent/libcuda.so.1))")
    proc = _runner(directory, "--target", "cpu", "--save-outputs", str(tmp_path))
    assert proc.returncode == 0 and proc.stdout.splitlines()[0] == "device: cpu (targets cpu,cuda)"
    assert np.load(tmp_path / "y.npy").shape == SHAPE  # seeded random inputs: shapes only
    proc = _runner(directory, "--target", "gpu")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == "odc-run: --target expects cpu, cuda or auto, got 'gpu'"


def test_single_target_modules_load_unchanged(tmp_path: Path) -> None:
    cpu = runtime.load(standard_module(tmp_path / "cpu"))
    assert (cpu.device, cpu.targets, cpu.target_note) == ("cpu", ("cpu",), "")
    assert runtime.load(tmp_path / "cpu", target="cpu").device == "cpu"
    with pytest.raises(ModuleError, match=r"^module has no cuda target \(it carries cpu\)$"):
        runtime.load(tmp_path / "cpu", target="cuda")
    cuda = cuda_standard_module(tmp_path / "cuda")
    with pytest.raises(ModuleError, match=r"^module has no cpu target \(it carries cuda\)$"):
        runtime.load(cuda, target="cpu")
    proc = _runner(tmp_path / "cpu")
    assert proc.returncode == 0 and proc.stdout.splitlines()[0] == "device: cpu (targets cpu)"


def test_each_part_is_a_module_of_its_own(tmp_path: Path) -> None:
    directory = multi_module(tmp_path / "m")
    assert runtime.load(directory / "cpu").targets == ("cpu",)
    index = json.loads((directory / "manifest.json").read_text())
    assert index["format_version"] == 3 and index["targets"] == ["cpu", "cuda"]
    assert index["inputs"][0] == {"name": "x", "dtype": "float32", "shape": list(SHAPE)}


def test_skipping_checksums_skips_them_in_every_part(tmp_path: Path) -> None:
    directory = multi_module(tmp_path / "m")
    _flip_byte(directory / "cuda" / "weights.bin")
    _respace(directory / "cuda" / "manifest.json")
    with pytest.raises(ModuleError):
        runtime.load(directory, target="cpu")
    assert runtime.load(directory, target="cpu", verify_checksums=False).device == "cpu"


# -- damage ------------------------------------------------------------------------------------


def _flip_byte(path: Path, at: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _respace(path: Path) -> None:
    """A same-size edit that keeps the JSON valid (': ' -> ':\t'): only the hash changes."""
    text = path.read_bytes()
    assert b": " in text
    path.write_bytes(text.replace(b": ", b":\t", 1))


def _refresh_index(directory: Path) -> None:
    """Recomputes the index's files table after a deliberate edit of a part's manifest."""
    index = json.loads((directory / "manifest.json").read_text())
    index["files"] = {
        name: file_entry(directory / name) for name in index["files"] if (directory / name).exists()
    }
    (directory / "manifest.json").write_text(json.dumps(index, indent=1))


def _edit_index(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(directory: Path) -> None:
        index = json.loads((directory / "manifest.json").read_text())
        edit(index)
        (directory / "manifest.json").write_text(json.dumps(index))

    return damage


def _in_part(target: str, damage: Callable[[Path], None]) -> Callable[[Path], None]:
    """Damage inside a part whose own hashes are then made consistent again (the part's
    manifest and the index): only the structural check can catch it."""

    def apply(directory: Path) -> None:
        damage(directory / target)
        refresh_files(directory / target)
        _refresh_index(directory)

    return apply


def _swap_parts(directory: Path) -> None:
    (directory / "cpu").rename(directory / "tmp")
    (directory / "cuda").rename(directory / "cpu")
    (directory / "tmp").rename(directory / "cuda")
    _refresh_index(directory)


def _nest(directory: Path) -> None:
    inner = directory.parent / "inner"
    multi_module(inner)
    shutil.rmtree(directory / "cpu")
    shutil.copytree(inner, directory / "cpu")
    _refresh_index(directory)


def _symlink_outside(directory: Path) -> None:
    outside = directory.parent / "elsewhere"
    shutil.move(directory / "cuda", outside)
    (directory / "cuda").symlink_to(outside)


def _other_signature(directory: Path) -> None:
    shutil.rmtree(directory / "cpu")
    cpu_twin_module(directory / "cpu", (2, 5))
    _refresh_index(directory)


def _cuda_arg_out_of_range(part: Path) -> None:
    edit_json(part, "plan.json", lambda p: p["steps"][0]["args"].__setitem__(2, {"out": 3}))


def _drop_file_entry(name: str) -> Callable[[Path], None]:
    return _edit_index(lambda m: m["files"].pop(name))


DAMAGE = [
    ("missing_target_dir", lambda d: shutil.rmtree(d / "cuda"),
     "invalid module: cuda/: missing target directory (manifest.json lists target 'cuda')"),
    ("missing_target_manifest", lambda d: (d / "cuda" / "manifest.json").unlink(),
     "invalid module: cuda/manifest.json: missing file"),
    ("missing_file_in_target", lambda d: (d / "cuda" / "plan.json").unlink(),
     "invalid module: target cuda: plan.json: missing file"),
    ("target_listed_twice", _edit_index(lambda m: m["targets"].append("cpu")),
     "invalid module: manifest.json: targets[2]: target 'cpu' is listed twice"),
    ("unknown_target", _edit_index(lambda m: m["targets"].__setitem__(1, "gpu")),
     "invalid module: manifest.json: targets[1]: unknown target 'gpu' (cpu, cuda)"),
    ("no_targets", _edit_index(lambda m: m.update(targets=[])),
     "invalid module: manifest.json: targets must be a non-empty array of target names"),
    ("checksum_in_cuda_part", lambda d: _flip_byte(d / "cuda" / "weights.bin"),
     "invalid module: target cuda: weights.bin: sha256 differs from the manifest"),
    ("checksum_in_cpu_part", lambda d: _respace(d / "cpu" / "plan.json"),
     "invalid module: target cpu: plan.json: sha256 differs from the manifest"),
    ("checksum_of_a_part_manifest", lambda d: _respace(d / "cuda" / "manifest.json"),
     "invalid module: cuda/manifest.json: sha256 differs from the manifest"),
    ("part_manifest_not_listed", _drop_file_entry("cuda/manifest.json"),
     "invalid module: manifest.json: files: cuda/manifest.json is not listed (target 'cuda')"),
    ("cuda_plan_invalid", _in_part("cuda", _cuda_arg_out_of_range),
     "invalid module: target cuda: plan.json: steps[0]: args[2]: out 3 is out of range"),
    ("parts_swapped", _swap_parts,
     "invalid module: target cpu: manifest.json: the module targets cuda, not cpu"),
    ("nested_index", _nest,
     "invalid module: target cpu: manifest.json: format_version 3 (a multi-target index) "
     "cannot be nested"),
    ("signature_differs", _other_signature,
     "invalid module: target cpu: manifest.json: inputs[0] x: float32 [2, 5] != the index's "
     "x: float32 [2, 4]"),
    ("signature_missing", _edit_index(lambda m: m.pop("outputs")),
     "invalid module: manifest.json: missing 'outputs'"),
    ("symlink_outside", _symlink_outside, "invalid module: cuda: a symlink to '"),
    ("unsafe_file_path", _edit_index(lambda m: m["files"].update({"../x": m["files"]["__init__.py"]})),
     "invalid module: manifest.json: files: '../x': path must be relative"),
]  # fmt: skip


@pytest.mark.parametrize(("damage", "message"), [pytest.param(d, m, id=n) for n, d, m in DAMAGE])
def test_damage_python(tmp_path: Path, damage, message: str) -> None:
    directory = multi_module(tmp_path / "m")
    damage(directory)
    for target in ("auto", "cpu"):  # a damaged part fails the load whichever target is asked
        with pytest.raises(ModuleError) as info:
            runtime.load(directory, target=target)
        text = str(info.value)
        assert message in text and "\n" not in text


@pytest.mark.parametrize(("damage", "message"), [pytest.param(d, m, id=n) for n, d, m in DAMAGE])
def test_damage_runner(tmp_path: Path, damage, message: str) -> None:
    directory = multi_module(tmp_path / "m")
    damage(directory)
    proc = _runner(directory)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("odc-run: ") and message in lines[0]


# -- on a GPU ----------------------------------------------------------------------------------


@pytest.mark.gpu
def test_auto_picks_cuda_on_a_gpu(tmp_path: Path) -> None:
    if not have_cuda_driver():
        pytest.skip("no NVIDIA driver")
    cubin = compile_cubin(tmp_path / "cubin")
    if cubin is None:
        pytest.skip("no nvcc to build the test cubin")
    shape = (4, 300)
    m = runtime.load(multi_module(tmp_path / "m", cubin, shape))
    assert (m.device, m.target_note) == ("cuda", "")
    feeds = _feeds(1, shape)
    want = cuda_standard_reference(**feeds)
    for module in (m, runtime.load(tmp_path / "m", target="cpu")):
        out = module.run(feeds)
        for name in ("y", "s"):
            np.testing.assert_allclose(out[name], want[name], rtol=1e-6, atol=1e-6)
    proc = _runner(tmp_path / "m", env=dict(os.environ))
    assert proc.returncode == 0 and proc.stdout.splitlines()[0] == "device: cuda (targets cpu,cuda)"
