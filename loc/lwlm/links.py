"""LWLM's input: the links of a ``loc.data.CSIStore`` as grids, read from the channel alone.

A *link* is one (sample, g) pair, g one of the store's G = T * U link groups (its selected TRPs
x UE antennas, TRP-major, as ``CSIStore.shape``). Its channel H (A TRP antennas, K subcarriers)
becomes the encoder's grid (spec §2): scaled so that mean |H|^2 = 1, channels (|H|, angle H)
on a (K, A) grid. Its configuration c = (TRP x, y, z) / 100 m, bandwidth / 10 MHz (spec §2
item 5) and the link's level (``with_level``: the power the normalised grid no longer shows,
i.e. the path loss the position decoders need). The DTI target is the same channel in the
angle-delay domain (``loc.transforms.angle_delay``, unitary; the 2-D DFT of a planar array).

Nothing here reads a label (``ue_position``, ``toa``, ``link_state``, ...): a link is usable when
its channel has power, so pretraining sees unlabelled CSI only.
"""

from __future__ import annotations

import numpy as np
import torch

from loc.errors import DataError
from loc.noise import bandwidth_hz
from loc.transforms import ArrayShape, dft_matrices


def read_links(store, idx: np.ndarray, block: int = 1024) -> np.ndarray:
    """Channels (len(idx), G, A, K) complex64 of samples ``idx``, impaired by the store's noise
    (``CSIStore.read_raw``: the selection, no transform)."""
    idx = np.asarray(idx, np.int64)
    out = np.empty((len(idx), *store.shape), np.complex64)
    for a in range(0, len(idx), block):
        out[a : a + block] = store.read_raw(idx[a : a + block])
    return out


def usable(h: np.ndarray) -> np.ndarray:
    """(N, G) bool: the link's channel has finite, non-zero power."""
    p = (np.abs(h) ** 2).sum(axis=(-2, -1))
    return np.isfinite(p) & (p > 0)


def link_config(store) -> np.ndarray:
    """(G, N_CFG - 1) float32 configuration of each link group: its TRP's (x, y, z) / 100 (m, in
    the store's frame) and the bandwidth / 10 MHz (spec §2 item 5); ``with_level`` adds each
    link's level."""
    n_u = len(store.selection.ue_ants)
    xyz = np.nan_to_num(np.repeat(store.trp_xyz, n_u, axis=0), nan=0.0) / 100.0
    f = store.ds["subcarrier"].values if "subcarrier" in store.ds.variables else np.zeros(0)
    bw = bandwidth_hz(np.asarray(f, np.float64))
    bw = bw / 1e7 if np.isfinite(bw) else 0.0
    return np.column_stack([xyz, np.full(len(xyz), bw)]).astype(np.float32)


def with_level(cfg: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """(B, N_CFG - 1) group configurations of links with channels ``h`` (B, A, K) complex ->
    (B, N_CFG): the link's level appended, 10 log10 of its mean |H|^2 over the subcarriers it
    holds (a sub-band view's zeroed ones left out), in dB of the store's power unit, / 100."""
    p = h.abs() ** 2
    held = (p.sum(dim=-2) > 0).sum(dim=-1).clamp_min(1) * h.shape[-2]  # (B,) entries held
    level = 10 * torch.log10((p.sum(dim=(-2, -1)) / held).clamp_min(1e-30)) / 100
    return torch.cat([cfg, level[:, None].to(cfg.dtype)], dim=-1)


class GridMaker:
    """Complex (B, A, K) channels -> the encoder's grid and the DTI target, in torch."""

    def __init__(
        self,
        n_ant: int,
        n_sc: int,
        device: torch.device | str = "cpu",
        array: ArrayShape | None = None,
    ) -> None:
        """``array``: the TRP array (rows, cols, ports) whose 2-D angle DFT makes the DTI target
        (``loc.transforms.angle_dft``); None: the 1-D DFT over the antenna axis."""
        fa, fd = dft_matrices(n_ant, n_sc, array)
        self.fa = torch.as_tensor(fa, dtype=torch.complex64, device=device)
        self.fd_h = torch.as_tensor(fd.conj().T, dtype=torch.complex64, device=device)

    @staticmethod
    def normalise(h: torch.Tensor) -> torch.Tensor:
        """Scale every link so that mean |H|^2 = 1 over its (A, K) grid."""
        p = (h.abs() ** 2).mean(dim=(-2, -1), keepdim=True)
        return h / torch.sqrt(p.clamp_min(1e-30))

    def grid(self, h: torch.Tensor) -> torch.Tensor:
        """(B, A, K) complex -> (B, 2, K, A) float32: (|H|, angle H) of the normalised link."""
        h = self.normalise(h).transpose(-1, -2)
        return torch.stack([h.abs(), h.angle()], dim=1)

    def angle_delay(self, h: torch.Tensor) -> torch.Tensor:
        """(B, A, K) complex -> (B, K, A) complex: F_angle @ H_norm @ F_delay^H, transposed to
        the grid's (K, A) layout."""
        return (self.fa @ self.normalise(h) @ self.fd_h).transpose(-1, -2)


def check_grid(store) -> tuple[int, int]:
    """(A, K) of the store's links; DataError for a layout LWLM cannot take."""
    g, a, k = store.shape
    if a * k < 4:
        raise DataError(f"LWLM needs a grid of at least 4 entries per link, got {a} x {k}")
    return a, k
