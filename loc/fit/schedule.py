"""Learning-rate schedules sized to the step count, shared by the fitting loops.

``lr_factor(step, steps, schedule)`` is the multiplier of the peak LR at 0-based ``step`` of a
run of ``steps`` steps (the spec's step number is ``step + 1``):

- ``"cosine"``: linear warm-up over ``warmup * steps`` steps (to the peak at the last warm-up
  step), then a half cosine from the peak to 0 at the last step, never below 1 % of the peak.
- ``"step"``: the paper recipe: x ``decay`` after each milestone fraction of ``steps``
  (step number > round(m * steps)), no warm-up.
- ``"constant"``: 1.
"""

from __future__ import annotations

import math

from loc.errors import ConfigError

SCHEDULES = ("cosine", "step", "constant")
FLOOR = 0.01  # cosine: smallest multiplier of the peak LR


def lr_factor(
    step: int,
    steps: int,
    schedule: str = "cosine",
    warmup: float = 0.05,
    milestones=(1 / 2, 2 / 3, 5 / 6),
    decay: float = 0.2,
) -> float:
    """Multiplier (0, 1] of the peak LR for 0-based ``step`` of ``steps`` (see module doc)."""
    if steps < 1:
        raise ConfigError(f"an LR schedule needs steps >= 1, got {steps}")
    n = step + 1
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return decay ** sum(n > round(m * steps) for m in milestones)
    if schedule != "cosine":
        raise ConfigError(f"unknown LR schedule {schedule!r} ({' | '.join(SCHEDULES)})")
    if not 0.0 <= warmup < 1.0:
        raise ConfigError(f"warm-up fraction must be in [0, 1), got {warmup}")
    w = round(warmup * steps)
    if n <= w:
        return n / w
    t = (n - w) / max(steps - w, 1)  # (0, 1]: 1 at the last step
    return max(FLOOR, 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0))))
