"""Runs the fuzz tests' long hypothesis profile over N worker processes, then reports.

Usage (from the repository root, the package installed):

    python tools/fuzz_long.py --workers 16 --examples 1500 --minutes 9

Each worker is a sequence of pytest runs, one per fuzz test (``tests/fuzz/test_fuzz.py``; the
order rotated per worker), with ``--hypothesis-profile=long``, its own seed, ``--examples``
split between the tests, and a share of the remaining time as each test's deadline. All
workers share one example database (``.hypothesis/examples`` unless ``--db``), so failures
found once are replayed first on the next run, and one reproducer directory. At the time limit
the tests skip their remaining examples (a failure being shrunk gets ``--grace`` seconds more),
so a run stops cleanly; the workers are killed only past the limit plus grace plus a minute.

The report: graphs run through optimize + compile (counted from the workers' ``$FUZZ_LOG``
files, one line per graph, so the count survives a killed worker), failing examples, and the
reproducer of each shrunk failure. Exit status 1 when anything failed, 0 otherwise. Outputs
(worker logs and pytest output, ``repro/``) go under ``--out`` (default
``fuzz_out/<UTC time>/``, ignored by git).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_FILE = "tests/fuzz/test_fuzz.py"
TESTS = ("test_random_graphs", "test_fusion_patterns_and_near_misses",
         "test_broadcasting_and_zero_size", "test_constant_subgraphs_and_folding")  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1))
    ap.add_argument("--examples", type=int, default=1500,
                    help="examples per worker, split between the fuzz tests (default 1500)")  # fmt: skip
    ap.add_argument("--minutes", type=float, default=10.0, help="wall-clock limit (default 10)")
    ap.add_argument("--grace", type=float, default=300.0,
                    help="extra seconds for shrinking a failure found before the limit")  # fmt: skip
    ap.add_argument("--seed", type=int, default=None, help="base seed (default: from the time)")
    ap.add_argument("--out", type=Path, default=None, help="output directory")
    ap.add_argument("--db", type=Path, default=None,
                    help="example database directory (default .hypothesis/examples)")  # fmt: skip
    ap.add_argument("--tests", nargs="+", choices=TESTS, default=list(TESTS))
    ap.add_argument("--nice", type=int, default=0, help="niceness of the workers")
    args = ap.parse_args(argv)
    if args.workers < 1 or args.examples < 1 or args.minutes <= 0:
        ap.error("--workers, --examples and --minutes must be positive")
    return args


class Worker(threading.Thread):
    """Runs the worker's pytest invocations one after the other until done or out of time."""

    def __init__(self, index: int, args: argparse.Namespace, out: Path, env: dict[str, str],
                 end: float) -> None:  # fmt: skip
        super().__init__(daemon=True)
        self.index, self.args, self.out, self.end = index, args, out, end
        k = index % len(args.tests)
        self.tests = args.tests[k:] + args.tests[:k]
        self.env = dict(env, FUZZ_LOG=str(out / f"worker{index}.log"))
        self.examples = math.ceil(args.examples / len(self.tests))
        self.proc: subprocess.Popen | None = None
        self.codes: list[tuple[str, int]] = []
        self.stopped = False

    def run(self) -> None:
        with open(self.out / f"worker{self.index}.out", "w") as log:
            for n, test in enumerate(self.tests):
                now = time.time()
                if self.stopped or now >= self.end:
                    break
                deadline = now + (self.end - now) / (len(self.tests) - n)
                seed = self.args.seed + 1000 * self.index + n
                # the seed goes through $FUZZ_SEED (@seed): --hypothesis-seed would turn the
                # example database off
                cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                       f"{TEST_FILE}::{test}", "--hypothesis-profile=long"]  # fmt: skip
                env = dict(self.env, FUZZ_DEADLINE=f"{deadline:.0f}", FUZZ_SEED=str(seed),
                           FUZZ_LONG_EXAMPLES=str(self.examples))  # fmt: skip
                log.write(f"$ FUZZ_SEED={seed} {' '.join(cmd)}  "
                          f"(deadline in {deadline - now:.0f} s)\n")  # fmt: skip
                log.flush()
                self.proc = subprocess.Popen(
                    cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=(lambda: os.nice(self.args.nice)) if self.args.nice else None,
                )  # fmt: skip
                self.codes.append((test, self.proc.wait()))

    def kill(self) -> None:
        self.stopped = True
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the worker's own process group
            except ProcessLookupError:
                pass


def read_logs(out: Path) -> tuple[int, int, list[str], list[str]]:
    """Graphs, failing examples, reproducer lines ("PATH MESSAGE") and each run's first failing
    example saved before shrinking, from the worker logs."""
    graphs = failures = 0
    repros: list[str] = []
    unshrunk: list[str] = []
    for path in sorted(out.glob("worker*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("ok "):
                graphs += 1
            elif line.startswith("fail "):
                failures += 1
                if not line.startswith("fail (not saved"):
                    repros.append(line[5:])
            elif line.startswith("unshrunk "):
                unshrunk.append(line[9:])
    return graphs, failures, repros, unshrunk


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.seed is None:
        args.seed = int(time.time()) % 1_000_000
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = (args.out or ROOT / "fuzz_out" / stamp).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        FUZZ_REPRO_DIR=str(out / "repro"),
        FUZZ_GRACE=str(args.grace),
        FUZZ_THREADS="1",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    if args.db is not None:
        env["FUZZ_DB"] = str(args.db.resolve())
    start = time.time()
    end = start + 60 * args.minutes
    print(f"fuzz_long: {args.workers} workers x {args.examples} examples, {args.minutes:g} min, "
          f"seed {args.seed}, output {out}", flush=True)  # fmt: skip
    workers = [Worker(i, args, out, env, end) for i in range(args.workers)]
    for w in workers:
        w.start()
    hard_end = end + args.grace + 60
    last = start
    try:
        while any(w.is_alive() for w in workers):
            time.sleep(1.0)
            if time.time() - last >= 30:
                last = time.time()
                graphs, failures, _, _ = read_logs(out)
                alive = sum(w.is_alive() for w in workers)
                print(f"  {last - start:6.0f} s: {graphs} graphs, {failures} failing examples, "
                      f"{alive} workers running", flush=True)  # fmt: skip
            if time.time() > hard_end:
                print("fuzz_long: past the time limit and grace: killing the workers", flush=True)
                for w in workers:
                    w.kill()
                break
    except KeyboardInterrupt:
        print("fuzz_long: interrupted: stopping the workers", flush=True)
        for w in workers:
            w.kill()
    for w in workers:
        w.join(timeout=10)

    graphs, failures, repros, unshrunk = read_logs(out)
    elapsed = time.time() - start
    bad_exits = [(w.index, t, c) for w in workers for t, c in w.codes if c not in (0, 1)]
    failed_tests = [(w.index, t) for w in workers for t, c in w.codes if c == 1]
    print(f"\nfuzz_long: {graphs} graphs run through optimize + compile in {elapsed:.0f} s "
          f"({args.workers} workers; {elapsed * args.workers / max(graphs, 1):.2f} worker-s "
          f"per graph)")  # fmt: skip
    print(
        f"fuzz_long: {failures} failing examples (shrinking steps included), "
        f"{len(repros)} shrunk reproducer(s), {len(failed_tests)} failed test run(s)"
    )
    for line in repros:
        print(f"  reproducer: {line}")
    if failures and not repros:
        print(
            "  failures were not shrunk before the limit: rerun; the example database "
            "replays them first"
        )
    for line in unshrunk:
        print(f"  first failing example of a run, before shrinking: {line}")
    for index, test in failed_tests:
        print(f"  worker {index} {test}: failed (see {out}/worker{index}.out)")
    for index, test, code in bad_exits:
        print(f"  worker {index} {test}: pytest exit status {code} (see {out}/worker{index}.out)")
    print(f"fuzz_long: logs in {out}")
    return 1 if failures or failed_tests or bad_exits else 0


if __name__ == "__main__":
    sys.exit(main())
