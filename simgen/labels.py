"""Per-link labels: link state from our own ray test of the TRP->UE segment, ToA, distance."""

from __future__ import annotations

import numpy as np

from .scene import BUILDING, FOLIAGE, GROUND, VEHICLE, SceneContext
from .schema import LinkState


def link_state(
    ctx: SceneContext, ue_position: np.ndarray, num_paths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Link state and blocking vehicle per link, from the objects on the TRP->UE segment.

    ue_position: (B, 3) metres; num_paths: (B, T) valid paths found by the solver.
    Returns (B, T) int8 LinkState codes and (B, T) int16 index of the first vehicle on the
    segment (-1 if none). NO_PATH if the solver found nothing; else NLOS if a building or the
    ground cuts the segment, BLOCKED if only vehicles (and foliage) do, OLOS if only foliage
    does, LOS if nothing does.
    """
    b, t = num_paths.shape
    origins = np.repeat(ctx.trp_position[None].astype(np.float64), b, 0).reshape(-1, 3)
    targets = np.repeat(ue_position.astype(np.float64), t, 0)
    ids = ctx.hits(origins, targets, max_hits=max_hits(ctx))
    cats = ctx.categories_of(ids).reshape(b, t, -1)
    vehicles = ctx.vehicles_of(ids).reshape(b, t, -1)
    first = np.argmax(vehicles >= 0, axis=-1)
    blocker = np.take_along_axis(vehicles, first[..., None], axis=-1)[..., 0]
    state = np.full((b, t), LinkState.LOS, np.int8)
    state[(cats == FOLIAGE).any(-1)] = LinkState.OLOS
    state[(cats == VEHICLE).any(-1)] = LinkState.BLOCKED
    state[((cats == BUILDING) | (cats == GROUND)).any(-1)] = LinkState.NLOS
    state[num_paths == 0] = LinkState.NO_PATH
    return state, blocker.astype(np.int16)


FULL_HITS = 16  # objects followed along a segment when vehicles or foliage can be on it


def max_hits(ctx: SceneContext) -> int:
    """Objects the ray test follows along each TRP->UE segment. A scene of buildings and
    ground only needs the first: any hit makes the link NLOS and no vehicle can be on the
    segment (one ray cast per link instead of up to ``FULL_HITS``; the labels are the same,
    tests/test_osm_render.py). With vehicles or foliage every object up to ``FULL_HITS``."""
    cats = ctx.category[list(ctx.names)] if ctx.names else ctx.category[:0]
    return FULL_HITS if np.isin(cats, (VEHICLE, FOLIAGE)).any() else 1


def first_arrival(tau: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(B, T) float32 s: smallest valid delay per link, NaN where there is none."""
    t = np.where(valid, tau, np.inf).min(-1, initial=np.inf)
    return np.where(np.isfinite(t), t, np.nan).astype(np.float32)


def los_distance(trp_position: np.ndarray, ue_position: np.ndarray) -> np.ndarray:
    """(B, T) float32 m: geometric TRP-UE distance."""
    d = ue_position[:, None, :].astype(np.float64) - trp_position[None].astype(np.float64)
    return np.linalg.norm(d, axis=-1).astype(np.float32)
