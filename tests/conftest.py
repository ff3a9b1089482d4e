"""Session fixture: the CPU backend, selected once before sionna.rt is imported."""

from __future__ import annotations

import pytest

from simgen.backend import select_backend


@pytest.fixture(scope="session", autouse=True)
def cpu_backend() -> str:
    return select_backend("cpu")
