"""Prints the fuzz session's counts at the end of a pytest run that ran fuzz tests."""

from __future__ import annotations

from tests.fuzz import props


def pytest_terminal_summary(terminalreporter) -> None:
    if props.STATS.graphs or props.STATS.failures:
        terminalreporter.write_line(props.summary())
