"""Learning-rate schedules, as a multiplier of the peak LR.

- ``"cosine"`` (our default for every budget but ``paper``): linear warm-up over the first
  ``warmup`` fraction of the steps, then a cosine decay to 1 % of the peak at the last step.
  Sized to the step count, so a 1,500-step CPU run decays as fully as a 300k-step one.
- ``"step"`` (the paper recipe, spec §4.2): constant, multiplied by ``decay`` after each
  ``milestones`` fraction of the steps ((1/2, 2/3, 5/6) of 300k = 150k / 200k / 250k).
"""

from __future__ import annotations

import math

from loc.errors import ConfigError

SCHEDULES = ("cosine", "step")
FLOOR = 0.01  # cosine: the last step's LR as a fraction of the peak


def lr_factor(
    step: int,
    steps: int,
    schedule: str = "cosine",
    warmup: float = 0.05,
    milestones: tuple[float, ...] = (1 / 2, 2 / 3, 5 / 6),
    decay: float = 0.2,
) -> float:
    """Multiplier of the peak LR at 0-based ``step`` of ``steps``."""
    n = step + 1  # the spec counts steps from 1
    if schedule == "step":
        return decay ** sum(n > round(m * steps) for m in milestones)
    if schedule != "cosine":
        raise ConfigError(f"unknown LR schedule {schedule!r} ({' | '.join(SCHEDULES)})")
    n_warm = max(1, round(warmup * steps))
    if n <= n_warm:
        return n / n_warm
    progress = (n - n_warm) / max(1, steps - n_warm)
    return FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
