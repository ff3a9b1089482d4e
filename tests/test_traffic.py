"""Vehicles and trees: link-state semantics, Doppler, in-place moves, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sionna.rt as rt
import xarray as xr
from simgen_testutil import write_config

from simgen.config import TrafficConfig
from simgen.render import Renderer, plan
from simgen.schema import SPEED_OF_LIGHT, LinkState
from simgen.traffic import plan as plan_traffic

TRP = (-45.0, -7.5, 6.0)
UE = np.array([[-15.0, 6.0, 1.5]], np.float32)
BUS_LANE = {
    "points": [[-90.0, 2.0], [90.0, 2.0]],
    "density_per_km": 50.0,
    "min_gap_m": 3.0,
    "types": {"bus": 1.0},
}


def renderer(tmp_path, trp=TRP, **changes) -> Renderer:
    cfg = write_config(
        tmp_path, "street_canyon.yaml", trps=[{"name": "t0", "position": list(trp)}], **changes
    )
    return Renderer(plan(cfg), "cpu")


def park_all_but(r: Renderer, slot: int | None, where=None, yaw=0.0, velocity=(0, 0, 0)):
    """Put vehicle ``slot`` at ``where`` (x, y on the ground) in snapshot 0, park the others."""
    fp = r.ctx.fleet.plan
    fp.position[0] = np.nan
    fp.velocity[0] = 0
    if slot is not None:
        z = r.ctx.scene.get(r.ctx.fleet.objects[slot].name).mi_mesh.bbox()
        height = float(z.max.z - z.min.z)
        fp.position[0, slot] = (where[0], where[1], height / 2 - 0.03)
        fp.yaw[0, slot] = yaw
        fp.velocity[0, slot] = velocity
    r.ctx.fleet.current = None  # force the move


def test_vehicle_blocks_and_unblocks_los(tmp_path):
    r = renderer(
        tmp_path,
        traffic={"mode": "conditions", "snapshots": 1, "lanes": [BUS_LANE]},
        solver={"max_depth": 3, "samples_per_src": 100000, "batch_ues": 8},
    )
    park_all_but(r, None)
    clear = r.trace(UE)
    assert clear.link_state[0, 0] == LinkState.LOS and clear.blocker[0, 0] == -1
    t = 0.7  # a bus on the segment, 70 % of the way to the UE, where the segment is 2.85 m high
    spot = np.array(TRP[:2]) + t * (UE[0, :2] - np.array(TRP[:2]))
    park_all_but(r, 0, spot)
    blocked = r.trace(UE)
    assert blocked.link_state[0, 0] == LinkState.BLOCKED and blocked.blocker[0, 0] == 0
    out_clear = r.shard_arrays(UE, clear)["dry"]
    out_blocked = r.shard_arrays(UE, blocked)["dry"]
    d = out_clear["los_distance"][0, 0]
    assert abs(out_clear["toa"][0, 0] - d / SPEED_OF_LIGHT) < 1e-12
    assert out_blocked["toa"][0, 0] > out_clear["toa"][0, 0] + 1e-9  # first arrival is later
    park_all_but(r, 0, spot + np.array([0.0, -40.0]))  # far away: LOS again
    again = r.trace(UE)
    assert again.link_state[0, 0] == LinkState.LOS
    assert r.shard_arrays(UE, again)["dry"]["toa"][0, 0] == out_clear["toa"][0, 0]


def test_tree_gives_olos_and_building_nlos(tmp_path):
    tree = {
        "position": [-30.0, -0.75],
        "crown_bottom_m": 2.5,
        "crown_top_m": 8.0,
        "crown_width_m": 4.0,
    }
    r = renderer(tmp_path, trees=[tree])
    behind_building = np.array([[-24.0, 20.0, 1.5]], np.float32)  # in the side street
    traced = r.trace(np.vstack([UE, behind_building]))
    assert traced.link_state[0, 0] == LinkState.OLOS
    assert traced.link_state[1, 0] == LinkState.NLOS
    assert (traced.blocker == -1).all()


def test_doppler_of_moving_vehicle_reflection(tmp_path):
    # A low TRP, the UE south of a bus: a single bounce off the bus's south side at ~2 m height.
    trp = (-45.0, -7.5, 3.0)
    r = renderer(
        tmp_path,
        trp=trp,
        traffic={"mode": "conditions", "snapshots": 1, "lanes": [BUS_LANE]},
        solver={"max_depth": 1, "samples_per_src": 200000, "batch_ues": 8},
        output={"paths": True, "max_paths": 64, "chunk_samples": 8, "path": "x"},
    )
    v = np.array([12.0, 3.0, 0.0])
    park_all_but(r, 0, (-30.0, 3.0), yaw=0.0, velocity=v)
    ue = np.array([[-20.0, -4.0, 1.5]], np.float32)
    traced = r.trace(ue)
    paths = r.tracer.last_paths
    bus_id = int(r.ctx.fleet.objects[0].object_id)
    objects = np.asarray(paths.objects.numpy())[0, 0, 0]  # (P,) first-bounce object
    valid = np.asarray(paths.valid.numpy())[0, 0]
    vert = np.asarray(paths.vertices.numpy())[0, 0, 0]  # (P, 3)
    tau = np.asarray(paths.tau.numpy())[0, 0]
    hits = np.flatnonzero(valid & (objects == bus_id))
    assert len(hits) >= 1, "no reflection off the bus was found"
    wavelength = SPEED_OF_LIGHT / r.plan.cfg.frequency_hz
    stored = r.shard_arrays(ue, traced)["dry"]
    for p in hits:
        k_in = (vert[p] - trp) / np.linalg.norm(vert[p] - trp)
        k_out = (ue[0] - vert[p]) / np.linalg.norm(ue[0] - vert[p])
        expected = v @ (k_out - k_in) / wavelength  # moving reflector, static TRP and UE
        j = np.nanargmin(np.abs(stored["path_tau"][0, 0] - tau[p]))
        assert abs(stored["path_doppler"][0, 0, j] - expected) < 0.01 * abs(expected) + 0.5
    los = np.nanargmin(stored["path_tau"][0, 0])
    assert stored["path_doppler"][0, 0, los] == 0.0  # nothing moves on the LoS path


def test_traffic_moves_in_place_and_is_deterministic(tmp_path, monkeypatch):
    cfg = write_config(
        tmp_path,
        "street_canyon_traffic.yaml",
        ue__sampling={"count": 6},
        traffic__snapshots=4,
        output={"chunk_samples": 12, "paths": False},
    )
    edits = []
    monkeypatch.setattr(
        rt.Scene,
        "edit",
        lambda self, *a, _orig=rt.Scene.edit, **k: (edits.append(1), _orig(self, *a, **k))[1],
    )
    a = Renderer(plan(cfg, out=tmp_path / "a.zarr"), "cpu")
    assert len(edits) == 1  # trees and vehicles added once
    mi_scene = a.ctx.scene.mi_scene
    a.render(a.open_store())
    assert len(edits) == 1 and a.ctx.scene.mi_scene is mi_scene  # snapshots: no rebuild
    assert a.ctx.fleet.moves == 4
    b = Renderer(plan(cfg, out=tmp_path / "b.zarr"), "cpu")
    b.render(b.open_store())
    da, db = (xr.open_zarr(x.plan.out, group="dry").load() for x in (a, b))
    for name in da.data_vars:
        np.testing.assert_array_equal(da[name].values, db[name].values, err_msg=name)
    assert (
        np.ptp(da.vehicle_position.values[:, :, 0], axis=0)[
            np.isfinite(da.vehicle_position.values[0, :, 0])
        ].min()
        > 1.0
    )  # vehicles moved
    assert sorted(np.unique(da.snapshot.values)) == [0, 1, 2, 3]


@pytest.mark.parametrize("mode", ["time_series", "conditions"])
def test_traffic_plan_keeps_gaps_and_speeds(mode):
    cfg = TrafficConfig.model_validate_json(
        json.dumps(
            dict(
                mode=mode,
                snapshots=10,
                seed=1,
                lanes=[
                    {
                        "points": [[0.0, 0.0], [200.0, 0.0]],
                        "speed_mps": [5.0, 15.0],
                        "density_per_km": 60.0,
                        "min_gap_m": 4.0,
                        "types": {"car": 0.5, "bus": 0.5},
                    }
                ],
            )
        )
    )
    p = plan_traffic(cfg, lambda xy: np.zeros(len(xy)))
    again = plan_traffic(cfg, lambda xy: np.zeros(len(xy)))
    np.testing.assert_array_equal(p.position, again.position)
    lengths = np.where(p.vtype == 0, 4.4, 12.0)
    for s in range(10):
        on = p.present[s]
        x = p.position[s, on, 0]
        order = np.argsort(x)
        gaps = np.diff(x[order]) - (lengths[on][order][1:] + lengths[on][order][:-1]) / 2
        assert (gaps >= 4.0 - 1e-3).all()
        speed = np.linalg.norm(p.velocity[s, on], axis=-1)
        assert ((speed >= 5.0) & (speed <= 15.0)).all()


def test_vehicle_poses_do_not_depend_on_move_history(tmp_path):
    """Absolute poses: snapshot 3 reached directly or via 1 and 2 gives the same vertices, so
    resumed and distributed renders (any shard order) are byte-identical."""
    cfg = write_config(
        tmp_path, "street_canyon_traffic.yaml", ue__sampling={"count": 4}, traffic__snapshots=4
    )
    r = Renderer(plan(cfg), "cpu")
    params = r.ctx.scene.mi_scene_params

    def vertices():
        return [
            np.asarray(params[o.mi_mesh.id() + ".vertex_positions"]).copy()
            for o in r.ctx.fleet.objects
        ]

    for s in (1, 2, 3):
        r.ctx.fleet.apply(s)
    via = vertices()
    r.ctx.fleet.apply(0)
    r.ctx.fleet.apply(3)
    for a, b in zip(via, vertices(), strict=True):
        assert a.tobytes() == b.tobytes()


def test_doppler_of_moving_ue_on_los(tmp_path):
    """Free space, UEs moving at 15 m/s in seeded directions: the stored LoS Doppler equals
    -v . k / lambda with k the unit vector from TRP to UE (approaching UEs are blue-shifted)."""
    from simgen_testutil import OPEN_SCENE

    cfg = write_config(tmp_path, OPEN_SCENE, ue={**OPEN_SCENE["ue"], "speed_mps": 15.0})
    r = Renderer(plan(cfg), "cpu")
    r.render(r.open_store(overwrite=True))
    ds = xr.open_zarr(r.plan.out, group="dry").load()
    v = ds.ue_velocity.values.astype(np.float64)  # (sample, 3)
    assert np.allclose(np.linalg.norm(v, axis=-1), 15.0, atol=1e-4)
    k = ds.ue_position.values[:, None] - ds.trp_position.values[None]  # (sample, trp, 3)
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
    expected = -(k * v[:, None]).sum(-1) / (SPEED_OF_LIGHT / 3.5e9)
    np.testing.assert_allclose(ds.path_doppler.values[..., 0], expected, rtol=1e-4, atol=0.01)
    assert np.abs(expected).max() > 50  # ~175 Hz at 3.5 GHz for radial motion


def test_traffic_wide_density_scale_and_mix():
    """density_scale multiplies every lane's density; types replaces every lane's mix."""
    lane = {"points": [[0.0, 0.0], [2000.0, 0.0]], "density_per_km": 10.0, "min_gap_m": 2.0}
    base = dict(mode="conditions", snapshots=20, seed=3, lanes=[lane])

    def vehicles(**knobs):
        cfg = TrafficConfig.model_validate_json(json.dumps({**base, **knobs}))
        p = plan_traffic(cfg, lambda xy: np.zeros(len(xy)))
        return p.present.sum(axis=1).mean(), p.vtype[p.present.any(axis=0)]

    n1, types1 = vehicles()
    n3, types3 = vehicles(density_scale=3.0, types={"bus": 1.0})
    assert 15 < n1 < 25 and 2.5 < n3 / n1 < 3.5  # Poisson means 20 and 60 on 2 km
    assert set(types1.tolist()) == {0} and set(types3.tolist()) == {1}  # car -> bus only
    assert vehicles(density_scale=0.0)[0] == 0
