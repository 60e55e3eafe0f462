"""Tactic alternatives of the tunable plans, and the known-tactics table.

Every alternative a plan registers must compute what its default launch computes (only the
tiling, warps or stages differ): each runs on the ``device`` fixture next to the default and
the outputs agree to summation-order differences. A table entry for a step's key changes the
default launch; bad tables change nothing.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import optimizer.kernels.triton.all  # noqa: F401
import pytest
import torch
from optimizer.kernels.triton import known_tactics
from optimizer.kernels.triton.gemm import TileConfig
from optimizer.kernels.triton.launch import (
    TensorDesc,
    alternatives_for,
    launch_torch,
    plan_for,
)

from tools import cuda_tactics_table

TORCH = {"float32": torch.float32, "float16": torch.float16}
# Alternatives sum in another order (other K slices, tiles): fp32 differs in the last bits;
# fp16 outputs may round the other way (one ulp of 2^-11, relative).
TOL = {"float32": 1e-5, "float16": 2e-3}


def gemm_case(dtype: str):
    """Batch-1 projection with bias (small-M class): A [1, 16, 96], B [96, 40], C [40]."""
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((1, 16, 96)), rng.standard_normal((96, 40)) * 0.1,
              rng.standard_normal(40)]  # fmt: skip
    return "gemm_f32", arrays, [(1, 16, 40)], [0, 0, 1, 0], [1.0, 1.0, 0.0, 0.0], dtype


def conv_case(dtype: str):
    """3x3 pad 1 with bias and relu: X [2, 8, 9, 9], W [16, 8, 3, 3]."""
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((2, 8, 9, 9)), rng.standard_normal((16, 8, 3, 3)) * 0.2,
              rng.standard_normal(16)]  # fmt: skip
    return ("conv2d_f32", arrays, [(2, 16, 9, 9)], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0],
            [0.0, 0.0], dtype)  # fmt: skip


def pointwise_case(dtype: str):
    """1x1 stride 1 (the pointwise mode): X [1, 32, 5, 5], W [24, 32, 1, 1]."""
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal((1, 32, 5, 5)), rng.standard_normal((24, 32, 1, 1)) * 0.2]
    return ("conv2d_f32", arrays, [(1, 24, 5, 5)], [1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0],
            [0.0, 0.0], dtype)  # fmt: skip


def transpose_case(dtype: str):
    """ConvTranspose stride 2: X [1, 8, 4, 4], W [8, 6, 3, 3] -> [1, 6, 9, 9]."""
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((1, 8, 4, 4)), rng.standard_normal((8, 6, 3, 3)) * 0.2]
    return ("conv_transpose2d_f32", arrays, [(1, 6, 9, 9)],
            [2, 2, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0], [0.0, 0.0], dtype)  # fmt: skip


def depthwise_case(dtype: str):
    """Depthwise 3x3 pad 1 with bias: X [1, 6, 15, 15], W [6, 1, 3, 3]."""
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal((1, 6, 15, 15)), rng.standard_normal((6, 1, 3, 3)),
              rng.standard_normal(6)]  # fmt: skip
    return ("depthwise_conv2d_f32", arrays, [(1, 6, 15, 15)], [1, 1, 1, 1, 1, 1, 1, 1, 6, 0, 0],
            [0.0, 0.0], dtype)  # fmt: skip


CASES = [gemm_case, conv_case, pointwise_case, transpose_case, depthwise_case]


def _descs(case):
    entry, arrays, out_shapes, ip, fp, dtype = case
    ins = [TensorDesc(tuple(a.shape), dtype) for a in arrays]
    outs = [TensorDesc(tuple(s), dtype) for s in out_shapes]
    return entry, ins, outs, ip, fp


def _run(launch, case, device):
    _, arrays, out_shapes, _, _, dtype = case
    ins = [torch.from_numpy(np.asarray(a, np.float32)).to(TORCH[dtype]).to(device) for a in arrays]
    y = torch.full(out_shapes[0], float("nan"), dtype=TORCH[dtype], device=device)
    launch_torch(launch, ins, [y])
    return y.cpu().to(torch.float64).numpy()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("make", CASES, ids=lambda f: f.__name__)
def test_every_alternative_computes_the_default_result(make, dtype, device) -> None:
    case = make(dtype)
    entry, ins, outs, ip, fp = _descs(case)
    default = plan_for(entry)(ins, outs, ip, fp)
    alternatives = alternatives_for(entry)(ins, outs, ip, fp)
    assert 2 <= len(alternatives) <= 4
    names = [default.tactic, *(a.tactic for a in alternatives)]
    assert all(names) and len(set(names)) == len(names), names
    want = _run(default, case, device)
    assert np.isfinite(want).all()
    for alt in alternatives:
        # Same kernel contract: the same step tensors and scalars, in the same order.
        assert alt.name == default.name and alt.args == default.args
        got = _run(alt, case, device)
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * scale,
                                   err_msg=f"{entry} {alt.tactic} vs {default.tactic}")  # fmt: skip


def test_tunable_entries() -> None:
    for entry in ("gemm_f32", "conv2d_f32", "conv2d_packed_f32", "conv_transpose2d_f32",
                  "depthwise_conv2d_f32"):  # fmt: skip
        assert alternatives_for(entry) is not None, entry
    assert alternatives_for("softmax_f32") is None


def test_tile_config_names_round_trip() -> None:
    cfg = TileConfig(64, 128, 32, 8, 4, 3)
    assert TileConfig.from_key(cfg.key()) == cfg
    for bad in ("m64n128k32g8w4", "m48n128k32g8w4s3", "m64n128k32g8w3s3", "m512n64k32g8w4s3",
                "xm64n128k32g8w4s3"):  # fmt: skip
        assert TileConfig.from_key(bad) is None, bad


# -- the known-tactics table ------------------------------------------------------------------


def test_the_shipped_table_is_valid() -> None:
    path = known_tactics.table_path("sm_90")
    assert known_tactics.check_table(json.loads(path.read_text()), path.name) == []


@pytest.fixture
def table_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(known_tactics, "TABLE_DIR", tmp_path)
    known_tactics._TABLES.clear()
    yield tmp_path
    known_tactics._TABLES.clear()


def _write_table(directory, arch, entries, **extra):
    table = {"format": "odc-known-tactics", "version": 1, "arch": arch, "entries": entries}
    table.update(extra)
    (directory / f"known_tactics_{arch.replace('_', '')}.json").write_text(json.dumps(table))


@pytest.mark.parametrize("make", [gemm_case, conv_case, depthwise_case], ids=lambda f: f.__name__)
def test_a_table_entry_changes_the_default_launch(make, table_dir, device) -> None:
    case = make("float32")
    entry, ins, outs, ip, fp = _descs(case)
    default = plan_for(entry)(ins, outs, ip, fp)
    pick = alternatives_for(entry)(ins, outs, ip, fp)[1].tactic
    key = known_tactics.tactic_key(entry, ins, outs, ip)
    _write_table(table_dir, "sm_90", {key: {"config": pick}})
    known = plan_for(entry)(ins, outs, ip, fp)
    assert known.tactic == pick != default.tactic
    # Another architecture's table does not apply to sm_90, and vice versa.
    with known_tactics.target_arch("sm_80"):
        assert plan_for(entry)(ins, outs, ip, fp).tactic == default.tactic
    # The launch the table picked computes the same result.
    np.testing.assert_allclose(_run(known, case, device), _run(default, case, device),
                               rtol=TOL["float32"], atol=TOL["float32"])  # fmt: skip
    # The default launch is now among the alternatives to time.
    assert default.tactic in [a.tactic for a in alternatives_for(entry)(ins, outs, ip, fp)]


@pytest.mark.parametrize(
    "table",
    [
        {"entries": "nope"},
        {"format": "other"},
        {"arch": "sm_80"},  # a table file whose arch is not its name's
    ],
)
def test_bad_tables_change_nothing(table_dir, table, caplog) -> None:
    # (the logger's own level: other tests quiet the "optimizer" logger tree)
    caplog.set_level(logging.WARNING, logger=known_tactics.__name__)
    entry, ins, outs, ip, fp = _descs(gemm_case("float32"))
    default = plan_for(entry)(ins, outs, ip, fp).tactic
    key = known_tactics.tactic_key(entry, ins, outs, ip)
    body = {"format": "odc-known-tactics", "version": 1, "arch": "sm_90",
            "entries": {key: {"config": "m32n32k32g1w4s3"}}}  # fmt: skip
    body.update(table)
    (table_dir / "known_tactics_sm90.json").write_text(json.dumps(body))
    assert plan_for(entry)(ins, outs, ip, fp).tactic == default
    assert "ignored" in caplog.text


def test_unparsable_table_entries_are_ignored(table_dir) -> None:
    entry, ins, outs, ip, fp = _descs(gemm_case("float32"))
    default = plan_for(entry)(ins, outs, ip, fp).tactic
    key = known_tactics.tactic_key(entry, ins, outs, ip)
    _write_table(table_dir, "sm_90", {key: {"config": "m33n32k32g1w4s3"}})
    assert plan_for(entry)(ins, outs, ip, fp).tactic == default


def test_the_table_tool_turns_a_tuning_cache_into_entries(table_dir, tmp_path) -> None:
    """A cache as the runtime writes it -> table entries for winners that beat the default by
    --min-speedup -> the plan's default launch follows the table."""
    entry, ins, outs, ip, fp = _descs(gemm_case("float32"))
    default = plan_for(entry)(ins, outs, ip, fp)
    alts = [a.tactic for a in alternatives_for(entry)(ins, outs, ip, fp)]
    key = known_tactics.tactic_key(entry, ins, outs, ip)
    names = [default.tactic, *alts]

    def cache_entry(chosen, seconds, k=key, arch="sm_90"):
        return {"chosen": chosen, "count": len(names), "names": names, "seconds": seconds,
                "key": k, "kernel": "triton.gemm_bias_act", "node": "fc", "arch": arch,
                "gpu": "NVIDIA H100 80GB HBM3"}  # fmt: skip

    n = len(names)
    cache = {"format": "odc-cuda-tactics", "version": 1, "entries": {
        "p1/NVIDIA H100 80GB HBM3/0": cache_entry(2, [2e-5] + [1e-5] * (n - 1)),
        "p1/NVIDIA H100 80GB HBM3/1": cache_entry(0, [1e-5] * n, k="gemm_f32 other"),
        "p1/NVIDIA H100 80GB HBM3/2": cache_entry(1, [1e-5, 0.99e-5] + [2e-5] * (n - 2),
                                                  k="gemm_f32 barely"),
        "p2/NVIDIA A100/0": cache_entry(1, [2e-5] + [1e-5] * (n - 1), k="gemm_f32 a100",
                                        arch="sm_80"),
    }}  # fmt: skip
    cache_file = tmp_path / "cuda_tactics.json"
    cache_file.write_text(json.dumps(cache))
    table = table_dir / "known_tactics_sm90.json"
    _write_table(table_dir, "sm_90", {"gemm_f32 other": {"config": "m16n64k64g1w4s3"}})
    assert cuda_tactics_table.main([str(cache_file), "--table", str(table), "--prune"]) == 0
    written = json.loads(table.read_text())
    assert known_tactics.check_table(written, "table") == []
    assert written["entries"] == {key: {"config": names[2], "gpu": "NVIDIA H100 80GB HBM3",
                                        "speedup": 2.0}}  # fmt: skip
    known_tactics._TABLES.clear()
    assert plan_for(entry)(ins, outs, ip, fp).tactic == names[2]


# -- optimize --target cuda --tune ------------------------------------------------------------


def test_tune_compiles_the_alternatives_into_the_module(tmp_path, monkeypatch) -> None:
    """--tune: each conv / gemm step carries its alternatives as tactics (their own cubin
    kernels in the table), which the runtime validates up to the driver; without --tune the
    module is what it was."""
    from optimizer.kernels.triton import aot

    from optimizer.cli import main
    from optimizer.module import format as fmt
    from tests.runtime.test_cuda import compile_tuned_module, tuned_model

    try:
        aot.check_triton_version()
    except aot.AOTError as err:
        pytest.skip(str(err))
    monkeypatch.setenv("ODC_CACHE_DIR", str(tmp_path / "cache"))
    module, _ = compile_tuned_module(tmp_path)
    manifest = json.loads((tmp_path / "module" / "manifest.json").read_text())
    plan = json.loads((tmp_path / "module" / "plan.json").read_text())
    fmt.validate_module(fmt.Manifest.from_dict(manifest), fmt.Plan.from_dict(plan))
    kernels = manifest["kernels"]
    assert [s["node"] for s in plan["steps"]] == ["conv1", "conv2", "fc"]
    for step in plan["steps"]:
        assert 2 <= len(step["tactics"]) <= 4
        assert step["tactic_key"].split()[0] in ("conv2d_packed_f32", "conv2d_f32", "gemm_f32")
        names = [step["tactic_name"], *(t["name"] for t in step["tactics"])]
        assert len(set(names)) == len(names)
        for t in step["tactics"]:
            kernel = kernels[t["kernel"]]
            assert kernel["kind"] == "cubin" and kernel["name"] == kernels[step["kernel"]]["name"]
            assert len(t["args"]) == len(kernel["launch"]["params"])
            assert (tmp_path / "module" / kernel["file"]).is_file()

    plain = tmp_path / "plain"
    assert main([str(tuned_model(tmp_path / "m2.onnx")), "-o", f"{plain}/", "--target", "cuda",
                 "-q", "--no-check"]) == 0  # fmt: skip
    plain_plan = json.loads((plain / "plan.json").read_text())
    assert not any("tactics" in s for s in plain_plan["steps"])
    assert len(json.loads((plain / "manifest.json").read_text())["kernels"]) == 3
    assert [s["kernel"] for s in plain_plan["steps"]] == [0, 1, 2]

    from optimizer import runtime
    from tests.runtime.cuda_modules import have_cuda_driver

    if not have_cuda_driver():  # every check passes; loading stops at the driver
        with pytest.raises(runtime.ModuleError, match="NVIDIA driver not found"):
            runtime.load(module, tune=True)
