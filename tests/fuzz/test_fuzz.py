"""Differential fuzzing: random ONNX graphs through optimize and compile vs onnxruntime.

Example counts come from the hypothesis profile (``tests/conftest.py``): "ci" (the default,
derandomized) or ``--hypothesis-profile=long`` (``$FUZZ_LONG_EXAMPLES`` per test; the example
database in ``.hypothesis/`` is kept between runs so earlier failures are replayed first).
``tools/fuzz_long.py`` runs the long profile over several worker processes, each with its own
``$FUZZ_SEED`` (hypothesis's ``@seed``: unlike ``--hypothesis-seed``, it keeps the example
database in use). The properties
and the environment variables (``$FUZZ_REPRO_DIR``, ``$FUZZ_LOG``...) are in ``props.py``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given, seed

from tests.fuzz import graphs as g
from tests.fuzz.props import check_case, quiet


def _seeded(test):
    value = os.environ.get("FUZZ_SEED")
    return seed(int(value))(test) if value else test


@pytest.fixture(scope="module", autouse=True)
def _quiet():
    quiet()  # the graph count is printed by tests/fuzz/conftest.py's terminal summary


@_seeded
@given(g.graphs())
def test_random_graphs(case: g.FuzzCase) -> None:
    check_case(case)


@_seeded
@given(g.pattern_graphs())
def test_fusion_patterns_and_near_misses(case: g.FuzzCase) -> None:
    check_case(case)


@_seeded
@given(g.broadcast_graphs())
def test_broadcasting_and_zero_size(case: g.FuzzCase) -> None:
    check_case(case)


@_seeded
@given(g.folding_graphs())
def test_constant_subgraphs_and_folding(case: g.FuzzCase) -> None:
    check_case(case)
