"""Tests for tools/compare.py's machinery on two tiny hand-built models (no zoo needed)."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxsim")
pytest.importorskip("onnxslim")

from onnx import TensorProto, helper  # noqa: E402

from tools import benchlib, compare, compare_report  # noqa: E402  (conftest puts the repo root on sys.path)

X = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])


def _const(name: str, value: float) -> onnx.NodeProto:
    tensor = helper.make_tensor(f"{name}_value", TensorProto.FLOAT, [], [value])
    return helper.make_node("Constant", [], [name], value=tensor)


def _model(nodes: list[onnx.NodeProto], name: str) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, [X], [Y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def chain_model() -> onnx.ModelProto:
    """x -> Identity -> Add(1) -> Relu -> Mul(2): 6 nodes, two of them foldable no-ops."""
    return _model(
        [
            helper.make_node("Identity", ["x"], ["a"]),
            _const("one", 1.0),
            helper.make_node("Add", ["a", "one"], ["b"]),
            helper.make_node("Relu", ["b"], ["c"]),
            _const("two", 2.0),
            helper.make_node("Mul", ["c", "two"], ["y"]),
        ],
        "chain",
    )


def if_model() -> onnx.ModelProto:
    """A constant-condition If whose branches hold 2 nodes each: 2 + 2 + 2 = 6 nodes."""

    def branch(op: str, name: str) -> onnx.GraphProto:
        out = helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, ["batch", 4])
        return helper.make_graph(
            [
                helper.make_node(op, ["x"], [f"{name}_t"]),
                helper.make_node("Neg", [f"{name}_t"], [f"{name}_out"]),
            ],
            name,
            [],
            [out],
        )

    cond = helper.make_tensor("cond_value", TensorProto.BOOL, [], [True])
    return _model(
        [
            helper.make_node("Constant", [], ["cond"], value=cond),
            helper.make_node(
                "If",
                ["cond"],
                ["y"],
                then_branch=branch("Relu", "then"),
                else_branch=branch("Sigmoid", "else"),
            ),
        ],
        "with_if",
    )


def _raise_error(src: str, dst: str, shapes: dict[str, list[int]]) -> dict[str, Any]:
    raise ValueError("this tool always fails\nsecond line is dropped")


def _kill_process(src: str, dst: str, shapes: dict[str, list[int]]) -> dict[str, Any]:
    os._exit(7)  # a tool that takes its process down (like a segfault in native code)


CONTENDERS = (
    compare.Contender("onnxsim", compare.produce_onnxsim),
    compare.Contender("onnxsim+pin", functools.partial(compare.produce_onnxsim, pin=True)),
    compare.Contender("onnxslim", compare.produce_onnxslim),
    compare.Contender("broken", _raise_error),
    compare.Contender("crashing", _kill_process),
)


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    zoo = tmp_path_factory.mktemp("tiny_zoo")
    entries = []
    for name, model in (("chain", chain_model()), ("with_if", if_model())):
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, zoo / f"{name}.onnx")
        entries.append(
            {
                "name": name,
                "file": f"{name}.onnx",
                "opset": 13,
                "exporter": "hand-built",
                "inputs": [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}],
            }
        )
    (zoo / "zoo.json").write_text(json.dumps(entries))
    return zoo


@pytest.fixture(scope="module")
def result(tiny_zoo: Path) -> dict[str, Any]:
    return compare.run_comparison(tiny_zoo, contenders=CONTENDERS, rounds=2)


def test_count_nodes_includes_subgraphs() -> None:
    assert benchlib.count_nodes(chain_model()) == 6
    assert benchlib.count_nodes(if_model()) == 6
    assert len(if_model().graph.node) == 2


def test_table_has_a_row_per_model(result: dict[str, Any]) -> None:
    text = compare_report.render_markdown(result)
    headline = text.split("### Default settings (headline)")[1].split("###")[0]
    rows = [line for line in headline.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["model", "chain", "with_if"]
    assert [m["name"] for m in result["models"]] == ["chain", "with_if"]
    assert "Machine: " in text and "onnxruntime" in text


def test_results_are_counted_and_checked(result: dict[str, Any]) -> None:
    for m in result["models"]:
        cs = m["contenders"]
        assert cs["original"]["nodes"] == 6
        for name in ("onnxsim", "onnxsim+pin", "onnxslim"):
            assert cs[name]["status"] == "ok", cs[name]["status"]
            assert cs[name]["nodes"] < 6  # both fold the no-ops / the constant If
            assert cs[name]["close"] and cs[name]["max_abs_error"] < 1e-6
        assert m["sample_shapes"] == {"x": [2, 4]}


def test_failing_contenders_are_reported_not_raised(result: dict[str, Any]) -> None:
    for m in result["models"]:
        cs = m["contenders"]
        assert cs["broken"]["status"] == "failed: ValueError: this tool always fails"
        assert cs["crashing"]["status"].startswith("failed: the tool crashed the worker")
        assert "latency" not in cs["broken"]
    text = compare_report.render_markdown(result)
    assert "- chain / broken: failed: ValueError: this tool always fails" in text


def test_latency_medians_are_positive(result: dict[str, Any]) -> None:
    for m in result["models"]:
        for name in ("original", "onnxsim", "onnxsim+pin", "onnxslim"):
            st = m["contenders"][name]["latency"]
            assert st["median_ms"] > 0 and st["q1_ms"] <= st["median_ms"] <= st["q3_ms"]
            assert len(st["samples_ms"]) == st["rounds"] == 2
        assert m["contenders"]["original"]["latency"]["ratio"] == 1.0


def test_verdicts(result: dict[str, Any]) -> None:
    # "ours" is not among these contenders: it counts as failed on every model
    v = result["verdicts"]
    assert v["nodes"]["ok"] is False
    assert v["nodes"]["line"].startswith(
        "node count ours <= min(onnxsim, onnxslim) on every model: no"
    )
    assert v["numerics"]["ok"] is True


def test_measure_latency_interleaves() -> None:
    # 10x apart and 5 rounds: medians stay ordered on a loaded machine
    sessions = {"a": _FakeSession(1e-4), "b": _FakeSession(1e-3)}
    stats = benchlib.measure_latency(
        sessions, {}, rounds=5, batch_seconds=0.004, warmup_seconds=0, settle_seconds=0.001
    )
    assert stats["a"]["runs_per_batch"] == stats["b"]["runs_per_batch"] >= 1
    assert stats["b"]["median_ms"] > stats["a"]["median_ms"] > 0
    assert stats["b"]["ratio"] > 1.5 and not stats["b"]["within_noise"]


class _FakeSession:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def run(self, names: Any, feeds: Any) -> list[np.ndarray]:
        import time

        end = time.perf_counter() + self.seconds
        while time.perf_counter() < end:
            pass
        return []


def test_cli_writes_json(
    tiny_zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "result.json"
    assert (
        compare.main(
            ["--zoo-dir", str(tiny_zoo), "--only", "chain", "--no-latency", "--json", str(out)]
        )
        == 0
    )
    stdout = capsys.readouterr().out
    assert "| chain |" in stdout and "latency ours <= original" in stdout
    data = json.loads(out.read_text())
    assert [m["name"] for m in data["models"]] == ["chain"]
    assert data["models"][0]["contenders"]["ours"]["status"] == "ok"
