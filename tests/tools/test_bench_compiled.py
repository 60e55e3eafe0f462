"""tools/bench_compiled.py on one small zoo model, 2 rounds."""

from __future__ import annotations

import json
from pathlib import Path

from tools import bench_compiled


def test_bench_compiled_one_model(zoo_path: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    rc = bench_compiled.main(
        ["--zoo-dir", str(zoo_path), "--only", "paddle_cnn", "--rounds", "2",
         "--profile-iterations", "2", "--json", str(out)]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "| paddle_cnn |" in text and "Machine:" in text and "Geometric mean" in text
    result = json.loads(out.read_text())
    (model,) = result["models"]
    assert model["status"] == "ok" and model["close"]
    assert model["latency"]["compiled"]["median_ms"] > 0
    assert model["latency"]["onnxruntime"]["median_ms"] > 0
    assert model["ratio"] > 0 and result["summary"]["geomean_ratio"] > 0
    assert model["arena_bytes"] > 0
    assert model["rss_compiled"]["growth_bytes"] >= 0
    assert model["rss_onnxruntime"]["growth_bytes"] > 0
    profile = model["profile"]
    assert profile["kernels"] and 0.0 <= profile["fallback_share"] <= 1.0
