"""Sweep ``optimize fuzz`` (compiled target) over the ONNX backend node-test cases.

Each case's own inputs are the sample (its shapes; shape operands are held at its values) and
8 random input sets follow. Not a pytest module: a script for finding bugs, e.g.::

    python tests/fuzz_cli/sweep_node_tests.py --seconds 480 [--only exp]

Prints counts (ok / fail / refused by the compiler / exception) and one line per failure.
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
import warnings

import numpy as np
from onnx.backend.test.case import node

from optimizer import ir
from optimizer.errors import OptimizerError
from optimizer.fuzz import FuzzOptions, fuzz_model


class _Timeout(Exception):
    pass


def _alarm(*_: object) -> None:
    raise _Timeout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=600, help="stop starting cases after this")
    p.add_argument("--only", default="", help="substring of the case names to run")
    p.add_argument("--iterations", type=int, default=8)
    args = p.parse_args()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    signal.signal(signal.SIGALRM, _alarm)
    start = time.time()
    counts = {"ok": 0, "fail": 0, "refused": 0, "exception": 0}
    lines = []
    for case in node.collect_testcases(None):
        if args.only not in case.name or not case.data_sets:
            continue
        if time.time() - start > args.seconds:
            break
        inits = {i.name for i in case.model.graph.initializer}
        names = [i.name for i in case.model.graph.input if i.name not in inits]
        arrays = case.data_sets[0][0]
        if len(arrays) != len(names) or not all(isinstance(a, np.ndarray) for a in arrays):
            continue
        signal.alarm(20)
        try:
            options = FuzzOptions(
                targets=("compiled",),
                iterations=args.iterations,
                samples=[dict(zip(names, arrays))],
            )
            report = fuzz_model(ir.Model.from_proto(case.model), options)
            if report.ok:
                counts["ok"] += 1
            else:
                counts["fail"] += 1
                bad = report.failures()[0]
                w = bad.worst
                lines.append(f"FAIL {case.name} {bad.name} ({w.distribution}): {w.detail[:160]}")
        except OptimizerError:
            counts["refused"] += 1
        except (_Timeout, Exception) as exc:
            counts["exception"] += 1
            lines.append(f"EXC  {case.name}: {type(exc).__name__}: {str(exc)[:160]}")
        finally:
            signal.alarm(0)
    print(counts, f"in {time.time() - start:.0f} s")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
