"""Scene construction: OSM extracts and procedural cities → footprints → one mesh writer.

The render pipeline does not know where a scene came from: a config's ``scene:`` block
(``{osm: ...}`` or ``{procedural: ...}``) is turned into a scene folder (Mitsuba XML + binary
PLY meshes + ``world.json``) by :func:`build`, which reuses a cached build when the block, the
input file, the carrier's materials and the world code are unchanged.

Modules: ``footprints`` (Building, Street, World), ``osm`` (pyosmium / GeoJSON reading,
projection, height rules), ``procedural`` (seeded cities), ``mesh`` (footprint → watertight
triangle mesh), ``materials`` (ITU materials for the carrier), ``writer`` (the one writer).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..provenance import sha256_file
from .footprints import WORLD_JSON, Building, Street, World

if TYPE_CHECKING:
    from .blocks import OSMScene, ProceduralScene, ProceduralSource

# Bump when a change of this package changes the scene it builds from the same input (the
# cache key holds it, so old builds are not reused).
WORLD_CODE_VERSION = 1
CACHE_ENV = "SIMGEN_CACHE"  # cache root; scenes go to $SIMGEN_CACHE/scenes/<key>/

__all__ = [
    "Building",
    "Street",
    "World",
    "build",
    "cache_key",
    "load_world",
    "procedural_city",
    "read_osm",
    "write_scene",
]


def read_osm(path, **kwargs) -> World:
    """See :func:`simgen.world.osm.read_osm`."""
    from .osm import read_osm as _read

    return _read(path, **kwargs)


def procedural_city(src: ProceduralSource) -> World:
    """See :func:`simgen.world.procedural.procedural_city`."""
    from .procedural import procedural_city as _city

    return _city(src)


def write_scene(world: World, out_dir: Path, frequency_hz: float, **kwargs) -> Path:
    """See :func:`simgen.world.writer.write_scene`."""
    from .writer import write_scene as _write

    return _write(world, out_dir, frequency_hz, **kwargs)


def load_world(scene_xml: str | Path) -> World | None:
    """The World beside a built scene.xml (its world.json); None for built-ins / hand XML."""
    path = Path(scene_xml).parent / WORLD_JSON
    if str(scene_xml) == "empty" or not path.is_file():
        return None
    return World.from_json(json.loads(path.read_text()))


def cache_key(scene: OSMScene | ProceduralScene, frequency_hz: float, base: Path) -> str:
    """Hash of what a build depends on: the block, the input file's sha256 (OSM), the
    materials chosen for the carrier, and :data:`WORLD_CODE_VERSION`."""
    from .blocks import OSMScene
    from .materials import choose_materials

    block = scene.model_dump(mode="json")
    if isinstance(scene, OSMScene):
        from .osm import resolve_input

        block["input_sha256"] = sha256_file(resolve_input(scene.osm.file, base))
    src = scene.osm if isinstance(scene, OSMScene) else scene.procedural
    block["materials_chosen"] = choose_materials(
        frequency_hz, src.materials.building, src.materials.ground
    )
    block["world_code_version"] = WORLD_CODE_VERSION
    return hashlib.sha256(json.dumps(block, sort_keys=True).encode()).hexdigest()[:16]


def cache_root() -> Path:
    """``$SIMGEN_CACHE/scenes`` if set, else ``out/cache/scenes`` (relative to the cwd)."""
    env = os.environ.get(CACHE_ENV)
    return (Path(env) if env else Path("out/cache")) / "scenes"


def world_from_block(scene: OSMScene | ProceduralScene, base: Path) -> World:
    """The World of a scene block (OSM paths relative to ``base``, the YAML's folder)."""
    from .blocks import OSMScene

    if isinstance(scene, OSMScene):
        from .osm import read_osm_source

        return read_osm_source(scene.osm, base)
    return procedural_city(scene.procedural)


def build(
    scene: OSMScene | ProceduralScene, frequency_hz: float, base: Path, cache: Path | None = None
) -> Path:
    """Build (or reuse) the scene folder of a block; returns the path of its scene.xml.

    The folder is ``<cache or cache_root()>/<cache_key>/``; it is written to a temporary
    sibling and renamed at the end, so a failed build leaves nothing behind."""
    from .blocks import OSMScene

    root = Path(cache) if cache is not None else cache_root()
    folder = root / cache_key(scene, frequency_hz, base)
    xml = folder / "scene.xml"
    if xml.is_file() and (folder / WORLD_JSON).is_file():
        return xml.resolve()
    src = scene.osm if isinstance(scene, OSMScene) else scene.procedural
    world = world_from_block(scene, base)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=root))
    try:
        write_scene(
            world,
            tmp,
            frequency_hz,
            building_material=src.materials.building,
            ground_material=src.materials.ground,
        )
        try:
            tmp.rename(folder)
        except OSError:  # another process built it meanwhile: keep theirs
            if not (folder / "scene.xml").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return xml.resolve()
