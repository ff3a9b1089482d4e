"""Every shipped scene loads: valid config, TRPs outside buildings, UEs found, objects added."""

from __future__ import annotations

from pathlib import Path

import pytest

from simgen.render import Renderer, plan

SCENES = sorted((Path(__file__).resolve().parent.parent / "scenes").glob("*.yaml"))


def test_the_readme_scenes_are_shipped():
    names = {p.name for p in SCENES}
    assert {
        "paris.yaml",
        "munich.yaml",
        "street_canyon.yaml",
        "paris_traffic.yaml",
        "street_canyon_traffic.yaml",
        "paris_mmwave_rain.yaml",
        "street_canyon_rain.yaml",
        "paris_vinloc.yaml",
    } <= names


def _renderers(tmp_path, path):
    """The Renderer of a scene YAML, or for a pool one per kind of environment."""
    from simgen.pool import is_pool_file, load_pool
    from simgen.pool_render import Options, env_plan

    if not is_pool_file(path):
        return [Renderer(plan(path, out=tmp_path / "x.zarr", ue_count=4), "cpu")]
    pool = load_pool(path, ue_count=4)
    first = {}
    for e in pool.environments:
        first.setdefault(e.kind, e)
    opt = Options(out=tmp_path / "x.zarr", device="cpu")
    return [Renderer(env_plan(pool, e, opt), "cpu") for e in first.values()]


@pytest.mark.parametrize("path", SCENES, ids=lambda p: p.stem)
def test_scene_loads(tmp_path, path):
    for r in _renderers(tmp_path, path):
        assert r.ue_position.shape == (4, 3)
        assert len(r.ctx.trps) == r.layout().trp >= 1
        assert r.layout().sample == 4 * r.layout().snapshot
        if r.plan.cfg.traffic is not None:
            assert r.ctx.fleet is not None and len(r.ctx.fleet.objects) > 0
