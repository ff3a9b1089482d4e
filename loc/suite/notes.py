"""Measured reasons why a finding fails at a budget, printed under its section of the results
page ("Why, at this budget (measured)").

A note is written after its run, from measurements (docs/benchmarks.md holds the details), so
it lives here, apart from the code a protocol runs (``loc.suite.papers``): writing it does
not change that run's code (``loc.suite.stamp``). A note here replaces the protocol's older
``Paper.cpu_note``.
"""

from __future__ import annotations

# (protocol, budget) -> the note
NOTES: dict[tuple[str, str], str] = {
    ("semantic_da", "cpu"): (
        "there is no domain gap to adapt across, and the link state is not learned even "
        "in-domain. Diagnostic runs of MDA (seed 1, the cpu budget, with a test column of "
        "held-out *source* positions beside the target one; docs/benchmarks.md, 'Semantic DA "
        "at the cpu budget'): source RMSE 45.5 m vs target 46.8 m, so the traffic-regime "
        "shift costs ~3 % while the error itself is a tail (median 8.7 m, p90 42-55 m on the "
        "409 m street). In-domain PCP is 65.7 % against 64 % for always answering LOS "
        "(BLOCKED 17 %, NLOS 29 %); the target's 44 % follows from its 51 % BLOCKED share. "
        "Keeping the level in the input (`norm: none`) does not help: the head answers LOS "
        "(source PCP 62.8 %, RMSE 72.9 m). 300 UEs x ~16 snapshots and 1,000 steps of batch "
        "32 (8 epochs; the paper: 2,000) at half width is too little to learn the states."
    ),
}


def why(name: str, budget: str, fallback: str = "") -> str:
    """The note for protocol ``name`` at ``budget``, else ``fallback``."""
    return NOTES.get((name, budget), fallback)
