#!/usr/bin/env bash
# Creates .venv (if missing) and installs the project with test, zoo and benchmark extras.
# PyTorch (for the model zoo's exporters) is pinned to the CPU build 2.13.0 first, so no other
# requirement can pull the multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
# The C++ runtime (csrc/) parses the module's JSON with nlohmann/json (header-only, Debian).
if command -v dpkg >/dev/null 2>&1 && ! dpkg -s nlohmann-json3-dev >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q nlohmann-json3-dev
fi
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test,zoo,bench,cuda]"
