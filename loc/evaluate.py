"""Evaluation: 2-D localization error, summary statistics, per-link-state breakdown, JSON report
and CDF plot (spec §8).

Error = ||x - x_hat||_2 on (x, y), metres. Percentiles follow the authors' convention
``sorted(errors)[int(r * N)]`` (spec §8 / §9.2) for p10, median (r = 0.5), p90 and p95, so our
numbers are computed the same way as the reference tables.

Set models are evaluated with P = k embedded samples and Q = 1 query (spec §5):
- ``neighbour``: the k nearest database samples to a coarse location x' = x + U[-l, l]^2;
- ``random``: k random database samples (fixed per query, seeded);
- ``iterative``: a random-sampling model's estimate is the coarse location for the
  neighbour model (one iteration, spec §1.4).
The database is the training split of the store being evaluated (cross-scenario reuse: the
model from scenario A, database and test set from B, no weight update).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from loc.data import CSIStore, FeatureBank, coarse_locations, knn, random_sequences
from loc.device import autocast
from loc.errors import ConfigError, DataError
from loc.models.vinloc import random_subset
from simgen.schema import LinkState

QUANTILES = {"p10": 0.10, "median": 0.50, "p90": 0.90, "p95": 0.95}
MODES = ("neighbour", "random", "iterative")


def localization_errors(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Euclidean 2-D error per sample (N,) in metres from (N, 2) arrays."""
    d = np.asarray(pred, np.float64)[:, :2] - np.asarray(true, np.float64)[:, :2]
    return np.linalg.norm(d, axis=1)


def error_metrics(errors: np.ndarray) -> dict[str, float]:
    """n, mean, RMSE, median, p10, p90, p95, max of an error array (metres)."""
    e = np.sort(np.asarray(errors, np.float64))
    n = len(e)
    if n == 0:
        return {"n": 0}
    out: dict[str, float] = {"n": n, "mean": float(e.mean()), "rmse": float(np.sqrt((e**2).mean()))}
    for name, r in QUANTILES.items():
        out[name] = float(e[min(int(r * n), n - 1)])
    out["max"] = float(e[-1])
    return out


def link_states(store: CSIStore, idx: np.ndarray) -> np.ndarray:
    """Per-sample link state used for the breakdown: the best (lowest code) over the selected
    TRPs, i.e. LOS if any selected TRP is in LOS. Unrendered (-1) links are ignored."""
    ls = store.link_state[np.asarray(idx)].astype(np.int16)
    ls = np.where(ls < 0, int(LinkState.NO_PATH), ls)
    return ls.min(axis=1)


def coarse_query_xy(store: CSIStore, queries: np.ndarray, coarse_error: float, seed: int):
    """The coarse locations (M, 2) m that set models are given at test time: the true (x, y)
    + U[-l, l] per axis, l = ``coarse_error`` m, drawn from ``seed`` (the same draw for every
    model and for the baseline rows)."""
    rng = np.random.default_rng(seed)
    return coarse_locations(store.xy[np.asarray(queries)], coarse_error, rng)


def zero_absent_trps(f: np.ndarray, present: np.ndarray | None) -> np.ndarray:
    """Features (M, G, A, C, 2) with the link groups of absent TRPs zeroed (absent TRPs give no
    signal); ``present`` (M, T) bool, link groups trp-major (G = T * U). None: unchanged."""
    if present is None:
        return f
    g = f.shape[1] // present.shape[1]
    return f * np.repeat(present, g, axis=1)[:, :, None, None, None]


def flat_features(store: CSIStore, idx: np.ndarray, present: np.ndarray | None = None):
    """(M, D) float32: the model input features of samples ``idx``, flattened, absent TRPs
    (``present`` (M, T) bool False) zeroed."""
    f = zero_absent_trps(store.read(np.asarray(idx)), present)
    return f.reshape(len(f), -1)


def baseline_predictions(
    store: CSIStore,
    train_xy: np.ndarray,
    database: np.ndarray,
    test: np.ndarray,
    knn_k: int = 5,
    coarse_error: float | None = None,
    k: int = 64,
    seed: int = 0,
    present: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The trivial estimates every learned model must beat, (M, 2) m each, by row name:

    - ``training mean``: the mean training location (``train_xy`` (N, 2) m);
    - ``kNN (k=5) on the input features``: the mean location of the ``knn_k`` database samples
      nearest in the (flattened) model input features (the fingerprinting baseline);
    - with ``coarse_error`` (set models are given a coarse location): ``coarse location`` (the
      location the set models are given) and ``x_init`` (the centroid of its ``k`` nearest
      database samples: Mateformer's x_init, the prior of every set model).
    """
    from loc.models.fingerprint_knn import KNNFingerprint

    test, database = np.asarray(test, np.int64), np.asarray(database, np.int64)
    mean = np.asarray(train_xy, np.float64)[:, :2].mean(axis=0)
    out = {"training mean": np.broadcast_to(mean, (len(test), 2)).copy()}
    kk = min(knn_k, len(database))
    fit = KNNFingerprint(kk).fit(flat_features(store, database), store.xy[database])
    out[f"kNN (k={kk}) on the input features"] = fit.predict(flat_features(store, test, present))
    if coarse_error is not None:
        q = coarse_query_xy(store, test, coarse_error, seed)
        out[f"coarse location (l = {coarse_error:g} m)"] = q
        nb = database[knn(q, store.xy[database], min(k, len(database)))]
        out[f"x_init (centroid of {nb.shape[1]} neighbours)"] = store.xy[nb].mean(axis=1)
    return out


def baseline_reports(store: CSIStore, train_xy, database, test, **kw) -> dict[str, dict]:
    """``summarize`` of every :func:`baseline_predictions` row (same keyword options), by row
    name: the reports to print beside a model's."""
    rows = baseline_predictions(store, train_xy, database, test, **kw)
    return {name: summarize(name, store, test, pred)[0] for name, pred in rows.items()}


@torch.no_grad()
def predict(
    model: nn.Module,
    store: CSIStore,
    queries: np.ndarray,
    database: np.ndarray | None = None,
    mode: str = "neighbour",
    coarse_error: float = 1.0,
    k: int = 64,
    seed: int = 0,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    coarse_xy: np.ndarray | None = None,
    precision: str = "auto",
    present: np.ndarray | None = None,
) -> np.ndarray:
    """Location estimates (M, 2) in metres for the query samples.

    For set models ``database`` (global indices, normally the training split of ``store``)
    supplies the embedded samples; ``coarse_xy`` (M, 2) replaces the noisy true location in
    neighbour mode (used by iterative search). ``coarse_error`` is l in metres. ``present``
    (M, T) bool keeps only those TRPs of each query (TRP-token models: the variable-TRP test).
    """
    device = torch.device(device)
    model = model.to(device).eval()
    queries = np.asarray(queries, np.int64)
    if present is not None and model.kind != "trp":
        raise ConfigError(f"a TRP subset needs a TRP-token model, not a {model.kind!r} model")
    bank = FeatureBank(store, device)
    out = np.empty((len(queries), 2), np.float64)
    if model.kind in ("point", "trp"):  # "trp": TRP-token models also get positions + mask
        for a in range(0, len(queries), batch_size):
            idx = queries[a : a + batch_size]
            extra = bank.trp_context(idx) if model.kind == "trp" else ()
            if present is not None:
                keep = torch.as_tensor(present[a : a + len(idx)], device=device)
                extra = (extra[0], extra[1] & keep)
            with autocast(device, model, precision):
                out[a : a + len(idx)] = model(bank(idx), *extra)[:, :2].float().cpu().numpy()
        return out
    if database is None:
        raise ConfigError("set models need a database of embedded samples")
    database = np.asarray(database, np.int64)
    if k > len(database):
        raise DataError(f"need {k} neighbours but the database has only {len(database)} samples")
    if mode == "neighbour":
        q_xy = (
            coarse_xy
            if coarse_xy is not None
            else coarse_query_xy(store, queries, coarse_error, seed)
        )
        nbr = database[knn(q_xy, store.xy[database], k)]
    elif mode == "random":
        rng = np.random.default_rng(seed)
        nbr = random_sequences(database, queries, k, rng, exclude_self=False)[:, :k]
    else:
        raise ConfigError(f"unknown mode {mode!r} for predict (neighbour | random)")
    for a in range(0, len(queries), batch_size):
        nb, q = nbr[a : a + batch_size], queries[a : a + batch_size, None]
        with autocast(device, model, precision):
            pred = model(bank(nb), bank.xy(nb), bank(q))
        out[a : a + len(q)] = pred[:, 0].float().cpu().numpy()
    return out


@torch.no_grad()
def predict_subsets(
    model: nn.Module,
    store,
    idx: np.ndarray,
    subset: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    present: np.ndarray | None = None,
) -> np.ndarray:
    """(x, y) estimates (M, 2) m for a TRP-token model, optionally on a seeded random subset
    of ``subset`` present TRPs per sample (the paper's variable-TRP test condition) or on a
    given (M, T) bool mask ``present``."""
    idx = np.asarray(idx, np.int64)
    if present is None and subset is not None:
        here = torch.as_tensor(store.has_path[idx])
        present = random_subset(here, subset, np.random.default_rng(seed)).numpy()
    return predict(model, store, idx, batch_size=batch_size, device=device, present=present)


def evaluate(
    model: nn.Module,
    store: CSIStore,
    test: np.ndarray,
    database: np.ndarray | None = None,
    mode: str = "neighbour",
    coarse_error: float = 1.0,
    k: int = 64,
    seed: int = 0,
    device: torch.device | str = "cpu",
    coarse_model: nn.Module | None = None,
    batch_size: int = 256,
    present: np.ndarray | None = None,
) -> tuple[dict, np.ndarray]:
    """Predict the test samples and summarise. Returns (report dict, errors (M,) metres).
    ``present``: see :func:`predict`."""
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r} ({' | '.join(MODES)})")
    kw = dict(k=k, seed=seed, batch_size=batch_size, device=device)
    coarse = None
    if mode == "iterative":
        if coarse_model is None:
            raise ConfigError("iterative search needs a random-sampling model (coarse model)")
        coarse = predict(coarse_model, store, test, database, mode="random", **kw)
    pred = predict(
        model,
        store,
        test,
        database,
        mode="random" if mode == "random" else "neighbour",
        coarse_error=coarse_error,
        coarse_xy=coarse,
        present=present,
        **kw,
    )
    return summarize(
        getattr(model, "name", type(model).__name__),
        store,
        test,
        pred,
        mode=mode if model.kind == "set" else "direct",
        coarse_error_l_m=coarse_error if mode == "neighbour" and model.kind == "set" else None,
        n_neighbours=k if model.kind == "set" else None,
        n_database=None if database is None else int(len(database)),
    )


def summarize(name: str, store: CSIStore, test: np.ndarray, pred: np.ndarray, **fields):
    """Report dict (overall and per link state metrics, ``fields`` merged in) and errors (M,)
    metres of location estimates ``pred`` (M, 2) m for the samples ``test`` of ``store``."""
    errors = localization_errors(pred, store.xy[test])
    states = link_states(store, test)
    report = {
        "model": name,
        "store": store.describe(),
        **fields,
        "overall": error_metrics(errors),
        "by_link_state": {
            s.name: error_metrics(errors[states == s]) for s in LinkState if (states == s).any()
        },
    }
    return report, errors


def plot_cdf(curves: dict[str, np.ndarray], path: str | Path, title: str = "") -> Path:
    """Empirical CDFs of error arrays (metres, log x axis) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, e in curves.items():
        e = np.sort(np.asarray(e, np.float64))
        if len(e):
            ax.plot(np.maximum(e, 1e-4), np.arange(1, len(e) + 1) / len(e), label=name)
    ax.set_xscale("log")
    ax.set_xlabel("2-D localization error (m)")
    ax.set_ylabel("CDF")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(
    report: dict, errors: np.ndarray, out_dir: str | Path, label: str = "eval"
) -> Path:
    """Write ``{label}.json``, ``{label}_errors.npy`` and ``{label}_cdf.png``; return the JSON
    path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / f"{label}_errors.npy", errors)
    plot_cdf({report.get("model", label): errors}, out / f"{label}_cdf.png", title=label)
    path = out / f"{label}.json"
    path.write_text(json.dumps(report, indent=2))
    return path
