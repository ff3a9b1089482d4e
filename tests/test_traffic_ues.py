"""UEs and traffic agree (issue 14, items 5 and 9): time-series UEs move by velocity x time,
and no vehicle is ever placed on a UE."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from simgen_testutil import write_config

from simgen.render import Renderer, plan

ROAD = [{"x": [-70.0, 70.0], "y": [-3.5, 3.5]}]  # both lanes of street_canyon_traffic


def test_time_series_ue_positions_follow_their_velocity(tmp_path):
    cfg = write_config(
        tmp_path,
        "street_canyon_traffic.yaml",
        ue={
            "regions": [{"x": [-60.0, 60.0], "y": [-8.0, -4.5]}],
            "sampling": {"count": 4},
            "speed_mps": 3.0,
            "seed": 5,
        },
        traffic__snapshots=3,
        traffic__dt_s=0.5,
        output={"path": "x", "chunk_samples": 4, "paths": False},
        solver={"max_depth": 1, "samples_per_src": 10000, "batch_ues": 4},
    )
    r = Renderer(plan(cfg), "cpu")
    r.render(r.open_store(overwrite=True))
    ds = xr.open_zarr(r.plan.out, group="dry").load()
    pos = ds.ue_position.values.reshape(3, 4, 3).astype(np.float64)  # (snapshot, ue, xyz)
    vel = ds.ue_velocity.values.reshape(3, 4, 3).astype(np.float64)
    t = ds.time.values.reshape(3, 4).astype(np.float64)
    assert np.abs(vel[..., :2]).max() > 0.5  # the UEs really move
    np.testing.assert_allclose(np.diff(t, axis=0), 0.5)
    np.testing.assert_allclose(
        np.diff(pos, axis=0), vel[:-1] * np.diff(t, axis=0)[..., None], atol=1e-4
    )
    # the LoS distance label follows the moving UE
    d = np.linalg.norm(pos[..., None, :] - ds.trp_position.values[None, None], axis=-1)
    np.testing.assert_allclose(ds.los_distance.values.reshape(3, 4, -1), d, rtol=1e-5)


@pytest.mark.parametrize("mode", ["time_series", "conditions"])
def test_no_vehicle_box_holds_a_ue(tmp_path, mode):
    """UEs spread over the road itself, dense traffic: in every snapshot, no UE lies inside
    the actual mesh bounding box of a vehicle on the road (read back from Mitsuba)."""
    cfg = write_config(
        tmp_path,
        "street_canyon_traffic.yaml",
        ue={"regions": ROAD, "sampling": {"count": 60}, "speed_mps": 1.5, "seed": 1},
        traffic__mode=mode,
        traffic__snapshots=6,
    )
    r = Renderer(plan(cfg), "cpu")
    fleet = r.ctx.fleet
    track = r.sample_position.reshape(len(r.times), -1, 3)  # (snapshot, ue, xyz) as rendered
    on_road = 0
    for s in range(track.shape[0]):
        fleet.apply(s)
        for v, obj in enumerate(fleet.objects):
            if not fleet.plan.present[s, v]:
                continue
            on_road += 1
            bb = obj.mi_mesh.bbox()
            lo = np.array([bb.min.x, bb.min.y, bb.min.z]).ravel()
            hi = np.array([bb.max.x, bb.max.y, bb.max.z]).ravel()
            inside = ((track[s] >= lo) & (track[s] <= hi)).all(axis=1)
            assert not inside.any(), (s, obj.name, track[s][inside])
    assert on_road >= 3 * track.shape[0]  # traffic is still there
    again = Renderer(plan(cfg), "cpu").ctx.fleet.plan  # deterministic
    np.testing.assert_array_equal(again.position, fleet.plan.position)


@pytest.mark.parametrize("mode", ["time_series", "conditions"])
def test_vehicles_are_shifted_along_the_lane_not_dropped(mode):
    """A UE standing on the lane where vehicles were drawn: they move along the lane (by
    <= MAX_SHIFT_M) and stay on the road; the plan without UEs is the same draw."""
    from simgen.config import TrafficConfig
    from simgen.traffic import MAX_SHIFT_M, UE_CLEARANCE_M, VEHICLE_SIZE
    from simgen.traffic import plan as plan_traffic

    cfg = TrafficConfig.model_validate(
        {
            "mode": mode,
            "snapshots": 4,
            "dt_s": 0.1,
            "seed": 2,
            "lanes": [
                {
                    "points": [[-200.0, 0.0], [200.0, 0.0]],
                    "density_per_km": 20.0,
                    "speed_mps": [10.0, 10.0],
                    "types": {"car": 1.0},
                }
            ],
        },
        strict=False,
    )
    flat = lambda xy: np.zeros(len(xy))  # noqa: E731
    free = plan_traffic(cfg, flat)
    first = free.position[0][free.present[0]][0]  # a vehicle of snapshot 0
    ue = np.array([first[0], 0.3, 1.5])  # on its lane, beside its centre
    track = np.broadcast_to(ue, (4, 1, 3))
    moved = plan_traffic(cfg, flat, ue_track=track)
    assert moved.present.sum() == free.present.sum()  # nobody dropped
    half = np.array(VEHICLE_SIZE["car"][:2]) / 2 + UE_CLEARANCE_M
    for s in range(4):
        p = moved.position[s][moved.present[s]]
        inside = (np.abs(p[:, 0] - ue[0]) <= half[0]) & (np.abs(p[:, 1] - ue[1]) <= half[1])
        assert not inside.any()
    shift = np.abs(np.sort(moved.position[..., 0], axis=1) - np.sort(free.position[..., 0], axis=1))
    assert 0 < np.nanmax(shift) <= MAX_SHIFT_M + 1e-3


def test_moving_ues_stay_on_the_ground(tmp_path):
    """A time-series UE heading into a wall walks the other way; every snapshot position is
    over the ground. A walk too long for any heading is a one-line ConfigError."""
    from simgen.errors import ConfigError
    from simgen.scene import BUILDING, NO_HIT, ground_level, ue_velocities

    def cfg(speed):
        ue = {
            "regions": [{"x": [-60.0, 60.0], "y": [4.5, 8.0]}],  # the sidewalk by the wall
            "sampling": {"count": 30},
            "speed_mps": speed,
            "seed": 5,
        }
        return write_config(
            tmp_path, "street_canyon_traffic.yaml", ue=ue, traffic__snapshots=5, traffic__dt_s=0.5
        )

    r = Renderer(plan(cfg(5.0)), "cpu")
    drawn = ue_velocities(r.plan.cfg, 30)
    flipped = (r.ctx.ue_velocity != drawn).any(axis=1)
    assert flipped.any()  # some UEs were heading into the wall
    np.testing.assert_array_equal(r.ctx.ue_velocity[flipped], -drawn[flipped])
    track = r.sample_position.reshape(5, 30, 3)
    _, cat = ground_level(r.ctx, track[..., :2].reshape(-1, 2).astype(np.float64))
    # the scene now also holds trees and vehicles, seen from above; never a roof or nothing
    assert ((cat != BUILDING) & (cat != NO_HIT)).all()
    with pytest.raises(ConfigError, match="ue.speed_mps: .* leave the ground"):
        Renderer(plan(cfg(20.0)), "cpu")
