"""Data layer: a simgen Zarr store -> transformed CSI tensors, splits and neighbour sequences.

Conventions used throughout ``loc`` (per sample, after the TRP/antenna/subcarrier selection):

    raw CSI    complex64 (G, A, C)     G = n_trp * n_ue_ant link groups, A = TRP antennas,
                                       C = subcarriers (the store's (trp, ue_ant, trp_ant,
                                       subcarrier) axes with trp and ue_ant merged)
    features   float32   (G, A, C, 2)  scale * CSI (or its angle-delay DFT), last axis (Re, Im)
    location   float64   (2,)          (x, y) in metres, scene frame (or relative to the first
                                       selected TRP with ``frame="trp"``)

For one TRP with a 32-element array, one UE antenna and 32 subcarriers a feature is
(1, 32, 32, 2), i.e. the paper's (32, 32, 2) tensor; flattening it gives the paper's
(ant, car, re/im) order.

Reads are lazy: ``CSIStore.read`` fetches only the sample chunks it needs and keeps the most
recent ones (already transformed) in a small LRU cache; nothing copies the whole CSI array.
``FeatureBank`` can instead preload a chosen subset once (e.g. onto the GPU).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import xarray as xr
import zarr

from loc.errors import ConfigError, DataError
from loc.neighbours import (  # noqa: F401 - re-exported: loc.data is the data layer's API
    coarse_locations,
    knn,
    neighbour_sequences,
    random_sequences,
)
from loc.noise import NOISELESS, ChannelGrid, Noise, apply, bandwidth_hz
from loc.pools import (  # noqa: F401 - re-exported: loc.data is the data layer's API
    environment_path,
    pool_environments,
    pool_stores,
)
from loc.transforms import (  # noqa: F401 - re-exported: loc.data is the data layer's API
    AD_POWER_DB_RANGE,
    DOMAINS,
    ArrayShape,
    CSITransform,
    Domain,
    ad_power,
    angle_delay,
    angle_dft,
    dft_matrices,
    to_real,
)
from simgen import receiver
from simgen.schema import LinkState

log = logging.getLogger("loc.data")
_SAID_DEFAULTS: set[str] = set()  # stores whose receiver defaults were announced
_SAID_FLAT: set[str] = set()  # stores whose 1-D angle DFT fallback was announced

REQUIRED_VARIABLES = ("csi", "ue_position", "link_state")
CSI_DIMS = ("sample", "trp", "ue_ant", "trp_ant", "subcarrier")
Frame = Literal["absolute", "trp"]


# ----------------------------------------------------------------------------- store access


def list_groups(path: str | Path) -> list[str]:
    """Names of the condition groups (e.g. ``["dry", "rain_25mmh"]``) in a store."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"store not found: {path}")
    try:
        root = zarr.open_group(str(path), mode="r")
    except Exception as e:  # zarr raises several unrelated types for a non-store path
        raise DataError(f"not a Zarr store: {path} ({e.__class__.__name__})") from None
    return sorted(root.group_keys())


def open_group(path: str | Path, group: str) -> xr.Dataset:
    """Open one condition group lazily (no array data is read).

    Raises DataError when the store/group is missing or lacks a required variable.
    """
    groups = list_groups(path)
    if group not in groups:
        names = ", ".join(groups) or "none"
        raise DataError(f"group {group!r} not in store {path} (groups: {names})")
    ds = xr.open_zarr(str(path), group=group, consolidated=False, chunks=None)
    missing = [v for v in REQUIRED_VARIABLES if v not in ds.variables]
    if missing:
        raise DataError(f"group {group!r} of {path} lacks variable(s): {', '.join(missing)}")
    if tuple(ds["csi"].dims) != CSI_DIMS:
        raise DataError(f"csi has dims {ds['csi'].dims}, expected {CSI_DIMS}")
    return ds


def parse_index_list(text: str | None) -> tuple[int, ...] | None:
    """Parse ``"all"``/``""`` -> None, ``"0,2,5"`` -> (0, 2, 5), ``"0:32"`` -> (0, ..., 31)."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    out: list[int] = []
    try:
        for part in text.split(","):
            if ":" in part:
                a, b = part.split(":")
                out.extend(range(int(a), int(b)))
            else:
                out.append(int(part))
    except ValueError:
        raise ConfigError(f"cannot parse index list {text!r} (use e.g. '0,2' or '0:32')") from None
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which TRPs, UE antennas, TRP antennas and subcarriers to use (None = all)."""

    trps: tuple[int, ...] | None = None
    ue_ants: tuple[int, ...] | None = None
    trp_ants: tuple[int, ...] | None = None
    subcarriers: tuple[int, ...] | None = None

    _DIMS = {"trps": "trp", "ue_ants": "ue_ant", "trp_ants": "trp_ant", "subcarriers": "subcarrier"}

    def resolve(self, sizes: dict[str, int]) -> Selection:
        """Replace None by every index and check ranges against the store's dim sizes."""
        kw = {}
        for field, dim in self._DIMS.items():
            idx = getattr(self, field)
            n = sizes[dim]
            idx = tuple(range(n)) if idx is None else tuple(int(i) for i in idx)
            if not idx or any(i < 0 or i >= n for i in idx) or len(set(idx)) != len(idx):
                raise ConfigError(f"bad {field} selection {idx}: the store has {n} {dim}(s)")
            kw[field] = idx
        return Selection(**kw)

    def isel(self) -> dict[str, list[int]]:
        """Keyword arguments for ``xarray.Dataset.isel`` (call on a resolved selection)."""
        return {dim: list(getattr(self, f)) for f, dim in self._DIMS.items()}

    def to_dict(self) -> dict:
        return {f: None if getattr(self, f) is None else list(getattr(self, f)) for f in self._DIMS}

    @staticmethod
    def from_dict(d: dict) -> Selection:
        return Selection(**{k: None if v is None else tuple(v) for k, v in d.items()})


def trp_array_shape(path: str | Path) -> ArrayShape | None:
    """(rows, cols, ports) of a store's TRP array (one array for every TRP) from its root
    attributes: a DeepMIMO import's ``trp_array`` or the rendered scene's config
    (``simgen.interop.deepmimo.store_arrays``); None when the store records neither."""
    from simgen.interop.deepmimo.export import store_arrays

    try:
        trp, _ = store_arrays(dict(zarr.open_group(str(path), mode="r").attrs))
    except Exception:  # noqa: BLE001 - no / unreadable array record: the caller falls back
        return None
    return (int(trp.rows), int(trp.cols), int(trp.ports))


# ----------------------------------------------------------------------------- the store


class CSIStore:
    """One condition group of a simgen store with a selection and a transform.

    Small per-sample arrays (positions, link states) are loaded eagerly; CSI is read lazily
    by sample chunk, transformed, and kept in an LRU cache of ``cache_mb`` megabytes.

    Attributes:
        xy: float64 (N, 2) UE location in metres (scene frame, or TRP-relative).
        trp_xyz: float64 (n_trp_selected, 3) TRP positions in metres, same frame as ``xy``.
        link_state: int8 (N, n_trp_selected) ``simgen.schema.LinkState`` codes (-1 = not rendered).
        has_path: bool (N, n_trp_selected) the link has a path (neither NO_PATH nor unrendered).
        valid: bool (N,) finite position and at least one selected link with a path.
        shape: (G, A, C) of one sample's CSI after selection.
        array_shape: (rows, cols, ports) of the TRP array (``trp_array_shape``) when all its
            antennas are selected, else None; an angle-delay transform with ``array="store"``
            uses its 2-D DFT (1-D when None).

    ``variable`` = "cir" reads simgen's stored CIR taps (``output.cir_taps``) instead of the
    CFR: C is then the tap axis (the ``subcarriers`` selection picks taps), and the transform's
    "freq" domain means "as stored".

    ``environment`` picks one environment of a simgen environment pool (every environment
    has its own scene frame); :func:`pool_stores` opens several (by name or split).
    """

    def __init__(
        self,
        path: str | Path,
        group: str = "dry",
        selection: Selection = Selection(),
        transform: CSITransform = CSITransform(),
        frame: Frame = "absolute",
        cache_mb: float = 256.0,
        variable: str = "csi",
        environment: str | None = None,
    ) -> None:
        path = environment_path(path, environment)
        self.environment = environment
        self.path, self.group, self.frame, self.variable = str(path), group, frame, variable
        self.ds = open_group(path, group)
        if variable not in ("csi", "cir"):
            raise ConfigError(f"unknown channel variable {variable!r} (csi | cir)")
        if variable not in self.ds.variables:
            raise DataError(
                f"{path} group {group!r} has no {variable} variable"
                + (" (render with output.cir_taps)" if variable == "cir" else "")
            )
        data = self.ds[variable]
        if "tap" in data.dims:
            data = data.rename(tap="subcarrier")  # one channel axis C for both variables
        self.selection = selection.resolve(dict(data.sizes))
        sel = self.selection
        # the TRP array's (rows, cols, ports) for the angle DFT: known, and all its antennas
        shape = trp_array_shape(path)
        whole = sel.trp_ants == tuple(range(data.sizes["trp_ant"]))
        ok = shape is not None and whole and math.prod(shape) == data.sizes["trp_ant"]
        self.array_shape: ArrayShape | None = shape if ok else None
        self.transform = self._resolve(transform)
        self._csi = data.isel(**{k: v for k, v in sel.isel().items()})  # still lazy
        xyz = np.asarray(self.ds["ue_position"].values, dtype=np.float64)
        self.xyz = xyz
        xy = xyz[:, :2].copy()
        has_trp_pos = "trp_position" in self.ds.variables
        all_trp = np.asarray(self.ds["trp_position"].values, np.float64) if has_trp_pos else None
        offset = np.zeros(2)
        if frame == "trp":
            if all_trp is None:
                raise DataError("frame='trp' needs trp_position in the store")
            offset = all_trp[sel.trps[0], :2]
        elif frame != "absolute":
            raise ConfigError(f"unknown frame {frame!r} (absolute | trp)")
        self.xy = xy - offset
        # selected TRP positions (T, 3) m in the frame of ``xy`` (NaN when the store has none)
        self.trp_xyz = np.full((len(sel.trps), 3), np.nan)
        if all_trp is not None:
            self.trp_xyz = all_trp[list(sel.trps)].copy()
            self.trp_xyz[:, :2] -= offset
        self.link_state = np.asarray(self.ds["link_state"].isel(trp=list(sel.trps)).values, np.int8)
        self.has_path = (self.link_state >= 0) & (self.link_state != LinkState.NO_PATH)
        self.valid = np.isfinite(xyz).all(axis=1) & self.has_path.any(axis=1)
        n_t, n_u = len(sel.trps), len(sel.ue_ants)
        self.shape = (n_t * n_u, len(sel.trp_ants), len(sel.subcarriers))
        enc = self.ds[variable].encoding.get("chunks") or (256,)
        self.chunk = int(min(max(enc[0], 1), 4096))
        per_chunk_mb = self.chunk * math.prod(self.shape) * 2 * 4 / 2**20
        self._cache_chunks = max(1, int(cache_mb / max(per_chunk_mb, 1e-9)))
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.noise: Noise = NOISELESS
        self.query_noise: Noise | None = None
        self._query: np.ndarray | None = None  # (N,) bool: samples that get query_noise
        self.noise_epoch = 0
        self._link: tuple[np.ndarray, np.ndarray] | None = None  # link_budget(), once

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    @property
    def carrier_frequency(self) -> float | None:
        """Carrier frequency in Hz from the root attributes (simgen's ``carrier_frequency_hz``),
        when the store has it."""
        attrs = zarr.open_group(self.path, mode="r").attrs
        fc = attrs.get("carrier_frequency_hz", attrs.get("carrier_frequency"))
        return None if fc is None else float(fc)

    # ------------------------------------------------------------------------- noise

    def set_noise(
        self,
        noise: Noise = NOISELESS,
        queries: np.ndarray | None = None,
        query_noise: Noise | None = None,
    ) -> None:
        """Impair every read (``loc.noise``): samples ``queries`` (global indices) get
        ``query_noise`` (default: ``noise``; its ``mult`` applies to them only), every other
        sample (training, database) gets ``noise`` without ``mult``. Clears the cache."""
        self.noise, self.query_noise = noise, query_noise
        self._query = None
        if queries is not None:
            self._query = np.zeros(len(self), bool)
            self._query[np.asarray(queries, np.int64)] = True
        self._cache.clear()

    def set_noise_epoch(self, epoch: int) -> None:
        """Redraw the noise (training augmentation); epoch 0 is the evaluation draw."""
        if epoch != self.noise_epoch:
            self.noise_epoch = int(epoch)
            self._cache.clear()

    @property
    def noisy(self) -> bool:
        return not self.noise.noiseless or (
            self._query is not None and self.query_noise is not None
        )

    def noise_label(self, queries: bool = True) -> str:
        """What the reads of queries (or of the database) are impaired by, e.g. "AWGN 10 dB"."""
        q = self.query_noise if (queries and self.query_noise is not None) else self.noise
        return q.label()

    def grid(self, variable: str | None = None) -> ChannelGrid:
        """The channel grid of ``variable`` (default the store's): subcarrier offsets (Hz) and
        the link-budget noise variance N / P_tx per TRP (``link_budget``)."""
        if self._link is None:
            self._link = self.link_budget()
        return ChannelGrid(variable or self.variable, *self._link)

    def link_budget(self) -> tuple[np.ndarray, np.ndarray]:
        """(subcarrier offsets (K,) Hz, sigma_H^2 = N / P_tx (T_store,) per TRP) from the group's
        ``noise_power_dbm`` and ``trp_tx_power`` (simgen.receiver), with the receiver defaults
        (said once per store) for a store that predates ``noise_power_dbm``; NaN where the store
        lacks what it takes."""
        ds = self.ds
        f = np.zeros(0)
        if "subcarrier" in ds.variables:
            f = np.asarray(ds["subcarrier"].values, np.float64)
        tx = np.full(ds.sizes["trp"], np.nan)
        if "trp_tx_power" in ds.variables:
            tx = np.asarray(ds["trp_tx_power"].values, np.float64)
        bw = bandwidth_hz(f)
        if "noise_power_dbm" in ds.variables:
            nz = np.broadcast_to(np.asarray(ds["noise_power_dbm"].values, np.float64), tx.shape)
        elif np.isfinite(bw):
            nz = np.full(tx.shape, receiver.noise_power_dbm(bw))
            if self.path not in _SAID_DEFAULTS:  # one line per store
                _SAID_DEFAULTS.add(self.path)
                log.warning(
                    "%s predates the receiver block: noise power from the defaults "
                    "(NF %g dB, %g K) over %.4g MHz = %.2f dBm",
                    self.path,
                    receiver.DEFAULT_NOISE_FIGURE_DB,
                    receiver.DEFAULT_TEMPERATURE_K,
                    bw / 1e6,
                    nz[0],
                )
        else:
            nz = np.full(tx.shape, np.nan)
        return f, np.asarray(receiver.channel_noise_variance(nz, tx), np.float64)

    def _channel_chunk(self, c: int, variable: str | None = None) -> np.ndarray:
        """Sample chunk ``c`` of a channel variable for the selected TRPs with every ue_ant,
        trp_ant and subcarrier / tap, impaired by the store's noise: (n, T, U, A, C)."""
        variable = variable or self.variable
        a, b = c * self.chunk, min((c + 1) * self.chunk, len(self))
        data = self.ds[variable].isel(trp=list(self.selection.trps), sample=slice(a, b))
        h = np.asarray(data.values)
        if not self.noisy:
            return h
        grid, trps, ep = self.grid(variable), self.selection.trps, self.noise_epoch
        q = np.zeros(b - a, bool) if self._query is None else self._query[a:b]
        base = dataclasses.replace(self.noise, mult=None)
        out = apply(base, h, grid, trps, c, epoch=ep) if (~q).any() else h.copy()
        if q.any():
            qn = self.query_noise if self.query_noise is not None else self.noise
            out[q] = apply(qn, h, grid, trps, c, query=q, epoch=ep)[q]
        return out

    def read_channel(self, idx: np.ndarray, variable: str | None = None) -> np.ndarray:
        """Raw (impaired) channel (len(idx), T, U, A, C) of the selected TRPs with every
        antenna and subcarrier / tap: what the model-based estimators see."""
        idx = np.asarray(idx, np.int64)
        first = None
        for c in np.unique(idx // self.chunk):
            m = idx // self.chunk == c
            block = self._channel_chunk(int(c), variable)[idx[m] - c * self.chunk]
            if first is None:
                first = np.empty((len(idx), *block.shape[1:]), block.dtype)
            first[m] = block
        if first is None:
            raise DataError("no samples requested")
        return first

    def _read_chunk_raw(self, c: int) -> np.ndarray:
        a, b = c * self.chunk, min((c + 1) * self.chunk, len(self))
        if self.noisy:  # noise on the whole TRP grid, then the antenna / subcarrier selection
            sel = self.selection
            raw = self._channel_chunk(c)[:, :, list(sel.ue_ants)][:, :, :, list(sel.trp_ants)]
            raw = raw[..., list(sel.subcarriers)]
        else:
            raw = np.asarray(self._csi.isel(sample=slice(a, b)).values)  # (n, T, U, A, C)
        return raw.reshape(b - a, *self.shape)

    def read_raw(self, idx: np.ndarray | Sequence[int]) -> np.ndarray:
        """Raw complex64 CSI (len(idx), G, A, C) of the given sample indices (no cache)."""
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx), *self.shape), np.complex64)
        for c in np.unique(idx // self.chunk):
            m = idx // self.chunk == c
            out[m] = self._read_chunk_raw(int(c))[idx[m] - c * self.chunk]
        return out

    def read(self, idx: np.ndarray | Sequence[int]) -> np.ndarray:
        """Transformed float32 features (len(idx), G, A, C, 2), through the chunk cache."""
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise DataError(f"sample index out of range 0..{len(self) - 1}")
        out = np.empty((len(idx), *self.shape, 2), np.float32)
        chunks = idx // self.chunk
        for c in np.unique(chunks):
            c = int(c)
            block = self._cache.get(c)
            if block is None:
                block = self.transform(self._read_chunk_raw(c))
                self._cache[c] = block
                while len(self._cache) > self._cache_chunks:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(c)
            m = chunks == c
            out[m] = block[idx[m] - c * self.chunk]
        return out

    def fit_transform(
        self, idx: np.ndarray, max_samples: int = 4096, seed: int = 0
    ) -> CSITransform:
        """Derive the scale from (up to ``max_samples`` of) the given samples if it is unset."""
        if self.transform.scale is None:
            idx = np.asarray(idx)
            if len(idx) > max_samples:
                idx = np.sort(np.random.default_rng(seed).choice(idx, max_samples, replace=False))
            self.set_transform(self.transform.fit(self.read_raw(idx)))
        return self.transform

    def set_transform(self, transform: CSITransform) -> None:
        self.transform = self._resolve(transform)
        self._cache.clear()

    def _resolve(self, transform: CSITransform) -> CSITransform:
        """``transform`` with ``array="store"`` replaced by this store's TRP array shape, or by
        "flat" (the 1-D angle DFT, said once per store) when it is unknown."""
        if transform.array != "store":
            return transform
        if self.array_shape is None and transform.domain != "freq" and self.path not in _SAID_FLAT:
            _SAID_FLAT.add(self.path)
            log.info(
                "%s: TRP array shape unknown or a subset of its antennas selected: "
                "1-D angle DFT over the antenna axis",
                self.path,
            )
        return dataclasses.replace(transform, array=self.array_shape or "flat")

    def describe(self) -> dict:
        """JSON-able description used in checkpoints and reports."""
        return {
            "path": self.path,
            "group": self.group,
            "frame": self.frame,
            "variable": self.variable,
            "selection": self.selection.to_dict(),
            "transform": dataclasses.asdict(self.transform),
            "shape": list(self.shape),
            "noise": self.noise.spec(),
            **({"query_noise": self.query_noise.spec()} if self.query_noise else {}),
            "noise_label": self.noise_label(),
        }


# ----------------------------------------------------------------------------- splits


@dataclasses.dataclass(frozen=True)
class Split:
    """Disjoint global sample indices. ``train`` is also the neighbour database."""

    train: np.ndarray
    test: np.ndarray


def split_indices(
    valid: np.ndarray | int,
    n_train: int,
    n_test: int,
    seed: int = 1,
    test_start: int | None = None,
) -> Split:
    """Seeded split by count (spec §2.1): permute the usable samples once,
    train = perm[:n_train], test = perm[test_start : test_start + n_test].

    ``test_start`` defaults to ``len(perm) - n_test`` (the tail), so the test set is the same for
    every training size and smaller training sets are subsets of larger ones.

    Args:
        valid: bool mask of usable samples (N,), or a sample count (all usable).
    """
    mask = np.ones(valid, bool) if isinstance(valid, int | np.integer) else np.asarray(valid, bool)
    cand = np.flatnonzero(mask)
    n = len(cand)
    if n_train < 1 or n_test < 0:
        raise ConfigError(f"need n_train >= 1 and n_test >= 0, got {n_train}, {n_test}")
    where = "" if test_start is None else f" (test from position {test_start})"
    if test_start is None:
        test_start = n - n_test
    if n_train + n_test > n or test_start < n_train or test_start + n_test > n:
        raise DataError(
            f"cannot split {n} usable samples into {n_train} train + {n_test} test{where}"
        )
    perm = cand[np.random.default_rng(seed).permutation(n)]
    return Split(train=perm[:n_train], test=perm[test_start : test_start + n_test])


# ----------------------------------------------------------------------------- torch side


class FeatureBank:
    """Gathers transformed CSI for arbitrary index arrays as torch tensors on a device.

    Lazy by default (reads through the store's chunk cache). With ``preload`` the given samples
    are read once (chunk by chunk) into one device tensor and later gathers are pure indexing;
    this is what GPU training uses (40k x 32 x 32 x 2 float32 = 328 MB, read once, not per epoch).
    """

    def __init__(
        self,
        store: CSIStore,
        device: torch.device | str = "cpu",
        preload: np.ndarray | None = None,
    ) -> None:
        self.store, self.device = store, torch.device(device)
        self._table: torch.Tensor | None = None
        self._row: np.ndarray | None = None
        if preload is not None:
            pre = np.unique(np.asarray(preload, np.int64))
            self._row = np.full(len(store), -1, np.int64)
            self._row[pre] = np.arange(len(pre))
            self._table = torch.from_numpy(store.read(pre)).to(self.device)

    def __call__(self, idx: np.ndarray) -> torch.Tensor:
        """Features (*idx.shape, G, A, C, 2) float32 on the bank's device."""
        idx = np.asarray(idx, np.int64)
        if self._table is not None:
            rows = self._row[idx]
            if (rows < 0).any():
                raise DataError("requested a sample that was not preloaded")
            return self._table[torch.from_numpy(rows).to(self.device)]
        flat = idx.reshape(-1)
        uniq, inv = np.unique(flat, return_inverse=True)
        feats = torch.from_numpy(self.store.read(uniq))[torch.from_numpy(inv)]
        return feats.reshape(*idx.shape, *feats.shape[1:]).to(self.device)

    def xy(self, idx: np.ndarray) -> torch.Tensor:
        """Locations (*idx.shape, 2) float32 metres on the bank's device."""
        xy = self.store.xy[np.asarray(idx)]
        return torch.as_tensor(xy, dtype=torch.float32, device=self.device)

    def trp_context(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-TRP side information for TRP-token models (``kind == "trp"``).

        Returns (trp_xyz (*idx.shape, T, 3) float32 metres in the frame of ``xy``,
        present (*idx.shape, T) bool: the link has a path, i.e. its state is neither
        NO_PATH nor unrendered).
        """
        idx = np.asarray(idx)
        present = self.store.has_path[idx]
        xyz = np.broadcast_to(self.store.trp_xyz, (*idx.shape, *self.store.trp_xyz.shape))
        return (
            torch.as_tensor(np.ascontiguousarray(xyz), dtype=torch.float32, device=self.device),
            torch.as_tensor(present, device=self.device),
        )


class CSIDataset(torch.utils.data.Dataset):
    """Per-sample (features (G, A, C, 2), xy (2,)) for ``torch.utils.data.DataLoader`` users.

    ``__getitems__`` reads a whole batch through the chunk cache in one go.
    """

    def __init__(self, store: CSIStore, indices: np.ndarray) -> None:
        self.store, self.indices = store, np.asarray(indices, np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(t[0] for t in self.__getitems__([i]))  # type: ignore[return-value]

    def __getitems__(self, items: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.indices[np.asarray(items)]
        xy = torch.from_numpy(self.store.xy[g].astype(np.float32))
        return torch.from_numpy(self.store.read(g)), xy


class SequenceDataset(CSIDataset):
    """Per-sequence (features (k+1, G, A, C, 2), xy (k+1, 2)) from a (M, k+1) index table."""

    def __init__(self, store: CSIStore, sequences: np.ndarray) -> None:
        super().__init__(store, sequences)

    def __getitems__(self, items: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.indices[np.asarray(items)]  # (b, k+1)
        uniq, inv = np.unique(g, return_inverse=True)
        feats = torch.from_numpy(self.store.read(uniq))[torch.from_numpy(inv.reshape(g.shape))]
        return feats, torch.from_numpy(self.store.xy[g].astype(np.float32))
