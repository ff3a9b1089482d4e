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
