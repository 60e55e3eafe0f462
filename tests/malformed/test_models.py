"""Over 1,000 malformed models (tests/malformed/models.py) through every entry point.

In process, each case goes through ``optimizer.load``, ``optimize_file`` and the CLI's
``main`` with ``-o out.onnx`` and ``-o dir/``, each call under a timer (a hang fails the test);
a sample per category also runs the installed ``optimize`` command in a subprocess with a
timeout. Must-fail cases must raise a one-line ``OptimizerError`` (the CLI: exit 1 or 2 and
one ``optimize: error:`` line, never exit 3 or a traceback) and leave no output behind.
Random bit flips may also produce a valid model (a flipped weight bit): then it optimizes.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest

import optimizer
from optimizer.cli import main
from optimizer.errors import OptimizerError
from optimizer.optimize import OptimizeOptions, optimize_file
from tests.malformed.models import CATEGORIES, Case, all_cases

CASES = all_cases()
BY_CATEGORY: dict[str, list[Case]] = {}
for _case in CASES:
    BY_CATEGORY.setdefault(_case.category, []).append(_case)

# Per call: generous for a 2-core machine shared with other jobs, far below "hangs".
TIME_LIMIT_S = 30


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: float, what: str):
    def fire(signum, frame):
        raise Hang(f"{what}: still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _one_line(message: str, case: Case) -> None:
    assert message.strip(), f"{case.id}: empty error message"
    assert "\n" not in message, f"{case.id}: multi-line error: {message!r}"
    assert "Traceback" not in message, f"{case.id}: {message}"


def _leftovers(d: Path) -> list[str]:
    """Output files or temporary files that a failed run left behind."""
    return sorted(p.name for p in d.iterdir() if p.name.startswith((".", "out")))


def test_enough_cases_per_category() -> None:
    counts = Counter(c.category for c in CASES)
    assert sum(counts.values()) >= 1000, counts
    # every category the issue names is present with a meaningful number of cases
    for category in (
        "truncated",
        "bit_flip",
        "wrong_type",
        "dims",
        "cycle",
        "dangling",
        "missing_initializer",
        "duplicate_output",
        "opset",
        "domain",
        "empty",
        "non_utf8",
        "external_data",
    ):
        assert counts[category] >= 15, (category, counts[category])
    assert set(CATEGORIES) <= {
        "truncated",
        "bit_flip",
        "wrong_type",
        "dims",
        "structure",
        "opsets",
        "empty",
        "non_utf8",
        "external_data",
    }


@pytest.mark.parametrize("category", sorted(BY_CATEGORY))
def test_every_entry_point_fails_cleanly(category: str, tmp_path: Path, capsys) -> None:
    outcomes: Counter[str] = Counter()
    for k, case in enumerate(BY_CATEGORY[category]):
        d = tmp_path / str(k)
        d.mkdir()
        src = case.write(d)
        work = src.parent
        failed = {}
        # 1. optimizer.load
        try:
            with time_limit(TIME_LIMIT_S, f"{case.id}: optimizer.load"):
                optimizer.load(src)
            failed["load"] = None
        except OptimizerError as exc:
            _one_line(str(exc), case)
            failed["load"] = type(exc).__name__
        if case.must_fail and not case.load_may_pass:
            assert failed["load"], f"{case.id}: optimizer.load accepted a malformed model"
        # 2. optimize_file
        out = work / "out.onnx"
        try:
            with time_limit(TIME_LIMIT_S, f"{case.id}: optimize_file"):
                optimize_file(src, out, OptimizeOptions(trials=1))
            assert out.exists()
            failed["optimize_file"] = None
        except OptimizerError as exc:
            _one_line(str(exc), case)
            failed["optimize_file"] = type(exc).__name__
            assert not out.exists(), f"{case.id}: optimize_file left {out.name} behind"
        if case.must_fail:
            assert failed["optimize_file"], f"{case.id}: optimize_file accepted a malformed model"
        # 3./4. the CLI, both output kinds
        for kind, target in (("file", work / "out_cli.onnx"), ("module", work / "out_mod")):
            arg = str(target) + ("/" if kind == "module" else "")
            capsys.readouterr()
            with time_limit(TIME_LIMIT_S, f"{case.id}: optimize -o {kind}"):
                code = main([str(src), "-o", arg, "-q", "--trials", "1"])
            err = capsys.readouterr().err
            assert code in (0, 1, 2), f"{case.id}: -o {kind}: exit {code}: {err}"
            if code == 0:
                assert not case.must_fail, f"{case.id}: -o {kind} accepted a malformed model"
                assert target.exists()
                shutil.rmtree(target) if target.is_dir() else target.unlink()
                continue
            lines = [line for line in err.splitlines() if line.startswith("optimize:")]
            assert len(lines) == 1 and lines[0].startswith("optimize: error: "), (case.id, err)
            assert "Traceback" not in err, (case.id, err)
            assert not target.exists(), f"{case.id}: -o {kind} left {target.name} behind"
        if out.exists():
            out.unlink()
        assert _leftovers(work) == [], f"{case.id}: leftovers {_leftovers(work)}"
        outcomes[failed["optimize_file"] or "optimized"] += 1
    assert sum(outcomes.values()) == len(BY_CATEGORY[category])
    print(f"\n{category}: {len(BY_CATEGORY[category])} cases: {dict(sorted(outcomes.items()))}")


def _optimize_command() -> list[str]:
    exe = shutil.which("optimize", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "optimizer.cli"]


def _sample() -> list[Case]:
    """One case per category (the middle one), for the subprocess runs."""
    return [cases[len(cases) // 2] for cases in BY_CATEGORY.values()]


@pytest.mark.parametrize("case", _sample(), ids=lambda c: c.id)
def test_cli_subprocess(case: Case, tmp_path: Path) -> None:
    src = case.write(tmp_path)
    for target in (src.parent / "out.onnx", src.parent / "outdir"):
        arg = str(target) + ("/" if target.suffix == "" else "")
        proc = subprocess.run(
            [*_optimize_command(), str(src), "-o", arg, "-q", "--trials", "1"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode in (0, 1, 2), (case.id, proc.returncode, proc.stderr)
        if proc.returncode == 0:
            assert not case.must_fail, (case.id, arg)
            continue
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, (case.id, proc.stderr)
        assert lines[0].startswith("optimize: error: "), (case.id, proc.stderr)
        assert not target.exists(), (case.id, arg)
