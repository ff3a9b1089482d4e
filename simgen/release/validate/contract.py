"""Layout and contract checks of ``simgen validate``: ``shard_done``, consolidated metadata,
every array's name / dims / dtype / shape / chunks / fill value / units against
:mod:`simgen.schema`, and the per-TRP coordinates against the config."""

from __future__ import annotations

import numpy as np
import zarr

from ... import schema
from ...schema import CIR_VARIABLES, FILL, PATH_VARIABLES, SAMPLE_VARIABLES
from .common import CheckerBase, _fmt, _fmt_bbox, _outside_bbox, _same_fill

# The receiver block (``simgen.receiver``), written by renders since it was added: per TRP the
# thermal noise power over the system bandwidth, per link the per-element SNR. Stores made
# before it have neither (the receiver defaults apply), so neither is required; entries of
# ``simgen.schema`` for these names take precedence.
RECEIVER_VARIABLES = {
    "noise_power_dbm": (("trp",), np.dtype("float32"), {"units": "dBm"}),
    "snr_db": (("sample", "trp"), np.dtype("float32"), {"units": "dB"}),
}

# Written in full when the store is created (like the coordinates): its fill value is never read.
WRITTEN_AT_CREATION = ("noise_power_dbm",)


def known_arrays() -> dict[str, tuple[tuple[str, ...], np.dtype, dict] | None]:
    """Every array name the contract knows: name -> (dims, dtype, attrs), None where the
    contract fixes only the attributes (coordinates)."""
    known: dict = dict(schema.VARIABLES)
    known.update(getattr(schema, "VEHICLE_VARIABLES", {}))
    for name in schema.STATIC_ATTRS:
        known.setdefault(name, None)
    known.setdefault("xyz", None)
    for name, spec in RECEIVER_VARIABLES.items():
        known.setdefault(name, spec)
    return known


class ContractChecks(CheckerBase):
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
        required = [n for n in required if n not in RECEIVER_VARIABLES]  # optional (old stores)
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
                if (
                    fill is not None
                    and ok
                    and name not in WRITTEN_AT_CREATION
                    and not _same_fill(arr.fill_value, fill)
                ):
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
