"""Neighbour sequences by location: kNN over UE positions, coarse (GNSS-like) locations, and
the [k neighbours..., query] index tables of the set models (spec §2.2-2.4)."""

from __future__ import annotations

import math

import numpy as np
import torch

from loc.errors import ConfigError, DataError


def knn(
    query_xy: np.ndarray,
    db_xy: np.ndarray,
    k: int,
    exclude: np.ndarray | None = None,
    block: int = 1024,
    use_kdtree: bool = True,
) -> np.ndarray:
    """Rows of the k nearest database points for each query, nearest first.

    Uses scipy's KD-tree when available (40k x 40k in ~0.3 s), else blocked brute force in torch.

    Args:
        query_xy: (M, 2) metres. db_xy: (N, 2) metres.
        exclude: optional (M,) database row to skip per query (-1 = none), e.g. the query itself.
    Returns: int64 (M, k).
    """
    n_db = len(db_xy)
    n_avail = n_db - (1 if exclude is not None and (np.asarray(exclude) >= 0).any() else 0)
    if k > n_avail:
        raise DataError(f"need {k} neighbours but the database has only {n_avail} samples")
    query_xy, db_xy = np.asarray(query_xy, np.float64), np.asarray(db_xy, np.float64)
    try:
        from scipy.spatial import cKDTree
    except ImportError:  # pragma: no cover - scipy is optional
        use_kdtree = False
    if use_kdtree:
        extra = 0 if exclude is None else 1
        _, rows = cKDTree(db_xy).query(query_xy, k + extra)
        rows = np.asarray(rows, np.int64).reshape(len(query_xy), k + extra)
        if extra:
            keep = rows != np.asarray(exclude, np.int64)[:, None]
            keep[keep.all(axis=1), -1] = False  # excluded row not among them: drop the farthest
            rows = rows[keep].reshape(len(query_xy), k)
        return rows
    db = torch.as_tensor(db_xy)
    out = np.empty((len(query_xy), k), np.int64)
    for a in range(0, len(query_xy), block):
        d = torch.cdist(torch.as_tensor(query_xy[a : a + block]), db)
        if exclude is not None:
            ex = torch.as_tensor(np.asarray(exclude[a : a + block], np.int64))
            rows_ = torch.nonzero(ex >= 0).squeeze(1)
            d[rows_, ex[rows_]] = math.inf
        out[a : a + block] = torch.topk(d, k, dim=1, largest=False, sorted=True).indices.numpy()
    return out


def coarse_locations(xy: np.ndarray, half_width: float, rng: np.random.Generator) -> np.ndarray:
    """Coarse (GNSS-like) location x' = x + U[-l, l] per axis, l = ``half_width`` (spec §1.5).

    Metres in and out; the mean 2-D offset is 0.7652 l.
    """
    if half_width < 0:
        raise ConfigError(f"coarse location error must be >= 0 m, got {half_width}")
    if half_width == 0:
        return xy.copy()
    return xy + rng.uniform(-half_width, half_width, size=xy.shape)


def _rows_in(db: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Row of each query in ``db`` or -1 when absent."""
    order = np.argsort(db)
    pos = np.searchsorted(db, queries, sorter=order)
    pos = np.clip(pos, 0, len(db) - 1)
    rows = order[pos]
    return np.where(db[rows] == queries, rows, -1)


def neighbour_sequences(
    xy: np.ndarray,
    db: np.ndarray,
    queries: np.ndarray,
    k: int = 64,
    coarse_error: float = 0.0,
    rng: np.random.Generator | None = None,
    exclude_self: bool = True,
) -> np.ndarray:
    """Neighbourhood-sampling sequences [k nearest database samples..., query] (spec §2.2/§2.4).

    Args:
        xy: (N, 2) locations of every store sample (metres).
        db, queries: global sample indices of the database (the training set of the scenario
            being trained or evaluated) and of the queries.
        coarse_error: coarse-location error half-width l in metres (0 for training, where
            the true x is used; 1 m by default at test time).
        exclude_self: a query that is also in the database is not its own neighbour.
    Returns: int64 (M, k + 1) global indices; column -1 is the query.
    """
    db, queries = np.asarray(db, np.int64), np.asarray(queries, np.int64)
    q_xy = xy[queries]
    if coarse_error > 0:
        q_xy = coarse_locations(
            q_xy, coarse_error, rng if rng is not None else np.random.default_rng(0)
        )
    exclude = _rows_in(db, queries) if exclude_self else None
    rows = knn(q_xy, xy[db], k, exclude)
    return np.concatenate([db[rows], queries[:, None]], axis=1)


def random_sequences(
    db: np.ndarray,
    queries: np.ndarray,
    k: int,
    rng: np.random.Generator,
    exclude_self: bool = True,
) -> np.ndarray:
    """Random-sampling sequences [k random database samples..., query] (spec §2.3), fixed once.

    Returns: int64 (M, k + 1) global indices; column -1 is the query.
    """
    db, queries = np.asarray(db, np.int64), np.asarray(queries, np.int64)
    exclude = _rows_in(db, queries) if exclude_self else np.full(len(queries), -1)
    n_avail = len(db) - int((exclude >= 0).any())
    if k > n_avail:
        raise DataError(f"need {k} neighbours but the database has only {n_avail} samples")
    out = np.empty((len(queries), k + 1), np.int64)
    for i, ex in enumerate(exclude):
        if ex >= 0:
            r = rng.choice(len(db) - 1, size=k, replace=False)
            r += r >= ex
        else:
            r = rng.choice(len(db), size=k, replace=False)
        out[i, :k] = db[r]
    out[:, k] = queries
    return out
