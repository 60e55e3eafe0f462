"""The fuzz harness itself: a planted wrong kernel is caught, shrunk, and saved as a minimal
``.onnx`` reproducer that the failure message names; the generators make checker-valid models
whose declared shapes are onnxruntime's."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings

from optimizer.runtime.module import load as load_module
from tests.fuzz import graphs as g
from tests.fuzz import props


class _WrongTanh:
    """A compiled module whose outputs are off by 0.5 when its graph contains a Tanh."""

    def __init__(self, path: Path) -> None:
        self.inner = load_module(path)
        graph = onnx.load(str(Path(path) / "graph.onnx")).graph
        self.wrong = any(n.op_type == "Tanh" for n in graph.node)

    def set_num_threads(self, n: int) -> None:
        self.inner.set_num_threads(n)

    def run(self, feeds):
        out = self.inner.run(feeds)
        return {k: v + np.float32(0.5) if self.wrong else v for k, v in out.items()}


def test_planted_bug_is_shrunk_and_saved(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(props, "REPRO_DIR", tmp_path)
    monkeypatch.setattr(props, "STATS", props.Stats())  # planted failures are not counted
    monkeypatch.setattr(props, "_first_failure", [])
    monkeypatch.setattr(props.optimizer, "load", _WrongTanh)
    props.quiet()

    @settings(max_examples=200, database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(g.graphs())
    def fuzz(case: g.FuzzCase) -> None:
        props.check_case(case)

    with pytest.raises(props.FuzzFailure) as info:
        fuzz()
    message = str(info.value)
    assert "compiled module vs onnxruntime" in message
    path = Path(re.search(r"reproducer: (\S+\.onnx)", message).group(1))
    assert path.parent == tmp_path and path.exists() and path.with_suffix(".npz").exists()
    saved = list(tmp_path.glob("*.onnx"))
    assert saved == [path]  # the shrunk example (the first one, unshrunk, is in unshrunk/)
    assert len(list((tmp_path / "unshrunk").glob("*.onnx"))) == 1
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    assert "Tanh" in ops and len(ops) <= 3, ops  # shrunk to the Tanh and (at most) two more
    feeds = dict(np.load(path.with_suffix(".npz")))
    assert set(feeds) == {i.name for i in model.graph.input}


@pytest.mark.parametrize("strategy", ["graphs", "pattern_graphs", "broadcast_graphs"])
def test_generated_models_are_valid(strategy: str) -> None:
    @settings(max_examples=40, database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(getattr(g, strategy)())
    def valid(case: g.FuzzCase) -> None:
        onnx.checker.check_model(case.model, full_check=True)
        want = props.run_ort(case.model, case.feeds)
        declared = [tuple(d.dim_value for d in o.type.tensor_type.shape.dim)
                    for o in case.model.graph.output]  # fmt: skip
        assert [w.shape for w in want] == declared

    valid()
