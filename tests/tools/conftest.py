"""Fixtures for the tests of tools/ (the model zoo)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # make `import tools.zoo` work without installing anything
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture(scope="session")
def zoo_path() -> Path:
    """The default zoo, built once and cached (see tools.zoo.zoo_dir)."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from tools import zoo

    return zoo.zoo_dir()


@pytest.fixture(scope="session")
def zoo_index(zoo_path: Path) -> dict[str, dict[str, Any]]:
    """zoo.json entries by model name."""
    from tools import zoo

    return {e["name"]: e for e in zoo.load_index(zoo_path)}
