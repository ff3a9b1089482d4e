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

    if spec.environment is not None:  # one environment of a pool (rendered once, whole)
        from loc.suite.envs import environment_store

        return environment_store(spec, cache_dir, device)
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


# ----------------------------------------------------------------------------- spatial blocks


def block_index(xy: np.ndarray, block_m: float) -> np.ndarray:
    """(N, 2) int64: the square block (side ``block_m`` m, tiled from the scene origin) of each
    position (N, 2) m. NaN positions (no UE) get block (-2**62, -2**62)."""
    b = np.floor(np.nan_to_num(np.asarray(xy, float)[:, :2], nan=-1e30) / block_m)
    return np.clip(b, -(2**62), 2**62).astype(np.int64)


def choose_test_blocks(pops: list[tuple[np.ndarray, int]], block_m: float, seed: int) -> np.ndarray:
    """The held-out blocks of a ``blocks`` split: (B, 2) int64 block indices.

    pops: (positions (N, 2) m of a test population's usable samples, the test samples it
    needs). Blocks are taken from the end of a seeded permutation of every block that holds a
    sample, until each population has its count inside them (whole blocks: the rest of a
    block's samples are neither trained on nor tested). DataError when all blocks are needed."""
    blocks = [block_index(xy, block_m) for xy, _ in pops]
    every = np.unique(np.concatenate(blocks), axis=0)
    order = every[np.random.default_rng([seed, 11]).permutation(len(every))]
    rank = {tuple(b): i for i, b in enumerate(order.tolist())}
    counts = []
    for bl in blocks:  # per population: its samples per block, in the permuted block order
        uniq, n = np.unique(bl, axis=0, return_counts=True)
        c = np.zeros(len(order), np.int64)
        c[[rank[tuple(u)] for u in uniq.tolist()]] = n
        counts.append(c)
    for k in range(1, len(order)):
        if all(c[-k:].sum() >= n for c, (_, n) in zip(counts, pops, strict=True)):
            return order[-k:]
    raise DataError(
        f"blocks split: {len(order)} blocks of {block_m:g} m cannot hold out "
        f"{max(n for _, n in pops)} test samples and keep any for training"
    )


def in_blocks(xy: np.ndarray, blocks: np.ndarray, block_m: float) -> np.ndarray:
    """(N,) bool: whether each position (N, 2) m lies in one of the blocks (B, 2)."""
    mine = block_index(xy, block_m)
    keys = {tuple(b) for b in np.asarray(blocks).tolist()}
    return np.array([tuple(b) in keys for b in mine.tolist()], bool)


def block_distance(xy: np.ndarray, blocks: np.ndarray, block_m: float) -> np.ndarray:
    """(N,) m: distance of each position (N, 2) to the nearest of the squares ``blocks``
    (B, 2) (0 inside one)."""
    xy = np.asarray(xy, float)[:, :2]
    out = np.full(len(xy), np.inf)
    lo = blocks.astype(float) * block_m
    for a in range(0, len(lo), 256):  # (N, 256) at a time
        lb = lo[a : a + 256]
        d = np.maximum(np.maximum(lb[None] - xy[:, None], 0.0), xy[:, None] - (lb[None] + block_m))
        out = np.minimum(out, np.sqrt((d**2).sum(-1)).min(1))
    return np.nan_to_num(out, nan=np.inf)


def blocks_order(
    mask: np.ndarray,
    xy: np.ndarray,
    ue: np.ndarray,
    test_blocks: np.ndarray,
    block_m: float,
    gap_m: float,
    seed: int,
) -> np.ndarray:
    """The sample order of a ``blocks`` split: first the samples outside the held-out blocks
    and farther than ``gap_m`` from every one of them (training sets and databases are heads),
    then the samples inside them (test sets are tails); each part in the seeded UE order
    (``ordered_samples(by="ue")``). Samples in the gap are left out."""
    order = ordered_samples(mask, seed, "ue", ue)
    held = in_blocks(xy[order], test_blocks, block_m)
    far = block_distance(xy[order], test_blocks, block_m) > gap_m
    return np.concatenate([order[far & ~held], order[held]])


def check_disjoint(test_xy: np.ndarray, train_xy: np.ndarray, min_m: float, what: str) -> float:
    """DataError when a test position (M, 2) m lies within ``min_m`` of (or, for 0, on) a
    training position (N, 2) m; returns the smallest distance (m)."""
    from scipy.spatial import cKDTree

    t, q = np.asarray(train_xy, float)[:, :2], np.asarray(test_xy, float)[:, :2]
    t, q = t[np.isfinite(t).all(1)], q[np.isfinite(q).all(1)]
    if not len(t) or not len(q):
        return float("inf")
    d = float(cKDTree(t).query(q, k=1)[0].min())
    if d <= max(min_m, 1e-3):
        raise DataError(
            f"{what}: a test position lies {d:.3f} m from a training position "
            f"(the split needs > {max(min_m, 1e-3):g} m)"
        )
    return d
