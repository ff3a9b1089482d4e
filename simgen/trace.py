"""One PathSolver call for all TRPs and a batch of UEs -> numpy path arrays in our layout.

Layout of :class:`PathBatch` (B = UEs in the batch, T = TRPs, P = paths after compaction):
``a`` (B, T, ue_ant, trp_ant, P) complex64, everything else (B, T, P) and
``interactions`` (B, T, P, depth). Valid paths come first on the P axis, sorted by delay, so
the result does not depend on how Sionna ordered its buffer or how UEs were batched.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import mitsuba as mi
import numpy as np
import sionna.rt as rt

from . import dedupe
from .config import SolverConfig


@dataclass
class PathBatch:
    a: np.ndarray  # complex64 (B, T, ue_ant, trp_ant, P), no propagation phase
    tau: np.ndarray  # float32 (B, T, P), s, absolute; 0 where invalid
    valid: np.ndarray  # bool (B, T, P)
    aod_az: np.ndarray  # float32 (B, T, P), rad
    aod_zen: np.ndarray
    aoa_az: np.ndarray
    aoa_zen: np.ndarray
    doppler: np.ndarray  # float32 (B, T, P), Hz
    interactions: np.ndarray  # uint8 (B, T, P, depth)

    @property
    def num_paths(self) -> np.ndarray:
        return self.valid.sum(-1)

    @staticmethod
    def path_axis(name: str) -> int:
        """Index of the path axis P of field ``name`` (4 for ``a``, 2 for all others)."""
        return 4 if name == "a" else 2

    @classmethod
    def empty(cls, n_rx: int, n_tx: int, ue_ant: int, trp_ant: int, depth: int) -> PathBatch:
        """A batch with no path at all (P = 0)."""
        out = {}
        for f in fields(cls):
            shape = {"a": (ue_ant, trp_ant, 0), "interactions": (0, depth)}.get(f.name, (0,))
            dtype = {"a": np.complex64, "valid": bool, "interactions": np.uint8}.get(
                f.name, np.float32
            )
            out[f.name] = np.zeros((n_rx, n_tx, *shape), dtype)
        return cls(**out)

    def take_paths(self, order: np.ndarray) -> PathBatch:
        """Every field with its path axis indexed by ``order`` (B, T, P'), int: reordered and
        cut to P' paths."""
        out = {}
        for f in fields(self):
            x, ax = getattr(self, f.name), self.path_axis(f.name)
            idx = order.reshape(order.shape[:2] + (1,) * (ax - 2) + order.shape[2:])
            out[f.name] = np.take_along_axis(x, _expand(idx, x.ndim), axis=ax)
        return PathBatch(**out)

    def zero_invalid(self) -> PathBatch:
        """Every field set to 0 where ``valid`` is False (padding paths)."""
        out = {}
        for f in fields(self):
            x, ax = getattr(self, f.name), self.path_axis(f.name)
            v = self.valid.reshape(self.valid.shape[:2] + (1,) * (ax - 2) + self.valid.shape[2:])
            out[f.name] = np.where(_expand(v, x.ndim), x, 0).astype(x.dtype)
        return PathBatch(**out)


def _expand(x: np.ndarray, ndim: int) -> np.ndarray:
    """``x`` with trailing length-1 axes up to ``ndim`` dimensions (for broadcasting)."""
    return x.reshape(x.shape + (1,) * (ndim - x.ndim))


class Tracer:
    """Owns the PathSolver and a reusable set of receivers (moved, not re-added, per batch).

    ``exact`` (default) uses :mod:`simgen.dedupe`'s batch-invariant solver when the installed
    sionna-rt is the verified one; ``self.exact`` says whether it is in use (if not, only one UE
    per call is guaranteed to give every path). ``exact=False`` forces Sionna's stock solver.
    """

    def __init__(self, scene: rt.Scene, solver: SolverConfig, exact: bool = True):
        self.scene = scene
        self.cfg = solver
        self.solver, self.exact = dedupe.path_solver(exact)
        self.calls = 0  # number of PathSolver calls, for tests and benchmarks
        self.duplicates_removed = 0  # repeated paths dropped after the solves (see dedupe)
        self._rx: list[str] = []
        self.last_paths: rt.Paths | None = None

    def _set_receivers(self, positions: np.ndarray, velocities: np.ndarray | None = None) -> None:
        n = len(positions)
        while len(self._rx) > n:
            self.scene.remove(self._rx.pop())
        while len(self._rx) < n:
            name = f"_simgen_ue{len(self._rx)}"
            self.scene.add(rt.Receiver(name, position=mi.Point3f(0.0, 0.0, 0.0)))
            self._rx.append(name)
        vel = np.zeros((n, 3)) if velocities is None else velocities
        for name, p, v in zip(self._rx, positions, vel, strict=True):
            rx = self.scene.get(name)
            rx.position = mi.Point3f(*(float(x) for x in p))
            rx.velocity = mi.Vector3f(*(float(x) for x in v))

    def clear(self) -> None:
        """Remove this tracer's receivers from the scene."""
        self._set_receivers(np.zeros((0, 3)))

    def trace(self, positions: np.ndarray, velocities: np.ndarray | None = None) -> PathBatch:
        """Trace all TRPs to UEs at ``positions`` (B, 3) metres moving at ``velocities``
        (B, 3) m/s (static if None)."""
        self._set_receivers(positions, velocities)
        paths = self.solver(self.scene, **solver_kwargs(self.cfg))
        self.calls += 1
        self.last_paths = paths  # the raw Sionna result of the latest call (tests, debugging)
        batch, dups = _to_batch(paths, len(positions), len(self.scene.transmitters))
        self.duplicates_removed += dups
        return batch


def solver_kwargs(c: SolverConfig) -> dict:
    """Keyword arguments of ``PathSolver.__call__`` for a solver config (one place)."""
    return dict(
        max_depth=c.max_depth,
        max_num_paths_per_src=c.max_num_paths_per_src,
        samples_per_src=c.samples_per_src,
        synthetic_array=True,
        los=c.los,
        specular_reflection=c.specular_reflection,
        diffuse_reflection=c.diffuse_reflection,
        refraction=c.refraction,
        diffraction=c.diffraction,
        edge_diffraction=c.edge_diffraction,
        seed=c.seed,
    )


def _np(x) -> np.ndarray:
    return np.asarray(x.numpy() if hasattr(x, "numpy") else x)


def _to_batch(paths: rt.Paths, n_rx: int, n_tx: int) -> tuple[PathBatch, int]:
    """Our layout of one solver result, and the number of duplicate paths removed."""
    ar, ai = (_np(x) for x in paths.a)  # (rx, rx_ant, tx, tx_ant, P)
    a = (ar + 1j * ai).astype(np.complex64).transpose(0, 2, 1, 3, 4)
    tau = _np(paths.tau).astype(np.float32)
    valid = _np(paths.valid).astype(bool)
    inter = _np(paths.interactions)  # (depth, rx, tx, P)
    n_paths = tau.shape[-1] if tau.ndim == 3 else 0
    depth = inter.shape[0] if inter.ndim == 4 else 0
    if n_paths == 0:  # nothing found anywhere in the batch
        ue_ant, trp_ant = (a.shape[2], a.shape[3]) if a.ndim == 5 else (1, 1)
        return PathBatch.empty(n_rx, n_tx, ue_ant, trp_ant, depth), 0
    inter = inter.transpose(1, 2, 3, 0).astype(np.uint8)
    objects, prims = (_np(x).transpose(1, 2, 3, 0) for x in (paths.objects, paths.primitives))
    dup = dedupe.duplicate_mask(
        valid.reshape(-1, n_paths),
        tau.reshape(-1, n_paths),
        inter.reshape(-1, n_paths, depth),
        objects.reshape(-1, n_paths, depth),
        prims.reshape(-1, n_paths, depth),
    ).reshape(valid.shape)
    valid &= ~dup
    per_path = (paths.phi_t, paths.theta_t, paths.phi_r, paths.theta_r, paths.doppler)
    angles = [_np(x).astype(np.float32) for x in per_path]  # angles and Doppler

    # Valid paths first, by increasing delay; then cut the P axis to the longest link.
    key = np.where(valid, tau, np.inf)
    order = np.argsort(key, axis=-1, kind="stable")
    p_max = int(valid.sum(-1).max())
    order = order[..., :p_max]

    pb = PathBatch(a, tau, valid, *angles, inter).take_paths(order).zero_invalid()
    return pb, int(dup.sum())


def concat(batches: list[PathBatch]) -> PathBatch:
    """Concatenate batches along the sample axis, padding the path axis to the longest."""
    p = max(b.tau.shape[-1] for b in batches)

    def pad(x: np.ndarray, axis: int) -> np.ndarray:
        widths = [(0, 0)] * x.ndim
        widths[axis] = (0, p - x.shape[axis])
        return np.pad(x, widths)

    out = {}
    for f in fields(PathBatch):
        axis = PathBatch.path_axis(f.name)
        out[f.name] = np.concatenate([pad(getattr(b, f.name), axis) for b in batches], axis=0)
    return PathBatch(**out)
