"""The loader bugs the malformed-model suite found, each pinned by its message."""

from __future__ import annotations

from pathlib import Path

import pytest

import optimizer
from optimizer.errors import InvalidModelError, ModelLoadError, OptimizerError, UsageError
from optimizer.optimize import OptimizeOptions, optimize_file
from tests.malformed.models import all_cases

CASES = {c.id: c for c in all_cases()}


@pytest.mark.parametrize(
    ("case_id", "error", "message"),
    [
        # the ONNX checker raised a bare ValueError for an unknown data type
        ("wrong_type/cnn.W.dtype_unknown", InvalidModelError, "tensor 'W': unknown data type 99"),
        ("wrong_type/cnn.input0_unknown", InvalidModelError, "graph input 'x' has an unknown (77)"),
        # raw_data longer than the dims say was accepted (and the extra bytes ignored)
        (
            "wrong_type/cnn.W.raw_long",
            InvalidModelError,
            "raw_data has 228 bytes, dims [2, 3, 3, 3]",
        ),
        ("wrong_type/cnn.B.dropped_dim", InvalidModelError, "raw_data has 8 bytes, dims []"),
        ("wrong_type/cnn.output0_undefined", InvalidModelError, "has an undefined element type"),
        # negative declared dimensions were accepted
        ("dims/cnn.input0.axis1=-2", InvalidModelError, "'x' has dimension -2 at axis 1"),
        # duplicate graph outputs, graphs without outputs
        (
            "duplicate_output/cnn.graph_output_twice",
            InvalidModelError,
            "graph output 'y' is listed twice",
        ),
        ("empty/cnn.no_outputs", InvalidModelError, "the graph has no outputs"),
        # non-UTF-8 text outside node fields was accepted (and failed later on save)
        ("non_utf8/cnn.graph_name.24", ModelLoadError, "graph name: corrupt file"),
        ("non_utf8/cnn.metadata.25", ModelLoadError, "metadata_props key: corrupt file"),
        # an external-data location with a NUL was truncated at the NUL and read
        ("external_data/W.weights.bin\0x", ModelLoadError, "is empty or not a file name"),
        # an external offset inside the file made a short tensor
        ("external_data/W.off4.lenNone", InvalidModelError, "raw_data has 212 bytes"),
    ],
)
def test_load_rejects(case_id: str, error: type, message: str, tmp_path: Path) -> None:
    src = CASES[case_id].write(tmp_path)
    with pytest.raises(error) as info:
        optimizer.load(src)
    assert message in str(info.value)


@pytest.mark.parametrize("dim", [2**31, 2**40, 2**63 - 1])
def test_huge_declared_dimension_is_a_usage_error(dim: int, tmp_path: Path) -> None:
    # The check used to die in NumPy (MemoryError / "array is too big") making random data.
    src = CASES[f"dims/cnn.input0.axis0={dim}"].write(tmp_path)
    optimizer.load(src)  # legal ONNX
    with pytest.raises(
        UsageError, match=r"input 'x' has shape \[\d+, 3, 8, 8\] \(\d+ elements\): too large"
    ):
        optimize_file(src, tmp_path / "out.onnx", OptimizeOptions(trials=1))
    assert not (tmp_path / "out.onnx").exists()


def test_valid_bases_still_load(tmp_path: Path) -> None:
    from tests.malformed.models import BASES, base_bytes

    for name in BASES:
        src = tmp_path / f"{name}.onnx"
        src.write_bytes(base_bytes(name))
        try:
            optimize_file(src, tmp_path / f"{name}.out.onnx", OptimizeOptions(trials=1))
        except OptimizerError as exc:  # pragma: no cover - the bases are valid
            pytest.fail(f"{name}: {exc}")
