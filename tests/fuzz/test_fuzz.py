"""Differential fuzzing: random ONNX graphs through optimize and compile vs onnxruntime.

Example counts come from the hypothesis profile (``tests/conftest.py``): "ci" (the default,
100 examples per test, derandomized) or ``--hypothesis-profile=long`` (5,000 per test by
default, ``$FUZZ_LONG_EXAMPLES``; the example database in ``.hypothesis/`` is kept between
runs so earlier failures are replayed first). ``$FUZZ_LOG`` names a file that gets one line
per compiled graph (the count of graphs run), ``$FUZZ_REPRO_DIR`` where reproducers go.
"""

from __future__ import annotations

import pytest
from hypothesis import given

from tests.fuzz import graphs as g
from tests.fuzz.props import FALLBACK_OPS, STATS, check_case, quiet


@pytest.fixture(scope="module", autouse=True)
def _quiet_and_summary():
    quiet()
    yield
    print(f"\nfuzz: {STATS.graphs} graphs ({STATS.nodes} nodes), optimized changed "
          f"{STATS.optimized_changed}, compiled steps {STATS.steps}, fallback steps "
          f"{STATS.fallback_steps} {dict(FALLBACK_OPS)}")  # fmt: skip


@given(g.graphs())
def test_random_graphs(case: g.FuzzCase) -> None:
    check_case(case)


@given(g.pattern_graphs())
def test_fusion_patterns_and_near_misses(case: g.FuzzCase) -> None:
    check_case(case)


@given(g.broadcast_graphs())
def test_broadcasting_and_zero_size(case: g.FuzzCase) -> None:
    check_case(case)
