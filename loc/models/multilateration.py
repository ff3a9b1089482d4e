"""Model-based baseline: ToA multilateration (issue item 5, #13.3; kNN fingerprinting, the
other model-based row, is ``loc.models.fingerprint_knn``).

ToA multilateration: ranges ρ_i = c * toa_i to TRPs at t_i on a clock shared by the TRPs and the
UE; the UE position p (x, y, z, or x, y with a known UE height) minimises the weighted robust sum
Σ_i w_i ρ(ρ_i - ||p - t_i|| - b) with Gauss-Newton / IRLS (Huber, then optionally Tukey),
optionally with a common range bias b (an unsynchronized UE clock). Starts: weighted linearised
least squares and a few shifted copies, optionally the best point of a grid over the service
area under a truncated cost (``grid_start``).

Two ways to get the ToAs:

- **estimated** (the fair baseline, ``estimated_multilateration``): what a receiver sees. The
  first arrival of each link is the first peak of its delay-power profile, computed from the
  stored CIR taps (or the CSI when the store has no ``cir``): a Hann-windowed, 8x oversampled
  IDFT of the frequency response, power summed over every (ue_ant, trp_ant) pair, first local
  maximum within ``TOA_REL_DB`` of the link's strongest, parabolic sub-bin refinement (see
  ``estimate_toa``). Links are "present" when their profile has a detectable peak; weights come
  from the residuals alone (Huber then Tukey IRLS). ``link_state`` and ``toa`` are never read.
- **oracle** (``toa_multilateration``): an upper bound from the true LoS ranges of >= 3 LoS
  links (flagged fallback elsewhere: until issue #31 the true first-arrival ToA was the whole
  oracle, ~20x worse in RMSE than the estimated baseline, NLOS first arrivals being late).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from loc.errors import ConfigError, DataError
from simgen.schema import SPEED_OF_LIGHT, LinkState

TUKEY_M = 5.0  # m: grid_cost's truncation when multilaterate gets search_xy but no tukey_m
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
    los_oracle: np.ndarray | None = None  # (N,) bool: solved from true LoS ranges (oracle)

    def xy_or(self, fallback_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """((N, 2) m estimates with ``fallback_xy`` (2,) where there was no usable ToA at all,
        (N,) bool those samples)."""
        xy = self.xyz[:, :2].copy()
        failed = ~np.isfinite(xy).all(axis=1)
        xy[failed] = fallback_xy
        return xy, failed


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
    weights: np.ndarray | None = None,
    tukey_m: float | None = None,
    search_xy: np.ndarray | None = None,
    range_period_m: float | None = None,
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
        weights: (N, T) prior link weights >= 0, used instead of ``link_state`` weights.
        tukey_m: also refine each Huber fit with Tukey's biweight (links whose residual
            exceeds ``tukey_m`` m get weight 0: NLOS-biased ranges are rejected, not averaged;
            kept where enough links stay inside for the unknowns). None: Huber only.
        search_xy: [[x_min, x_max], [y_min, y_max]] m, the service area (needs ``ue_height``):
            also start from the best point of a grid over it (``grid_start``): the linearised
            LS start is dragged away by outlying ranges.
        range_period_m: ranges are known only modulo this (m; ToA from CSI, period c / Δf):
            residuals are wrapped into [-period/2, period/2); use with ``search_xy``.
        With ``tukey_m`` or ``search_xy`` the solution is, per sample, the candidate fit with
        the lowest truncated cost Σ w_i grid_cost(r_i, tukey_m or TUKEY_M).
    Needs n_used >= unknowns (2 or 3, +1 with clock_bias); else ``ok`` is False.
    """
    toa = np.asarray(toa, np.float64)
    n, n_t = toa.shape
    t = np.broadcast_to(np.asarray(trp_xyz, np.float64), (n, n_t, 3)).copy()
    rho = SPEED_OF_LIGHT * toa
    if weights is not None:
        w0 = np.asarray(weights, np.float64).copy()
    elif link_state is None:
        w0 = np.ones((n, n_t))
    else:
        w0 = link_weights(link_state, state_weights)
    w0 = np.where(np.isfinite(rho) & np.isfinite(t).all(-1) & np.isfinite(w0), w0, 0.0)
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
        return wrap(rho - dist - bias, range_period_m), diff, dist

    def robust(r, tukey):
        a = np.abs(r)
        if tukey:
            return np.where(a < tukey_m, (1 - (a / tukey_m) ** 2) ** 2, 0.0)
        if huber_m is None:
            return np.ones_like(r)
        return np.where(a <= huber_m, 1.0, huber_m / a.clip(1e-12))

    def gauss_newton(x, tukey=False):
        for _ in range(iters):
            r, diff, dist = resid(x)
            w = w0 * robust(r, tukey)
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
    if search_xy is not None or tukey_m is not None:  # more candidates: keep, per sample, the
        # one with the lowest truncated cost (grid_cost)
        c = tukey_m or TUKEY_M
        starts = [x]
        if search_xy is not None:
            if z_known is None:
                raise ConfigError("a grid start (search_xy) needs a known ue_height")
            xg = x0.copy()
            xg[:, :2] = grid_start(rho, tt, dz, w0, search_xy, c, range_period_m)
            starts.append(xg)  # as is: a Huber fit from it would be pulled by the outliers
        candidates = list(starts)
        for xs in starts if tukey_m is not None else []:
            xt, _ = gauss_newton(xs, tukey=True)
            inside = (w0 * robust(resid(xt)[0], True) > 0).sum(1) >= n_unk
            candidates.append(np.where(inside[:, None], xt, xs))
        costs = np.stack([(w0 * grid_cost(resid(xc)[0], c)).sum(1) for xc in candidates])
        pick = costs.argmin(0)
        x = np.stack(candidates)[pick, np.arange(n)]
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


SEARCH_MARGIN_M = 10.0  # the service area: the database UEs' bounding box + this margin
GRID_POINTS = 6000  # grid_start: about this many points over the service area
EARLY_FACTOR = 3.0  # grid_start: an early range costs up to (EARLY_FACTOR * c)^2, a late one c^2


def wrap(r: np.ndarray, period: float | None) -> np.ndarray:
    """Range residuals r (m) of ranges known modulo ``period`` (m) into [-period/2, period/2);
    unchanged when ``period`` is None."""
    return r if period is None else np.mod(r + period / 2, period) - period / 2


def grid_cost(r: np.ndarray, c: float) -> np.ndarray:
    """Truncated squared range residual r = ρ - d (m): min(r², c²) for r >= 0 (a late,
    NLOS-biased range costs at most c²), min(r², (EARLY_FACTOR c)²) for r < 0 (a first arrival
    cannot come before the direct path, so an early range is a stronger sign of a wrong point)."""
    cap = np.where(r >= 0, c, EARLY_FACTOR * c).astype(r.dtype)
    return np.minimum(r**2, cap**2)


def grid_start(
    rho: np.ndarray,
    trp_xy: np.ndarray,
    dz: np.ndarray | float,
    w: np.ndarray,
    search_xy: np.ndarray,
    c: float,
    period: float | None = None,
    block: int = 2**22,
) -> np.ndarray:
    """Best grid point (N, 2) m over the rectangle ``search_xy`` [[x0, x1], [y0, y1]] m under
    Σ_i w_i grid_cost(ρ_i - d_i, c); about ``GRID_POINTS`` points (float32 arithmetic).

    rho (N, T) ranges m, trp_xy (N, T, 2) m, dz (N, T) UE-minus-TRP height m, w (N, T) weights;
    period: ranges known modulo this (m), see ``wrap``.
    """
    (x0, x1), (y0, y1) = np.asarray(search_xy, np.float64)
    step = max(np.sqrt((x1 - x0) * (y1 - y0) / GRID_POINTS), 0.1)
    gx, gy = np.meshgrid(np.arange(x0, x1 + step, step), np.arange(y0, y1 + step, step))
    g = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)  # (G, 2)
    n, n_t = rho.shape
    t = trp_xy.astype(np.float32)
    h2 = (np.broadcast_to(dz, (n, n_t)) ** 2).astype(np.float32) + (t**2).sum(-1)  # (N, T)
    out = np.empty((n, 2))
    chunk = max(1, block // (len(g) * n_t))
    for a in range(0, n, chunk):
        s = slice(a, a + chunk)
        d2 = h2[s][..., None] - 2 * (t[s] @ g.T) + (g**2).sum(1)  # (b, T, G)
        r = wrap(rho[s].astype(np.float32)[..., None] - np.sqrt(d2.clip(0)), period)
        cost = np.einsum("btg,bt->bg", grid_cost(r, c), w[s].astype(np.float32))
        out[s] = g[cost.argmin(1)]
    return out


MIN_LOS_TRPS = 3  # the LoS oracle needs this many LoS ranges (2 leave a mirror ambiguity)


def toa_multilateration(
    store, idx: np.ndarray, present: np.ndarray | None = None, **kw
) -> MultilatResult:
    """The ORACLE, an upper bound: ``multilaterate`` on samples ``idx`` of a ``CSIStore`` from
    the true LoS ranges (``los_distance``) of its links in ``LinkState.LOS`` and the true UE
    height (``ue_height`` in ``kw`` replaces it): exact where it has ``MIN_LOS_TRPS`` of them.
    Other samples fall back to the true first-arrival ``toa`` with link-state weights (no bound:
    NLOS first arrivals are late); ``los_oracle`` (M,) bool in the result marks where the bound
    holds. ``present`` (M, T) bool keeps only those TRPs; ``kw`` goes to ``multilaterate``."""
    for var in ("toa", "los_distance"):
        if var not in store.ds.variables:
            raise DataError(f"{store.path} group {store.group!r} has no {var} variable")
    idx = np.asarray(idx, np.int64)
    trps = list(store.selection.trps)
    toa = np.asarray(store.ds["toa"].isel(trp=trps).values)[idx]
    dist = np.asarray(store.ds["los_distance"].isel(trp=trps).values, np.float64)[idx]
    los = store.link_state[idx] == LinkState.LOS
    if present is not None:
        toa = np.where(present, toa, np.nan)
        los &= np.asarray(present, bool)
    _check_trp_positions(store)
    z = kw.pop("ue_height", store.xyz[idx, 2])
    z = np.broadcast_to(np.asarray(z, np.float64), (len(idx),))
    res = multilaterate(toa, store.trp_xyz, store.link_state[idx], ue_height=z, **kw)
    bound = los.sum(1) >= MIN_LOS_TRPS
    if bound.any():
        exact = multilaterate(
            np.where(los, dist, np.nan)[bound] / SPEED_OF_LIGHT,
            store.trp_xyz,
            ue_height=z[bound],
            **kw,
        )
        for field in ("xyz", "n_used", "ok", "rms"):
            getattr(res, field)[bound] = getattr(exact, field)
    res.los_oracle = bound
    return res


def _check_trp_positions(store) -> None:
    if not np.isfinite(store.trp_xyz).all():
        raise DataError("ToA multilateration needs trp_position in the store")


# ----------------------------------------------------------------------------- ToA estimation

TOA_REL_DB = 20.0  # the first peak must be within this many dB of the link's strongest
TOA_OVERSAMPLE = 8  # delay-profile bins per 1 / bandwidth
# noisy channels: a first peak must be this far above the profile's median (the noise floor):
# for one antenna pair the noise power of a bin is exponential, and exceeds 15 dB over its
# median (21.9 x its mean) with probability exp(-21.9) = 3e-10
TOA_FLOOR_DB = 15.0


@dataclasses.dataclass
class ToAEstimate:
    """First-arrival estimates of (N, T) links, from the channel alone.

    toa: s on the common clock, NaN where no peak was detected. With a CIR, delays are
        absolute (tap l at l / W s, no wrap-around); from CSI they are modulo ``period_s``.
    peak_db, first_db: dB path gain (mean over antenna pairs) of the link's strongest and of
        its first peak; -inf without signal.
    period_s: delay ambiguity of the source (1 / subcarrier spacing for CSI; None for a CIR).
    source: "cir" or "csi".
    resolution_m: c / W, the range of one delay resolution cell (one CIR tap) in m.
    """

    toa: np.ndarray
    peak_db: np.ndarray
    first_db: np.ndarray
    period_s: float | None
    source: str
    resolution_m: float


def delay_profile(freq: np.ndarray, oversample: int = TOA_OVERSAMPLE) -> np.ndarray:
    """Hann-windowed, oversampled delay-power profile of frequency responses.

    freq: (..., P, K) complex responses of P antenna pairs on K ascending, uniformly spaced
    frequencies (spacing Δf). Returns (..., M) float64, M = K * oversample: at delay
    τ_n = n / (M Δf), n = 0 .. M - 1 (periodic in 1 / Δf), the power Σ_pairs |Σ_k w_k H_k
    exp(j2π f_k τ_n)|² / (P (Σ_k w_k)²), so one path of gain a gives |a|² at its delay. The
    Hann window keeps sidelobes at -31 dB, below the first-peak threshold (a rectangular one's
    -13 dB sidelobes would be taken for early paths).
    """
    k = freq.shape[-1]
    w = np.hanning(k + 2)[1:-1]
    m = k * oversample
    y = np.fft.ifft(freq * w.astype(np.float32), n=m, axis=-1) * (m / w.sum())
    return (np.abs(y) ** 2).mean(axis=-2)


def first_peak(
    profile: np.ndarray,
    n_search: int,
    rel_db: float = TOA_REL_DB,
    edge: int = 0,
    floor_db: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First local maximum of ``profile`` (..., M) within ``rel_db`` dB of the strongest, among
    bins 0 .. n_search - 1 (the profile is treated as periodic in M).

    ``floor_db``: a noisy channel's peaks must also stand this many dB above the median of the
    search window (the noise floor of a sparse channel), so that noise peaks before the first
    path are not taken for it (None: noiseless, no floor).
    ``edge`` > 0: the search window ends there (a CIR's last tap), so a peak in its last
    ``edge`` bins is the tail of paths beyond the window: such links are not detected.
    Returns (bin (...,) float64 with parabolic sub-bin refinement, NaN where nothing is
    detected; first-peak power (...,); strongest power (...,)).
    """
    p = profile[..., :n_search] if n_search < profile.shape[-1] else profile
    prev = np.roll(profile, 1, axis=-1)[..., :n_search]
    nxt = np.roll(profile, -1, axis=-1)[..., :n_search]
    peak = p.max(axis=-1)
    thr = peak[..., None] * 10 ** (-rel_db / 10)
    if floor_db is not None:
        thr = np.maximum(thr, np.median(p, axis=-1, keepdims=True) * 10 ** (floor_db / 10))
    cand = (p >= thr) & (p >= prev) & (p > nxt) & (peak[..., None] > 0)
    if edge:
        cand[..., n_search - edge :] = False
        cand &= (p.argmax(axis=-1) < n_search - edge)[..., None]
    found = cand.any(axis=-1)
    i = cand.argmax(axis=-1)
    take = lambda a: np.take_along_axis(a, i[..., None], axis=-1)[..., 0]  # noqa: E731
    y0, ym, yp = take(p), take(prev), take(nxt)
    den = ym - 2 * y0 + yp
    frac = np.where(den < 0, 0.5 * (ym - yp) / np.where(den < 0, den, -1.0), 0.0)
    pos = np.where(found, i + frac.clip(-0.5, 0.5), np.nan)
    return pos, np.where(found, y0, 0.0), peak


def quiet_start(profile: np.ndarray, rel_db: float = TOA_REL_DB) -> np.ndarray:
    """For a periodic profile (..., M): the bin (...,) just after its longest circular run of
    bins more than ``rel_db`` dB below the strongest, where a wrapped channel begins (the start
    of the delay window is arbitrary when delays are only known modulo the period)."""
    m = profile.shape[-1]
    below = profile < profile.max(axis=-1, keepdims=True) * 10 ** (-rel_db / 10)
    twice = np.concatenate([below, below], axis=-1)
    i = np.arange(2 * m)
    run = i - np.maximum.accumulate(np.where(twice, -1, i), axis=-1)  # quiet run ending at i
    return (run[..., m:].argmax(axis=-1) + 1) % m


def estimate_toa(
    store,
    idx: np.ndarray,
    rel_db: float = TOA_REL_DB,
    oversample: int = TOA_OVERSAMPLE,
    block_mb: float = 256.0,
) -> ToAEstimate:
    """First-arrival ToA (N, T) of samples ``idx`` of a ``loc.data.CSIStore`` (its selected
    TRPs; every UE and TRP antenna, every tap / subcarrier) from the channel alone, read
    through the store (``CSIStore.read_channel``), so with the same receiver noise and clock
    offsets as every model's input (``loc.noise``).

    Source: the stored CIR ``cir`` (sample, trp, ue_ant, trp_ant, tap) when the group has it,
    else the CSI ``csi`` (…, subcarrier). System bandwidth W = K Δf from the ``subcarrier``
    coordinate (Hz offsets, spacing Δf). CIR taps h[l] = Σ_p a_p e^{-j2πf_cτ_p} sinc(l - Wτ_p)
    start at 0 s: zero-padded to 2L and taken to the frequency domain by an FFT (the band-limited
    spectrum of the taps), so the profile covers [0, 2L/W) without wrapping and the search keeps
    [0, L/W). CSI H[k] = Σ_p a_p e^{-j2π(f_c+f_k)τ_p} gives delays modulo 1/Δf: its periodic
    profile is searched from the end of its longest quiet stretch (``quiet_start``). The ToA is
    the first peak of ``delay_profile`` (``first_peak``), NaN for a link without one. Samples
    are processed in blocks of about ``block_mb`` MB of profiles.
    """
    if "subcarrier" not in store.ds.coords and "subcarrier" not in store.ds.variables:
        raise DataError(f"{store.path} has no subcarrier coordinate (Hz) to get the bandwidth")
    f = np.asarray(store.ds["subcarrier"].values, np.float64)
    if len(f) < 2 or not np.allclose(np.diff(f), f[1] - f[0], rtol=1e-6):
        raise DataError("ToA estimation needs >= 2 uniformly spaced subcarriers")
    spacing = float(f[1] - f[0])
    bandwidth = spacing * len(f)
    source = "cir" if "cir" in store.ds.variables else "csi"
    data = store.ds[source].isel(trp=list(store.selection.trps))
    idx = np.asarray(idx, np.int64)
    n_t, n_ch = data.shape[1], data.shape[-1]
    if source == "cir":  # bins of 1 / (oversample W) s from 0 s; search the L taps' window
        n_search, period, bin_s = n_ch * oversample, None, 1 / (oversample * bandwidth)
    else:  # bins of 1 / (K oversample Δf) s, the whole period 1 / Δf
        n_search, period, bin_s = n_ch * oversample, 1 / spacing, 1 / (n_ch * oversample * spacing)
    floor = TOA_FLOOR_DB if getattr(store, "noisy", False) else None
    toa = np.full((len(idx), n_t), np.nan)
    first = np.zeros((len(idx), n_t))
    peak = np.zeros((len(idx), n_t))
    pairs = int(np.prod(data.shape[2:-1]))
    m = n_ch * oversample * (2 if source == "cir" else 1)  # profile bins
    block = max(1, int(block_mb * 2**20 / (n_t * pairs * m * 16)))  # complex128 profiles
    order = np.argsort(idx, kind="stable")
    for a in range(0, len(idx), block):
        rows = order[a : a + block]
        h = store.read_channel(idx[rows], source)  # impaired by the store's noise, if any
        h = h.reshape(len(rows), n_t, -1, n_ch)  # (b, T, pairs, L or K)
        if source == "cir":  # the taps' spectrum at 2L ascending frequencies
            h = np.fft.fftshift(np.fft.fft(h, n=2 * n_ch, axis=-1), axes=-1)
        prof = delay_profile(h, oversample)
        if source == "cir":
            pos, first[rows], peak[rows] = first_peak(prof, n_search, rel_db, oversample, floor)
        else:  # periodic: the channel starts after its longest quiet stretch
            start = quiet_start(prof, rel_db)
            prof = np.take_along_axis(prof, (start[..., None] + np.arange(n_search)) % n_search, -1)
            pos, first[rows], peak[rows] = first_peak(prof, n_search, rel_db, floor_db=floor)
            pos = (pos + start) % n_search
        toa[rows] = pos * bin_s
    with np.errstate(divide="ignore"):
        db = 10 * np.log10(peak), 10 * np.log10(first)
    return ToAEstimate(toa, *db, period, source, SPEED_OF_LIGHT / bandwidth)


def estimated_multilateration(
    store,
    idx: np.ndarray,
    reference: np.ndarray,
    present: np.ndarray | None = None,
    tukey_m: float | None = None,
) -> tuple[MultilatResult, ToAEstimate]:
    """The FAIR baseline on samples ``idx`` of a ``loc.data.CSIStore``: ToAs estimated from the
    stored channel (``estimate_toa``), every detected link with prior weight 1, a grid start over
    the service area and Tukey IRLS at ``tukey_m`` m (None: one delay resolution cell, c / W)
    deciding which ranges to trust. Reads neither ``toa`` nor ``link_state``.

    reference: labelled database samples (as kNN fingerprinting uses them): their median UE
    height is the known height (a street-level UE, 2-D solve) and their (x, y) bounding box
    (+ ``SEARCH_MARGIN_M``) the service area. present: (M, T) bool keeps only those TRPs (a
    test condition).
    """
    _check_trp_positions(store)
    est = estimate_toa(store, idx)
    toa = est.toa if present is None else np.where(present, est.toa, np.nan)
    ref = np.asarray(reference, np.int64)
    xy = store.xy[ref]
    box = np.stack([xy.min(0) - SEARCH_MARGIN_M, xy.max(0) + SEARCH_MARGIN_M], axis=1)
    res = multilaterate(
        toa,
        store.trp_xyz,
        weights=np.ones(toa.shape),
        ue_height=float(np.median(store.xyz[ref, 2])),
        tukey_m=tukey_m or est.resolution_m,
        search_xy=box,
        range_period_m=None if est.period_s is None else SPEED_OF_LIGHT * est.period_s,
    )
    return res, est
