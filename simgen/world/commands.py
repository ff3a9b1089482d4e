"""``simgen scene osm`` / ``simgen scene procedural``: build a scene folder from the command line.

The folder is written to a temporary sibling and renamed at the end, so a failed build leaves
nothing; an existing output is replaced only when it is provably ours (an empty folder or a
previous world build, marked by its ``world.json``; :mod:`simgen.safety`'s rule).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from ..safety import check_replaceable, remove_if_ours
from .footprints import WORLD_JSON, World
from .materials import choose_materials


def validate_block(cls: type[BaseModel], data: dict, where: str) -> BaseModel:
    """``cls(**data)`` with a one-line ConfigError naming the option / key on failure."""
    from ..config import _key, _message

    try:
        return cls.model_validate_json(_json(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        key = _key(err["loc"]) if err["loc"] else ""
        raise ConfigError(f"{where}: {key + ': ' if key else ''}{_message(err)}") from None


def _json(data: dict) -> str:
    import json

    return json.dumps({k: v for k, v in data.items() if v is not None})


def summary(world: World, seconds: float | None = None) -> list[str]:
    """Lines that say what a build made: buildings, triangles, seconds, height rules, counts."""
    p = world.provenance
    tri = sum((p.get("scene") or {}).get("triangles", {}).values())
    head = f"buildings {p.get('buildings', len(world.buildings))}"
    if p.get("building_parts", 0) != p.get("buildings"):
        head += f" ({p.get('building_parts')} solids)"
    head += f", triangles {tri}, streets {len(world.streets)}"
    if seconds is not None:
        head += f", {seconds:.2f} s"
    shares = ", ".join(
        f"{rule} {100 * share:.1f} % ({p['height_rules'][rule]})"
        for rule, share in p.get("height_rule_shares", {}).items()
    )
    lines = [head, f"height rules: {shares}"]
    if p.get("counts"):
        lines.append("counts: " + ", ".join(f"{k} {v}" for k, v in p["counts"].items()))
    if p.get("min_height_policy"):
        lines.append(f"min_height: {p['min_height_policy']}")
    if p.get("scene"):
        m = p["scene"]["materials"]
        lines.append(f"materials: building {m['building']}, ground {m['ground']}")
    return lines


def build_folder(world_fn, out: Path, frequency_hz: float, inputs=(), **materials) -> tuple:
    """Make the World (``world_fn()``), write it to ``out`` through a temporary sibling, and
    return (world with the writer's provenance, scene.xml path, seconds)."""
    from . import load_world, write_scene

    out = Path(out)
    check_replaceable(out, inputs, marker=WORLD_JSON)
    choose_materials(frequency_hz, materials.get("building_material"),
                     materials.get("ground_material"))  # fail before reading  # fmt: skip
    t0 = time.perf_counter()
    world = world_fn()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_scene(world, tmp, frequency_hz, **materials)
        seconds = time.perf_counter() - t0
        remove_if_ours(out, inputs, marker=WORLD_JSON)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    xml = out / "scene.xml"
    return load_world(xml), xml, seconds
