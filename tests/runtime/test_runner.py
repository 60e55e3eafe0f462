"""The odc-run runner on hand-written modules: numerics via saved .npy, random inputs, errors."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from optimizer import runtime
from tests.runtime.module_builder import ModuleBuilder, standard_feeds, standard_reference


def run(*args, timeout=60):
    return subprocess.run(
        [runtime.runner_path(), *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def test_runner_matches_numpy(module_dir, tmp_path):
    feeds = standard_feeds(3)
    for name, value in feeds.items():
        np.save(tmp_path / f"{name}.npy", value)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = run(
        module_dir,
        "--input",
        f"x={tmp_path / 'x.npy'}",
        "--input",
        f"z={tmp_path / 'z.npy'}",
        "--iterations",
        "3",
        "--threads",
        "2",
        "--save-outputs",
        out_dir,
    )
    assert proc.returncode == 0, proc.stderr
    want = standard_reference(**feeds)
    for name in ("y", "s"):
        np.testing.assert_allclose(np.load(out_dir / f"{name}.npy"), want[name], atol=1e-6)
    assert "output y: float32 [2, 4]" in proc.stdout
    assert "latency: median" in proc.stdout
    assert "over 3 iterations (2 threads)" in proc.stdout


def test_runner_random_inputs_and_top5(tmp_path):
    m = ModuleBuilder()
    x = m.input("x", [1, 10])
    y = m.output("y", [1, 10])
    m.step(m.kernel("test.scale_f32"), [x], [y], iparams=[0], fparams=[1.0, 0.0])
    directory = m.write(tmp_path / "m")
    proc = run(directory, "--seed", "7")
    assert proc.returncode == 0, proc.stderr
    assert "input x: float32 [1, 10] (random, seed 7)" in proc.stdout
    assert "top-5:" in proc.stdout
    # Same seed, same values; the top-5 line must be in descending order.
    top = proc.stdout.split("top-5:")[1].splitlines()[0].split()
    scores = [float(v.strip("()")) for v in top[1::2]]
    assert scores == sorted(scores, reverse=True)
    assert (
        run(directory, "--seed", "7").stdout.split("latency")[0] == proc.stdout.split("latency")[0]
    )


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda d, t: ["--iterations", "0"], "--iterations expects an integer in [1, 1000000]"),
        (lambda d, t: ["--bogus"], "unknown option --bogus"),
        (lambda d, t: ["--input", "x"], "--input expects NAME=FILE.npy"),
        (lambda d, t: ["--input", f"q={t / 'x.npy'}"], "--input q: the module has no such input"),
        (lambda d, t: ["--input", f"x={t / 'missing.npy'}"], "missing.npy: missing file"),
        (lambda d, t: ["--input", f"x={t / 'bad.npy'}"], "bad.npy: not a .npy file"),
        (lambda d, t: ["--input", f"x={t / 'trunc.npy'}"], "trunc.npy: data is"),
        (lambda d, t: ["--input", f"x={t / 'f64.npy'}"], "input 'x': "),
        (
            lambda d, t: ["--input", f"x={t / 'shape.npy'}"],
            "has shape [3, 2], the module expects [2, 3]",
        ),
    ],
)
def test_runner_input_errors(module_dir, tmp_path, make_args, message):
    np.save(tmp_path / "x.npy", np.zeros((2, 3), np.float32))
    (tmp_path / "bad.npy").write_bytes(b"hello world, not numpy")
    (tmp_path / "trunc.npy").write_bytes((tmp_path / "x.npy").read_bytes()[:-4])
    np.save(tmp_path / "f64.npy", np.zeros((2, 3), np.float64))
    np.save(tmp_path / "shape.npy", np.zeros((3, 2), np.float32))
    proc = run(module_dir, *make_args(module_dir, tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.startswith("odc-run: ")
    assert message in proc.stderr.splitlines()[0]


def test_runner_kernel_failure_exit_1(tmp_path):
    m = ModuleBuilder()
    x = m.input("x", [4])
    y = m.output("y", [4])
    m.step(m.kernel("test.fail"), [x], [y], iparams=[3], node="bad_node")
    proc = run(m.write(tmp_path / "m"))
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "odc-run: kernel builtin.test.fail (step 0, node 'bad_node') failed: "
        "test failure (iparams[0]=3)"
    )


def test_runner_usage(tmp_path):
    proc = run()
    assert proc.returncode == 2
    assert "missing MODULE_DIR" in proc.stderr
    assert run("--help").returncode == 0


def test_python_m_entry(module_dir):
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "optimizer.runtime", str(module_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "output s: float32 [2, 4]" in proc.stdout
