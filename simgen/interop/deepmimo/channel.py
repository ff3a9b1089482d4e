"""Array responses in Sionna's convention and DeepMIMO's channel aligned to ours (parity).

The ``deepmimo`` package is imported lazily, only by :func:`load_with_deepmimo` and
:func:`deepmimo_csi`."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ... import channel
from ...config import ArrayConfig
from ...errors import ConfigError
from .format import _folder, _params

CONVENTIONS = ("sqrt_n", "subcarrier_grid", "reference_element", "carrier_phase")


# --------------------------------------------------------------------------- array response


def rotation_matrix(orientation: np.ndarray) -> np.ndarray:
    """Sionna's rotation (yaw alpha about z, pitch beta about y, roll gamma about x; radians):
    R = Rz(alpha) Ry(beta) Rx(gamma). orientation (..., 3) -> (..., 3, 3)."""
    o = np.asarray(orientation, np.float64)
    (sa, sb, sc), (ca, cb, cc) = np.sin(np.moveaxis(o, -1, 0)), np.cos(np.moveaxis(o, -1, 0))
    rows = [
        [ca * cb, ca * sb * sc - sa * cc, ca * sb * cc + sa * sc],
        [sa * cb, sa * sb * sc + ca * cc, sa * sb * cc - ca * sc],
        [-sb, cb * sc, cb * cc],
    ]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def element_positions(array: ArrayConfig) -> np.ndarray:
    """(rows*cols, 3) element positions in wavelengths, Sionna ``PlanarArray`` convention:
    elements in the y-z plane, relative to the array centre, numbered column-first from the
    top-left (index n = col * rows + row; y grows with col, z falls with row)."""
    row = np.tile(np.arange(array.rows), array.cols)
    col = np.repeat(np.arange(array.cols), array.rows)
    y = array.horizontal_spacing * (col - (array.cols - 1) / 2)
    z = -array.vertical_spacing * (row - (array.rows - 1) / 2)
    return np.stack([np.zeros_like(y), y, z], -1)


def direction(zen: np.ndarray, az: np.ndarray) -> np.ndarray:
    """Unit vector (..., 3) for zenith/azimuth angles in radians."""
    zen, az = np.asarray(zen, np.float64), np.asarray(az, np.float64)
    s = np.sin(zen)
    return np.stack([s * np.cos(az), s * np.sin(az), np.cos(zen)], -1)


def steering_vector(
    array: ArrayConfig,
    zen: np.ndarray,
    az: np.ndarray,
    orientation: np.ndarray | Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """Planar-array response (..., num_ant) complex64 in Sionna's synthetic-array convention.

    s_n = exp(+j 2 pi (R r_n) . u(zen, az)), r_n from :func:`element_positions` (centre
    reference, wavelengths), R = :func:`rotation_matrix` of the device ``orientation``
    (broadcast against the angles' leading dims, e.g. (T, 1, 3) for per-TRP orientations of
    (B, T, P) angles). Used for departure (TRP, angles of departure) and arrival (UE, angles of
    arrival) alike. Dual polarisation repeats the response for the second polarisation
    (Sionna's pattern-major antenna order). NaN angles give 0.
    """
    # (R r_n) . u = r_n . (R^T u); r_n has no x component, so only the array-frame y and z of u
    # (u dotted with columns 1 and 2 of R) are needed. float32 is enough: |phase| < 2 pi * size.
    zen, az = np.asarray(zen, np.float32), np.asarray(az, np.float32)
    sin_zen = np.sin(zen)
    u = (sin_zen * np.cos(az), sin_zen * np.sin(az), np.cos(zen))
    rot = rotation_matrix(np.asarray(orientation, np.float64)).astype(np.float32)
    local_y = u[0] * rot[..., 0, 1] + u[1] * rot[..., 1, 1] + u[2] * rot[..., 2, 1]
    local_z = u[0] * rot[..., 0, 2] + u[1] * rot[..., 1, 2] + u[2] * rot[..., 2, 2]
    pos = (2 * np.pi * element_positions(array)).astype(np.float32)  # (n, 3)
    phase = local_y[..., None] * pos[:, 1] + local_z[..., None] * pos[:, 2]  # (..., n)
    s = np.empty(phase.shape, np.complex64)
    np.cos(phase, out=s.real)
    np.sin(phase, out=s.imag)
    s[~np.isfinite(phase)] = 0
    if array.num_ant != array.rows * array.cols:
        s = np.concatenate([s] * (array.num_ant // (array.rows * array.cols)), axis=-1)
    return s


def _as_array(cfg: ArrayConfig | dict | None) -> ArrayConfig:
    if cfg is None:
        return ArrayConfig()
    if isinstance(cfg, ArrayConfig):
        return cfg
    try:
        return ArrayConfig.model_validate_json(json.dumps(cfg))
    except Exception as exc:  # noqa: BLE001 - pydantic ValidationError, one line
        raise ConfigError(f"array {cfg}: {str(exc).splitlines()[-1].strip()}") from None


def path_gains(
    a: np.ndarray,
    aod_zen: np.ndarray,
    aod_az: np.ndarray,
    aoa_zen: np.ndarray,
    aoa_az: np.ndarray,
    trp_array: ArrayConfig,
    ue_array: ArrayConfig,
    trp_orientation: np.ndarray,
) -> np.ndarray:
    """Per-antenna-pair gains (B, T, ue_ant, trp_ant, P) from single-element gains a (B, T, P).

    trp_orientation (T, 3) radians; UEs are unrotated (as our renders place them). Large
    batches are split over threads along B."""
    rot = np.asarray(trp_orientation)[:, None, :]
    out = np.empty(a.shape[:2] + (ue_array.num_ant, trp_array.num_ant, a.shape[-1]), np.complex64)

    def work(rows: slice) -> None:
        s_t = steering_vector(trp_array, aod_zen[rows], aod_az[rows], rot)
        s_r = steering_vector(ue_array, aoa_zen[rows], aoa_az[rows])
        ar = a[rows]
        ar = np.where(np.isfinite(ar), ar, 0).astype(np.complex64)
        np.multiply(
            (ar[:, :, None, :] * np.moveaxis(s_r, -1, 2))[:, :, :, None, :],
            np.moveaxis(s_t, -1, 2)[:, :, None, :, :],
            out=out[rows],
        )

    channel.by_rows(work, a.shape[0])
    return out


# --------------------------------------------------------------------------- deepmimo package


def _deepmimo():
    try:
        import deepmimo
    except ImportError:
        raise ConfigError(
            "the deepmimo package is not installed: pip install --no-deps deepmimo==4.0.5 "
            "tqdm requests"
        ) from None
    return deepmimo


@contextmanager
def _lowercase_path(path: Path):
    """deepmimo.load lower-cases the path it is given: offer it an all-lowercase alias."""
    if str(path) == str(path).lower():
        yield path
        return
    tmp = Path(tempfile.mkdtemp(prefix="simgen_dm_"))
    try:
        if str(tmp) != str(tmp).lower():
            raise ConfigError(f"{path}: deepmimo needs an all-lowercase path; move the folder")
        alias = tmp / path.name.lower()
        alias.symlink_to(path, target_is_directory=True)
        yield alias
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_with_deepmimo(folder: str | Path, **load_params):
    """``deepmimo.load`` on a local folder, never prompting for a download.

    deepmimo 4.0.5 reads ``params.json`` from ``<scenarios_folder>/<name>`` even for an absolute
    path, and lower-cases the path: point its scenarios folder at the parent meanwhile."""
    path = _folder(folder)
    _params(path)  # a clear error instead of deepmimo's download prompt
    dm = _deepmimo()
    with _lowercase_path(path) as p:
        old = dm.config.get("scenarios_folder")
        dm.config.set("scenarios_folder", str(p.parent))
        try:
            return dm.load(str(p), **load_params)
        finally:
            dm.config.set("scenarios_folder", old)


def dm_antenna_order(array: ArrayConfig) -> np.ndarray:
    """Index into DeepMIMO's element order for each of our elements (single polarisation).

    DeepMIMO panel ``shape = [cols, rows]`` numbers elements y-fastest from the lowest z."""
    row = np.tile(np.arange(array.rows), array.cols)
    col = np.repeat(np.arange(array.cols), array.rows)
    return (array.rows - 1 - row) * array.cols + col


def reference_phase(
    array: ArrayConfig, zen: np.ndarray, az: np.ndarray, orientation=(0.0, 0.0, 0.0)
) -> np.ndarray:
    """Phase (rad) of DeepMIMO's reference element (index 0: lowest z, lowest y) in our
    centre-referenced response: DeepMIMO's response = ours * exp(-j this)."""
    r0 = element_positions(array)[dm_antenna_order(array).argmin()]
    rot = rotation_matrix(np.asarray(orientation, np.float64))
    u = direction(zen, az)
    local = np.einsum("...ji,...j->...i", rot, u)
    return 2 * np.pi * (local @ r0)


def _grid(frequencies_hz: np.ndarray) -> tuple[np.ndarray, int, float, float]:
    f = np.asarray(frequencies_hz, np.float64)
    k = len(f)
    df = (f[-1] - f[0]) / (k - 1) if k > 1 else 1.0
    return f, k, df, f[k // 2]  # the centred grid's zero offset is index K // 2 (any K)


def deepmimo_channel_params(
    frequencies_hz: np.ndarray,
    trp_array: ArrayConfig,
    ue_array: ArrayConfig,
    trp_orientation: np.ndarray | Sequence[float] = (0.0, 0.0, 0.0),
    num_paths: int = 25,
):
    """``deepmimo.ChannelParameters`` for our arrays and subcarrier count/spacing.

    Panels ``shape = [cols, rows]`` (DeepMIMO: y count, z count), one spacing (ours must be
    equal both ways), TRP ``rotation = [roll, pitch, yaw]`` in degrees (checked numerically to
    rotate like Sionna's orientation), all K subcarriers, bandwidth K * spacing, no filter."""
    dm = _deepmimo()
    for arr in (trp_array, ue_array):
        if arr.vertical_spacing != arr.horizontal_spacing or arr.num_ant != arr.rows * arr.cols:
            raise ConfigError("DeepMIMO arrays need equal spacings and one polarisation")
    _, k, df, _ = _grid(frequencies_hz)
    yaw, pitch, roll = np.rad2deg(np.asarray(trp_orientation, np.float64))
    return dm.ChannelParameters(
        bs_antenna={
            "shape": [trp_array.cols, trp_array.rows],
            "spacing": trp_array.horizontal_spacing,
            "rotation": [roll, pitch, yaw],
        },
        ue_antenna={
            "shape": [ue_array.cols, ue_array.rows],
            "spacing": ue_array.horizontal_spacing,
        },
        ofdm={
            "subcarriers": k,
            "selected_subcarriers": np.arange(k),
            "bandwidth": k * df,
            "rx_filter": 0,
        },
        num_paths=int(num_paths),
        freq_domain=1,
        doppler=0,
    )


def aligned_phase(
    dataset,
    frequencies_hz: np.ndarray,
    trp_array: ArrayConfig,
    ue_array: ArrayConfig,
    trp_orientation: np.ndarray | Sequence[float] = (0.0, 0.0, 0.0),
    drop: str | None = None,
) -> np.ndarray:
    """Per-path DeepMIMO ``phase`` (deg, [0, 360)) that folds our conventions into its formula.

    Adds -360 (f_c + f_0) tau (carrier phase and the shift of DeepMIMO's k*B/N grid onto our
    first subcarrier f_0, a centred offset) and + the phase of DeepMIMO's reference element in
    our centre-referenced responses (UE and TRP). ``drop`` leaves one of ``subcarrier_grid``,
    ``carrier_phase``, ``reference_element`` out."""
    if drop is not None and drop not in CONVENTIONS:
        raise ConfigError(f"drop: one of {', '.join(CONVENTIONS)}")
    f, _, _, fc = _grid(frequencies_hz)
    phase = np.asarray(dataset.phase, np.float64)
    tau = np.nan_to_num(np.asarray(dataset.delay, np.float64))
    if drop == "carrier_phase":
        shift = (f[0] - fc) * tau  # centred offsets, no carrier
    elif drop == "subcarrier_grid":
        shift = fc * tau  # carrier, but the grid left at k * B / N from 0
    else:
        shift = f[0] * tau  # (f_c + f_0) * tau
    extra = -360.0 * np.mod(shift, 1.0)
    if drop != "reference_element":
        zr, ar = np.deg2rad(dataset.aoa_el), np.deg2rad(dataset.aoa_az)
        zt, at = np.deg2rad(dataset.aod_el), np.deg2rad(dataset.aod_az)
        ref = reference_phase(ue_array, zr, ar) + reference_phase(
            trp_array, zt, at, np.asarray(trp_orientation, np.float64)
        )
        extra = extra + np.rad2deg(np.nan_to_num(ref))
    return np.where(np.isfinite(phase), np.mod(phase + extra, 360.0), np.nan)


def from_deepmimo_channel(
    h: np.ndarray, trp_array: ArrayConfig, ue_array: ArrayConfig, drop: str | None = None
) -> np.ndarray:
    """DeepMIMO channel (n_ue, M_rx, M_tx, K) -> our element order and scale (x sqrt(K))."""
    h = np.asarray(h)
    if drop != "reference_element":
        h = h[:, dm_antenna_order(ue_array)][:, :, dm_antenna_order(trp_array)]
    if drop != "sqrt_n":
        h = h * np.sqrt(h.shape[-1])
    return h.astype(np.complex64)


def deepmimo_csi(
    dataset,
    *,
    frequencies_hz: np.ndarray,
    trp_array: ArrayConfig,
    ue_array: ArrayConfig,
    trp_orientation: np.ndarray | Sequence[float] = (0.0, 0.0, 0.0),
    drop: str | None = None,
) -> np.ndarray:
    """DeepMIMO's channel for one TX (a ``deepmimo`` Dataset) in our conventions.

    Returns (n_ue, ue_ant, trp_ant, K) complex64 comparable with our ``csi[:, t]`` for absolute
    ``frequencies_hz`` = f_c + centred offsets (uniform spacing): DeepMIMO's
    ``compute_channels`` with :func:`deepmimo_channel_params`, fed :func:`aligned_phase`, then
    :func:`from_deepmimo_channel`. ``drop`` skips one of :data:`CONVENTIONS`, to show that each
    matters. The dataset's ``phase`` is restored afterwards.
    """
    phase0 = np.array(dataset.phase, copy=True)
    params = deepmimo_channel_params(
        frequencies_hz, trp_array, ue_array, trp_orientation, np.asarray(phase0).shape[-1]
    )
    try:
        dataset.phase = aligned_phase(
            dataset, frequencies_hz, trp_array, ue_array, trp_orientation, drop
        )
        h = dataset.compute_channels(params)  # (n_ue, M_rx, M_tx, K)
    finally:
        dataset.phase = phase0
    return from_deepmimo_channel(h, trp_array, ue_array, drop)
