"""Locating the ``odc-run`` command-line runner (built and installed with the package)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from optimizer.runtime.errors import ModuleError


def runner_path() -> str:
    """Path of the ``odc-run`` executable: next to this interpreter (the venv's bin), or on PATH."""
    candidate = Path(sys.executable).parent / "odc-run"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("odc-run")
    if found:
        return found
    raise ModuleError(
        "odc-run is not installed; reinstall with `pip install -e . --no-build-isolation`"
    )


def main() -> None:
    """``python -m optimizer.runtime MODULE_DIR ...``: runs odc-run with the same arguments."""
    path = runner_path()
    os.execv(path, [path, *sys.argv[1:]])
