"""``simgen render`` of an environment pool (:mod:`simgen.pool`) into one store.

Layout: the pool's root group (attrs ``pool: true``, the environment list with each one's
kind, source, split and config hash, the split, the pool's config hash and YAML) holds one
sub-group per environment, and each sub-group is laid out exactly like a single-scene store
(:mod:`simgen.store`: its own ``shard_done``, condition groups ``dry``..., root attrs with its
config). A sub-group is a folder ``<pool>/<env>/``, written by an ordinary
:class:`~simgen.render.Renderer` whose output is that folder, so ``xr.open_zarr(pool,
group="<env>/dry")`` reads it and ``simgen info <pool>/<env>`` works as on any store.

Resume: a finished environment (complete, every shard done, same config hash) is skipped
without loading its scene; an unfinished one resumes shard by shard. A pool made from another
config is refused as a single store is. ``--cluster``: one Dask task per environment (they
are independent), each rendering in-process on its worker: the same bytes as in one process.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

import zarr
import zarr.storage

from .config import SceneConfig, resolve_scene
from .errors import StoreError
from .pool import Environment, Pool
from .render import Renderer, RenderPlan
from .schema import SCHEMA_VERSION, LinkState
from .store import create_or_reopen

POOL_ATTRS = ("pool", "environments", "split", "config_hash", "schema_version")


@dataclasses.dataclass(frozen=True)
class Options:
    """How every environment is rendered (picklable: sent to Dask workers)."""

    out: Path  # the pool store, absolute
    device: str = "auto"
    batch_ues: int | None = None
    pipeline: bool = True
    memory_gb: float | None = None  # batch_ues: auto budget (local:N on CPU: 1/N of the default)
    force_resume: bool = False
    threads: int | None = None  # Dr.Jit threads per worker (cluster only)


def scene_path(cfg: SceneConfig, base: Path) -> str:
    """The scene XML of an environment: a built-in / XML path / 'empty', or the folder that
    :func:`simgen.world.build` builds (or finds in its cache) for an OSM / procedural block."""
    return resolve_scene(cfg.scene, base, cfg.frequency_hz)


def env_plan(pool: Pool, env: Environment, opt: Options) -> RenderPlan:
    """The ordinary render plan of one environment: its output is ``<pool>/<env>``."""
    cfg = env.cfg
    if opt.batch_ues is not None:
        cfg = cfg.model_copy(
            update={"solver": cfg.solver.model_copy(update={"batch_ues": opt.batch_ues})}
        )
    return RenderPlan(
        cfg,
        env.yaml_text(),
        scene_path(cfg, pool.base.resolve()),
        opt.out / env.name,
        dict(pool.overrides),
        config_path=str(pool.config_path),
        pipeline=opt.pipeline,
        memory_gb=opt.memory_gb,
    )


def finished(path: Path, cfg: SceneConfig) -> bool:
    """Whether the environment store at ``path`` is complete and made from ``cfg``."""
    if not (path / "zarr.json").is_file():
        return False
    try:
        root = zarr.open_group(zarr.storage.LocalStore(path, read_only=True), mode="r")
        attrs = root.attrs
        return (
            attrs.get("complete") is True
            and attrs.get("config_hash") == cfg.content_hash()
            and bool(root["shard_done"][:].all())
        )
    except Exception:  # noqa: BLE001 - a half-written store is simply not finished
        return False


def pool_attrs(pool: Pool) -> dict:
    """Root attributes of a pool store."""
    return {
        "title": f"simgen environment pool: {pool.name}",
        "pool": True,
        "pool_name": pool.name,
        "schema_version": SCHEMA_VERSION,
        "config_hash": pool.content_hash(),
        "environments": pool.listing(),
        "split": pool.split,
        "pool_config_yaml": pool.text,
        "overrides": pool.overrides,
        "complete": False,
    }


def open_pool_root(pool: Pool, out: Path, overwrite: bool) -> zarr.Group:
    """Create the pool's root group, or reopen it to resume (StoreError if it was made from
    another config, or is a single-scene store)."""

    def reopen(path: Path) -> tuple[zarr.Group, dict]:
        try:
            root = zarr.open_group(zarr.storage.LocalStore(path), mode="r+")
            attrs = dict(root.attrs)
        except Exception:  # noqa: BLE001 - zarr raises many kinds on corrupt metadata
            raise StoreError(f"{path}: exists and is not a readable simgen pool") from None
        if not attrs.get("pool"):
            raise StoreError(
                f"{path} is not an environment pool store; use --overwrite to replace it or "
                "--out to write elsewhere"
            )
        return root, attrs

    def create(tmp: Path) -> None:
        zarr.create_group(str(tmp), attributes=pool_attrs(pool))

    return create_or_reopen(
        out, pool.content_hash(), (pool.config_path,), overwrite, create, reopen
    )


def link_mix(path: Path) -> dict[str, int]:
    """Links per link state in the first condition group of the store at ``path``."""
    root = zarr.open_group(zarr.storage.LocalStore(path, read_only=True), mode="r")
    state = root[root.attrs["conditions"][0]]["link_state"][:]
    return {s.name: int((state == s).sum()) for s in LinkState}


def render_environment(
    pool: Pool,
    name: str,
    opt: Options,
    progress: Callable[[Renderer, int], Callable[[int], None]] | None = None,
) -> dict:
    """Render (or resume, or skip when finished) one environment; returns its summary:
    name, skipped, samples, trps, links rendered, seconds, backend, link-state mix.
    ``progress(renderer, samples_to_do)`` may return an ``advance(n)`` callback."""
    env = pool.env(name)
    path = opt.out / name
    t0 = time.perf_counter()
    if finished(path, env.cfg):
        return {"name": name, "skipped": True, "links": 0, "seconds": 0.0, "mix": link_mix(path)}
    r = Renderer(env_plan(pool, env, opt), opt.device)
    if opt.threads and r.backend.startswith("llvm"):
        import drjit as dr  # noqa: PLC0415

        dr.set_thread_count(opt.threads)
    store = r.open_store(force_resume=opt.force_resume)
    lay = store.layout
    todo = sum(lay.shards[i].stop - lay.shards[i].start for i in store.pending())
    advance = progress(r, todo) if progress is not None else None
    res = r.render(store, progress=advance)
    return {
        "name": name,
        "skipped": False,
        "samples": res.samples,
        "trps": res.trps,
        "links": res.links_rendered,
        "seconds": time.perf_counter() - t0,
        "backend": res.backend,
        "memory_note": r.memory_note,
        "forced_resume": r.forced_resume,
        "mix": link_mix(path),
    }


def _finish(root: zarr.Group, pool: Pool, out: Path) -> None:
    """Mark the pool complete when every environment is, and consolidate its metadata (so
    ``xr.open_zarr(pool, group="<env>/dry")`` reads one zarr.json, as for a single store)."""
    done = all(finished(out / e.name, e.cfg) for e in pool.environments)
    root.attrs["complete"] = done
    if done:
        zarr.consolidate_metadata(zarr.storage.LocalStore(out))


def render_pool(
    pool: Pool,
    opt: Options,
    *,
    overwrite: bool = False,
    cluster: str | None = None,
    on_env: Callable[[dict], None] | None = None,
    progress: Callable[[Renderer, int], Callable[[int], None]] | None = None,
) -> list[dict]:
    """Render every environment of ``pool`` into ``opt.out``: in order in this process, or
    with ``cluster`` (``local:N`` / ``tcp://...``) one Dask task per environment.
    ``on_env(summary)`` is called as each environment finishes. Returns the summaries."""
    opt = dataclasses.replace(opt, out=Path(opt.out).resolve())
    root = open_pool_root(pool, opt.out, overwrite)
    results: list[dict] = []
    if not cluster:
        for env in pool.environments:
            s = render_environment(pool, env.name, opt, progress)
            results.append(s)
            if on_env:
                on_env(s)
        _finish(root, pool, opt.out)
        return results
    from distributed import as_completed  # noqa: PLC0415

    from .cluster import close_client, open_client  # noqa: PLC0415

    client, n_workers = open_client(cluster)
    if cluster.startswith("local:"):
        opt = dataclasses.replace(opt, threads=max((os.cpu_count() or 1) // n_workers, 1))
        if opt.memory_gb is None and opt.device == "cpu":  # N workers share this host's memory
            from . import memory  # noqa: PLC0415

            share = memory.budget_bytes(None) / n_workers / 2**30
            opt = dataclasses.replace(opt, memory_gb=max(share, 0.1))
    names = [e.name for e in pool.environments]
    try:
        futures = client.map(
            render_environment,
            [pool] * len(names),
            names,
            [opt] * len(names),
            pure=False,
            retries=2,
        )
        for fut in as_completed(futures):
            s = fut.result()
            results.append(s)
            if on_env:
                on_env(s)
    finally:
        close_client(client)
    _finish(root, pool, opt.out)
    order = {n: i for i, n in enumerate(names)}
    return sorted(results, key=lambda s: order[s["name"]])
