"""Each kind of damage gives its named one-line error, from Python and from odc-run (exit 2)."""

from __future__ import annotations

import json
import random
import subprocess

import pytest

from optimizer import runtime
from optimizer.runtime import ModuleError
from tests.runtime.corruptions import CORRUPTIONS, CPU_CUDA_CORRUPTIONS, CUDA_CORRUPTIONS
from tests.runtime.cuda_modules import cuda_standard_module
from tests.runtime.module_builder import ModuleBuilder, refresh_files, standard_module

# (module factory, damage, expected error) for the cpu module and the cuda module (format 2).
CASES = [
    pytest.param(standard_module, damage, message, id=name)
    for name, damage, message in CORRUPTIONS + CPU_CUDA_CORRUPTIONS
] + [
    pytest.param(cuda_standard_module, damage, message, id=f"cuda-{name}")
    for name, damage, message in CUDA_CORRUPTIONS
]


@pytest.mark.parametrize(("make", "damage", "message"), CASES)
def test_python_error(tmp_path, make, damage, message):
    directory = make(tmp_path / "m")
    damage(directory)
    with pytest.raises(ModuleError) as info:
        runtime.load(directory)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize(("make", "damage", "message"), CASES)
def test_runner_error(tmp_path, make, damage, message):
    directory = make(tmp_path / "m")
    damage(directory)
    proc = subprocess.run(
        [runtime.runner_path(), str(directory), "--iterations", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("odc-run: ")
    assert message in lines[0]


def test_runner_refuses_python_kernels(tmp_path):
    m = ModuleBuilder()
    x = m.input("x", [6])
    y = m.output("y", [6])
    m.step(m.kernel("tests.runtime.test_load_run:negate_kernel", kind="python"), [x], [y])
    directory = m.write(tmp_path / "m")
    proc = subprocess.run([runtime.runner_path(), str(directory)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        "odc-run: module needs Python: kernels[0] 'python.tests.runtime.test_load_run:negate_kernel'"
        " has kind 'python'"
    )


def test_missing_module_dir(tmp_path):
    with pytest.raises(ModuleError, match=r"cannot open module '.*nowhere': No such file"):
        runtime.load(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModuleError, match="not a directory"):
        runtime.load(tmp_path / "file")


@pytest.mark.parametrize("name", ["plan.json", "manifest.json"])
def test_random_byte_damage_never_crashes(tmp_path, name):
    # Hostile bytes in a JSON file whose hash is then made to match: every outcome is a clean
    # load or a ModuleError, never a crash (the C++ tests run the same under ASan/UBSan).
    rng = random.Random(1234)
    original = standard_module(tmp_path / "m")
    pristine = {p.name: p.read_bytes() for p in original.iterdir()}
    errors = 0
    for _ in range(150):
        for file_name, data in pristine.items():
            (original / file_name).write_bytes(data)
        data = bytearray(pristine[name])
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(data))
            data[pos] = rng.choice(b'0123456789-[]{}",:ex\x00\xff ')
        (original / name).write_bytes(bytes(data))
        if name == "plan.json":
            refresh_files(original)
        try:
            runtime.load(original)
        except ModuleError as err:
            assert "\n" not in str(err)
            errors += 1
    assert errors > 50


def test_manifest_files_are_all_checked(tmp_path):
    directory = standard_module(tmp_path / "m")
    (directory / "graph.onnx").write_bytes(b"onnx bytes")
    refresh_files(directory, ["plan.json", "weights.bin", "graph.onnx"])
    runtime.load(directory)
    (directory / "graph.onnx").write_bytes(b"ONNX bytes")
    with pytest.raises(ModuleError, match=r"graph\.onnx: sha256 differs from the manifest"):
        runtime.load(directory)
    runtime.load(directory, verify_checksums=False)  # sizes only
    (directory / "graph.onnx").unlink()
    with pytest.raises(ModuleError, match=r"invalid module: graph\.onnx: missing file"):
        runtime.load(directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert "graph.onnx" in manifest["files"]
