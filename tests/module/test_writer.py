"""write_module: the files, their hashes, weights layout, graph.onnx, import, atomicity."""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
import types
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper

import optimizer
from optimizer.errors import UsageError
from optimizer.lower import partition, plan_memory, schedule
from optimizer.module import KernelBinding, Manifest, Plan, atomic_dir, write_module, writer
from tests.helpers import FLOAT, make_model
from tests.lower.util import to_model

RNG = np.random.default_rng(0)


def tiny_proto():
    """Conv (no bias input) + bias Add + Relu -> MaxPool -> Reshape -> Gemm."""
    return make_model(
        [
            helper.make_node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("Add", ["c", "bias"], ["b"], name="bias_add"),
            helper.make_node("Relu", ["b"], ["r"], name="relu"),
            helper.make_node(
                "MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]
            ),
            helper.make_node("Reshape", ["p", "shape"], ["f"], name="flat"),
            helper.make_node("Gemm", ["f", "G", "g"], ["y"], name="fc", transB=1),
        ],
        [("x", FLOAT, [1, 3, 8, 8])],
        [("y", FLOAT, [1, 10])],
        {
            "W": RNG.standard_normal((4, 3, 3, 3)).astype(np.float32),
            "bias": RNG.standard_normal((4, 1, 1)).astype(np.float32),
            "shape": np.array([1, 64], np.int64),
            "G": RNG.standard_normal((10, 64)).astype(np.float32),
            "g": RNG.standard_normal(10).astype(np.float32),
        },
    )


def compile_tiny(out_dir: Path, tag: str = "reference"):
    proto = tiny_proto()
    model = to_model(proto)
    plan = plan_memory(schedule(model, partition(model)))
    bindings = [
        KernelBinding(f"{tag}.{g.pattern}", tag, "python", f"optimizer.kernels.{tag}:{g.kind}")
        for g in plan.schedule.steps
    ]
    return proto, model, plan, write_module(model, plan, bindings, out_dir)


def read_module(path: Path) -> tuple[Manifest, Plan]:
    return (
        Manifest.from_json((path / "manifest.json").read_text()),
        Plan.from_json((path / "plan.json").read_text()),
    )


def test_files_are_listed_with_sizes_and_hashes(tmp_path: Path) -> None:
    _, _, _, out = compile_tiny(tmp_path / "tiny")
    manifest, _ = read_module(out)
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk - set(manifest.files) == {"manifest.json"}
    assert set(manifest.files) == {"plan.json", "weights.bin", "graph.onnx", "__init__.py"}
    for name, entry in manifest.files.items():
        data = (out / name).read_bytes()
        assert entry.size == len(data)
        assert entry.sha256 == hashlib.sha256(data).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]  # no temporary left


def test_weights_are_aligned_little_endian_and_exact(tmp_path: Path) -> None:
    proto, _, _, out = compile_tiny(tmp_path / "tiny")
    _, plan = read_module(out)
    blob = (out / "weights.bin").read_bytes()
    assert len(blob) % 64 == 0
    inits = {t.name: t for t in proto.graph.initializer}
    weights = [v for v in plan.values if v.storage == "weights"]
    assert {v.name for v in weights} == set(inits)
    from onnx import numpy_helper

    for v in weights:
        assert v.offset % 64 == 0
        expected = numpy_helper.to_array(inits[v.name])
        got = np.frombuffer(
            blob, dtype=expected.dtype.newbyteorder("<"), count=expected.size, offset=v.offset
        )
        np.testing.assert_array_equal(got.reshape(expected.shape), expected)
        assert v.nbytes == expected.nbytes
    # padding between constants is zero
    covered = np.zeros(len(blob), bool)
    for v in weights:
        covered[v.offset : v.offset + v.nbytes] = True
    assert not np.frombuffer(blob, np.uint8)[~covered].any()


def test_plan_follows_the_memory_plan(tmp_path: Path) -> None:
    _, _, mem, out = compile_tiny(tmp_path / "tiny")
    manifest, plan = read_module(out)
    assert plan.arena_size == mem.arena_size and plan.alignment == 64
    by_name = {v.name: v for v in plan.values}
    for name, placed in mem.placements.items():
        assert (by_name[name].storage, by_name[name].offset, by_name[name].nbytes) == (
            "arena",
            placed.offset,
            placed.nbytes,
        )
    assert [v.id for v in plan.values] == list(range(len(plan.values)))
    assert [s.node for s in plan.steps] == [g.name for g in mem.schedule.steps]
    first = plan.steps[0]  # conv+bias+relu: x, W, (omitted conv bias), bias
    assert manifest.kernels[first.kernel].name == "reference.conv+bias+relu"
    assert first.inputs == [by_name["x"].id, by_name["W"].id, -1, by_name["bias"].id]
    assert plan.values[manifest.outputs[0].value].storage == "output"
    assert manifest.inputs[0].shape == [1, 3, 8, 8] and manifest.inputs[0].dtype == "float32"
    assert len(manifest.kernels) == len({s.kernel for s in plan.steps}) == 4


def test_graph_onnx_runs_and_shares_weights_bin(tmp_path: Path) -> None:
    proto, _, _, out = compile_tiny(tmp_path / "tiny")
    feeds = {"x": RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)}
    want = ort.InferenceSession(proto.SerializeToString()).run(None, feeds)
    got = ort.InferenceSession(str(out / "graph.onnx")).run(None, feeds)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)
    # G (2560 bytes) lives only in weights.bin; the tiny shape constant stays inline
    assert (out / "graph.onnx").stat().st_size < 2560


def test_kernel_artifacts_are_copied_and_shared(tmp_path: Path) -> None:
    model = to_model(tiny_proto())
    mem = plan_memory(schedule(model, partition(model)))
    lib = tmp_path / "libk.so"
    lib.write_bytes(b"\x7fELF fake")
    same = KernelBinding("native.any", "native", "shared_library", "odc_kernel_any", artifact=lib)
    out = write_module(model, mem, [same] * len(mem.schedule.steps), tmp_path / "mod")
    manifest, plan = read_module(out)
    assert [k.file for k in manifest.kernels] == ["kernels/0.so"]
    assert (out / "kernels/0.so").read_bytes() == b"\x7fELF fake"
    assert manifest.files["kernels/0.so"].sha256 == hashlib.sha256(b"\x7fELF fake").hexdigest()
    assert {s.kernel for s in plan.steps} == {0}


def test_module_imports_as_a_package_and_delegates_to_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, _, out = compile_tiny(tmp_path / "tiny_module")
    calls = []

    class Loaded:
        inputs = ["x"]

        def run(self, feeds):
            return {"y": feeds["x"] * 2}

    runtime = types.ModuleType("optimizer.runtime")
    runtime.load = lambda path: calls.append(Path(path)) or Loaded()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "optimizer.runtime", runtime)
    monkeypatch.setattr(optimizer, "runtime", runtime, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        package = importlib.import_module("tiny_module")
        assert calls == []  # the runtime is loaded lazily
        result = package.run({"x": np.ones(2)})
        assert result["y"].tolist() == [2.0, 2.0]
        assert package.inputs == ["x"]
        package.run({"x": np.ones(1)})
        assert calls == [out.resolve()]  # loaded once
    finally:
        sys.modules.pop("tiny_module", None)


def test_failure_mid_write_leaves_no_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer, "_write_graph", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        compile_tiny(tmp_path / "tiny")
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_write_keeps_the_old_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, _, out = compile_tiny(tmp_path / "tiny")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "_write_weights", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compile_tiny(tmp_path / "tiny", tag="native")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_existing_module_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    if not exchange:
        monkeypatch.setattr(atomic_dir, "_exchange", lambda a, b: False)
    compile_tiny(tmp_path / "tiny")
    (tmp_path / "tiny" / "stale.txt").write_text("from the old module")
    _, _, _, out = compile_tiny(tmp_path / "tiny", tag="native")
    manifest, _ = read_module(out)
    assert {k.backend for k in manifest.kernels} == {"native"}
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def test_refuses_to_replace_something_else(tmp_path: Path) -> None:
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not a compiled module"):
        compile_tiny(precious)
    assert (precious / "notes.txt").read_text() == "keep me"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        compile_tiny(a_file)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "home"]


def test_bindings_must_cover_the_schedule(tmp_path: Path) -> None:
    model = to_model(tiny_proto())
    mem = plan_memory(schedule(model, partition(model)))
    with pytest.raises(UsageError, match="1 kernel bindings for 4 steps"):
        write_module(model, mem, [KernelBinding("a.b", "a", "builtin", "b")], tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_manifest_json_is_the_documented_shape(tmp_path: Path) -> None:
    _, _, _, out = compile_tiny(tmp_path / "tiny")
    d = json.loads((out / "manifest.json").read_text())
    assert list(d) == [
        "format",
        "format_version",
        "producer",
        "source_model_sha256",
        "targets",
        "inputs",
        "outputs",
        "kernels",
        "files",
    ]
    assert d["format"] == "onnx-deploy-module" and d["targets"] == ["cpu"]
    assert d["producer"]["name"] == "onnx-deploy-optimizer"
