"""Every zoo model partitions and plans, and its plans pass the independent checker."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from tools import plan_report, zoo


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return plan_report.zoo_rows()


def test_every_zoo_model_plans_soundly(
    rows: list[dict], capsys: pytest.CaptureFixture[str]
) -> None:
    assert sorted(r["model"] for r in rows) == sorted(zoo.MODELS)
    for r in rows:
        # plan_model already ran assert_plan_valid on both strategies
        assert r["lower_bound"] <= r["best_fit"] <= r["naive"], r
        assert r["lower_bound"] <= r["first_fit"] <= r["naive"], r
        assert r["groups"] < r["nodes"], r  # something fused everywhere
    with capsys.disabled():
        print("\n\npeak activation arena vs naive (tools/plan_report.py):")
        print(plan_report.format_table(rows))


def test_zoo_fusions_are_found(rows: list[dict]) -> None:
    patterns = {r["model"]: r["patterns"] for r in rows}
    assert patterns["resnet"].get("conv+bias+add+relu") == 8
    assert patterns["yolo"].get("conv+bias+silu", 0) >= 50
    assert patterns["mobilenetv3_op14"].get("conv+bias+hardswish", 0) >= 10
    assert patterns["bert"].get("matmul+bias+gelu") == 2  # erf-GELU as a GEMM epilogue
    assert patterns["vit"].get("matmul+bias+gelu") == 2
