"""CLI behaviour: each error class gives one clear line and exit 2; nothing half-written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from optimizer.cli import main
from optimizer.ir import Model
from optimizer.passes import pipelines
from optimizer.passes.base import Pass, PassContext, PassResult
from tests.helpers import FLOAT, make_model


def _small_model(opset: int = 13) -> onnx.ModelProto:
    """x -> Identity -> Mul(1) -> Add(b) -> Relu: something for every pipeline to remove."""
    nodes = [
        helper.make_node("Identity", ["x"], ["a"]),
        helper.make_node("Mul", ["a", "one"], ["b"]),
        helper.make_node("Add", ["b", "bias"], ["c"]),
        helper.make_node("Relu", ["c"], ["y"]),
    ]
    return make_model(
        nodes,
        [("x", FLOAT, ["N", 4])],
        [("y", FLOAT, ["N", 4])],
        {"one": np.ones((1,), np.float32), "bias": np.arange(4, dtype=np.float32)},
        opset=opset,
    )


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    onnx.save(_small_model(), path)
    return path


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code: int, err: str, expected: str, want_code: int = 2) -> None:
    assert code == want_code
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("optimize: error:"), err
    assert expected in lines[0], err
    assert "Traceback" not in err


def test_optimizes_and_reports(model_path: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.onnx"
    code, stdout, _ = _run([str(model_path), "-o", str(out)], capsys)
    assert code == 0
    proto = onnx.load(out)
    onnx.checker.check_model(proto, full_check=True)
    assert [n.op_type for n in proto.graph.node] == ["Add", "Relu"]
    assert "nodes 4 -> 2" in stdout
    assert "check: ok" in stdout


def test_json_report_and_idempotence(model_path: Path, tmp_path: Path, capsys) -> None:
    out1, out2 = tmp_path / "o1.onnx", tmp_path / "o2.onnx"
    code, stdout, _ = _run([str(model_path), "-o", str(out1), "--json"], capsys)
    assert code == 0
    first = json.loads(stdout)
    assert first["modified"] is True
    assert first["nodes"] == {"before": 4, "after": 2}
    assert first["check"]["ok"] is True
    assert first["rules"]  # which rules fired
    assert set(first["pass_seconds"]) >= {"fold_constants", "eliminate_noops"}
    code, stdout, _ = _run([str(out1), "-o", str(out2), "--json"], capsys)
    second = json.loads(stdout)
    assert code == 0
    assert second["modified"] is False, second["rules"]
    assert second["rules"] == {}
    assert second["nodes"]["after"] == 2


def test_missing_file(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.onnx"
    code, _, err = _run([str(tmp_path / "nope.onnx"), "-o", str(out)], capsys)
    _assert_one_line_error(code, err, "no such file")
    assert not out.exists()


def test_not_onnx(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is a text file, not a model\n" * 20)
    code, _, err = _run([str(bad), "-o", str(tmp_path / "out.onnx")], capsys)
    _assert_one_line_error(code, err, str(bad))


def test_truncated_protobuf(model_path: Path, tmp_path: Path, capsys) -> None:
    data = model_path.read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 2])
    code, _, err = _run([str(bad), "-o", str(tmp_path / "out.onnx")], capsys)
    _assert_one_line_error(code, err, "truncated.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_invalid_graph(tmp_path: Path, capsys) -> None:
    model = _small_model()
    model.graph.node[1].input[0] = "undefined_value"
    path = tmp_path / "invalid.onnx"
    onnx.save(model, path)
    code, _, err = _run([str(path), "-o", str(tmp_path / "out.onnx")], capsys)
    _assert_one_line_error(code, err, "invalid graph")


def test_unknown_domain(tmp_path: Path, capsys) -> None:
    model = _small_model()
    model.graph.node[3].domain = "com.example.custom"
    model.opset_import.append(helper.make_opsetid("com.example.custom", 1))
    path = tmp_path / "custom.onnx"
    onnx.save(model, path)
    code, _, err = _run([str(path), "-o", str(tmp_path / "out.onnx")], capsys)
    _assert_one_line_error(code, err, "unknown operator domain 'com.example.custom'")


def test_unknown_opset(tmp_path: Path, capsys) -> None:
    model = _small_model()
    model.opset_import[0].version = 99
    path = tmp_path / "future.onnx"
    onnx.save(model, path)
    code, _, err = _run([str(path), "-o", str(tmp_path / "out.onnx")], capsys)
    _assert_one_line_error(code, err, "opset 99")


def test_usage_errors(model_path: Path, tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "out.onnx")
    cases = [
        (["--input-shape", "nope:1x4"], "no input 'nope'"),
        (["--input-shape", "x:1xA"], "dimensions must be integers"),
        (["--input-shape", "x:1x4x5"], "rank 3 given"),
        (["--input-shape", "x:2x5"], "dimension 1 is fixed to 4"),
        (["--disable", "no_such_pass"], "unknown pass no_such_pass"),
        (["--input", "x=missing.npy"], "no such file"),
    ]
    for extra, expected in cases:
        code, _, err = _run([str(model_path), "-o", out, *extra], capsys)
        _assert_one_line_error(code, err, expected)
    assert not Path(out).exists()
    # -o DIR/ compiles a module: the symbolic batch dim must be pinned, and the error says how
    code, _, err = _run([str(model_path), "-o", str(tmp_path) + "/"], capsys)
    _assert_one_line_error(code, err, "--input-shape x:")
    code, _, err = _run([str(model_path)], capsys)
    _assert_one_line_error(code, err, "-o OUT.onnx")


def test_user_inputs_are_checked(model_path: Path, tmp_path: Path, capsys) -> None:
    np.save(tmp_path / "x.npy", np.full((5, 4), -3.0, np.float32))
    out = tmp_path / "out.onnx"
    code, stdout, _ = _run(
        [str(model_path), "-o", str(out), "--input", f"x={tmp_path / 'x.npy'}", "--json"], capsys
    )
    assert code == 0
    assert json.loads(stdout)["check"]["trials"] == 3  # the user's set + 2 random


class _BreakConstants(Pass):
    """A deliberately wrong pass: perturbs every float constant (the check must catch it)."""

    name = "break_constants"
    summary = "test-only"

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        changed = 0
        for tensor in model.graph.tensors().values():
            values = getattr(tensor, "values", None)
            if values is not None and values.dtype == np.float32 and values.size:
                tensor.values = values + np.float32(0.5)
                changed += 1
        return PassResult(model, bool(changed), Counter({"constant perturbed": changed}))


def test_check_failure_names_the_pass_and_writes_nothing(
    model_path: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    original = pipelines.o2

    def broken() -> list:
        entries = original()
        return [*entries[:2], _BreakConstants(), *entries[2:]]

    monkeypatch.setattr(pipelines, "o2", broken)
    monkeypatch.setitem(pipelines.PIPELINES, "O2", broken)
    out = tmp_path / "out.onnx"
    out.write_bytes(b"previous content")
    code, _, err = _run([str(model_path), "-o", str(out)], capsys)
    _assert_one_line_error(code, err, "first bad pass: break_constants", want_code=1)
    assert out.read_bytes() == b"previous content"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_dump_after_each_and_disable(model_path: Path, tmp_path: Path, capsys) -> None:
    dump = tmp_path / "dump"
    out = tmp_path / "out.onnx"
    code, stdout, _ = _run(
        [
            str(model_path),
            "-o",
            str(out),
            "--dump-after-each",
            str(dump),
            "--disable",
            "fold_constants",
            "--json",
        ],
        capsys,
    )
    assert code == 0
    dumped = sorted(p.name for p in dump.glob("*.onnx"))
    assert dumped and all(onnx.load(dump / name).graph.node for name in dumped)
    assert "fold_constants" not in json.loads(stdout)["pass_seconds"]


def test_list_passes(capsys) -> None:
    code, stdout, _ = _run(["--list-passes"], capsys)
    assert code == 0
    names = [line.split()[0] for line in stdout.splitlines()]
    assert {"fold_constants", "eliminate_dead_code", "fold_batchnorm"} <= set(names)


def test_console_script_entry_point(model_path: Path, tmp_path: Path) -> None:
    exe = shutil.which("optimize") or str(Path(sys.executable).with_name("optimize"))
    proc = subprocess.run(
        [exe, str(model_path), "-o", str(tmp_path / "o.onnx"), "-q"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [exe, str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "x.onnx")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no such file" in proc.stderr


def test_explain_says_why_a_rule_did_not_fire(tmp_path: Path, capsys) -> None:
    # A batched MatMul + bias has no Gemm form: --explain must say so, naming the node.
    proto = make_model(
        [
            helper.make_node("MatMul", ["x", "w"], ["m"], name="proj"),
            helper.make_node("Add", ["m", "b"], ["y"], name="bias"),
        ],
        [("x", FLOAT, [2, 3, 4])],
        [("y", FLOAT, [2, 3, 5])],
        {"w": np.ones((4, 5), np.float32), "b": np.arange(5, dtype=np.float32)},
    )
    path = tmp_path / "batched.onnx"
    onnx.save(proto, path)
    code, stdout, _ = _run(
        [str(path), "-o", str(tmp_path / "out.onnx"), "--explain", "MatMul+Add -> Gemm"], capsys
    )
    assert code == 0
    lines = [line for line in stdout.splitlines() if line.startswith("MatMul+Add -> Gemm:")]
    assert lines and "'bias'" in lines[0] and "2-D" in lines[0], stdout
