#!/usr/bin/env bash
# Fresh machine -> optimized demo model: sets up .venv, then optimizes the bundled model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
. .venv/bin/activate
mkdir -p demo_out
optimize examples/paddle_cnn.onnx -o demo_out/paddle_cnn.opt.onnx --verbose
