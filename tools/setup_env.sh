#!/usr/bin/env bash
# Creates .venv (if missing) and installs the project with test, zoo and benchmark extras.
# PyTorch (for the model zoo's exporters) is pinned to the CPU build 2.13.0 first, so no other
# requirement can pull the multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test,zoo,bench]"
