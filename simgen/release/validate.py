"""``simgen validate``: check a store against the dataset contract of :mod:`simgen.schema`.

Every problem becomes one line (a *finding*); an empty list means the store is clean. Checks:

- layout: root attributes, schema version, one group per condition, ``shard_done`` complete;
- contract: every variable present with the dims, dtype, fill value, chunking and units of
  :mod:`simgen.schema`, no arrays outside the contract, consolidated metadata up to date;
- values, shard by shard (memory stays bounded by one shard): CSI finite, ToA / rx power NaN
  exactly for ``NO_PATH`` links, link state in the enum and consistent with ``num_paths``,
  ToA >= LoS distance / c (float32 tolerance), LoS distance = |UE - TRP|, UE and TRP positions
  inside the scene bounds (``scene_bbox_m``) and UEs inside the configured regions, path arrays
  consistent with ``num_paths``, labels and geometry identical in every condition;
- missing regions: shards not marked done, and any array of a written shard that holds only
  fill values where the labels say it cannot (a deleted chunk reads as the fill value);
- unreadable chunks (truncated, corrupt): every chunk of every array is read; a chunk that does
  not decode is a finding naming the array and samples, never a traceback;
- NaN / Inf in every variable (``ue_velocity`` and ``time`` included; NaN only where the contract
  allows it), ``ue_velocity`` speed and ``time`` = snapshot x dt_s against the config;
- physics, on up to ``PHYSICS_SAMPLES`` samples per shard when paths are stored and complete
  (``num_paths <= max_paths``): CSI and CIR recomputed from ``path_a`` / ``path_tau``, rx_power
  from ``path_a`` (:func:`simgen.channel.path_gain_db`), ToA = first stored delay; on every link,
  a path without interactions (line of sight) has the LoS delay;
- checksums: when a ``MANIFEST.sha256`` (written by ``simgen publish``) lies beside the store,
  every file it lists is hashed and compared, and store files it does not list are reported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr
import zarr.storage

from .. import schema
from ..errors import ConfigError, StoreError
from ..schema import (
    CIR_VARIABLES,
    FILL,
    PATH_VARIABLES,
    SAMPLE_VARIABLES,
    SCHEMA_VERSION,
    SPEED_OF_LIGHT,
    LinkState,
)
from ..store import Layout, open_root

MANIFEST = "MANIFEST.sha256"
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
FILL_IF_NO_PATH = ("csi", "cir", "toa", "rx_power") + tuple(
    n for n in PATH_VARIABLES if n != "path_interactions"
)
# Arrays an imported store may leave NaN because its source does not record them.
UNRECORDED = {"deepmimo": ("time", "trp_tx_power")}
PHYSICS_SAMPLES = 16  # samples per shard whose CSI / power / ToA / CIR are recomputed from paths
CSI_RTOL = 1e-3  # recomputed CSI / CIR: max error relative to the link's largest value
POWER_TOL_DB = 0.01  # recomputed rx_power
TOA_RTOL = 1e-6  # toa = first stored path delay (float32 delays)


def known_arrays() -> dict[str, tuple[tuple[str, ...], np.dtype, dict] | None]:
    """Every array name the contract knows: name -> (dims, dtype, attrs), None where the
    contract fixes only the attributes (coordinates)."""
    known: dict = dict(schema.VARIABLES)
    known.update(getattr(schema, "VEHICLE_VARIABLES", {}))
    for name in schema.STATIC_ATTRS:
        known.setdefault(name, None)
    known.setdefault("xyz", None)
    return known


@dataclass
class Findings:
    """Findings plus what was checked (for the summary line)."""

    lines: list[str] = field(default_factory=list)
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


def validate(path: str | Path, manifest: str | Path | None = None) -> list[str]:
    """Findings for the store at ``path`` (directory or zipped), one line each; [] if clean."""
    return check(path, manifest).lines


def check(
    path: str | Path,
    manifest: str | Path | None = None,
    progress: Callable[[int], Callable[[int], None]] | None = None,
) -> Findings:
    """Like :func:`validate` but also returns what was checked. ``progress(total)``, if given,
    is called once with the number of shard reads (finished shards x condition groups) and
    returns ``advance(n)``, called as each shard of each group is checked."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: no such store")
    out = Findings()
    man = Path(manifest) if manifest is not None else _find_manifest(path)
    if man is not None:
        out.manifest = man
        if not man.is_file():
            raise StoreError(f"{man}: no such manifest")
        for line in verify_manifest(man, out, store=path):
            out.add(line)
    try:
        root = open_root(path)
        attrs = dict(root.attrs)
    except Exception as exc:  # noqa: BLE001 - zarr raises many kinds on corrupt metadata
        out.add(f"store: not a readable Zarr v3 group ({type(exc).__name__})")
        return out
    missing = [k for k in REQUIRED_ROOT_ATTRS if k not in attrs]
    if missing:
        out.add(f"root attrs: missing {', '.join(missing)}")
    if attrs.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        out.add(f"root attrs: schema_version {attrs['schema_version']!r} is not {SCHEMA_VERSION!r}")
    try:
        layout = Layout(**attrs["layout"])
    except Exception:  # noqa: BLE001
        out.add("root attrs: layout is missing or malformed; cannot check arrays")
        return out
    try:
        _Checker(root, attrs, layout, out, progress).run()
    finally:
        if isinstance(root.store, zarr.storage.ZipStore):
            root.store.close()
    return out


class _Checker:
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

    # -- context ---------------------------------------------------------------------------------
    def _config(self):
        from ..config import parse_config

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

    # -- checks ----------------------------------------------------------------------------------
    def run(self) -> None:
        self.check_shards()
        self.check_consolidated()
        groups = set(self.root.group_keys())
        for cond in self.conditions:
            if cond not in groups:
                self.add(f"{cond}: condition group is missing")
        for extra in sorted(groups - set(self.conditions)):
            self.add(f"{extra}: group is not listed in the conditions attribute")
        present = [c for c in self.conditions if c in groups]
        self.advance = self.start_progress(len(present) * int(self.done.sum()))
        for cond in present:
            ok = self.check_contract(cond)
            self.check_static(cond)
            self.check_values(cond, ok)
            if cond == present[0]:
                self.check_motion(cond, ok)
        self.check_shared(present)

    def check_motion(self, cond: str, usable: dict[str, bool]) -> None:
        """Snapshots against each other (shared by all groups, so one group is checked):
        in ``time_series`` traffic each UE is at its snapshot-0 position + velocity x time, and
        no UE lies inside the box of a vehicle on the road (``vehicle_*`` arrays)."""
        lay = self.lay
        if lay.snapshot <= 1 or not all(usable.get(n) for n in ("ue_position", "ue_velocity")):
            return
        if not self.done.all() or lay.sample % lay.snapshot:
            return
        n_ue = lay.sample // lay.snapshot
        pos = self.read(cond, "ue_position")
        vel = self.read(cond, "ue_velocity")
        tim = self.read(cond, "time")
        if pos is None or vel is None or tim is None:
            return
        pos = pos.astype(np.float64).reshape(lay.snapshot, n_ue, 3)
        vel = vel.astype(np.float64).reshape(lay.snapshot, n_ue, 3)
        tim = tim.astype(np.float64).reshape(lay.snapshot, n_ue)
        t = self.cfg.traffic if self.cfg is not None else None
        if t is not None and t.mode == "time_series":
            with np.errstate(invalid="ignore"):
                want = pos[0] + vel[0] * (tim - tim[0:1])[..., None]
                off = (np.abs(pos - want) > 1e-3 + 1e-6 * np.abs(want)).any(-1)
            n = int(off.sum())
            if n:
                s, u = (int(i) for i in np.argwhere(off)[0])
                self.add(
                    f"{cond}/ue_position: {n} sample{'s' if n != 1 else ''} not at the snapshot-0 "
                    "position + ue_velocity x time (time_series UEs move with their velocity; "
                    f"first at sample {s * n_ue + u})"
                )
        names = set(self.group(cond).array_keys())
        if not {"vehicle_position", "vehicle_yaw", "vehicle_type"} <= names:
            return
        vp, vy, vt = (
            self.read(cond, n) for n in ("vehicle_position", "vehicle_yaw", "vehicle_type")
        )
        if vp is None or vy is None or vt is None or vp.shape[0] != lay.snapshot:
            return
        from ..traffic import _holds_ue

        try:
            hit = _holds_ue(vp.astype(np.float64), vy.astype(np.float64), vt, pos, margin=0.0)
        except (IndexError, ValueError):
            self.add(f"{cond}/vehicle_type: values outside the vehicle types of the contract")
            return
        n = int(hit.sum())
        if n:
            s, v = (int(i) for i in np.argwhere(hit)[0])
            self.add(
                f"{cond}/vehicle_position: {n} vehicle box{'es' if n != 1 else ''} (snapshot x "
                f"vehicle) hold a UE (first: snapshot {s}, vehicle {v})"
            )

    def check_shards(self) -> None:
        lay = self.lay
        if "shard_done" not in self.root.array_keys():
            self.add("shard_done: array is missing; cannot tell which shards were written")
            self.done = np.ones(len(lay.shards), bool)
            return
        done = self.read("", "shard_done")
        if done is None:
            self.done = np.ones(len(lay.shards), bool)
            return
        if done.shape != (len(lay.shards),):
            self.add(f"shard_done: shape {done.shape} does not match {len(lay.shards)} shards")
            done = np.resize(done, len(lay.shards))
        self.done = done == 1
        for i in np.flatnonzero(~self.done):
            sl = lay.shards[i]
            self.add(f"shard {i} (samples {sl.start}-{sl.stop - 1}): not rendered (shard_done = 0)")
        if self.done.all() and self.attrs.get("complete") is not True:
            self.add("root attrs: complete is not true although every shard is done")
        if not self.done.all() and self.attrs.get("complete") is True:
            self.add("root attrs: complete is true but some shards are not done")

    def group(self, path: str) -> zarr.Group:
        """A group read from its own metadata (never from embedded consolidated metadata)."""
        if path not in self._groups:
            self._groups[path] = zarr.open_group(
                store=self.root.store, path=path, mode="r", use_consolidated=False
            )
        return self._groups[path]

    def check_consolidated(self) -> None:
        """Consolidated metadata (what xarray reads) must match the arrays' own zarr.json,
        at the root and wherever a condition group embeds its own."""
        for path in ["", *self.conditions]:
            try:
                meta = zarr.open_group(
                    store=self.root.store, path=path, mode="r", use_consolidated=None
                ).metadata.consolidated_metadata
            except Exception:  # noqa: BLE001 - a missing group is reported elsewhere
                continue
            if meta is None:
                if path == "" and self.attrs.get("complete") is True:
                    self.add("consolidated metadata: missing (readers fall back to listing)")
                continue
            where = f" (embedded in {path}/zarr.json)" if path else ""
            prefix = f"{path}/" if path else ""
            flat = {prefix + k: m for k, m in meta.flattened_metadata.items()}
            for full, m in flat.items():
                parent, _, name = full.rpartition("/")
                try:
                    actual = (self.group(parent)[name] if parent else self.root[name]).metadata
                except (KeyError, FileNotFoundError):
                    self.add(f"consolidated metadata: lists {full}, which does not exist{where}")
                    continue
                if getattr(m, "node_type", None) == "array" and m.to_dict() != actual.to_dict():
                    self.add(f"consolidated metadata: stale entry for {full}{where}")
            for cond in [path] if path else self.conditions:
                if cond not in flat and not path:
                    continue
                try:
                    arrays = set(self.group(cond).array_keys())
                except Exception:  # noqa: BLE001
                    continue
                for name in sorted(arrays):
                    if f"{cond}/{name}" not in flat:
                        self.add(f"consolidated metadata: does not list {cond}/{name}{where}")

    def check_contract(self, cond: str) -> dict[str, bool]:
        """Names, dims, dtypes, shapes, chunks, fill values, units. Returns name -> usable."""
        g, lay = self.group(cond), self.lay
        known = known_arrays()
        arrays = set(g.array_keys())
        required = list(SAMPLE_VARIABLES) + (list(PATH_VARIABLES) if lay.with_paths else [])
        required += list(CIR_VARIABLES) if getattr(lay, "tap", 0) else []
        if self.cfg is not None and cond == self.conditions[0]:
            if bool(self.cfg.output.paths) != bool(lay.with_paths):
                self.add("root attrs: layout with_paths disagrees with output.paths of the config")
            if (self.cfg.output.cir_taps or 0) != getattr(lay, "tap", 0):
                self.add("root attrs: layout tap disagrees with output.cir_taps of the config")
        required += [n for n in schema.STATIC_ATTRS] + ["xyz"]
        if getattr(lay, "vehicle", 0):
            required += list(getattr(schema, "VEHICLE_VARIABLES", {}))
        usable = {}
        for name in required:
            if name not in arrays:
                self.add(f"{cond}/{name}: missing")
        for name in sorted(arrays):
            arr = g[name]
            self.out.arrays_checked += 1
            if name not in known:
                self.add(f"{cond}/{name}: not in the dataset contract (simgen.schema)")
                continue
            ok = True
            dims = tuple(arr.metadata.dimension_names or ())
            spec = known[name]
            if spec is not None:
                want_dims, want_dtype, want_attrs = spec
                if dims != want_dims:
                    self.add(f"{cond}/{name}: dims {dims} are not {want_dims}")
                    ok = False
                if arr.dtype != want_dtype:
                    self.add(f"{cond}/{name}: dtype {arr.dtype} is not {want_dtype}")
                    ok = False
                fill = FILL.get(want_dtype.name)
                if fill is not None and ok and not _same_fill(arr.fill_value, fill):
                    self.add(f"{cond}/{name}: fill value {arr.fill_value!r} is not {fill!r}")
            else:
                want_attrs = schema.STATIC_ATTRS.get(name, {})
            if all(d in lay.__dict__ or d == "xyz" for d in dims) and dims:
                want_shape = lay.shape(dims)
                if arr.shape != want_shape:
                    self.add(f"{cond}/{name}: shape {arr.shape} is not {want_shape} (layout)")
                    ok = False
                elif dims[0] == "sample" and arr.chunks[0] != lay.chunk:
                    self.add(
                        f"{cond}/{name}: sample chunk {arr.chunks[0]} is not the shard size "
                        f"{lay.chunk}; shards would share chunks"
                    )
            for key in ("units", "flag_values", "flag_meanings"):
                if key in want_attrs and arr.attrs.get(key) != want_attrs[key]:
                    self.add(
                        f"{cond}/{name}: attribute {key} = {arr.attrs.get(key)!r}, "
                        f"expected {want_attrs[key]!r}"
                    )
            usable[name] = ok
        return usable

    def check_static(self, cond: str) -> None:
        """TRP coordinates against the bounds and the config; subcarrier grid."""
        g = self.group(cond)
        names = set(g.array_keys())
        trp = self.read(cond, "trp") if "trp" in names else None
        if trp is not None:
            self.trp_names = [str(t) for t in trp]
        for name in ("trp_orientation", "trp_tx_power", "subcarrier"):
            v = self.read(cond, name) if name in names else None
            if v is None or v.dtype.kind not in "fc" or np.isfinite(v).all():
                continue
            if not (name in self.unrecorded and np.isnan(v).all()):
                self.add(f"{cond}/{name}: non-finite values")
        for name in ("vehicle_position", "vehicle_velocity", "vehicle_yaw"):
            v = self.read(cond, name) if name in names else None
            if v is None:
                continue
            nan_ok = name != "vehicle_velocity"  # NaN marks a parked slot
            if np.isinf(v).any() or (not nan_ok and np.isnan(v).any()):
                self.add(f"{cond}/{name}: non-finite values")
        pos = self.read(cond, "trp_position") if "trp_position" in names else None
        if pos is not None and pos.ndim == 2:
            pos = np.asarray(pos, np.float64)
            if not np.isfinite(pos).all():
                self.add(f"{cond}/trp_position: non-finite values")
            elif self.bbox is not None:
                # masts may stand above the highest roof: only the floor bounds z for TRPs
                out = _outside_bbox(pos, *self.bbox, z_hi=float(np.max(pos[:, 2])))
                for t in np.flatnonzero(out):
                    self.add(
                        f"{cond}/trp_position: trp {t} at {_fmt(pos[t])} is outside the scene "
                        f"bounds {_fmt_bbox(*self.bbox)}"
                    )
            explicit = self.cfg is not None and isinstance(self.cfg.trps, list)
            if explicit and pos.shape == (len(self.cfg.trps), 3):
                want = np.array([t.position for t in self.cfg.trps])
                bad = ~np.isclose(pos, want, atol=1e-3).all(axis=1)
                for t in np.flatnonzero(bad):
                    self.add(
                        f"{cond}/trp_position: trp {t} differs from the config ({_fmt(want[t])})"
                    )
        if self.cfg is not None and isinstance(self.cfg.trps, list):
            want_names = [t.name for t in self.cfg.trps]
            if self.trp_names and self.trp_names != want_names:
                self.add(f"{cond}/trp: names {self.trp_names} differ from the config {want_names}")
            sc = self.read(cond, "subcarrier") if "subcarrier" in names else None
            if sc is not None:
                step = np.diff(sc)
                if len(sc) != self.cfg.ofdm.num_subcarriers or (
                    len(step) and not np.allclose(step, self.cfg.ofdm.spacing_hz, rtol=1e-6)
                ):
                    self.add(f"{cond}/subcarrier: grid differs from the config's ofdm section")

    def check_values(self, cond: str, usable: dict[str, bool]) -> None:
        g, lay = self.group(cond), self.lay
        tally = _Tally()
        p = f"{cond}/"

        def have(name: str) -> bool:
            return usable.get(name, False)

        trp_pos = None
        if "trp_position" in g.array_keys() and g["trp_position"].shape == (lay.trp, 3):
            trp_pos = self.read(cond, "trp_position")
            trp_pos = None if trp_pos is None else np.asarray(trp_pos, np.float64)
        physics = self._physics_context(cond, usable)
        codes = np.array([int(s) for s in LinkState])
        regions = self.cfg.ue.regions if self.cfg is not None else None
        z_hi = (
            (self.bbox[1][2] + (self.cfg.ue.height_m if self.cfg else 2.0)) if self.bbox else None
        )
        for i, sl in enumerate(lay.shards):
            if not self.done[i]:
                continue
            self.advance(1)
            a = sl.start
            r = {}
            for n in SAMPLE_VARIABLES + PATH_VARIABLES + CIR_VARIABLES:
                v = self.read(cond, n, i) if have(n) else None
                if v is not None:
                    r[n] = v
            self.out.values_checked += sum(v.size for v in r.values())
            state = r.get("link_state")
            npaths = r.get("num_paths")
            # missing region: labels that are never legitimately the fill value
            if state is not None and npaths is not None:
                if (state == FILL["int8"]).all() and (npaths == FILL["int16"]).all():
                    filled = [n for n, v in r.items() if _all_fill(v)]
                    self.add(
                        f"{cond}: samples {a}-{sl.stop - 1} (shard {i}) hold only fill values "
                        f"({', '.join(filled)}) although shard_done marks them written"
                    )
                    continue
            self._deleted_chunks(cond, i, r)  # drops the arrays it reports from r
            self._finite(p, r, a, tally)
            if physics is not None:
                self._physics(p, r, a, tally, physics)
            if state is not None:
                tally.add(
                    p + "link_state: {n} fill value{s} (-1: never written)",
                    state == -1,
                    a,
                    self.where,
                )
                bad = ~np.isin(state, codes) & (state != -1)
                tally.add(
                    p + "link_state: {n} value{s} outside the LinkState enum", bad, a, self.where
                )
            nopath = state == LinkState.NO_PATH if state is not None else None
            if npaths is not None:
                tally.add(p + "num_paths: {n} negative value{s}", npaths < 0, a, self.where)
                if state is not None:
                    ok_state = np.isin(state, codes)
                    mismatch = ok_state & (npaths >= 0) & (nopath != (npaths == 0))
                    tally.add(
                        p + "link_state: {n} link{s} where NO_PATH disagrees with num_paths == 0",
                        mismatch,
                        a,
                        self.where,
                    )
            if "csi" in r:
                csi = r["csi"]
                tally.add(p + "csi: {n} non-finite value{s}", ~np.isfinite(csi), a, self.where)
                if nopath is not None:
                    zero = ~np.any(csi != 0, axis=(2, 3, 4))
                    live = np.isin(state, codes) & ~nopath
                    tally.add(
                        p + "csi: {n} link{s} with paths but all-zero CSI (fill value?)",
                        zero & live,
                        a,
                        self.where,
                    )
                    tally.add(
                        p + "csi: {n} NO_PATH link{s} with non-zero CSI",
                        ~zero & nopath,
                        a,
                        self.where,
                    )
            for name in ("toa", "rx_power"):
                if name not in r:
                    continue
                v = r[name]
                tally.add(p + name + ": {n} infinite value{s}", np.isinf(v), a, self.where)
                if nopath is not None:
                    live = np.isin(state, codes) & ~nopath
                    tally.add(
                        p + name + ": {n} NaN value{s} on link{s} with paths",
                        np.isnan(v) & live,
                        a,
                        self.where,
                    )
                    tally.add(
                        p + name + ": {n} finite value{s} on NO_PATH link{s}",
                        np.isfinite(v) & nopath,
                        a,
                        self.where,
                    )
            if "rx_power" in r:
                tally.add(
                    p + "rx_power: {n} path gain{s} above 0 dB (more power than sent)",
                    r["rx_power"] > 0,
                    a,
                    self.where,
                )
            if "toa" in r and "los_distance" in r:
                toa = r["toa"].astype(np.float64)
                d = r["los_distance"].astype(np.float64)
                with np.errstate(invalid="ignore"):
                    early = toa * SPEED_OF_LIGHT < d * (1 - 4 * F32_EPS) - 1e-3
                    tally.add(
                        p + "toa: {n} value{s} earlier than LoS distance / c",
                        early & np.isfinite(toa),
                        a,
                        self.where,
                    )
                    tally.add(p + "toa: {n} negative value{s}", toa < 0, a, self.where)
            if "ue_position" in r:
                ue = r["ue_position"].astype(np.float64)
                fin = np.isfinite(ue).all(axis=1)
                tally.add(p + "ue_position: {n} non-finite position{s}", ~fin, a, self.where)
                if self.bbox is not None:
                    out = _outside_bbox(ue, *self.bbox, z_hi=z_hi) & fin
                    tally.add(
                        p
                        + "ue_position: {n} position{s} outside the scene bounds "
                        + _fmt_bbox(*self.bbox),
                        out,
                        a,
                        self.where,
                    )
                if regions:
                    inside = np.zeros(len(ue), bool)
                    tol = POSITION_TOL_M + self._walk_m()
                    for reg in regions:
                        inside |= (
                            (ue[:, 0] >= reg.x[0] - tol)
                            & (ue[:, 0] <= reg.x[1] + tol)
                            & (ue[:, 1] >= reg.y[0] - tol)
                            & (ue[:, 1] <= reg.y[1] + tol)
                        )
                    tally.add(
                        p + "ue_position: {n} position{s} outside every ue.regions "
                        "rectangle of the config",
                        ~inside & fin,
                        a,
                        self.where,
                    )
                if "los_distance" in r and trp_pos is not None:
                    want = np.linalg.norm(ue[:, None, :] - trp_pos[None], axis=-1)
                    got = r["los_distance"].astype(np.float64)
                    off = ~np.isclose(got, want, rtol=1e-5, atol=1e-3)
                    tally.add(
                        p + "los_distance: {n} value{s} differ from |ue_position - trp_position|",
                        off,
                        a,
                        self.where,
                    )
            if "path_tau" in r and npaths is not None:
                tau = r["path_tau"]
                n_fin = np.isfinite(tau).sum(-1)
                want = np.minimum(np.maximum(npaths, 0), lay.path)
                tally.add(
                    p + "path_tau: {n} link{s} whose number of delays differs from num_paths",
                    (n_fin != want) & (npaths >= 0),
                    a,
                    self.where,
                )
                if "toa" in r:
                    with np.errstate(invalid="ignore"):
                        bad = tau < r["toa"][..., None] * (1 - 4 * F32_EPS)
                    tally.add(
                        p + "path_tau: {n} delay{s} before the first arrival (toa)",
                        bad,
                        a,
                        self.where,
                    )
                for name in PATH_VARIABLES:  # angles, Doppler: NaN exactly where tau is padding
                    if (
                        name != "path_tau"
                        and name in r
                        and r[name].dtype.kind == "f"
                        and (r[name].shape == tau.shape)
                    ):
                        tally.add(
                            p + name + ": {n} value{s} whose NaN pattern differs from path_tau",
                            np.isnan(r[name]) != np.isnan(tau),
                            a,
                            self.where,
                        )
            if "path_a" in r:
                tally.add(
                    p + "path_a: {n} non-finite value{s}", ~np.isfinite(r["path_a"]), a, self.where
                )
            if "path_interactions" in r:
                masks = schema.VARIABLES["path_interactions"][2].get("flag_masks") or [255]
                allowed = int(np.bitwise_or.reduce(np.array(masks)))
                tally.add(
                    p + "path_interactions: {n} value{s} with unknown bits",
                    (r["path_interactions"] & ~np.uint8(allowed)) != 0,
                    a,
                    self.where,
                )
        for line in tally.lines():
            self.add(line)

    def _walk_m(self) -> float:
        """How far a UE may walk from its sampled position (time-series traffic), metres."""
        t = self.cfg.traffic if self.cfg is not None else None
        if t is None or t.mode != "time_series":
            return 0.0
        return float(self.cfg.ue.speed_mps * (t.snapshots - 1) * t.dt_s)

    def _deleted_chunks(self, cond: str, shard: int, r: dict[str, np.ndarray]) -> None:
        """Arrays of a done shard that hold only fill values where the labels say they cannot:
        a chunk that is missing (deleted, lost in a copy) reads as the fill value."""
        state, sl = r.get("link_state"), self.lay.shards[shard]
        all_no_path = state is not None and bool((state == LinkState.NO_PATH).all())
        longer = None  # a valid path longer than the LoS delay must have an interaction
        if "path_tau" in r and "los_distance" in r:
            with np.errstate(invalid="ignore"):
                longer = (
                    r["path_tau"].astype(np.float64) * SPEED_OF_LIGHT
                    > r["los_distance"][..., None].astype(np.float64) * (1 + 1e-5) + 0.01
                ).any()
        for name in list(r):
            if not _all_fill(r[name]) or name in self.unrecorded:
                continue
            if name in NEVER_FILL or (name in FILL_IF_NO_PATH and not all_no_path):
                pass
            elif name == "path_interactions" and longer:
                pass
            else:
                continue
            self.add(
                f"{cond}/{name}: samples {sl.start}-{sl.stop - 1} (shard {shard}) hold only fill "
                "values although shard_done marks them written (missing chunk?)"
            )
            del r[name]

    def _finite(self, p: str, r: dict[str, np.ndarray], a: int, tally: _Tally) -> None:
        """NaN / Inf where the contract has none; velocity and time against the config."""
        for name in ("ue_velocity", "time", "cir", "path_a"):
            if name in r and not (name in self.unrecorded and np.isnan(r[name]).all()):
                bad = ~np.isfinite(r[name])
                if name == "ue_velocity":
                    bad = bad.any(-1)  # per sample (the xyz axis is no TRP)
                tally.add(p + name + ": {n} non-finite value{s}", bad, a, self.where)
        if "blocking_vehicle" in r:
            bv = r["blocking_vehicle"]
            tally.add(
                p + "blocking_vehicle: {n} value{s} neither -1 nor a vehicle index",
                (bv < -1) | (bv >= getattr(self.lay, "vehicle", 0)),
                a,
                self.where,
            )
        for name in PATH_VARIABLES:
            if name in r and r[name].dtype.kind == "f":
                tally.add(p + name + ": {n} infinite value{s}", np.isinf(r[name]), a, self.where)
        cfg = self.cfg
        if "ue_velocity" in r and cfg is not None:
            speed = np.linalg.norm(r["ue_velocity"].astype(np.float64), axis=-1)
            with np.errstate(invalid="ignore"):
                off = np.abs(speed - cfg.ue.speed_mps) > 1e-4 * max(cfg.ue.speed_mps, 1.0)
            tally.add(
                p + "ue_velocity: {n} speed{s} differ from ue.speed_mps of the config",
                off & np.isfinite(speed),
                a,
                self.where,
            )
        if "snapshot" in r:
            snap = r["snapshot"]
            tally.add(
                p + "snapshot: {n} value{s} outside 0 .. number of snapshots - 1",
                (snap < 0) | (snap >= max(self.lay.snapshot, 1)),
                a,
                self.where,
            )
            if "time" in r and cfg is not None:
                dt = cfg.traffic.dt_s if cfg.traffic is not None else 0.0
                want = snap.astype(np.float64) * dt
                off = ~np.isclose(r["time"].astype(np.float64), want, rtol=1e-6, atol=1e-6)
                tally.add(
                    p + "time: {n} value{s} differ from snapshot x traffic.dt_s",
                    off & np.isfinite(r["time"]),
                    a,
                    self.where,
                )

    def _physics_context(self, cond: str, usable: dict[str, bool]) -> dict | None:
        """What recomputing CSI / power / ToA / CIR from the stored paths needs; None if the
        store has no paths."""
        if not (usable.get("path_a") and usable.get("path_tau") and usable.get("num_paths")):
            return None
        sc = (
            self.read(cond, "subcarrier") if "subcarrier" in self.group(cond).array_keys() else None
        )
        carrier = self.attrs.get("carrier_frequency_hz")
        spacing = self.attrs.get("subcarrier_spacing_hz")
        if sc is None or not isinstance(carrier, int | float):
            return None
        ports = self.cfg.ue.array.ports if self.cfg is not None else None
        if ports is None and isinstance(self.attrs.get("ue_array"), dict):  # imports
            from ..config import ArrayConfig

            try:
                ports = ArrayConfig.model_validate(self.attrs["ue_array"], strict=False).ports
            except Exception:  # noqa: BLE001 - a malformed attribute only skips the check
                ports = None
        return {
            "freqs": float(carrier) + np.asarray(sc, np.float64),
            "carrier": float(carrier),
            "bandwidth": len(sc) * float(spacing) if isinstance(spacing, int | float) else None,
            "ue_ports": ports,
        }

    def _physics(self, p: str, r: dict, a: int, tally: _Tally, ctx: dict) -> None:
        """Cross-checks against the stored paths (see the module docstring)."""
        from .. import channel

        if not all(k in r for k in ("path_a", "path_tau", "num_paths")):
            return
        n = len(r["num_paths"])
        rows = np.unique(np.linspace(0, n - 1, min(n, PHYSICS_SAMPLES)).round().astype(int))
        tau = r["path_tau"][rows].astype(np.float64)
        valid = np.isfinite(tau)
        pa = np.where(valid[:, :, None, None, :], r["path_a"][rows], 0).astype(np.complex64)
        tau0 = np.where(valid, tau, 0.0)
        npaths = r["num_paths"][rows]
        complete = (npaths > 0) & (npaths <= self.lay.path)  # the stored paths are all paths

        def report(key: str, bad: np.ndarray) -> None:
            full = np.zeros(r["num_paths"].shape, bool)
            full[rows] = bad
            tally.add(p + key, full, a, self.where)

        def rel_err(got: np.ndarray, want: np.ndarray) -> np.ndarray:
            axes = tuple(range(2, got.ndim))
            scale = np.maximum(np.abs(want).max(axis=axes), np.abs(got).max(axis=axes))
            return np.abs(got - want).max(axis=axes) / np.where(scale > 0, scale, 1.0)

        if "csi" in r:
            h = channel.cfr(pa, tau0, ctx["freqs"])
            report(
                "csi: {n} sampled link{s} whose CSI differs from the CSI recomputed from "
                "path_a / path_tau",
                complete & (rel_err(r["csi"][rows], h) > CSI_RTOL),
            )
        if "cir" in r and ctx["bandwidth"]:
            h = channel.cir_taps(pa, tau0, ctx["carrier"], ctx["bandwidth"], r["cir"].shape[-1])
            report(
                "cir: {n} sampled link{s} whose taps differ from the taps recomputed from "
                "path_a / path_tau",
                complete & (rel_err(r["cir"][rows], h) > CSI_RTOL),
            )
        if "rx_power" in r and ctx["ue_ports"] is not None:
            want = channel.path_gain_db(pa, ctx["ue_ports"]).astype(np.float64)
            with np.errstate(invalid="ignore"):
                bad = ~(np.abs(r["rx_power"][rows].astype(np.float64) - want) <= POWER_TOL_DB)
            report(
                "rx_power: {n} sampled link{s} whose rx_power differs from the path gain of path_a "
                f"(> {POWER_TOL_DB} dB)",
                complete & bad,
            )
        if "toa" in r:
            first = np.where(valid, tau, np.inf).min(-1)
            toa = r["toa"][rows].astype(np.float64)
            with np.errstate(invalid="ignore"):
                bad = ~(np.abs(toa - first) <= TOA_RTOL * first)
            report(
                "toa: {n} sampled link{s} whose toa differs from the first stored path delay",
                complete & bad,
            )
        if "path_interactions" in r and "los_distance" in r:
            los = np.isfinite(r["path_tau"]) & (r["path_interactions"] == 0).all(-1)
            d = r["los_distance"][..., None].astype(np.float64)
            with np.errstate(invalid="ignore"):
                off = (
                    np.abs(r["path_tau"].astype(np.float64) * SPEED_OF_LIGHT - d) > 1e-5 * d + 0.01
                )
            tally.add(
                p + "path_interactions: {n} path{s} without interactions (line of sight) whose "
                "delay is not the LoS delay",
                (los & off).any(-1),
                a,
                self.where,
            )

    def check_shared(self, conditions: list[str]) -> None:
        if len(conditions) < 2:
            return
        first = self.group(conditions[0])
        for cond in conditions[1:]:
            g = self.group(cond)
            for name in SHARED:
                if name not in first.array_keys() or name not in g.array_keys():
                    continue
                if first[name].shape != g[name].shape:
                    continue
                for i, sl in enumerate(self.lay.shards):
                    if not self.done[i]:
                        continue
                    x, y = self.read(conditions[0], name, i), self.read(cond, name, i)
                    if x is None or y is None:
                        continue
                    same = np.array_equal(x, y, equal_nan=x.dtype.kind in "fc")
                    if not same:
                        self.add(
                            f"{cond}/{name}: differs from {conditions[0]}/{name} in samples "
                            f"{sl.start}-{sl.stop - 1} (labels and geometry must be shared)"
                        )
                        break


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


# -- manifest -------------------------------------------------------------------------------------
def sha256_file(path: Path, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(path: Path) -> dict[str, str]:
    """``sha256sum`` format: '<hex>  <relative path>' per line -> {relative path: hex}."""
    out = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep:
            digest, sep, name = line.partition(" *")
        if not sep or len(digest) != 64:
            raise StoreError(f"{path}: line {n} is not '<sha256>  <path>'")
        out[name] = digest.lower()
    return out


def write_manifest(folder: Path, exclude: tuple[str, ...] = (MANIFEST,)) -> Path:
    """Hash every file under ``folder`` into ``folder/MANIFEST.sha256`` (sorted, sha256sum
    format: ``cd folder && sha256sum -c MANIFEST.sha256`` verifies it)."""
    folder = Path(folder)
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).as_posix() not in exclude
    )
    lines = [f"{sha256_file(p)}  {p.relative_to(folder).as_posix()}" for p in files]
    target = folder / MANIFEST
    target.write_text("\n".join(lines) + "\n")
    return target


def _find_manifest(store: Path) -> Path | None:
    """The publish manifest beside the store, if it lists the store."""
    cand = store.resolve().parent / MANIFEST
    if not cand.is_file():
        return None
    try:
        names = read_manifest(cand)
    except StoreError:
        return cand  # a broken manifest is a finding of its own (reported by verify_manifest)
    prefix = store.resolve().name
    return cand if any(n == prefix or n.startswith(prefix + "/") for n in names) else None


def verify_manifest(
    manifest: Path, out: Findings | None = None, store: Path | None = None
) -> list[str]:
    """Hash every file listed in ``manifest`` (paths relative to its folder); findings for
    mismatches and missing files, and for files under ``store`` the manifest does not list."""
    manifest = Path(manifest)
    base = manifest.resolve().parent
    lines: list[str] = []
    try:
        entries = read_manifest(manifest)
    except StoreError as exc:
        return [f"manifest: {exc}"]
    for name, digest in entries.items():
        p = base / name
        if not p.is_file():
            lines.append(f"manifest: {name}: listed but missing")
            continue
        if sha256_file(p) != digest:
            lines.append(f"manifest: {name}: SHA-256 mismatch (file changed since publishing)")
        if out is not None:
            out.files_verified += 1
    if store is not None and Path(store).is_dir():
        for p in sorted(Path(store).resolve().rglob("*")):
            if p.is_file():
                rel = p.relative_to(base).as_posix()
                if rel not in entries:
                    lines.append(f"manifest: {rel}: file in the store is not listed")
    return lines


def summary(path: str | Path, result: Findings) -> str:
    """One line for a clean store."""
    root = open_root(Path(path))
    lay = Layout(**root.attrs["layout"])
    conds = list(root.attrs.get("conditions", []))
    if isinstance(root.store, zarr.storage.ZipStore):
        root.store.close()
    text = (
        f"ok: {path}: {len(conds)} condition{'s' if len(conds) != 1 else ''} "
        f"({', '.join(conds)}), {lay.sample} samples x {lay.trp} TRPs, "
        f"{len(lay.shards)}/{len(lay.shards)} shards, {result.arrays_checked} arrays and "
        f"{result.values_checked:,} values checked"
    )
    if result.manifest is not None:
        text += f", {result.files_verified} files match {result.manifest.name}"
    else:
        text += ", no manifest"
    return text
