"""Progress of long commands: a live bar on a terminal, steady lines in a log.

Rich's bar draws nothing when stderr is not a terminal (a pipe, a file, a batch job), so a
minutes-long render would print nothing between its first line and ``done:``. There,
:class:`LineProgress` prints one line every ``step`` of the work or every ``every_s`` seconds,
whichever comes first, with the rate and the estimated time left.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _clock(seconds: float) -> str:
    """``seconds`` (s) as ``1h02m``, ``3m20s`` or ``45s``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class LineProgress:
    """Counts finished items and prints a line at a steady interval.

    ``total`` items of work (e.g. UEs); each item is ``rate_scale`` units of rate (e.g. TRPs, so
    the rate is in links/s); a line is printed when another ``step`` (fraction of ``total``) is
    done or ``every_s`` seconds (s) have passed since the last line, and at the end.
    """

    def __init__(
        self,
        total: int,
        write: Callable[[str], None],
        label: str = "progress",
        unit: str = "UEs",
        rate_scale: float = 1.0,
        rate_unit: str = "links/s",
        step: float = 0.1,
        every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.write, self.label, self.unit = max(int(total), 0), write, label, unit
        self.rate_scale, self.rate_unit = rate_scale, rate_unit
        self.step, self.every_s = step, every_s
        self.clock = clock
        self.done = 0
        self.t0 = self.last_t = clock()
        self.last_bucket = 0  # completed steps (integer, so 0.3 - 0.2 < 0.1 cannot skip a line)

    def advance(self, n: int) -> None:
        """Record ``n`` more finished items; print a line if one is due."""
        self.done += int(n)
        now = self.clock()
        bucket = int(self.done / self.total / self.step + 1e-9) if self.total else 0
        finished = self.done >= self.total
        if finished or bucket > self.last_bucket or now - self.last_t >= self.every_s:
            self.last_bucket, self.last_t = bucket, now
            self.write(self.line(now))

    def line(self, now: float) -> str:
        """The progress line at time ``now`` (s, on ``clock``)."""
        dt = max(now - self.t0, 1e-9)
        rate = self.done / dt
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta = _clock(left) if left == left else "?"
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return (
            f"{self.label}: {self.done}/{self.total} {self.unit} ({pct:.0f} %), "
            f"{rate * self.rate_scale:.1f} {self.rate_unit}, elapsed {_clock(dt)}, ETA {eta}"
        )


@contextmanager
def progress(
    console: Console,
    total: int,
    description: str,
    quiet: bool = False,
    rate_scale: float = 1.0,
    **line_options,
) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``: a rich bar on a terminal, :class:`LineProgress` lines otherwise,
    nothing when ``quiet``. ``rate_scale`` converts items to rate units (e.g. TRPs per UE)."""
    if quiet:
        yield lambda n: None
    elif console.is_terminal:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)
    else:
        lines = LineProgress(
            total,
            lambda s: console.print(s, soft_wrap=True, highlight=False),
            label=description,
            rate_scale=rate_scale,
            **line_options,
        )
        yield lines.advance
