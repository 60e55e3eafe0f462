from __future__ import annotations

import pytest

from tests.runtime.module_builder import standard_module


@pytest.fixture
def module_dir(tmp_path):
    """A freshly written standard test module (see module_builder.standard_module)."""
    return standard_module(tmp_path / "module")
