"""Object categories: whole-name, case-insensitive patterns, checked on every Sionna built-in."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET

import pytest
from simgen_testutil import OPEN_SCENE

from simgen.config import CategoriesConfig, parse_config


def _cfg(**categories):
    import yaml

    d = dict(OPEN_SCENE, categories=categories) if categories else dict(OPEN_SCENE)
    return parse_config(yaml.safe_dump(d))


def _builtins() -> dict[str, str]:
    import sionna.rt.scene as S

    return {
        n: getattr(S, n)
        for n in dir(S)
        if isinstance(getattr(S, n), str) and getattr(S, n).endswith(".xml")
    }


def test_patterns_are_whole_name_and_case_insensitive():
    from simgen.scene import category_of_name

    cfg = _cfg()
    assert category_of_name("Palazzo_Medici_Riccardi-wall", cfg) == "building"  # 'car' inside
    assert category_of_name("Columbus_Inn-roof", cfg) == "building"  # 'bus' inside
    assert category_of_name("Terrain", cfg) == "ground"  # capitalised
    assert category_of_name("Plane", cfg) == "ground"
    assert category_of_name("car_3", cfg) == "vehicle"
    assert category_of_name("Bus-metal", cfg) == "vehicle"
    assert category_of_name("Tree_07", cfg) == "foliage"
    assert category_of_name("Streetcar_depot", cfg) == "building"
    own = _cfg(vehicle="auto.*")
    assert category_of_name("AUTO_1", own) == "vehicle"
    assert category_of_name("my_auto", own) == "building"  # no longer a substring search
    assert CategoriesConfig().vehicle  # defaults compile (validator)


def test_no_builtin_building_is_a_vehicle_or_foliage():
    """Every Sionna built-in scene, loaded the way simgen loads it (shapes matching the
    patterns kept unmerged): vehicles are exactly the 8 cars of the scene that has cars,
    nothing is foliage, and every shape id in the XML (merged or not) is classified alike."""
    import sionna.rt as rt

    from simgen.scene import _categorize, category_of_name, merge_exclude_regex

    cfg = _cfg()
    scenes = _builtins()
    assert {"florence", "san_francisco", "munich", "etoile"} <= set(scenes)
    want_vehicles = {"simple_street_canyon_with_cars": {f"car_{i}" for i in range(1, 9)}}
    t0 = time.perf_counter()
    for name, path in scenes.items():
        ids = [s.get("id", "") for s in ET.parse(path).getroot().iter("shape")]
        names = [re.sub(r"^mesh-", "", i) for i in ids if i]
        cats = {n: category_of_name(n, cfg) for n in names}
        vehicles = {n for n, c in cats.items() if c == "vehicle"}
        assert vehicles == want_vehicles.get(name, set()), (name, sorted(vehicles)[:5])
        assert not [n for n, c in cats.items() if c == "foliage"], name
        scene = rt.load_scene(path, merge_shapes_exclude_regex=merge_exclude_regex(cfg))
        table, oid_names = _categorize(scene, cfg)
        loaded = {n: int(table[oid]) for oid, n in oid_names.items()}
        from simgen.scene import FOLIAGE, GROUND, VEHICLE

        assert {n for n, c in loaded.items() if c == VEHICLE} == want_vehicles.get(name, set())
        assert not [n for n, c in loaded.items() if c == FOLIAGE]
        for ground in ("Terrain", "Plane", "ground", "floor"):
            if ground in names:  # the ground keeps its own name and is ground
                assert loaded.get(ground) == GROUND, (name, ground)
    assert time.perf_counter() - t0 < 60


@pytest.mark.parametrize("bad", ["(car", "[a-"])
def test_invalid_pattern_is_a_config_error(bad):
    from simgen.errors import ConfigError

    with pytest.raises(ConfigError, match="categories: vehicle"):
        _cfg(vehicle=bad)


def test_render_and_info_report_category_counts(tmp_path):
    import subprocess
    import sys

    from simgen_testutil import write_config

    cfg = write_config(tmp_path, "street_canyon.yaml", ue__sampling={"count": 4})
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-c", "from simgen.cli import main; main()", *a],
        capture_output=True,
        text=True,
        timeout=300,
    )
    res = run("render", str(cfg), "--device", "cpu")
    assert res.returncode == 0, res.stderr
    line = next(x for x in res.stderr.splitlines() if x.startswith("scene objects:"))
    assert "ground 1" in line and "vehicle 0" in line and "foliage 0" in line, line
    info = run("info", str(tmp_path / "out.zarr"))
    assert info.returncode == 0, info.stderr
    objects = next(x for x in info.stdout.splitlines() if x.startswith("objects"))
    assert "ground 1" in objects and "vehicle 0" in objects, objects


def test_san_francisco_ues_stand_on_the_terrain(tmp_path):
    """'Terrain' is ground (was a building: every UE was rejected as 'inside buildings')."""
    import yaml

    from simgen.render import Renderer, plan

    cfg = {
        "name": "sf",
        "scene": "san_francisco",
        "frequency_hz": 3.5e9,
        "ofdm": {"num_subcarriers": 8, "subcarrier_spacing_hz": 30e3},
        "trps": [{"name": "t", "position": [0.0, 0.0, 300.0]}],
        "ue": {
            "regions": [{"x": [-100.0, 100.0], "y": [-100.0, 100.0]}],
            "sampling": {"count": 20},
        },
        "output": {"path": str(tmp_path / "o.zarr")},
    }
    path = tmp_path / "sf.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = Renderer(plan(path), "cpu")
    assert len(r.ue_position) == 20
    assert r.category_counts["ground"] == 1 and r.category_counts["vehicle"] == 0
