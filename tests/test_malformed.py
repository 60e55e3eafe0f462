"""Damaged model files: every one gives a named OptimizerError or optimizes; nothing else.

Deterministic mutations of the bundled demo model (bit flips, truncations, byte overwrites).
A flipped weight byte still makes a valid model (it then optimizes and checks fine); any
other damage must surface as a one-line ModelLoadError / InvalidModelError, never as a raw
exception, a hang, or a partial output file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optimizer.cli import main
from optimizer.errors import OptimizerError
from optimizer.optimize import OptimizeOptions, optimize_file

DEMO = Path(__file__).resolve().parents[1] / "examples" / "paddle_cnn.onnx"


def _mutations(count: int, seed: int) -> list[bytes]:
    src = DEMO.read_bytes()
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        data = bytearray(src)
        if k % 3 == 0:
            for _ in range(int(rng.integers(1, 8))):
                i = int(rng.integers(0, len(data)))
                data[i] ^= 1 << int(rng.integers(0, 8))
        elif k % 3 == 1:
            data = data[: int(rng.integers(1, len(data)))]
        else:
            data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        out.append(bytes(data))
    return out


@pytest.mark.parametrize("chunk", range(4))
def test_damaged_models_fail_cleanly(chunk: int, tmp_path: Path) -> None:
    outcomes: dict[str, int] = {}
    for k, data in enumerate(_mutations(60, seed=chunk)):
        src, dst = tmp_path / f"m{k}.onnx", tmp_path / f"o{k}.onnx"
        src.write_bytes(data)
        try:
            optimize_file(src, dst, OptimizeOptions(trials=1))
            assert dst.exists()
            outcome = "optimized"
        except OptimizerError as exc:
            message = str(exc)
            assert message and "\n" not in message, message
            assert not dst.exists(), "a failed run left an output behind"
            outcome = type(exc).__name__
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get("ModelLoadError", 0) > 0  # the truncations at least
    assert sum(outcomes.values()) == 60
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_damaged_models_through_the_cli_print_one_line(tmp_path: Path, capsys) -> None:
    for k, data in enumerate(_mutations(30, seed=99)):
        src, dst = tmp_path / f"m{k}.onnx", tmp_path / f"o{k}.onnx"
        src.write_bytes(data)
        code = main([str(src), "-o", str(dst), "-q", "--trials", "1"])
        err = capsys.readouterr().err
        assert code in (0, 1, 2), err
        if code:
            lines = [line for line in err.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("optimize: error:"), err
