"""Datasets of a protocol: rendered once into a cache, and split into train / database / test."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import yaml

from loc.data import CSIStore
from loc.errors import ConfigError, DataError
from loc.suite.protocol import DatasetSpec, deep_merge, ranges_text

log = logging.getLogger("loc.suite")

# ----------------------------------------------------------------------------- datasets


def _render_device(device: str) -> str:
    return "cpu" if device == "cpu" else ("auto" if device == "auto" else "gpu")


def dataset_store(spec: DatasetSpec, cache_dir: str | Path, device: str = "auto") -> Path:
    """Path of a complete store for ``spec`` in ``cache_dir``: reused when already complete,
    else rendered (or resumed) with simgen. Store name: <scene name>_ue<count>_<config hash>."""
    from simgen.errors import SimgenError
    from simgen.render import Renderer, plan

    cache = Path(cache_dir)
    scene = spec.scene
    try:
        if spec.scene_overrides:
            d = yaml.safe_load(scene.read_text())
            if Path(str(d.get("scene", ""))).suffix.lower() == ".xml":
                d["scene"] = str((scene.parent / d["scene"]).resolve())
            d = deep_merge(d, spec.scene_overrides)
            d = {k: v for k, v in d.items() if v is not None}
            cache.mkdir(parents=True, exist_ok=True)
            text = yaml.safe_dump(d, sort_keys=False)
            tag = hashlib.sha256(text.encode()).hexdigest()[:8]
            scene = cache / f"{spec.scene.stem}_{tag}.yaml"
            scene.write_text(text)
        p = plan(scene, ue_count=spec.ue_count)
        n = p.cfg.ue.sampling.count or "grid"
        out = cache / f"{p.cfg.name}_ue{n}_{p.cfg.content_hash()[:8]}.zarr"
        p.out = out
        if out.exists():
            import zarr

            if zarr.open_group(str(out), mode="r").attrs.get("complete"):
                log.info("dataset %s: reusing %s", spec.name, out)
                return out
        log.info("dataset %s: rendering %s (%s UEs) into %s", spec.name, scene, n, out)
        t0 = time.perf_counter()
        r = Renderer(p, _render_device(device))
        r.render(r.open_store())
        seconds = time.perf_counter() - t0
        log.info("dataset %s: rendered in %.1f s", spec.name, seconds)
        side = Path(str(out) + ".json")  # read by loc.suite.results.render_seconds
        side.write_text(json.dumps({"render_seconds": seconds, "device": device}))
        return out
    except SimgenError as e:
        raise DataError(f"dataset {spec.name}: {e}") from None


# ----------------------------------------------------------------------------- splits


def snapshot_mask(store: CSIStore, snapshots: tuple[int, ...] | None) -> np.ndarray:
    """Usable samples of ``store`` (``store.valid``) restricted to the given traffic snapshots
    (None: all). DataError when the store has no ``snapshot`` variable or none is selected."""
    mask = store.valid.copy()
    if snapshots is None:
        return mask
    if "snapshot" not in store.ds.variables:
        raise DataError(f"{store.path} has no snapshot variable to filter by")
    snap = np.asarray(store.ds["snapshot"].values)
    have = np.unique(snap)
    missing = sorted(set(snapshots) - set(have.tolist()))
    if missing:
        raise DataError(
            f"snapshot(s) {ranges_text(tuple(missing))} not in {store.path} "
            f"(it has {ranges_text(tuple(have.tolist()))})"
        )
    return mask & np.isin(snap, snapshots)


def ue_ids(store: CSIStore) -> np.ndarray:
    """Per-sample UE id: samples at the same position (the same UE in another traffic
    snapshot) share an id. int64 (N,)."""
    _, inv = np.unique(np.nan_to_num(store.xyz, nan=1e30), axis=0, return_inverse=True)
    return np.asarray(inv, np.int64).reshape(-1)


def ordered_samples(
    mask: np.ndarray, seed: int, by: str = "sample", ue: np.ndarray | None = None
) -> np.ndarray:
    """The seeded order of the usable samples: heads are training sets / databases, tails test
    sets. ``by="sample"`` matches ``loc.data.split_indices``; ``by="ue"`` groups the samples of
    each UE together in the order of a seeded UE permutation of the whole store (independent
    of the mask, so two filters of one store agree on which UEs come first)."""
    mask = np.asarray(mask, bool)
    if by == "sample":
        cand = np.flatnonzero(mask)
        return cand[np.random.default_rng(seed).permutation(len(cand))]
    if ue is None or len(ue) != len(mask):
        raise ConfigError("a UE split needs one UE id per sample")
    rng = np.random.default_rng([seed, 7])
    n_ue = int(ue.max()) + 1 if len(ue) else 0
    rank = np.empty(n_ue, np.int64)
    rank[rng.permutation(n_ue)] = np.arange(n_ue)
    tie = rng.random(len(mask))
    cand = np.flatnonzero(mask)
    return cand[np.lexsort((tie[cand], rank[ue[cand]]))]


def head_tail(
    order: np.ndarray, n_head: int, n_tail: int, what: str, ue: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(order[:n_head], order[-n_tail:]); DataError when they would overlap (too few samples)
    or, with UE ids, share a UE."""
    n = len(order)
    if n_head + n_tail > n:
        raise DataError(f"too few samples: {what} has {n} usable, needs {n_head} + {n_tail}")
    head, tail = order[:n_head], order[n - n_tail :]
    if ue is not None and np.intersect1d(ue[head], ue[tail]).size:
        raise DataError(f"too few UEs: {what} cannot split {n_head} + {n_tail} without sharing")
    return head, tail
