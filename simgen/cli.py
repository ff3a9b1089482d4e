"""Command line: ``simgen render``, ``simgen info``. Bad input -> one line on stderr, exit 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .errors import SimgenError

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
    overwrite: Annotated[bool, typer.Option(help="replace an existing store")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress output")] = False,
) -> None:
    """Render SCENE into a Zarr store; re-running an interrupted render resumes it."""
    from .render import Renderer, plan

    p = plan(scene, out=out, ue_count=ue_count, batch_ues=batch_ues)

    def say(text: str) -> None:
        if not quiet:
            err.print(text, soft_wrap=True, highlight=False)

    say(
        f"[bold]{p.cfg.name}[/]: scene {p.cfg.scene}, {len(p.cfg.trps)} TRPs, "
        f"{p.cfg.frequency_hz / 1e9:g} GHz, {p.cfg.ofdm.num_subcarriers} subcarriers"
    )
    r = Renderer(p, device)
    store = r.open_store(overwrite=overwrite)
    pending = store.pending()
    todo = sum(len(range(*store.layout.shards[i].indices(store.layout.sample))) for i in pending)
    say(
        f"backend {r.backend}; {len(r.ue_position)} UEs -> {p.out} "
        f"({len(store.layout.shards) - len(pending)} of {len(store.layout.shards)} shards "
        f"already done)"
    )
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
    ) as bar:
        task = bar.add_task("tracing UEs", total=todo)
        result = r.render(store, progress=lambda n: bar.advance(task, n))
    say(
        f"done: {result.links_rendered} links in {result.seconds:.1f} s "
        f"({result.links_per_s:.1f} links/s), {result.solver_calls} solver calls -> {p.out}"
    )


@app.command()
def info(store: Annotated[Path, typer.Argument(help="a simgen Zarr store")]) -> None:
    """Sizes, link-state counts, ToA and power ranges of a store."""
    from .info import summarize

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
    from .deepmimo import import_scenario

    if spacing_hz is None and bandwidth_hz is None:
        spacing_hz = 30e3
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
    from .deepmimo import export_scenario

    print(f"exported -> {export_scenario(store, out, condition=condition, overwrite=overwrite)}")


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
