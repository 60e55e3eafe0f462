#!/usr/bin/env bash
# Fresh machine -> optimized demo model: sets up .venv, optimizes the bundled model, then
# compiles it into a module and runs it from the C++ runner and from Python.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
. .venv/bin/activate
mkdir -p demo_out
optimize examples/paddle_cnn.onnx -o demo_out/paddle_cnn.opt.onnx --verbose
# ... and compiles it into a module, run from C++ (no Python) and from Python.
rm -rf demo_out/paddle_cnn_module
optimize examples/paddle_cnn.onnx -o demo_out/paddle_cnn_module/ --input-shape image:1x3x32x32
odc-run demo_out/paddle_cnn_module --iterations 100 --threads 2
python - <<'PY'
import numpy as np
import onnxruntime as ort

import optimizer

m = optimizer.load("demo_out/paddle_cnn_module")
x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
ours = m.run({"image": x})
ref = ort.InferenceSession("examples/paddle_cnn.onnx").run(None, {"image": x})
for (name, got), want in zip(ours.items(), ref):
    print(f"{name}: {got.shape}, max abs diff vs onnxruntime {np.abs(got - want).max():.2e}")
PY
