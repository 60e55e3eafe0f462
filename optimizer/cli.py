"""The ``optimize`` command line.

Errors are one line on stderr and a non-zero exit: 2 for bad input or usage, 1 when the
optimized model fails the numerical check, 3 for internal errors (bugs). ``--debug`` shows
the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from optimizer import __version__
from optimizer.errors import InvariantError, OptimizerError, UsageError

log = logging.getLogger("optimizer")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="optimize",
        description="Optimize an ONNX model: fold, fuse and clean the graph, prove the result "
        "equal to the original in onnxruntime, and write it atomically.",
        epilog="example: optimize model.onnx -o model.opt.onnx --input-shape images:1x3x640x640. "
        "Subcommand: optimize fuzz MODEL.onnx [--compiled] fuzzes the optimized graph or the "
        "compiled module against onnxruntime (optimize fuzz --help; a model file named 'fuzz' "
        "is written ./fuzz).",
    )
    p.add_argument("model", nargs="?", help="input .onnx file")
    p.add_argument(
        "-o",
        "--output",
        help="output .onnx file, or a directory (trailing '/' or existing) for a compiled module",
    )
    p.add_argument(
        "--no-fallback",
        action="store_true",
        help="compile: refuse reference (Python) kernels; fail naming each unsupported node",
    )
    p.add_argument(
        "--target",
        default=None,
        metavar="TARGET",
        help="compile: where the module runs: cpu (default), cuda (Triton kernels compiled "
        "ahead of time into cubins; no GPU needed to compile), or both: cpu,cuda (one module "
        "that runs on cuda where a matching GPU is found at load, else on cpu)",
    )
    p.add_argument(
        "--arch",
        default=None,
        metavar="SM",
        help="compile --target cuda: GPU architecture the cubins are built for (default sm_90)",
    )
    p.add_argument(
        "--precision",
        default=None,
        metavar="P",
        help="compile --target cuda: storage of float weights and activations: fp32 (default), "
        "fp16 or bf16 (fp32 accumulation; inputs and outputs keep the model's types)",
    )
    p.add_argument(
        "--tune",
        action="store_true",
        help="compile: time the native kernels that can run each conv group on the real shapes "
        "and keep the fastest (cached in $ODC_CACHE_DIR/tactics.json; without --tune a cached "
        "winner is reused); --target cuda: also compile alternative launch configurations of "
        "each GEMM / convolution step, which the runtime times on the GPU at load with "
        "load(..., tune=True) or odc-run --tune (cached in $ODC_CACHE_DIR/cuda_tactics.json)",
    )
    p.add_argument(
        "--tune-threads",
        type=int,
        metavar="N",
        help="compile --tune: threads to time kernels with (default $ODC_TUNE_THREADS or the CPU "
        "count)",
    )
    p.add_argument(
        "-O",
        dest="level",
        choices=["0", "1", "2"],
        default="2",
        help="pipeline: 0 none, 1 cleanup, 2 cleanup+fusion (default)",
    )
    p.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME:DIMS",
        help="pin an input shape, e.g. images:1x3x640x640 (repeatable)",
    )
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=FILE.npy",
        help="also check on this input array (repeatable; one set of inputs)",
    )
    p.add_argument(
        "--target-opset",
        type=int,
        help="upgrade the model to this opset first (unlocks Gelu at 20, LayerNormalization at 17)",
    )
    p.add_argument(
        "--disable",
        action="append",
        default=[],
        metavar="PASS",
        help="skip a pass (repeatable; see --list-passes)",
    )
    p.add_argument(
        "--no-check", action="store_true", help="skip the numerical check against the original"
    )
    p.add_argument(
        "--atol", type=float, default=1e-4, help="check: absolute tolerance (default 1e-4)"
    )
    p.add_argument(
        "--rtol", type=float, default=1e-3, help="check: relative tolerance (default 1e-3)"
    )
    p.add_argument("--trials", type=int, default=2, help="check: random input sets (default 2)")
    p.add_argument(
        "--dump-after-each", metavar="DIR", help="save the model after every pass that changed it"
    )
    p.add_argument(
        "--explain",
        action="append",
        default=[],
        metavar="RULE",
        help="say why RULE did not fire (repeatable; 'all' for every rule)",
    )
    p.add_argument(
        "--verify-each", action="store_true", help="check graph invariants after every pass"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("-v", "--verbose", action="store_true", help="full op table and time per pass")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.add_argument("--debug", action="store_true", help="debug logging and tracebacks")
    p.add_argument("--list-passes", action="store_true", help="list the passes and exit")
    p.add_argument("--version", action="version", version=f"optimize {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["fuzz"]:  # a subcommand: a model file named 'fuzz' is written ./fuzz
        from optimizer.fuzz.cli import main as fuzz_main

        return fuzz_main(argv[1:])
    args = _parser().parse_args(argv)
    return guarded(lambda: _run(args), args.debug, "optimize", args.verbose)


def guarded(run: Callable[[], int], debug: bool, prog: str, verbose: bool = False) -> int:
    """Runs a command with logging set up; errors become one line on stderr and an exit code.

    ``OptimizerError``: its ``exit_code`` (2 usage / model, 1 failed check); an
    ``InvariantError`` or any other exception (a bug): 3; ``--debug`` re-raises instead.
    """
    logging.basicConfig(
        level=logging.DEBUG if debug else (logging.INFO if verbose else logging.WARNING),
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return run()
    except OptimizerError as exc:
        if debug:
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except InvariantError as exc:
        if debug:
            raise
        print(f"{prog}: internal error (please report): {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing written", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so in one line, keep the traceback for --debug
        if debug:
            raise
        print(
            f"{prog}: internal error (please report; rerun with --debug): {type(exc).__name__}: {exc}".splitlines()[
                0
            ],
            file=sys.stderr,
        )
        return 3


def _run(args: argparse.Namespace) -> int:
    from optimizer import ir
    from optimizer.optimize import (
        OptimizeOptions,
        compile_to_module,
        is_module_output,
        optimize_file,
    )
    from optimizer.passes import pipelines
    from optimizer.report import format_report, to_json

    if args.list_passes:
        for p in pipelines.all_passes():
            print(f"{p.name:34} {p.summary}")
        return 0
    if not args.model:
        raise UsageError("no input model given (usage: optimize MODEL.onnx -o OUT.onnx)")
    if not args.output:
        raise UsageError("no output given: add -o OUT.onnx")
    shapes = dict(ir.parse_shape_spec(s) for s in args.input_shape)
    options = OptimizeOptions(
        level=f"O{args.level}",
        input_shapes=shapes,
        target_opset=args.target_opset,
        disable=set(args.disable),
        check=not args.no_check,
        inputs=_load_inputs(args.input),
        trials=max(1, args.trials),
        atol=args.atol,
        rtol=args.rtol,
        dump_dir=Path(args.dump_after_each) if args.dump_after_each else None,
        explain=set(args.explain),
        verify=args.verify_each or args.debug,
    )
    target, arch, precision = _target_flags(args)
    progress = _progress(enabled=not (args.quiet or args.json) and sys.stderr.isatty())
    if is_module_output(args.output):
        try:
            compiled = compile_to_module(
                args.model,
                args.output,
                options,
                args.no_fallback,
                progress=progress,
                tune=args.tune,
                tune_threads=args.tune_threads,
                target=target,
                arch=arch,
                precision=precision,
            )
        finally:
            progress.close()
        if args.json:
            print(json.dumps(compiled.to_json(), indent=2))
        elif not args.quiet:
            print(compiled.format())
        return 0
    if args.no_fallback:
        raise UsageError("--no-fallback applies to compiled modules only (-o DIR/)")
    if args.tune or args.tune_threads:
        raise UsageError("--tune applies to compiled modules only (-o DIR/)")
    if args.target is not None:
        raise UsageError("--target applies to compiled modules only (-o DIR/)")
    try:
        report = optimize_file(args.model, args.output, options, progress=progress)
    finally:
        progress.close()
    if args.json:
        print(json.dumps(to_json(report), indent=2))
    elif not args.quiet:
        print(format_report(report, verbose=args.verbose))
    return 0


def _target_flags(args: argparse.Namespace) -> tuple[str, str, str]:
    """(target, arch, precision), each checked, with one-line errors. ``target`` is one name
    or several separated by commas (``cpu,cuda``: one module with a plan per target)."""
    from optimizer.lower.compile import parse_targets
    from optimizer.lower.target_cuda import PRECISIONS

    targets = parse_targets(args.target or "cpu")
    target = ",".join(targets)
    if "cuda" not in targets:
        for flag, value in (("--arch", args.arch), ("--precision", args.precision)):
            if value is not None:
                raise UsageError(f"{flag} applies to --target cuda only (alone or in a list: "
                                 "cpu,cuda)")  # fmt: skip
        return target, "sm_90", "fp32"
    from optimizer.kernels.triton.aot import ARCHS

    arch = args.arch or "sm_90"
    if arch not in ARCHS:
        raise UsageError(
            f"--arch {arch}: unknown CUDA architecture (use one of {', '.join(ARCHS)})"
        )
    precision = args.precision or "fp32"
    if precision not in PRECISIONS:
        raise UsageError(
            f"--precision {precision}: unknown precision (use one of {', '.join(PRECISIONS)})"
        )
    if args.tune_threads and targets == ["cuda"]:
        raise UsageError("--tune-threads times CPU kernels; it does not apply to --target cuda")
    return target, arch, precision


def _load_inputs(specs: Sequence[str]) -> list[dict[str, np.ndarray]]:
    if not specs:
        return []
    feed: dict[str, np.ndarray] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--input '{spec}': expected NAME=FILE.npy")
        try:
            feed[name] = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise UsageError(f"--input {name}: {path}: no such file") from None
        except (OSError, ValueError) as exc:
            raise UsageError(f"--input {name}: {path}: not a readable .npy file ({exc})") from None
    return [feed]


class _progress:
    """A one-line progress display of the pass being run (stderr, TTY only)."""

    def __init__(self, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(desc="optimizing", unit=" pass", leave=False, file=sys.stderr)

    def __call__(self, name: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(name)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


if __name__ == "__main__":
    sys.exit(main())
