"""``simgen render <pool.yaml>``: the command-line side of :mod:`simgen.pool_render`
(progress per environment, one line per finished environment, a summary)."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from .errors import StoreError
from .pool import load_pool
from .progress import progress as progress_bar
from .safety import check_replaceable, output_lock
from .schema import LinkState


def mix_text(mix: dict[str, int]) -> str:
    """``LOS 40% OLOS 0% NLOS 55% ...`` of a link-state count dict."""
    total = max(sum(mix.values()), 1)
    return " ".join(f"{s.name} {100 * mix.get(s.name, 0) / total:.0f}%" for s in LinkState)


def render_pool_command(
    scene: Path,
    *,
    out: Path | None,
    device: str,
    ue_count: int | None,
    batch_ues: int | None,
    memory_gb: float | None,
    pipeline: bool,
    overwrite: bool,
    force_resume: bool,
    cluster: str | None,
    quiet: bool,
    console: Console,
) -> None:
    """Render every environment of the pool YAML ``scene`` into one store."""
    from .pool_render import Options, render_pool

    pool = load_pool(scene, ue_count=ue_count)
    if cluster:
        from .cluster import local_workers

        local_workers(cluster)  # a malformed --cluster fails before anything is written
    dest = Path(out) if out is not None else pool.out
    if str(dest) in ("", "."):
        from .errors import ConfigError

        raise ConfigError(f"{scene}: output.path: required key is missing (or give --out)")

    def say(text: str) -> None:
        if not quiet:
            console.print(text, soft_wrap=True, highlight=False)

    n_unseen = len(pool.split["unseen"])
    say(
        f"[bold]{pool.name}[/]: {len(pool.environments)} environments "
        f"({len(pool.environments) - n_unseen} seen, {n_unseen} unseen) -> {dest}"
        + (f"; cluster {cluster}" if cluster else "")
    )
    inputs = (scene,)
    if overwrite:
        check_replaceable(dest, inputs)
    opt = Options(
        out=dest,
        device=device,
        batch_ues=batch_ues,
        pipeline=pipeline,
        memory_gb=memory_gb,
        force_resume=force_resume,
    )
    count = {"done": 0}
    n_env = len(pool.environments)

    def on_env(s: dict) -> None:
        count["done"] += 1
        head = f"[{count['done']}/{n_env}] {s['name']} ({pool.env(s['name']).split})"
        if s["skipped"]:
            say(f"{head}: already complete; {mix_text(s['mix'])}")
            return
        if s.get("forced_resume"):
            console.print(
                f"warning: --force-resume: {s['name']}: {'; '.join(s['forced_resume'])}",
                soft_wrap=True,
                highlight=False,
            )
        say(
            f"{head}: {s['links']} links in {s['seconds']:.1f} s "
            f"({s['links'] / max(s['seconds'], 1e-9):.1f} links/s); {mix_text(s['mix'])}"
        )

    def bar(r, todo: int):
        if quiet or cluster or todo == 0:
            return None
        say(f"{r.plan.out.name}: {len(r.ue_position)} UEs x {len(r.ctx.trps)} TRPs, {todo} to do")
        cm = progress_bar(console, todo, r.plan.out.name, quiet=quiet, rate_scale=len(r.ctx.trps))
        advance = cm.__enter__()
        left = {"n": todo}

        def step(n: int) -> None:
            advance(n)
            left["n"] -= n
            if left["n"] <= 0:
                cm.__exit__(None, None, None)

        return step

    t0 = time.perf_counter()
    with output_lock(dest, inputs):
        try:
            results = render_pool(
                pool, opt, overwrite=overwrite, cluster=cluster, on_env=on_env, progress=bar
            )
        except OSError as exc:
            raise StoreError(
                f"{exc}; finished environments and shards are kept: fix this and re-run the "
                "same command to resume"
            ) from None
    dt = time.perf_counter() - t0
    links = sum(s["links"] for s in results)
    skipped = sum(s["skipped"] for s in results)
    say(
        f"done: {links} links in {dt:.1f} s ({links / max(dt, 1e-9):.1f} links/s), "
        f"{len(results) - skipped} environments rendered, {skipped} already complete"
        + (f", on {cluster}" if cluster else "")
        + f" -> {dest}"
    )
