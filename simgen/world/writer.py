"""The one mesh writer: a :class:`World` → a scene folder Sionna RT loads.

Layout of the folder::

    scene.xml            Mitsuba 3 XML: itu-radio-material bsdfs, one ply shape per mesh
    meshes/buildings.ply every building solid (binary little-endian PLY, float32 xyz, int32 faces)
    meshes/ground.ply    the ground plane (z = 0), slightly larger than the tile
    world.json           the World (footprints, streets, crs, provenance + what was written)

Buildings share one material, and Sionna merges shapes of one material anyway, so they are one
shape named ``buildings`` (a building to simgen's categories); the ground is the shape
``ground``. Both OSM extracts and procedural cities go through :func:`write_scene`.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from .footprints import WORLD_JSON, World
from .materials import BUILDING_THICKNESS_M, GROUND_THICKNESS_M, choose_materials
from .mesh import building_mesh, ground_mesh, merge

SCENE_XML = "scene.xml"
GROUND_MARGIN = 0.02  # the ground extends this share of the tile side (+ 1 m) past each edge


def write_ply(path: Path, verts: np.ndarray, faces: np.ndarray) -> None:
    """Binary little-endian PLY: vertices (N, 3) as float32 x, y, z; faces (M, 3) as
    ``list uchar int``."""
    v = np.ascontiguousarray(verts, dtype="<f4")
    f = np.zeros(len(faces), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    f["n"] = 3
    f["i"] = faces
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(v)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    with open(path, "wb") as fh:
        fh.write(header.encode("ascii"))
        fh.write(v.tobytes())
        fh.write(f.tobytes())


def read_ply(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`write_ply` (for tests and tools): (vertices float32, faces int64)."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    nv = int(next(h for h in header if h.startswith("element vertex")).split()[-1])
    nf = int(next(h for h in header if h.startswith("element face")).split()[-1])
    v = np.frombuffer(data, dtype="<f4", count=nv * 3, offset=end).reshape(nv, 3)
    f = np.frombuffer(data, dtype=[("n", "u1"), ("i", "<i4", (3,))], count=nf,
                      offset=end + nv * 12)  # fmt: skip
    return v, f["i"].astype(np.int64)


def _bsdf(name: str, thickness: float) -> str:
    return (
        f'  <bsdf type="itu-radio-material" id="itu_{name}">\n'
        f'    <string name="type" value="{name}"/>\n'
        f'    <float name="thickness" value="{thickness:g}"/>\n'
        "  </bsdf>\n"
    )


def _shape(name: str, material: str) -> str:
    return (
        f'  <shape type="ply" id={quoteattr("mesh-" + name)}>\n'
        f'    <string name="filename" value="meshes/{name}.ply"/>\n'
        '    <boolean name="face_normals" value="true"/>\n'
        f'    <ref id="itu_{material}" name="bsdf"/>\n'
        "  </shape>\n"
    )


def write_scene(
    world: World,
    out_dir: Path,
    frequency_hz: float,
    building_material: str | None = None,
    ground_material: str | None = None,
) -> Path:
    """Write the scene folder of ``world`` into ``out_dir`` (created; the caller makes sure it
    may be written) and return the path of its scene.xml. Materials are chosen for
    ``frequency_hz`` (:func:`simgen.world.materials.choose_materials`, overrides checked)."""
    mats = choose_materials(frequency_hz, building_material, ground_material)
    out_dir = Path(out_dir)
    (out_dir / "meshes").mkdir(parents=True, exist_ok=True)
    bverts, bfaces = merge([building_mesh(b) for b in world.buildings])
    x0, y0, x1, y1 = world.bounds
    margin = GROUND_MARGIN * max(x1 - x0, y1 - y0) + 1.0
    gverts, gfaces = ground_mesh(world.bounds, margin)
    bsdfs = {mats["building"]: BUILDING_THICKNESS_M}
    bsdfs.setdefault(mats["ground"], GROUND_THICKNESS_M)
    xml = ['<scene version="2.1.0">\n'] + [_bsdf(m, t) for m, t in bsdfs.items()]
    if len(bfaces):
        write_ply(out_dir / "meshes" / "buildings.ply", bverts, bfaces)
        xml.append(_shape("buildings", mats["building"]))
    write_ply(out_dir / "meshes" / "ground.ply", gverts, gfaces)
    xml.append(_shape("ground", mats["ground"]))
    xml.append("</scene>\n")
    scene_xml = out_dir / SCENE_XML
    scene_xml.write_text("".join(xml), encoding="utf-8")
    doc = world.to_json()
    doc["provenance"] = {
        **world.provenance,
        "scene": {
            "frequency_hz": frequency_hz,
            "materials": mats,
            "thickness_m": {"building": BUILDING_THICKNESS_M, "ground": GROUND_THICKNESS_M},
            "triangles": {"buildings": int(len(bfaces)), "ground": int(len(gfaces))},
            "ground_margin_m": margin,
        },
    }
    (out_dir / WORLD_JSON).write_text(json.dumps(doc), encoding="utf-8")
    return scene_xml
