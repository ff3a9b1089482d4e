"""Scale-out on a real Dask LocalCluster (2 worker processes on loopback)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import xarray as xr
import zarr
from simgen_testutil import write_config

from simgen.cluster import render_distributed
from simgen.render import Renderer, plan


def _same(a_path, b_path):
    a = xr.open_zarr(a_path, group="dry").load()
    b = xr.open_zarr(b_path, group="dry").load()
    assert list(a.data_vars) == list(b.data_vars)
    for name in a.data_vars:
        assert a[name].values.tobytes() == b[name].values.tobytes(), name


def test_local_cluster_render_is_identical_even_when_a_worker_dies(tmp_path):
    cfg = write_config(
        tmp_path,
        "street_canyon.yaml",
        ue__sampling={"count": 40},
        output={"chunk_samples": 4, "paths": True, "max_paths": 64},
    )
    ref = Renderer(plan(cfg, out=tmp_path / "ref.zarr"), "cpu")
    ref.render(ref.open_store())

    dist = Renderer(plan(cfg, out=tmp_path / "dist.zarr"), "cpu")
    assert render_distributed(dist, "local:2", "cpu") == 40
    _same(ref.plan.out, dist.plan.out)

    killed = []

    def kill_one_worker(client):
        pids = client.run(os.getpid)  # {worker address: pid}
        done = zarr.open_array(str(tmp_path / "kill.zarr" / "shard_done"), mode="r")
        deadline = time.time() + 120
        while done[:].sum() < 1 and time.time() < deadline:
            time.sleep(0.05)
        pid = sorted(pids.values())[0]
        os.kill(pid, signal.SIGKILL)
        killed.append(int(done[:].sum()))  # shards done when the worker died

    victim = Renderer(plan(cfg, out=tmp_path / "kill.zarr"), "cpu")
    render_distributed(victim, "local:2", "cpu", on_client=kill_one_worker)
    assert killed and killed[0] < 10, "the worker must die mid-render"
    assert zarr.open_array(str(tmp_path / "kill.zarr" / "shard_done"), mode="r")[:].all()
    _same(ref.plan.out, victim.plan.out)
    np.testing.assert_array_equal(
        xr.open_zarr(victim.plan.out, group="dry").link_state.values,
        xr.open_zarr(ref.plan.out, group="dry").link_state.values,
    )
