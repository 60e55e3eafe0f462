"""Tactic selection (optimizer/lower/tactics.py) and optimizer._runtime.time_builtin."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

import optimizer
from optimizer import _runtime, ir
from optimizer.cli import main
from optimizer.errors import ModuleError
from optimizer.lower import tactics
from optimizer.lower.compile import CompileOptions, CompileReport, compile_model
from optimizer.module.writer import KernelBinding
from optimizer.optimize import OptimizeOptions
from tests.helpers import FLOAT, make_model

ATOL, RTOL = 1e-4, 1e-3


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the user's ~/.cache: every test gets its own cache directory."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("ODC_CACHE_DIR", str(cache))
    return cache


# -- time_builtin -------------------------------------------------------------------------------


def test_time_builtin_runs_and_writes_outputs() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 16, 24)).astype(np.float32)
    b = rng.standard_normal((24, 8)).astype(np.float32)
    y = np.zeros((2, 16, 8), np.float32)
    seconds = _runtime.time_builtin("gemm_f32", [a, b, None, None], [y], [0, 0, 0, 0],
                                    [1.0, 1.0, 0.0, 0.0], 0, 2, 3)  # fmt: skip
    assert len(seconds) == 3 and all(s >= 0 for s in seconds)
    np.testing.assert_allclose(y, a @ b, atol=1e-4, rtol=1e-4)
    assert _runtime.builtin_isa() in ("avx512", "avx2", "scalar")


def test_time_builtin_errors() -> None:
    a = np.zeros((4, 5), np.float32)
    y = np.zeros((4, 4), np.float32)
    with pytest.raises(ModuleError, match="unknown builtin kernel 'no_such_kernel'"):
        _runtime.time_builtin("no_such_kernel", [a], [y], [], [])
    with pytest.raises(ModuleError, match="kernel gemm_f32 failed: gemm_f32: inner dimensions"):
        _runtime.time_builtin("gemm_f32", [a, np.zeros((3, 4), np.float32), None, None], [y],
                              [0, 0, 0, 0], [1.0, 1.0, 0.0, 0.0])  # fmt: skip
    with pytest.raises(ModuleError, match="read-only"):
        ro = np.zeros((4, 4), np.float32)
        ro.setflags(write=False)
        _runtime.time_builtin("gemm_f32", [a, np.zeros((5, 4), np.float32)], [ro], [0, 0, 0, 0],
                              [1.0, 1.0, 0.0, 0.0])  # fmt: skip
    with pytest.raises(ModuleError, match="num_threads"):
        _runtime.time_builtin("gemm_f32", [], [], [], [], 0, 0, 1)


# -- the cache ----------------------------------------------------------------------------------


def test_cache_round_trip(_cache_dir: Path) -> None:
    cache = tactics.TimingCache()
    assert cache.path == _cache_dir / "tactics.json"
    assert cache.get("k") is None
    cache.put("k", "conv2d_packed_f32", {"conv2d_packed_f32": 1e-6, "depthwise_conv2d_f32": 2e-6})
    cache.save()
    assert json.loads(cache.path.read_text())["version"] == tactics.CACHE_VERSION
    again = tactics.TimingCache()
    assert again.get("k")["winner"] == "conv2d_packed_f32"
    # a second writer merges rather than overwriting
    other = tactics.TimingCache()
    other.put("k2", "gemm_f32", {})
    other.save()
    assert {"k", "k2"} <= set(tactics.TimingCache().entries)
    assert sorted(p.name for p in _cache_dir.iterdir()) == ["tactics.json"]  # no temporaries


@pytest.mark.parametrize("text", ["{not json", "[]", '{"version": 99, "entries": {}}',
                                  '{"version": 1, "entries": {"k": 3}}'])  # fmt: skip
def test_corrupt_cache_is_ignored(_cache_dir: Path, caplog: pytest.LogCaptureFixture,
                                  text: str) -> None:  # fmt: skip
    _cache_dir.mkdir()
    (_cache_dir / "tactics.json").write_text(text)
    with caplog.at_level(logging.WARNING, logger="optimizer.lower.tactics"):
        cache = tactics.TimingCache()
    assert cache.entries == {}
    assert "corrupt" in caplog.text
    cache.put("k", "x", {})
    cache.save()  # replaces the corrupt file
    assert tactics.TimingCache().get("k")["winner"] == "x"


def test_key_includes_shapes_threads_isa() -> None:
    b = KernelBinding("native.depthwise_conv2d_f32", "native", "builtin", "depthwise_conv2d_f32",
                      iparams=[1, 1, 1, 1, 1, 1, 1, 1, 8, 0, 0], fparams=[0.0, 0.0])  # fmt: skip
    shapes = [("float32", (1, 8, 9, 9)), ("float32", (8, 1, 3, 3)), None, None]
    names = ["depthwise_conv2d_f32", "conv2d_packed_f32"]
    base = tactics.cache_key("depthwise_conv", names, b, shapes, "avx512", 2)
    assert base == tactics.cache_key("depthwise_conv", names[::-1], b, shapes, "avx512", 2)
    other_shape = [("float32", (1, 8, 17, 17)), *shapes[1:]]
    assert base != tactics.cache_key("depthwise_conv", names, b, other_shape, "avx512", 2)
    assert base != tactics.cache_key("depthwise_conv", names, b, shapes, "avx2", 2)
    assert base != tactics.cache_key("depthwise_conv", names, b, shapes, "avx512", 1)
    b2 = KernelBinding(b.name, b.backend, b.kind, b.entry, iparams=[2, 2, *b.iparams[2:]],
                       fparams=b.fparams)  # fmt: skip
    assert base != tactics.cache_key("depthwise_conv", names, b2, shapes, "avx512", 2)


# -- compiles -----------------------------------------------------------------------------------


def _pw_dw_model() -> onnx.ModelProto:
    """Pointwise and depthwise convs with bias, relu and residuals (one whose residual is the
    conv's own input); the last dw conv has stride 2 and writes the graph output."""
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("Abs", ["x"], ["a"], name="abs"),
        helper.make_node("Conv", ["a", "pw", "pb"], ["p"], name="pw"),
        helper.make_node("Relu", ["p"], ["pr"], name="pw_relu"),
        helper.make_node("Conv", ["pr", "dw", "db"], ["d"], group=16, pads=[1, 1, 1, 1], name="dw"),
        helper.make_node("Add", ["d", "pr"], ["s"], name="residual"),
        helper.make_node("Conv", ["s", "pw2"], ["q"], name="pw2"),
        helper.make_node("Add", ["q", "s"], ["t"], name="residual2"),
        helper.make_node("Conv", ["t", "dw2"], ["y"], group=16, strides=[2, 2], name="dw2"),
    ]
    weights = {
        "pw": (0.3 * rng.standard_normal((16, 8, 1, 1))).astype(np.float32),
        "pb": rng.standard_normal(16).astype(np.float32),
        "dw": (0.3 * rng.standard_normal((16, 1, 3, 3))).astype(np.float32),
        "db": rng.standard_normal(16).astype(np.float32),
        "pw2": (0.3 * rng.standard_normal((16, 16, 1, 1))).astype(np.float32),
        "dw2": (0.3 * rng.standard_normal((16, 1, 3, 3))).astype(np.float32),
    }
    return make_model(
        nodes, [("x", FLOAT, ["N", 8, 12, 12])], [("y", FLOAT, ["N", 16, 5, 5])], weights
    )


def _compile(out: Path, **kw) -> CompileReport:
    proto = _pw_dw_model()
    model = ir.Model.from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))
    options = CompileOptions(OptimizeOptions(input_shapes={"x": (1, 8, 12, 12)}, check=False), **kw)
    return compile_model(model, out, options)


def _check_against_ort(module_dir: Path) -> None:
    x = np.random.default_rng(5).standard_normal((1, 8, 12, 12)).astype(np.float32)
    session = ort.InferenceSession(_pw_dw_model().SerializeToString(),
                                   providers=["CPUExecutionProvider"])  # fmt: skip
    want = session.run(None, {"x": x})[0]
    got = optimizer.load(module_dir).run({"x": x})["y"]
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)


def test_untuned_compile_uses_rules(tmp_path: Path, _cache_dir: Path) -> None:
    report = _compile(tmp_path / "m")
    assert [t.source for t in report.tactics] == ["default"] * len(report.tactics)
    assert {t.family for t in report.tactics} == {"pointwise_conv", "depthwise_conv"}
    assert report.kernel_counts()["native.depthwise_conv2d_f32"] == 2
    assert not (_cache_dir / "tactics.json").exists()
    _check_against_ort(tmp_path / "m")


def test_tuned_compile_matches_ort_and_caches(tmp_path: Path, _cache_dir: Path) -> None:
    report = _compile(tmp_path / "m", tune=True, tune_threads=2)
    tuned = [t for t in report.tactics if t.source == "tuned"]
    assert len(tuned) == 4
    for t in tuned:
        assert len(t.seconds) == 2 and t.winner in t.seconds
    assert "tactics (4 steps)" in report.format()
    _check_against_ort(tmp_path / "m")
    entries = json.loads((_cache_dir / "tactics.json").read_text())["entries"]
    assert len(entries) == 4  # the two dw convs differ in stride, the pw ones in shape
    assert all(json.loads(k)["threads"] == 2 for k in entries)


def test_cached_winner_is_used_without_tune(tmp_path: Path, _cache_dir: Path) -> None:
    _compile(tmp_path / "m", tune=True, tune_threads=1)
    path = _cache_dir / "tactics.json"
    data = json.loads(path.read_text())
    for key, entry in data["entries"].items():
        if json.loads(key)["family"] == "depthwise_conv":
            entry["winner"] = "conv2d_packed_f32"
    path.write_text(json.dumps(data))
    report = _compile(tmp_path / "m2", tune_threads=1)
    dw = [t for t in report.tactics if t.family == "depthwise_conv"]
    assert [(t.winner, t.source) for t in dw] == [("conv2d_packed_f32", "cache")] * 2
    assert "native.depthwise_conv2d_f32" not in report.kernel_counts()
    _check_against_ort(tmp_path / "m2")
    # another thread count is another key: the rules again
    report = _compile(tmp_path / "m3", tune_threads=3)
    assert {t.source for t in report.tactics} == {"default"}


def test_pointwise_gemm_through_views(tmp_path: Path, _cache_dir: Path) -> None:
    """gemm_f32 for 1x1 convs: X and the residual reach it as [N, C, H*W] views sharing their
    bytes (no-op copy steps, one X that is also the residual), Y leaves through one in place."""
    _compile(tmp_path / "m", tune=True, tune_threads=1)
    path = _cache_dir / "tactics.json"
    data = json.loads(path.read_text())
    for key, entry in data["entries"].items():
        if json.loads(key)["family"] == "pointwise_conv":
            entry["winner"] = "gemm_f32"
    path.write_text(json.dumps(data))
    report = _compile(tmp_path / "m2", tune_threads=1)
    pw = [t for t in report.tactics if t.family == "pointwise_conv"]
    assert [(t.winner, t.source) for t in pw] == [("gemm_f32", "cache")] * 2
    counts = report.kernel_counts()
    assert counts["native.gemm_f32"] == 2 and "native.conv2d_packed_f32" not in counts
    assert counts["native.copy"] == 5  # pw: x, y; pw2: x, residual (the same value), y
    for t in pw:
        assert report.steps[t.step].kernel == "native.gemm_f32"
        assert report.steps[t.step].node == t.node
    plan = json.loads((tmp_path / "m2" / "plan.json").read_text())
    manifest = json.loads((tmp_path / "m2" / "manifest.json").read_text())
    copy = next(k["id"] for k in manifest["kernels"] if k["entry"] == "copy")
    values = plan["values"]
    copies = [s for s in plan["steps"] if s["kernel"] == copy]
    assert len(copies) == 5
    for step in copies:  # every view shares its input's bytes: the copies are no-ops
        src, dst = values[step["inputs"][0]], values[step["outputs"][0]]
        assert src["storage"] == dst["storage"] == "arena"
        assert src["offset"] == dst["offset"], (src["name"], dst["name"])
    _check_against_ort(tmp_path / "m2")


def test_disagreeing_candidate_is_discarded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    def wrong(ctx: tactics.Context) -> tactics.Candidate:
        c = tactics._depthwise_as_packed(ctx)
        c.inputs[1] = -c.inputs[1]  # negated weights: fast, maybe, but wrong
        c.name = "wrong_packed"
        return c

    family = tactics.Family("depthwise_conv", tactics._is_depthwise, [tactics._default, wrong])
    monkeypatch.setattr(tactics, "FAMILIES", [family])
    with caplog.at_level(logging.WARNING, logger="optimizer.lower.tactics"):
        report = _compile(tmp_path / "m", tune=True, tune_threads=1)
    assert "tactic wrong_packed for dw discarded" in caplog.text
    for t in report.tactics:
        assert t.winner == "depthwise_conv2d_f32"
        assert "disagrees" in t.rejected["wrong_packed"]
        assert "wrong_packed" not in t.seconds
    _check_against_ort(tmp_path / "m")


def test_cli_tune_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture,
                             _cache_dir: Path) -> None:  # fmt: skip
    src = tmp_path / "model.onnx"
    onnx.save(_pw_dw_model(), src)
    out = tmp_path / "module"
    argv = [str(src), "-o", f"{out}/", "--input-shape", "x:1x8x12x12", "--no-fallback"]
    rc = main([*argv, "--tune", "--tune-threads", "2", "--no-check"])
    assert rc == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "tactics (4 steps)" in text and "(tuned)" in text
    _check_against_ort(out)
    assert (_cache_dir / "tactics.json").is_file()
    rc = main([*argv, "--tune-threads", "2", "--no-check"])  # the cache, no timing
    assert rc == 0
    assert "(cache)" in capsys.readouterr().out
    rc = main([str(src), "-o", str(tmp_path / "x.onnx"), "--tune"])
    assert rc == 2
    assert "--tune applies to compiled modules only" in capsys.readouterr().err
