"""The Zarr v3 store: creation, shard bookkeeping for resume, region writes, finalization.

Layout: root attrs (config, versions, hash), root array ``shard_done`` (one chunk per shard),
one group per condition holding the variables of :mod:`simgen.schema`. Shards are aligned to
the sample chunks, so shards never share a chunk: a shard is written completely to every group
and only then marked done. A killed render leaves at most unmarked shards, which a re-run
writes again; finished shards are never recomputed.
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
import zarr.storage

from .errors import StoreError
from .safety import check_output, remove_if_ours
from .schema import (
    CIR_VARIABLES,
    FILL,
    PATH_VARIABLES,
    RECEIVER_ATTRS,
    RECEIVER_VARIABLES,
    SAMPLE_VARIABLES,
    SCHEMA_VERSION,
    STATIC_ATTRS,
    VARIABLES,
    VEHICLE_VARIABLES,
)

warnings.filterwarnings("ignore", message=".*Consolidated metadata.*", category=UserWarning)


@dataclass(frozen=True)
class Layout:
    """Sizes of every dimension and the sample chunk (= shard) length."""

    sample: int
    trp: int
    ue_ant: int
    trp_ant: int
    subcarrier: int
    path: int
    depth: int
    chunk: int
    with_paths: bool
    snapshot: int = 1
    vehicle: int = 0
    tap: int = 0

    def shape(self, dims: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(3 if d == "xyz" else getattr(self, d) for d in dims)

    @property
    def shards(self) -> list[slice]:
        return [
            slice(a, min(a + self.chunk, self.sample)) for a in range(0, self.sample, self.chunk)
        ]


def condition_name(rain_rate_mm_h: float) -> str:
    """Group name of a weather condition: ``dry`` or ``rain_25mmh``."""
    return "dry" if rain_rate_mm_h == 0 else f"rain_{rain_rate_mm_h:g}mmh".replace(".", "p")


class Store:
    """A simgen dataset being written (or read back)."""

    def __init__(self, root: zarr.Group, layout: Layout):
        self.root = root
        self.layout = layout

    @property
    def conditions(self) -> list[str]:
        return list(self.root.attrs["conditions"])

    def pending(self) -> list[int]:
        """Indices of shards that are not written yet."""
        return [int(i) for i in np.flatnonzero(self.root["shard_done"][:] == 0)]

    def read(self, name: str, condition: str | None = None) -> np.ndarray:
        return self.root[condition or self.conditions[0]][name][:]

    def write_shard(self, index: int, per_condition: dict[str, dict[str, np.ndarray]]) -> None:
        """Write shard ``index`` of every condition, then mark it done (in that order).
        Receiver variables (``snr_db``) are skipped in a store made before they existed, so
        such a store resumes in its own layout."""
        sl = self.layout.shards[index]
        for cond, arrays in per_condition.items():
            group = self.root[cond]
            for name, value in arrays.items():
                if name in RECEIVER_VARIABLES and name not in group:
                    continue
                group[name][sl] = value
        self.root["shard_done"][index] = 1

    def finalize(self) -> None:
        self.root.attrs["complete"] = True
        zarr.consolidate_metadata(self.root.store)


def open_root(path: str | Path, mode: str = "r") -> zarr.Group:
    """The root group of a store: a directory, or a zip file (read-only). The one place simgen
    opens a store; consolidated metadata is not used, so what is read is what is on disk.
    Raises what zarr raises for a missing or corrupt store (see :func:`open_store`)."""
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        if mode != "r":
            raise StoreError(f"{path}: a zipped store is read-only")
        store = zarr.storage.ZipStore(path, mode="r")
    else:
        store = zarr.storage.LocalStore(path, read_only=mode == "r")
    return zarr.open_group(store=store, mode=mode, use_consolidated=False)


def open_store(path: str | Path, mode: str = "r") -> Store:
    """Open an existing simgen store; StoreError if it is missing or not a simgen store."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: no such store")
    try:
        root = open_root(path, mode=mode)
        attrs = dict(root.attrs)
        layout = Layout(**attrs["layout"])
    except Exception as exc:  # noqa: BLE001 - zarr raises many kinds on corrupt metadata
        raise StoreError(
            f"{path}: not a readable simgen store ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'corrupt metadata'})"
        ) from None
    if attrs.get("schema_version") != SCHEMA_VERSION:
        raise StoreError(
            f"{path}: schema version {attrs.get('schema_version')!r} is not {SCHEMA_VERSION!r}"
        )
    return Store(root, layout)


def create_or_resume(
    path: str | Path,
    *,
    config_hash: str,
    layout: Layout,
    conditions: dict[str, float],
    attrs: dict,
    static: dict[str, np.ndarray],
    overwrite: bool,
    inputs: tuple = (),
) -> Store:
    """Create a new store, or reopen one made from the same config to finish it.

    ``overwrite`` replaces only a path that is provably a simgen store (or an empty folder);
    ``inputs`` (scene YAML, ...) must not overlap ``path`` (:mod:`simgen.safety`).

    conditions: group name -> rain rate (mm/h). static: arrays known before tracing
    (``ue_position``, ``trp_position``, ``trp_orientation``, ``trp_tx_power``, ``trp``,
    ``subcarrier``; optionally ``noise_power_dbm``, then with ``noise_figure_db``,
    ``temperature_k``, ``bandwidth_hz``, which add the receiver variables), written to every
    group at creation.
    """

    def create(tmp: Path) -> None:
        root_attrs = {
            **attrs,
            "config_hash": config_hash,
            "schema_version": SCHEMA_VERSION,
            "conditions": list(conditions),
            "layout": layout.__dict__,
            "complete": False,
        }
        # one write of zarr.json with simgen's attributes, so even a crashed creation is ours
        root = zarr.create_group(str(tmp), attributes=root_attrs)
        root.create_array(
            "shard_done",
            shape=(len(layout.shards),),
            chunks=(1,),
            dtype="uint8",
            fill_value=0,
            dimension_names=("shard",),
        )
        for cond, rate in conditions.items():
            _create_group(root.create_group(cond), layout, rate, static)

    def reopen(p: Path) -> tuple[Store, dict]:
        store = open_store(p, mode="r+")
        return store, dict(store.root.attrs)

    return create_or_reopen(path, config_hash, inputs, overwrite, create, reopen)


def create_or_reopen(
    path: str | Path,
    config_hash: str,
    inputs: tuple,
    overwrite: bool,
    create: Callable[[Path], None],
    reopen: Callable[[Path], tuple[object, dict]],
):
    """Every simgen output's create-or-resume (a store, a pool's root): refuse a ``path`` that
    overlaps ``inputs`` (:mod:`simgen.safety`); with ``overwrite`` remove it if it is provably
    ours; reopen an existing one (``reopen(path)`` -> (object, root attributes), StoreError if
    it is not ours) only if it was made from ``config_hash``; else lay it out under
    ``<path>.creating`` (``create(tmp)``, a crashed one removed first) and rename it into
    place, so it appears only fully laid out. Returns the reopened object."""
    path = Path(path)
    check_output(path, inputs)
    if path.exists() and overwrite:
        remove_if_ours(path, inputs)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".creating")
        remove_if_ours(tmp)  # a crashed creation; refused if it is not ours
        create(tmp)
        tmp.rename(path)
        return reopen(path)[0]
    obj, attrs = reopen(path)
    if attrs.get("config_hash") != config_hash:
        raise StoreError(
            f"{path} was rendered from a different configuration; use --overwrite to "
            f"replace it or --out to write elsewhere"
        )
    return obj


def _create_group(
    group: zarr.Group, layout: Layout, rain_rate: float, static: dict[str, np.ndarray]
) -> None:
    group.attrs.update({"rain_rate_mm_h": rain_rate})
    names = (
        SAMPLE_VARIABLES
        + (PATH_VARIABLES if layout.with_paths else ())
        + (CIR_VARIABLES if layout.tap else ())
    )
    for name in names:
        dims, dtype, attrs = VARIABLES[name]
        shape = layout.shape(dims)
        chunks = (layout.chunk,) + shape[1:]
        arr = group.create_array(
            name,
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            fill_value=FILL[dtype.name],
            dimension_names=dims,
        )
        arr.attrs.update(attrs)
    coords = {
        "trp": ("trp",),
        "xyz": ("xyz",),
        "subcarrier": ("subcarrier",),
        "trp_position": ("trp", "xyz"),
        "trp_orientation": ("trp", "xyz"),
        "trp_tx_power": ("trp",),
    }
    for name, dims in coords.items():
        value = np.asarray(static[name]) if name != "xyz" else np.array(["x", "y", "z"])
        dtype = str if value.dtype.kind in "US" else value.dtype
        arr = group.create_array(name, shape=value.shape, dtype=dtype, dimension_names=dims)
        arr[...] = value
        arr.attrs.update(STATIC_ATTRS.get(name, {}))
    if "noise_power_dbm" in static:  # receiver noise: per TRP now, snr_db per shard
        for name in RECEIVER_VARIABLES:
            dims, dtype, attrs = VARIABLES[name]
            shape = layout.shape(dims)
            arr = group.create_array(
                name,
                shape=shape,
                chunks=(layout.chunk,) + shape[1:] if dims[0] == "sample" else shape,
                dtype=dtype,
                fill_value=FILL[dtype.name],
                dimension_names=dims,
            )
            arr.attrs.update(attrs)
        noise = group["noise_power_dbm"]
        noise[...] = static["noise_power_dbm"]
        noise.attrs.update({k: float(static[k]) for k in RECEIVER_ATTRS})
    for name in ("ue_position", "ue_velocity", "snapshot", "time"):
        group[name][...] = static[name]
    if layout.vehicle:
        for name, (dims, dtype, attrs) in VEHICLE_VARIABLES.items():
            arr = group.create_array(
                name,
                shape=layout.shape(dims),
                dtype=dtype,
                dimension_names=dims,
                fill_value=FILL[dtype.name],
            )
            arr[...] = static[name]
            arr.attrs.update(attrs)
