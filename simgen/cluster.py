"""Scale-out rendering on a Dask distributed cluster.

The main process creates the store (``Renderer.open_store``); each pending shard becomes one
task. A worker process builds its own :class:`~simgen.render.Renderer` once (cached per
process), renders the shard and writes its Zarr region. Shards are deterministic and disjoint,
so the result is byte-identical to an in-process render. When a worker dies, Dask reschedules
its task on another worker (the nanny also restarts the process); a shard that was half
written is not marked done and is simply written again.

``--cluster local:N`` starts a LocalCluster of N single-threaded worker processes on
127.0.0.1 (on CPU each gets cores/N Dr.Jit threads); ``--cluster tcp://host:8786`` uses an
existing scheduler whose workers can import simgen and see the store path.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import numpy as np

from .errors import SimgenError, StoreError
from .render import Renderer, RenderPlan, add_duplicates

_RENDERERS: dict[tuple, Renderer] = {}  # per worker process


def _worker_renderer(p: RenderPlan, device: str, threads: int | None) -> Renderer:
    key = (p.cfg.content_hash(), str(p.out), device)
    if key not in _RENDERERS:
        r = Renderer(p, device)
        if threads and r.backend.startswith("llvm"):
            import drjit as dr

            dr.set_thread_count(threads)
        _RENDERERS[key] = r
    return _RENDERERS[key]


def render_shard(p: RenderPlan, device: str, threads: int | None, index: int) -> tuple[int, int]:
    """Task body: render shard ``index`` into the store; returns the number of samples and of
    duplicate paths removed.

    The worker samples the UEs itself: StoreError if its positions for the shard differ from
    the store's ``ue_position`` (another simgen/sionna build, platform, ...)."""
    from .store import open_store

    r = _worker_renderer(p, device, threads)
    store = open_store(p.out, mode="r+")
    if store.root["shard_done"][index]:  # a retry of a shard that landed after all
        return 0, 0
    sl = store.layout.shards[index]
    stored = store.root[store.conditions[0]]["ue_position"][sl]
    if not np.array_equal(stored, r.sample_position[sl]):
        raise StoreError(
            f"{p.out}: this worker's UE positions for shard {index} differ from the store's "
            "(check that workers run the same simgen and sionna-rt versions)"
        )
    dups = r.tracer.duplicates_removed
    store.write_shard(index, r.shard_arrays(r.sample_position[sl], r.trace_samples(sl)))
    return sl.stop - sl.start, r.tracer.duplicates_removed - dups


def local_workers(spec: str) -> int | None:
    """N for ``local:N``, None for ``tcp://...``; SimgenError for anything else."""
    if spec.startswith("tcp://"):
        return None
    if spec.startswith("local:"):
        n = spec.split(":", 1)[1]
        if n.isdigit() and int(n) >= 1:
            return int(n)
        raise SimgenError(f"--cluster {spec}: expected local:N with N >= 1 workers")
    raise SimgenError(f"--cluster {spec!r}: use local:N or tcp://host:port")


def open_client(spec: str):
    """A distributed Client for ``local:N`` or a scheduler address; and the worker count."""
    from distributed import Client, LocalCluster

    n = local_workers(spec)
    if n is not None:
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=40,
        )
        return Client(cluster), n
    try:
        client = Client(spec, timeout="10s")
    except OSError as exc:
        raise SimgenError(f"--cluster {spec}: cannot reach the scheduler ({exc})") from None
    return client, max(len(client.scheduler_info().get("workers", {})), 1)


def close_client(client) -> None:
    """Close a Client from :func:`open_client`, and the local cluster it started, if any."""
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def render_distributed(
    r: Renderer,
    spec: str,
    device: str,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    on_client: Callable | None = None,
    force_resume: bool = False,
) -> int:
    """Render all pending shards of ``r``'s store on the cluster; returns samples rendered.

    Workers get the store as an absolute path (their working directory may differ).
    ``on_client(client)`` is called once the tasks are submitted (tests use it to kill a worker).
    """
    from distributed import as_completed

    store = r.open_store(overwrite=overwrite, force_resume=force_resume)
    plan = dataclasses.replace(r.plan, out=r.plan.out.resolve())
    pending = store.pending()
    client, n_workers = open_client(spec)
    threads = max((os.cpu_count() or 1) // n_workers, 1) if spec.startswith("local:") else None
    try:
        futures = client.map(
            render_shard,
            [plan] * len(pending),
            [device] * len(pending),
            [threads] * len(pending),
            pending,
            pure=False,
            retries=3,
        )
        if on_client is not None:
            on_client(client)
        done = dups = 0
        for fut in as_completed(futures):
            n, d = fut.result()
            done += n
            dups += d
            if progress:
                progress(n)
    finally:
        close_client(client)
    add_duplicates(store, dups)
    store.finalize()
    return done
