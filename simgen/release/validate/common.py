"""What every part of ``simgen validate`` shares: the findings, the tally of a violation over
many shards, the checker's state and reads (every chunk decoded, a chunk that does not decode is
one finding) and the tolerances."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from ...errors import ConfigError
from ...schema import FILL, PATH_VARIABLES
from ...store import Layout

REQUIRED_ROOT_ATTRS = (
    "schema_version",
    "layout",
    "conditions",
    "config_hash",
    "scene_config_yaml",
    "versions",
    "complete",
)
# Geometry and labels are repeated in every condition group; these must be identical there.
SHARED = ("ue_position", "link_state", "toa", "los_distance", "num_paths")
F32_EPS = float(np.finfo(np.float32).eps)
POSITION_TOL_M = 1e-3  # slack on scene-bound and region checks (float32 positions)
# A done shard may not hold only fill values in these (they are never legitimately the fill):
NEVER_FILL = ("ue_position", "ue_velocity", "snapshot", "time", "link_state", "num_paths")
NEVER_FILL += ("los_distance",)
# ... nor in these, unless every link of the shard is NO_PATH:
FILL_IF_NO_PATH = ("csi", "cir", "toa", "rx_power", "snr_db") + tuple(
    n for n in PATH_VARIABLES if n != "path_interactions"
)
# Arrays an imported store may leave NaN because its source does not record them.
UNRECORDED = {"deepmimo": ("time", "trp_tx_power")}
PHYSICS_SAMPLES = 16  # samples per shard whose CSI / power / ToA / CIR are recomputed from paths
CSI_RTOL = 1e-3  # recomputed CSI / CIR: max error relative to the link's largest value
POWER_TOL_DB = 0.01  # recomputed rx_power
TOA_RTOL = 1e-6  # toa = first stored path delay (float32 delays)
SNR_TOL_DB = 0.01  # snr_db and noise_power_dbm against simgen.receiver


@dataclass
class Findings:
    """Findings plus what was checked (for the summary line)."""

    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # facts, not problems (a clean store has them)
    arrays_checked: int = 0
    values_checked: int = 0
    files_verified: int = 0
    manifest: Path | None = None

    def add(self, line: str) -> None:
        self.lines.append(line)


class _Tally:
    """Counts a violation over many shards and remembers where it first happened."""

    def __init__(self) -> None:
        self.count: dict[str, int] = {}
        self.first: dict[str, str] = {}

    def add(self, key: str, mask: np.ndarray, offset: int, where) -> None:
        n = int(np.count_nonzero(mask))
        if not n:
            return
        if key not in self.first:
            idx = tuple(int(i) for i in np.argwhere(mask)[0])
            self.first[key] = where(offset + idx[0], idx[1:])
        self.count[key] = self.count.get(key, 0) + n

    def lines(self) -> Iterator[str]:
        for key, n in self.count.items():
            yield f"{key.format(n=n, s='' if n == 1 else 's')} (first at {self.first[key]})"


class CheckerBase:
    """The state the checks share (root group, attrs, layout, config, findings) and the one
    way they read an array. The checks themselves are mixins of ``validate._Checker``:
    ``contract.ContractChecks``, ``values.ValueChecks``, ``physics.PhysicsChecks``."""

    def __init__(self, root: zarr.Group, attrs: dict, layout: Layout, out: Findings, progress=None):
        self.root, self.attrs, self.lay, self.out = root, attrs, layout, out
        self.start_progress = progress or (lambda total: lambda n: None)
        self.advance: Callable[[int], None] = lambda n: None
        self.conditions = [c for c in attrs.get("conditions", []) if isinstance(c, str)]
        self.cfg = self._config()
        self.bbox = self._bbox()
        self.trp_names: list[str] = []
        self._groups: dict[str, zarr.Group] = {}
        self.unreadable: set[tuple[str, str, int]] = set()  # (group, array, shard) reported
        self.unrecorded = UNRECORDED.get(str(attrs.get("source")), ())  # NaN = not recorded

    def read(self, cond: str, name: str, shard: int | None = None) -> np.ndarray | None:
        """Array ``name`` of group ``cond`` (one shard's samples, or all of it); None and one
        finding if a chunk does not decode (truncated, corrupt) or cannot be read."""
        sl = self.lay.shards[shard] if shard is not None else slice(None)
        key = (cond, name, -1 if shard is None else shard)
        try:
            g = self.group(cond) if cond else self.root
            return g[name][sl]
        except Exception as exc:  # noqa: BLE001 - codecs raise RuntimeError, ValueError, ...
            if key not in self.unreadable:
                self.unreadable.add(key)
                where = (
                    f"samples {sl.start}-{sl.stop - 1} (shard {shard})" if shard is not None else ""
                )
                first = (str(exc).strip().splitlines() or [""])[0][:120]
                self.add(
                    f"{cond + '/' if cond else ''}{name}: {where}{': ' if where else ''}"
                    f"unreadable chunk ({type(exc).__name__}: {first})"
                )
            return None

    def add(self, line: str) -> None:
        self.out.add(line)

    def note(self, line: str) -> None:
        self.out.notes.append(line)

    # -- context ---------------------------------------------------------------------------------
    def _config(self):
        from ...config import parse_config

        text = self.attrs.get("scene_config_yaml")
        if not isinstance(text, str):
            return None
        try:
            return parse_config(text, "scene_config_yaml")
        except ConfigError as exc:
            self.add(f"root attrs: {exc}")
            return None

    def _bbox(self) -> tuple[np.ndarray, np.ndarray] | None:
        bb = self.attrs.get("scene_bbox_m")
        if bb is None:
            return None
        try:
            lo, hi = (np.asarray(v, np.float64).reshape(3) for v in bb)
        except Exception:  # noqa: BLE001
            self.add("root attrs: scene_bbox_m is not [[xmin, ymin, zmin], [xmax, ymax, zmax]]")
            return None
        return lo, hi

    def where(self, sample: int, rest: tuple[int, ...]) -> str:
        s = f"sample {sample}"
        if rest:
            t = rest[0]
            name = self.trp_names[t] if t < len(self.trp_names) else "?"
            s += f", trp {t} ({name})"
        return s

    def group(self, path: str) -> zarr.Group:
        """A group read from its own metadata (never from embedded consolidated metadata)."""
        if path not in self._groups:
            self._groups[path] = zarr.open_group(
                store=self.root.store, path=path, mode="r", use_consolidated=False
            )
        return self._groups[path]


def _same_fill(actual, want) -> bool:
    a, w = np.asarray(actual), np.asarray(want)
    if a.dtype.kind in "fc" or w.dtype.kind in "fc":
        return bool(
            np.array_equal(a.astype(np.complex128), w.astype(np.complex128), equal_nan=True)
        )
    return bool(a == w)


def _all_fill(v: np.ndarray) -> bool:
    fill = FILL.get(v.dtype.name)
    if fill is None:
        return False
    if v.dtype.kind == "f" and np.isnan(fill):
        return bool(np.isnan(v).all())
    return bool((v == fill).all())


def _outside_bbox(p: np.ndarray, lo: np.ndarray, hi: np.ndarray, z_hi: float | None = None):
    hi = hi.copy()
    if z_hi is not None:
        hi[2] = max(hi[2], z_hi)
    t = POSITION_TOL_M
    return ((p < lo - t) | (p > hi + t)).any(axis=-1)


def _fmt(p) -> str:
    return "(" + ", ".join(f"{float(v):.1f}" for v in p) + ")"


def _fmt_bbox(lo, hi) -> str:
    return f"x [{lo[0]:.1f}, {hi[0]:.1f}] y [{lo[1]:.1f}, {hi[1]:.1f}] m"
