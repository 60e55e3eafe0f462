"""``optimize fuzz MODEL.onnx``: the fuzzer's command line (dispatched from ``optimizer.cli``).

Exit codes: 0 every output within tolerance, 1 some output out of tolerance (or our side
failing on an input the original runs), 2 bad usage or a model that cannot be loaded,
compiled or run, 3 internal errors. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from optimizer import __version__
from optimizer.errors import UsageError

PROG = "optimize fuzz"


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one-line ``UsageError``s (exit 2) instead of usage dumps."""

    def error(self, message: str) -> NoReturn:
        hint = "see optimize fuzz --help"
        if os.path.exists("fuzz"):
            hint += "; to optimize the file named 'fuzz', write ./fuzz"
        raise UsageError(f"{message} ({hint})")


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Fuzz a model's optimized graph and/or compiled module against onnxruntime "
        "on the original model: random inputs within the declared or pinned shapes in several "
        "value distributions, plus your own samples. Reports the worst absolute and relative "
        "error and NaN/Inf appearances per output, saves the worst inputs, and exits 1 when an "
        "output is out of tolerance (so it can gate CI).",
        epilog="example: optimize fuzz model.onnx --compiled --input-shape images:1x3x224x224 "
        "--iterations 100 --save-worst worst/",
    )
    p.add_argument("model", help="the original .onnx model (the reference)")
    what = p.add_argument_group("what to fuzz (default: --graph)")
    what.add_argument(
        "--graph", action="store_true", help="the optimized graph, run in onnxruntime"
    )
    what.add_argument(
        "--compiled",
        action="store_true",
        help="the model compiled now into a temporary module, run by the C++ runtime",
    )
    what.add_argument("--module", metavar="DIR", help="an existing compiled module of this model")
    build = p.add_argument_group("how the graph / module are made (as in `optimize`)")
    build.add_argument("-O", dest="level", choices=["0", "1", "2"], default="2")
    build.add_argument("--disable", action="append", default=[], metavar="PASS")
    build.add_argument("--target-opset", type=int, metavar="N")
    build.add_argument(
        "--no-fallback", action="store_true", help="--compiled: no reference kernels"
    )
    ins = p.add_argument_group("inputs")
    ins.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME:DIMS",
        help="pin an input shape, e.g. images:1x3x640x640 (repeatable; named dims propagate); "
        "open dims otherwise take the first of 2, 1, 4, 8... the model runs with",
    )
    ins.add_argument(
        "--inputs",
        "--input",
        dest="inputs",
        action="append",
        default=[],
        metavar="NAME=FILE.npy|DIR",
        help="your own input arrays, run once each before the random ones: NAME=FILE.npy "
        "(repeatable, one set) or a directory where each folder with <input>.npy files is a set",
    )
    ins.add_argument(
        "--range",
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH",
        help="values of an input within [LOW, HIGH], inclusive (default: integer inputs that "
        "index a Gather/OneHot/Scatter get the indexed dimension, 'mask' inputs 0:1, other "
        "integers 0:9; floats unbounded)",
    )
    ins.add_argument(
        "--distributions",
        default="normal,uniform,large,zeros",
        metavar="LIST",
        help="value distributions the random input sets cycle through (default "
        "normal,uniform,large,zeros; large = normal x --large-scale, boundary values for ranges)",
    )
    ins.add_argument("--large-scale", type=float, default=1e3, metavar="X", help="default 1000")
    ins.add_argument(
        "--iterations", type=int, default=20, metavar="N", help="random input sets (default 20)"
    )
    ins.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    tol = p.add_argument_group("tolerance: |ours - ref| <= atol + rtol * |ref|, elementwise")
    tol.add_argument("--atol", type=float, help="default per output dtype: fp32 1e-4, fp16 1e-2")
    tol.add_argument("--rtol", type=float, help="default per output dtype: fp32 1e-3, fp16 1e-2")
    tol.add_argument(
        "--noise-factor",
        type=float,
        default=10.0,
        metavar="K",
        help="an input set fails when the error exceeds max(1, K x onnxruntime-optimized's own "
        "error on it) times the tolerance: fp32 rounding noise grows with the input magnitude "
        "(default 10; 0: the plain tolerance)",
    )
    out = p.add_argument_group("report")
    out.add_argument(
        "--save-worst",
        metavar="DIR",
        help="save each output's worst input set as DIR/<target>/<output>/<input>.npy "
        "(replay with --inputs DIR/<target>/<output>)",
    )
    out.add_argument(
        "--threads", type=int, default=0, metavar="N", help="threads per run (default: all)"
    )
    out.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    out.add_argument("-v", "--verbose", action="store_true", help="the worst case of every output")
    out.add_argument(
        "-q", "--quiet", action="store_true", help="no report or progress bar on success"
    )
    out.add_argument("--debug", action="store_true", help="debug logging and tracebacks")
    out.add_argument("--version", action="version", version=f"optimize {__version__}")
    return p


def run(args: argparse.Namespace) -> int:
    """Runs a parsed ``optimize fuzz`` command; returns the exit code."""
    from optimizer import ir
    from optimizer.fuzz.inputs import parse_distributions, parse_range
    from optimizer.fuzz.report import describe_worst, format_report, to_json
    from optimizer.fuzz.runner import FuzzOptions, fuzz_model
    from optimizer.fuzz.targets import BuildOptions

    targets = [t for t in ("graph", "compiled") if getattr(args, t)]
    if args.module:
        targets.append("module")
    targets = targets or ["graph"]
    if args.no_fallback and "compiled" not in targets:
        raise UsageError("--no-fallback applies to --compiled only")
    if args.iterations < 0:
        raise UsageError(f"--iterations must be >= 0, got {args.iterations}")
    if args.threads < 0:
        raise UsageError(f"--threads must be >= 0, got {args.threads}")
    for flag, value in (("--atol", args.atol), ("--rtol", args.rtol)):
        if value is not None and not value >= 0:
            raise UsageError(f"{flag} must be >= 0, got {value}")
    if not args.noise_factor >= 0:
        raise UsageError(f"--noise-factor must be >= 0, got {args.noise_factor}")
    if not args.large_scale > 0:
        raise UsageError(f"--large-scale must be > 0, got {args.large_scale}")
    ranges = {}
    for spec in args.range:
        name, low, high = parse_range(spec)
        ranges[name] = (low, high)
    options = FuzzOptions(
        targets=tuple(targets),
        module=args.module,
        input_shapes=dict(ir.parse_shape_spec(s) for s in args.input_shape),
        sample_specs=list(args.inputs),
        ranges=ranges,
        distributions=parse_distributions(args.distributions),
        iterations=args.iterations,
        seed=args.seed,
        atol=args.atol,
        rtol=args.rtol,
        noise_factor=args.noise_factor,
        large_scale=args.large_scale,
        save_worst=args.save_worst,
        build=BuildOptions(
            level=f"O{args.level}",
            disable=frozenset(args.disable),
            target_opset=args.target_opset,
            no_fallback=args.no_fallback,
            threads=args.threads,
        ),
    )
    bar = _ProgressBar(enabled=not args.quiet and sys.stderr.isatty())
    try:
        report = fuzz_model(args.model, options, progress=bar)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(to_json(report), indent=2))
    elif not args.quiet:
        print(format_report(report, verbose=args.verbose))
    elif not report.ok:
        for o in report.failures():
            print(f"{PROG}: {describe_worst(o)}", file=sys.stderr)
    return 0 if report.ok else 1


class _ProgressBar:
    """tqdm over the input sets, on stderr (off when stderr is not a terminal, or --quiet)."""

    def __init__(self, enabled: bool) -> None:
        self.bar = None
        self.enabled = enabled

    def __call__(self, done: int, total: int, worst: float) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="fuzzing", unit=" set", leave=False, file=sys.stderr)
        self.bar.set_postfix_str(f"worst {worst:.3g}x tol", refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def main(argv: Sequence[str]) -> int:
    """Entry point of ``optimize fuzz`` (``argv`` without the ``fuzz`` word)."""
    from optimizer.cli import guarded

    debug = "--debug" in argv
    return guarded(lambda: run(parser().parse_args(argv)), debug, PROG)
