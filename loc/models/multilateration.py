"""Model-based baselines: ToA multilateration and kNN fingerprinting (issue item 5).

ToA multilateration: ranges ρ_i = c * toa_i from the store's synchronized first-arrival delays
(``toa`` (sample, trp) s on the common clock, NaN without a path) to TRPs at t_i; the UE
position p (x, y, z, or x, y with a known UE height) minimises the weighted robust sum
Σ_i w_i ρ(ρ_i - ||p - t_i|| - b) with Gauss-Newton / IRLS (Huber), optionally with a common
range bias b (an unsynchronized UE clock). Link-state weights down-weight NLOS links, whose
first arrival is a longer reflected path (biased ranges): LOS 1, OLOS 0.5, BLOCKED 0.2,
NLOS 0.1, NO_PATH 0 (excluded). Start: weighted linearised least squares.

kNN fingerprinting: the k nearest training fingerprints in signal space, location = their
(optionally inverse-distance weighted) mean (MetaLoc's KNN / WKNN baselines, K = 5).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from loc.errors import ConfigError, DataError
from simgen.schema import SPEED_OF_LIGHT, LinkState

STATE_WEIGHTS: dict[int, float] = {
    LinkState.LOS: 1.0,
    LinkState.OLOS: 0.5,
    LinkState.BLOCKED: 0.2,
    LinkState.NLOS: 0.1,
    LinkState.NO_PATH: 0.0,
}


@dataclasses.dataclass
class MultilatResult:
    """xyz (N, 3) m (NaN when no link); n_used (N,) links with weight > 0; ok (N,) enough
    links for the unknowns (else the estimate is the weighted TRP centroid); rms (N,) weighted
    RMS range residual (m)."""

    xyz: np.ndarray
    n_used: np.ndarray
    ok: np.ndarray
    rms: np.ndarray


def link_weights(
    link_state: np.ndarray, state_weights: dict[int, float] | None = STATE_WEIGHTS
) -> np.ndarray:
    """(N, T) LinkState codes -> (N, T) weights (None: 1 for every link with a path)."""
    ls = np.asarray(link_state)
    if state_weights is None:
        return ((ls >= 0) & (ls != LinkState.NO_PATH)).astype(np.float64)
    w = np.zeros(ls.shape)
    for code, v in state_weights.items():
        w[ls == int(code)] = v
    return w


def _linear_init(rho, t, w, z_known):
    """Weighted linearised LS per sample: ||p - t_i||^2 = ρ_i^2 differenced against the
    weighted mean equation. rho (N, T), t (N, T, 3), w (N, T) -> (N, dim)."""
    if z_known is not None:
        rho2 = rho**2 - (z_known[:, None] - t[..., 2]) ** 2
        t = t[..., :2]
    else:
        rho2 = rho**2
    n, _, d = t.shape
    ws = w.sum(1, keepdims=True).clip(1e-12)
    tn2 = (t**2).sum(-1)
    a = -2 * (t - (w[..., None] * t).sum(1, keepdims=True) / ws[..., None])
    rhs = rho2 - tn2 - ((w * (rho2 - tn2)).sum(1, keepdims=True) / ws)
    sw = np.sqrt(w)[..., None]
    out = np.empty((n, d))
    for i in range(n):  # small (T x d) systems; lstsq copes with rank deficiency
        out[i] = np.linalg.lstsq(sw[i] * a[i], sw[i, :, 0] * rhs[i], rcond=None)[0]
    centroid = (w[..., None] * t).sum(1) / ws
    return np.where(np.isfinite(out), out, centroid)


def multilaterate(
    toa: np.ndarray,
    trp_xyz: np.ndarray,
    link_state: np.ndarray | None = None,
    state_weights: dict[int, float] | None = STATE_WEIGHTS,
    ue_height: float | np.ndarray | None = None,
    clock_bias: bool = False,
    huber_m: float | None = 1.0,
    iters: int = 30,
    tol: float = 1e-9,
) -> MultilatResult:
    """Position from synchronized ToAs by weighted robust Gauss-Newton (vectorised).

    Args:
        toa: (N, T) s; NaN / inf = no path (weight 0).
        trp_xyz: (T, 3) or (N, T, 3) m.
        link_state: (N, T) LinkState codes for the NLOS-aware weights (None: all 1).
        state_weights: code -> weight (None: 1 for every link with a path).
        ue_height: known UE z (m; scalar or (N,)) -> solve (x, y) only; None -> (x, y, z).
        clock_bias: also estimate a common range offset b (m), i.e. TDoA.
        huber_m: Huber threshold on range residuals (m); None = plain weighted LS.
    Needs n_used >= unknowns (2 or 3, +1 with clock_bias); else ``ok`` is False.
    """
    toa = np.asarray(toa, np.float64)
    n, n_t = toa.shape
    t = np.broadcast_to(np.asarray(trp_xyz, np.float64), (n, n_t, 3)).copy()
    rho = SPEED_OF_LIGHT * toa
    w0 = np.ones((n, n_t)) if link_state is None else link_weights(link_state, state_weights)
    w0 = np.where(np.isfinite(rho) & np.isfinite(t).all(-1), w0, 0.0)
    rho = np.where(w0 > 0, rho, 0.0)
    t = np.where(np.isfinite(t), t, 0.0)
    z_known = None
    if ue_height is not None:
        z_known = np.broadcast_to(np.asarray(ue_height, np.float64), (n,)).copy()
    d = 2 if z_known is not None else 3
    n_unk = d + int(clock_bias)
    n_used = (w0 > 0).sum(1)
    ok = n_used >= n_unk
    ws = w0.sum(1, keepdims=True).clip(1e-12)
    centroid = (w0[..., None] * t).sum(1) / ws
    p = _linear_init(rho, t, w0, z_known)
    if z_known is None:  # coplanar TRPs leave z free: start below them (UEs are lower)
        flat = np.ptp(np.where(w0 > 0, t[..., 2], np.nan), axis=1)
        low = (~(flat > 1e-6)) | ~np.isfinite(p[:, 2])
        p[low, 2] = centroid[low, 2] - 1.0
    x0 = np.concatenate([p, np.zeros((n, int(clock_bias)))], axis=1)
    x0 = np.where(ok[:, None], x0, 0.0)
    tt = t[..., :d]
    dz = 0.0 if z_known is None else z_known[:, None] - t[..., 2]

    def resid(x):
        diff = x[:, None, :d] - tt
        dist = np.sqrt((diff**2).sum(-1) + dz**2).clip(1e-9)
        bias = x[:, d : d + 1] if clock_bias else 0.0
        return rho - dist - bias, diff, dist

    def gauss_newton(x):
        for _ in range(iters):
            r, diff, dist = resid(x)
            w = w0.copy()
            if huber_m is not None:
                a = np.abs(r)
                w *= np.where(a <= huber_m, 1.0, huber_m / a.clip(1e-12))
            jac = -diff / dist[..., None]  # dr/dp
            if clock_bias:
                jac = np.concatenate([jac, -np.ones((n, n_t, 1))], axis=-1)
            jtw = jac.transpose(0, 2, 1) * w[:, None, :]
            hess = jtw @ jac
            hess = hess + 1e-9 * (np.trace(hess, axis1=1, axis2=2) + 1e-12)[:, None, None] * (
                np.eye(n_unk)
            )
            step = np.zeros_like(x)
            g = (jtw @ r[..., None])[..., 0]
            step[ok] = -np.linalg.solve(hess[ok], g[ok][..., None])[..., 0]
            cost, frac = (w * r**2).sum(1), np.ones(n)
            for _ in range(12):  # backtracking: halve the step where the weighted cost rises
                worse = (w * resid(x + frac[:, None] * step)[0] ** 2).sum(1) > cost + 1e-18
                if not worse.any():
                    break
                frac[worse] *= 0.5
            x = x + frac[:, None] * step
            if np.abs(frac[:, None] * step).max(initial=0.0) < tol:
                break
        return x, (w0 * resid(x)[0] ** 2).sum(1)

    # multi-start: the linearised start, and +-10 m along each axis (with few links the
    # linearised start can sit on the TRPs' line / plane, a saddle of the range cost)
    x, best = gauss_newton(x0)
    for k in range(d):
        for sgn in (1.0, -1.0):
            xs = x0.copy()
            xs[:, k] += sgn * 10.0
            xk, ck = gauss_newton(xs)
            better = ck < best * (1 - 1e-9) - 1e-12
            x[better], best[better] = xk[better], ck[better]
    r = resid(x)[0]
    rms = np.sqrt((w0 * r**2).sum(1) / ws[:, 0])
    xyz = np.empty((n, 3))
    xyz[:, :d] = x[:, :d]
    if z_known is not None:
        xyz[:, 2] = z_known
    bad = ~ok
    xyz[bad, :2] = centroid[bad, :2]
    if z_known is None:
        xyz[bad, 2] = centroid[bad, 2]
    xyz[n_used == 0] = np.nan
    rms[bad] = np.nan
    return MultilatResult(xyz=xyz, n_used=n_used, ok=ok, rms=rms)


def toa_multilateration(
    store, idx: np.ndarray, present: np.ndarray | None = None, **kw
) -> MultilatResult:
    """``multilaterate`` on samples ``idx`` of a ``loc.data.CSIStore`` (its selected TRPs,
    ``toa`` and ``link_state``; TRP positions in the store's frame). ``present`` (M, T) bool
    keeps only those TRPs' ToAs (the others count as no path)."""
    if "toa" not in store.ds.variables:
        raise DataError(f"{store.path} group {store.group!r} has no toa variable")
    idx = np.asarray(idx, np.int64)
    toa = np.asarray(store.ds["toa"].isel(trp=list(store.selection.trps)).values)[idx]
    if present is not None:
        toa = np.where(present, toa, np.nan)
    if not np.isfinite(store.trp_xyz).all():
        raise DataError("ToA multilateration needs trp_position in the store")
    return multilaterate(toa, store.trp_xyz, store.link_state[idx], **kw)


# ----------------------------------------------------------------------------- kNN


def fingerprints(features: np.ndarray | torch.Tensor, kind: str = "amplitude") -> np.ndarray:
    """(N, G, A, C, 2) CSI features -> (N, D) float32 fingerprints.

    "amplitude": |h| per (link group, antenna, subcarrier); "rss": per link group mean power
    in dB (-200 dB floor for no signal).
    """
    f = np.asarray(features, np.float32)
    p = (f**2).sum(-1)
    if kind == "amplitude":
        return np.sqrt(p).reshape(len(f), -1)
    if kind == "rss":
        return (10 * np.log10(p.mean(axis=(2, 3)) + 1e-20)).clip(-200).astype(np.float32)
    raise ConfigError(f"unknown fingerprint {kind!r} (amplitude | rss)")


class KNNFingerprint:
    """kNN / WKNN in signal space: fit(fp (N, D), xy (N, 2) m); predict(fp (M, D)) -> (M, 2)."""

    def __init__(self, k: int = 5, weighted: bool = False) -> None:
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        self.k, self.weighted = k, weighted

    def fit(self, fp: np.ndarray, xy: np.ndarray) -> KNNFingerprint:
        self.db = torch.as_tensor(np.asarray(fp, np.float32))
        self.xy = np.asarray(xy, np.float64)
        if self.k > len(self.xy):
            raise DataError(f"k = {self.k} exceeds the {len(self.xy)} reference fingerprints")
        return self

    def predict(self, fp: np.ndarray, block: int = 1024) -> np.ndarray:
        q = torch.as_tensor(np.asarray(fp, np.float32))
        out = np.empty((len(q), self.xy.shape[1]))
        for a in range(0, len(q), block):
            dist = torch.cdist(q[a : a + block], self.db)
            dk, ik = torch.topk(dist, self.k, dim=1, largest=False)
            w = 1.0 / (dk.double().numpy() + 1e-9) if self.weighted else np.ones(dk.shape)
            nb = self.xy[ik.numpy()]  # (b, k, 2)
            out[a : a + len(dk)] = (w[..., None] * nb).sum(1) / w.sum(1, keepdims=True)
        return out


def knn_localize(
    store,
    train: np.ndarray,
    test: np.ndarray,
    k: int = 5,
    kind: str = "amplitude",
    weighted: bool = False,
) -> np.ndarray:
    """kNN fingerprinting on a ``CSIStore``: database = ``train`` samples; (M, 2) m for
    ``test``."""
    knn = KNNFingerprint(k, weighted).fit(fingerprints(store.read(train), kind), store.xy[train])
    return knn.predict(fingerprints(store.read(test), kind))
