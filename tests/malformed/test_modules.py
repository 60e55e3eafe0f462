"""Damaged compiled modules (tests/malformed/modules.py) through Python and the odc-run runner.

Each case damages a fresh copy of a real compiled module. From Python, ``optimizer.load`` (and
``run`` on random inputs when it loads) must raise one-line ``ModuleError``s as the case says,
each call under a timer. Through ``odc-run`` (a subprocess with a timeout): exit 2 for a load
error, 1 for a kernel error, 0 for a harmless damage; one ``odc-run:`` line on stderr, no
sanitizer report, and nothing in the ``--save-outputs`` directory after a failure.

``ODC_RUNNER=path/to/odc-run`` runs the runner half with another build of the runner: CI runs
it with the AddressSanitizer + UBSan build (``.ci/run``), ``-k runner -s`` to see the counts.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import signal
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import optimizer
from optimizer import runtime
from optimizer.runtime import ModuleError, numpy_dtype
from tests.malformed.modules import MODULE_CATEGORIES, ModuleCase, all_module_cases, build_bases

TIME_LIMIT_S = 30  # per Python call: far above any load (milliseconds), far below a hang
RUNNER_TIMEOUT_S = 60  # per odc-run call (an ASan build is a few times slower)
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehavior")


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, tuple[list[ModuleCase], dict[str, Path]]]:
    bases = build_bases(tmp_path_factory.mktemp("bases"))
    by_category: dict[str, list[ModuleCase]] = {}
    for case in all_module_cases(bases):
        by_category.setdefault(case.category, []).append(case)
    return {"bases": bases, "by_category": by_category}


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: float, what: str):
    """SIGALRM for Python-level hangs; faulthandler ends the process on a native one."""

    def fire(signum, frame):
        raise Hang(f"{what}: still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(4 * seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _prepare(case: ModuleCase, bases: dict[str, Path], work: Path) -> Path:
    work.mkdir(parents=True)
    d = work / "m"
    shutil.copytree(bases[case.base], d, symlinks=True)
    return case.damage(d)


def _check_message(case: ModuleCase, text: str, needles: tuple[str, ...], every: bool) -> None:
    assert text.strip(), f"{case.id}: empty error message"
    assert "\n" not in text, f"{case.id}: multi-line error: {text!r}"
    assert "Traceback" not in text, f"{case.id}: {text}"
    if every:
        missing = [n for n in needles if n not in text]
        assert not missing, f"{case.id}: error {text!r} lacks {missing}"
    else:
        assert any(n in text for n in needles), f"{case.id}: error {text!r} names none of {needles}"


def _feeds(module) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        info.name: rng.standard_normal(info.shape).astype(numpy_dtype(info.dtype))
        for info in module.inputs
    }


def _python_outcome(case: ModuleCase, path: Path) -> str:
    """Loads (and runs) through Python; checks what the case says; returns what happened."""
    try:
        with time_limit(TIME_LIMIT_S, f"{case.id}: optimizer.load"):
            if case.no_verify or not path.is_dir():
                module = runtime.load(path, verify_checksums=not case.no_verify)
            else:
                module = optimizer.load(path)
    except ModuleError as err:
        assert case.outcome in ("error", "any"), f"{case.id}: load failed: {err}"
        if case.outcome == "error":
            _check_message(case, str(err), case.expect, every=True)
        else:
            _check_message(case, str(err), case.where, every=False)
        return "load error"
    assert case.outcome != "error", f"{case.id}: a damaged module loaded"
    try:
        with time_limit(TIME_LIMIT_S, f"{case.id}: run"):
            outputs = module.run(_feeds(module))
    except ModuleError as err:
        assert case.outcome in ("run_error", "loads", "any"), f"{case.id}: run failed: {err}"
        if case.outcome == "run_error":
            _check_message(case, str(err), case.expect, every=True)
        else:
            _check_message(case, str(err), case.where, every=False)
        return "run error"
    assert case.outcome != "run_error", f"{case.id}: a damaged module ran"
    assert [info.name for info in module.outputs] == list(outputs)
    return "ran"


def _runner() -> str:
    return os.environ.get("ODC_RUNNER") or runtime.runner_path()


def _runner_outcome(case: ModuleCase, path: Path, out_dir: Path, runner: str) -> str:
    out_dir.mkdir()
    args = [runner, str(path), "--iterations", "1", "--warmup", "0", "--threads", "2"]
    args += ["--save-outputs", str(out_dir)] + (["--no-verify"] if case.no_verify else [])
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    try:
        proc = subprocess.run(
            args, capture_output=True, text=True, errors="replace", timeout=RUNNER_TIMEOUT_S,
            env=env,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case.id}: odc-run still running after {RUNNER_TIMEOUT_S} s (a hang)")
    err = proc.stderr
    assert not any(m in err for m in SANITIZER_MARKS), f"{case.id}: sanitizer report:\n{err}"
    code = proc.returncode
    assert code in (0, 1, 2), f"{case.id}: odc-run exit {code} (a crash?)\n{err[-3000:]}"
    allowed = {"error": (2,), "run_error": (1,), "runs": (0,), "loads": (0, 1), "any": (0, 1, 2)}
    assert code in allowed[case.outcome], f"{case.id}: odc-run exit {code}: {err}"
    if code == 0:
        assert sorted(p.name for p in out_dir.iterdir()), f"{case.id}: ran but saved no outputs"
        return "exit 0"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("odc-run: "), f"{case.id}: stderr {err!r}"
    if case.outcome in ("error", "run_error"):
        _check_message(case, lines[0], case.expect, every=True)
    else:
        _check_message(case, lines[0], case.where, every=False)
    assert list(out_dir.iterdir()) == [], f"{case.id}: a failed run left outputs behind"
    return f"exit {code}"


def _collect(failures: list[str], check, case: ModuleCase, *args) -> str:
    """Runs one check; a failure is recorded (all of a category's are shown) as 'FAILED'."""
    try:
        return check(case, *args)
    except (AssertionError, pytest.fail.Exception) as exc:
        failures.append(str(exc).splitlines()[0][:400] if str(exc) else case.id)
        return "FAILED"


def test_enough_damaged_modules(cases) -> None:
    counts = Counter({c: len(v) for c, v in cases["by_category"].items()})
    print(f"\ndamaged modules: {sum(counts.values())} {dict(sorted(counts.items()))}")
    assert sum(counts.values()) >= 200, counts
    assert set(MODULE_CATEGORIES) <= set(counts), set(MODULE_CATEGORIES) - set(counts)
    for category in MODULE_CATEGORIES:
        assert counts[category] >= 5, (category, counts[category])


@pytest.mark.parametrize("category", MODULE_CATEGORIES)
def test_python(category: str, cases, tmp_path: Path) -> None:
    outcomes: Counter[str] = Counter()
    failures = []
    for k, case in enumerate(cases["by_category"][category]):
        path = _prepare(case, cases["bases"], tmp_path / str(k))
        outcomes[_collect(failures, _python_outcome, case, path)] += 1
    print(f"\n{category}: {sum(outcomes.values())} damaged modules via Python: {dict(outcomes)}")
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:30])


@pytest.mark.parametrize("category", MODULE_CATEGORIES)
def test_runner(category: str, cases, tmp_path: Path) -> None:
    runner = _runner()
    jobs = []
    for k, case in enumerate(cases["by_category"][category]):
        path = _prepare(case, cases["bases"], tmp_path / str(k))
        jobs.append((case, path, tmp_path / str(k) / "out"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        failures: list[str] = []
        results = list(pool.map(lambda j: _collect(failures, _runner_outcome, *j, runner), jobs))
    outcomes = Counter(results)
    print(
        f"\n{category}: {len(results)} damaged modules via {runner}: {dict(sorted(outcomes.items()))}"
    )
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:30])
