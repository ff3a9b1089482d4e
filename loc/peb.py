"""The position error bound (PEB): the Cramér–Rao bound on the 2-D UE position from the LoS
paths of every TRP (``../shared/specs/noise-and-peb.md`` §5; equations in docs/noise.md).

Model per link i (TRP at q_i, UE at p with known height): the LoS path seen on K subcarriers
(baseband f_k, centred), A TRP antennas (element positions r_a, known orientation) and U UE
antennas, mu_{k,a} = alpha_i exp(-j 2 pi f_k tau_i(p)) exp(j k0 r_a . u_i(p)), CN(0, sigma^2)
noise per entry, alpha_i an unknown complex gain (its phase absorbs the carrier term, so no
carrier-phase ranging). Eliminating alpha_i (Schur complement) leaves, with the per-element
LoS SNR rho_i = |alpha_i|^2 / sigma^2 and SNR_tot,i = K A U rho_i,

    J_i = 8 pi^2 beta^2 SNR_tot,i / c^2  g_i g_i^T                      (ToA)
        + 2 SNR_tot,i (k0 / d_i)^2  P_i^T C_r P_i                         (AoD, TRP array)

where beta^2 = var(f_k) (RMS bandwidth about the centre; 64 x 480 kHz: 8.867 MHz),
g_i = d d_i / d p = (p - q_i)_xy / d_i, P_i = (I - u_i u_i^T)[:, :2] / 1 (u_i the unit vector
TRP -> UE) and C_r the covariance of the element positions (m^2, global frame). With a common
UE clock bias b (TDoA) the ToA term uses [g_i; 1] and b is eliminated; a TRP sync error
delta_i ~ N(0, s^2) adds c^2 s^2 to the ranging variance c^2 / (8 pi^2 beta^2 SNR_tot,i).
PEB = sqrt(tr(J_p^-1)) with J_p = sum_i J_i; infinite where J_p is singular (e.g. fewer than
two LoS TRPs without an array). NLOS / BLOCKED / NO_PATH links contribute nothing (no direct
path: NLOS paths without priors carry no position information, Shen & Win 2010).
"""

from __future__ import annotations

import numpy as np
import yaml

from loc.errors import DataError
from loc.noise import Noise
from simgen.schema import SPEED_OF_LIGHT

PATH_VARS = ("path_tau", "path_a", "path_interactions")


def rms_bandwidth(freqs_hz: np.ndarray) -> float:
    """beta = sqrt(mean (f_k - mean f)^2) Hz of a flat spectrum on the subcarriers."""
    f = np.asarray(freqs_hz, np.float64)
    return float(np.sqrt(((f - f.mean()) ** 2).mean()))


def rotation(yaw_pitch_roll: np.ndarray) -> np.ndarray:
    """(..., 3) radians -> (..., 3, 3) R = Rz(yaw) Ry(pitch) Rx(roll) (Sionna's convention)."""
    a, b, c = np.moveaxis(np.asarray(yaw_pitch_roll, np.float64), -1, 0)
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    r = np.stack(
        [
            np.stack([ca * cb, ca * sb * sc - sa * cc, ca * sb * cc + sa * sc], -1),
            np.stack([sa * cb, sa * sb * sc + ca * cc, sa * sb * cc - ca * sc], -1),
            np.stack([-sb, cb * sc, cb * cc], -1),
        ],
        -2,
    )
    return r


def planar_elements(rows: int, cols: int, v_spacing: float, h_spacing: float, lam: float):
    """(rows * cols, 3) m element positions of a PlanarArray in its own frame (y-z plane,
    centred); spacings in wavelengths. Polarization ports share positions (they add SNR only)."""
    col, row = np.meshgrid(np.arange(cols), np.arange(rows), indexing="ij")
    y = (col.ravel() - (cols - 1) / 2) * h_spacing * lam
    z = -(row.ravel() - (rows - 1) / 2) * v_spacing * lam
    return np.stack([np.zeros_like(y), y, z], axis=1)


def link_information(
    p_xyz: np.ndarray,
    trp_xyz: np.ndarray,
    snr_tot: np.ndarray,
    beta_hz: float,
    element_cov: np.ndarray | None = None,
    wavelength: float | None = None,
    clock_bias: bool = False,
    sync_s: float = 0.0,
) -> np.ndarray:
    """Per-link Fisher information on (x, y[, b]) (range units: m).

    p_xyz (N, 3) UE positions; trp_xyz (N, T, 3) or (T, 3); snr_tot (N, T) integrated LoS
    SNR K A U rho (linear; 0 = no LoS); element_cov (N, T, 3, 3) or (T, 3, 3) m^2 covariance of
    the TRP element positions in the global frame (None: no AoD information).
    Returns (N, T, D, D), D = 2 (+1 with ``clock_bias``; b in metres).
    """
    p = np.asarray(p_xyz, np.float64)[:, None, :]
    q = np.broadcast_to(np.asarray(trp_xyz, np.float64), (p.shape[0], *np.shape(trp_xyz)[-2:]))
    diff = p - q
    d = np.linalg.norm(diff, axis=-1).clip(1e-9)
    u = diff / d[..., None]
    g = u[..., :2]  # d range / d (x, y) with a known height
    s = np.asarray(snr_tot, np.float64)
    var_r = np.where(
        s > 0, SPEED_OF_LIGHT**2 / (8 * np.pi**2 * beta_hz**2 * np.maximum(s, 1e-300)), np.inf
    )
    lam_r = 1.0 / (var_r + SPEED_OF_LIGHT**2 * sync_s**2)  # 1 / m^2; 0 without LoS
    gr = np.concatenate([g, np.ones((*g.shape[:-1], 1))], -1) if clock_bias else g
    info = lam_r[..., None, None] * gr[..., :, None] * gr[..., None, :]
    if element_cov is not None and wavelength is not None:
        k0 = 2 * np.pi / wavelength
        proj = (np.eye(3) - u[..., :, None] * u[..., None, :])[..., :2]  # (N, T, 3, 2)
        c = np.broadcast_to(element_cov, (*d.shape, 3, 3))
        aod = np.einsum("ntij,ntjk,ntkl->ntil", proj.swapaxes(-1, -2), c, proj)
        aod = aod * (2 * s * (k0 / d) ** 2)[..., None, None]
        info[..., :2, :2] += aod
    return info


def multipath_link_information(
    p_xyz: np.ndarray,
    trp_xyz: np.ndarray,
    path_a: np.ndarray,
    path_tau: np.ndarray,
    los: np.ndarray,
    freqs_hz: np.ndarray,
    noise_var: np.ndarray,
    carrier_hz: float = 0.0,
    elements: np.ndarray | None = None,
    wavelength: float | None = None,
    clock_bias: bool = False,
    sync_s: float = 0.0,
) -> np.ndarray:
    """Per-link equivalent Fisher information on (x, y[, b]) (m) of the multipath model
    (noise-and-peb §5, "multipath" mode): every path of the link is in the model, the LoS path's
    delay (and TRP-side direction) carries the position, and every other path's delay tau_j and
    complex gain, like the LoS gain, are unknown nuisances, eliminated by the Schur complement.
    A path within ~1 / B of the LoS one takes information from it (overlap); one far away takes
    none, and a link without paths besides its LoS path gives ``link_information`` exactly.

    Model per link: mu_{k,m} = sum_j c_j a_{j,m} exp(-j 2 pi (f_c + f_k) tau_j), nominal c_j = 1,
    CN(0, noise_var) per (subcarrier k, antenna pair m); a_{0,m} = a_{0,m}(p) through the TRP
    steering phase exp(j k0 r_m . u(p)) when ``elements`` are given (else its direction is not
    used). The carrier part of every delay derivative lies in the span of its path's gain
    nuisance and is dropped (only the centred baseband f_k count, as in the LoS bound).

    Args:
        p_xyz: (N, 3) UE positions m. trp_xyz: (T, 3) or (N, T, 3) m.
        path_a: (N, T, M, P) complex path coefficients per antenna pair m (the store's
            ``path_a`` with (ue_ant, trp_ant) flattened, trp_ant fastest). path_tau: (N, T, P) s.
        los: (N, T, P) bool, the LoS path of each link (at most one; none = no information).
        freqs_hz: (K,) baseband subcarrier offsets. noise_var: (N, T) sigma^2 per entry.
        elements: (T, A, 3) m TRP element positions in the scene frame (A = trp_ant; antenna
            pair m uses element m % A), with ``wavelength`` m; None: ToA only.
        clock_bias: a common UE clock bias b (m) shared by every link of a sample.
        sync_s: TRP sync error std (s): a per-link delay offset with that Gaussian prior.
    Returns (N, T, D, D), D = 2 (+1 with ``clock_bias``), as ``link_information``.
    """
    p = np.asarray(p_xyz, np.float64)
    n, n_t, n_m, n_p = path_a.shape
    q = np.broadcast_to(np.asarray(trp_xyz, np.float64), (n, n_t, 3))
    f = np.asarray(freqs_hz, np.float64)
    d_dim = 2 + int(clock_bias)
    out = np.zeros((n, n_t, d_dim, d_dim))
    for i, t in zip(*np.nonzero(np.asarray(los).any(-1)), strict=True):
        ok = np.isfinite(path_tau[i, t]) & (np.abs(path_a[i, t]) > 0).any(0)
        j0 = int(np.argmax(los[i, t]))
        if not ok[j0] or not noise_var[i, t] > 0:
            continue
        others = [j for j in np.flatnonzero(ok) if j != j0]
        js = [j0, *others]
        ramp = np.exp(-2j * np.pi * np.outer(f + carrier_hz, path_tau[i, t, js]))  # (K, J)
        x = {j: ramp[:, [c]] * path_a[i, t, :, j][None, :] for c, j in enumerate(js)}  # (K, M)
        w = (-2j * np.pi * f / SPEED_OF_LIGHT)[:, None]  # d / d delay (m), baseband part
        dx = {j: w * x[j] for j in js}
        diff = p[i] - q[i, t]
        dist = np.linalg.norm(diff)
        u = diff / dist
        cols = []  # the parameters of interest: x, y (m), then b (m)
        for axis in range(2):
            col = dx[j0] * u[axis]
            if elements is not None and wavelength is not None:
                du = (np.eye(3)[axis] - u * u[axis]) / dist  # d u / d p_axis
                r = elements[t][np.arange(n_m) % elements.shape[1]]  # (M, 3)
                col = col + x[j0] * (1j * 2 * np.pi / wavelength * (r @ du))[None, :]
            cols.append(col)
        shift = sum(dx[j] for j in js)  # all delays of the link move together
        if clock_bias:
            cols.append(shift)
        nuis = [x[j0], 1j * x[j0]]
        for j in others:
            nuis += [dx[j], x[j], 1j * x[j]]
        prior = []
        if sync_s > 0:
            nuis.append(shift)
            prior = [1.0 / (SPEED_OF_LIGHT * sync_s) ** 2]
        dm = np.stack([c.ravel() for c in cols + nuis], 1)
        jm = 2 / noise_var[i, t] * np.real(dm.conj().T @ dm)
        if prior:
            jm[-1, -1] += prior[0]
        a, b, c = jm[:d_dim, :d_dim], jm[:d_dim, d_dim:], jm[d_dim:, d_dim:]
        out[i, t] = a - b @ np.linalg.lstsq(c, b.T, rcond=None)[0]
    return out


def peb(info: np.ndarray) -> np.ndarray:
    """PEB (N,) m from per-link information (N, T, D, D): sqrt of the trace of the (x, y)
    block of (sum_i J_i)^-1; inf where the sum is singular."""
    j = info.sum(axis=1)
    out = np.full(len(j), np.inf)
    scale = np.abs(j).max(axis=(1, 2))
    ok = scale > 0
    jn = j[ok] / scale[ok, None, None]
    cond = np.linalg.cond(jn)
    good = np.isfinite(cond) & (cond < 1e12)
    inv = np.linalg.inv(jn[good]) / scale[ok][good, None, None]
    idx = np.flatnonzero(ok)[good]
    out[idx] = np.sqrt(np.clip(inv[:, 0, 0] + inv[:, 1, 1], 0, None))
    return out


# ----------------------------------------------------------------------------- from a store


def store_peb(
    store, idx: np.ndarray, noise: Noise, clock_bias: bool = False, multipath: bool = False
) -> np.ndarray | None:
    """PEB (M,) m of samples ``idx`` of a ``loc.data.CSIStore`` (its selected TRPs, every
    antenna and subcarrier) at the additive noise of ``noise`` (AWGN at a fixed SNR or the
    link budget; its ``clock`` as a TRP sync error), from the stored LoS paths (``path_tau``,
    ``path_a``, ``path_interactions``: a path without interactions) and the TRP array in the
    store's scene config. ``multipath``: every stored path of a LoS link enters the model, the
    non-LoS ones as nuisances (``multipath_link_information``: the overlap loss of paths within
    ~1 / B of the direct one); else the LoS path alone (``link_information``). None when the
    noise has no thermal part (noiseless, mult only, an SNR range) or the store has no path
    arrays (render with ``output.paths: true``).
    """
    if not noise.additive or (noise.awgn_db is not None and noise.awgn_db[0] != noise.awgn_db[1]):
        return None
    ds = store.ds
    if any(v not in ds.variables for v in PATH_VARS):
        return None
    idx = np.asarray(idx, np.int64)
    trps = list(store.selection.trps)
    tau = _take(store, "path_tau", idx)  # (M, T, P)
    inter = _take(store, "path_interactions", idx)  # (M, T, P, D)
    a = _take(store, "path_a", idx)  # (M, T, U, A, P)
    los = np.isfinite(tau) & (inter == 0).all(-1) & (np.abs(a) > 0).any(axis=(2, 3))
    p_los = ((np.abs(a) ** 2).mean(axis=(2, 3)) * los).max(-1)  # (M, T) LoS power (path gain)
    grid = store.grid("csi")
    f = grid.freqs_hz
    if len(f) < 2:
        raise DataError("the PEB needs the store's subcarrier coordinate (Hz)")
    n_u, n_a = ds.sizes["ue_ant"], ds.sizes["trp_ant"]
    if noise.awgn_db is not None:  # sigma^2 = P_s / SNR of each link, P_s its signal power
        h = _take(store, "csi", idx)  # the noiseless channel
        sigma2 = (np.abs(h) ** 2).mean(axis=(2, 3, 4)) / 10 ** (noise.awgn_db[0] / 10)
    else:
        sigma2 = np.broadcast_to(grid.noise_var[trps][None, :], p_los.shape).astype(np.float64)
        sigma2 = sigma2 / 10 ** (noise.link_budget_db / 10)
    sync = (noise.clock_ns or 0.0) * 1e-9
    if multipath:
        elements, lam = _elements(store, trps)
        m = len(idx)
        info = multipath_link_information(
            frame_xyz(store, idx),
            store.trp_xyz,
            a.reshape(m, len(trps), n_u * n_a, -1),
            tau,
            los,
            f,
            sigma2,
            store.carrier_frequency or 0.0,
            elements,
            lam,
            clock_bias=clock_bias,
            sync_s=sync,
        )
        return peb(info)
    rho = np.divide(p_los, sigma2, out=np.zeros_like(p_los), where=sigma2 > 0)
    snr_tot = len(f) * n_a * n_u * rho
    cov, lam = _element_cov(store, trps)
    info = link_information(
        frame_xyz(store, idx),
        store.trp_xyz,
        snr_tot,
        rms_bandwidth(f),
        cov,
        lam,
        clock_bias=clock_bias,
        sync_s=sync,
    )
    return peb(info)


def frame_xyz(store, idx: np.ndarray) -> np.ndarray:
    """UE positions (M, 3) in the frame of ``store.trp_xyz`` (x, y shifted like ``store.xy``)."""
    xyz = store.xyz[np.asarray(idx)].copy()
    xyz[:, :2] = store.xy[np.asarray(idx)]
    return xyz


def _take(store, name: str, idx: np.ndarray) -> np.ndarray:
    """Stored (noiseless) variable ``name`` of samples ``idx`` and the selected TRPs, reading
    only those samples' rows: (M, T, ...)."""
    rows, inv = np.unique(np.asarray(idx, np.int64), return_inverse=True)
    data = store.ds[name].isel(trp=list(store.selection.trps), sample=rows)
    return np.asarray(data.values)[inv]


def trp_arrays(store, trps: list[int]) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(element positions (A, 3) m in the array's own frame, in the store's trp_ant order,
    rotations (T, 3, 3) array frame -> scene frame of TRPs ``trps``, carrier wavelength m) from
    the store's scene config (``trp_array``) and ``trp_orientation``; None for single-element
    arrays or when the store lacks them."""
    import zarr

    attrs = zarr.open_group(store.path, mode="r").attrs
    text, fc = attrs.get("scene_config_yaml"), store.carrier_frequency
    if not text or not fc or "trp_orientation" not in store.ds.variables:
        return None
    arr = (yaml.safe_load(text) or {}).get("trp_array") or {}
    rows, cols = int(arr.get("rows", 1)), int(arr.get("cols", 1))
    if rows * cols == 1:
        return None
    lam = SPEED_OF_LIGHT / float(fc)
    r = planar_elements(
        rows,
        cols,
        float(arr.get("vertical_spacing", 0.5)),
        float(arr.get("horizontal_spacing", 0.5)),
        lam,
    )
    rot = rotation(np.asarray(store.ds["trp_orientation"].values, np.float64)[trps])
    return r, rot, lam


def _element_cov(store, trps: list[int]) -> tuple[np.ndarray | None, float | None]:
    """(T, 3, 3) m^2 covariance of each selected TRP's element positions (global frame) and
    the carrier wavelength (``trp_arrays``); (None, None) without an array."""
    arrays = trp_arrays(store, trps)
    if arrays is None:
        return None, None
    r, rot, lam = arrays
    r = r - r.mean(0)
    c_local = r.T @ r / len(r)
    return rot @ c_local @ rot.swapaxes(-1, -2), lam


def _elements(store, trps: list[int]) -> tuple[np.ndarray | None, float | None]:
    """(T, A, 3) m TRP element positions in the scene frame, in trp_ant order (ports share
    positions), and the carrier wavelength (``trp_arrays``); (None, None) without an array."""
    arrays = trp_arrays(store, trps)
    if arrays is None:
        return None, None
    r, rot, lam = arrays
    r = r[np.arange(store.ds.sizes["trp_ant"]) % len(r)]
    return np.einsum("tij,aj->tai", rot, r), lam


PEB_ROW = "physical limit: PEB (LoS ToA + TRP-array AoD)"
PEB_MULTIPATH_ROW = "physical limit: multipath PEB (LoS ToA + AoD, other paths as nuisances)"


def peb_summary(bound: np.ndarray, definition: str = PEB_ROW) -> dict:
    """Report entry of a PEB array (M,) m: ``overall`` statistics over the samples where it is
    finite (same percentile convention as the errors) and the fraction of such samples."""
    from loc.evaluate import error_metrics

    b = np.asarray(bound, np.float64)
    fin = np.isfinite(b)
    return {
        "overall": error_metrics(b[fin]),
        "finite_fraction": float(fin.mean()) if len(b) else 0.0,
        "definition": definition,
    }
