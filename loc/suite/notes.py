"""Measured reasons why a finding fails at a budget, printed under its section of the results
page ("Why, at this budget (measured)").

A note is written after its run, from measurements (docs/benchmarks.md holds the details), so
it lives here, apart from the code a protocol runs (``loc.suite.papers``): writing it does
not change that run's code (``loc.suite.stamp``). A note here replaces the protocol's older
``Paper.cpu_note``.
"""

from __future__ import annotations

# (protocol, budget) -> the note
NOTES: dict[tuple[str, str], str] = {}


def why(name: str, budget: str, fallback: str = "") -> str:
    """The note for protocol ``name`` at ``budget``, else ``fallback``."""
    return NOTES.get((name, budget), fallback)
