"""Scale-out: the same render in-process and on a Dask LocalCluster with 1 and N workers.

    python benchmarks/cluster.py scenes/street_canyon_traffic.yaml --workers 2

Wall time of each (worker start-up, per-worker scene load and JIT included, which is what a
user waits for), the speed-up of N workers over 1, and a byte-for-byte comparison of the stores.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("scene")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ue-count", type=int, default=None)
    args = ap.parse_args()

    from simgen.cluster import render_distributed
    from simgen.render import Renderer, plan

    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        outs = {}
        for name in ("in-process", "local:1", f"local:{args.workers}"):
            out = Path(tmp) / f"{name.replace(':', '_')}.zarr"
            t0 = time.perf_counter()
            r = Renderer(plan(args.scene, out=out, ue_count=args.ue_count), "cpu")
            if name == "in-process":
                r.render(r.open_store())
            else:
                render_distributed(r, name, "cpu")
            times[name] = time.perf_counter() - t0
            outs[name] = out
            print(f"{name:>12}: {times[name]:.1f} s", flush=True)
        ref = xr.open_zarr(outs["in-process"], group="dry").load()
        identical = all(
            np.array_equal(ref[v].values, xr.open_zarr(o, group="dry")[v].values, equal_nan=True)
            for o in outs.values()
            for v in ref.data_vars
        )
    speedup = times["local:1"] / times[f"local:{args.workers}"]
    print(f"{args.workers} workers vs 1: x{speedup:.2f}; stores identical: {identical}")
    print(
        json.dumps(
            {"scene": args.scene, "seconds": times, "speedup": speedup, "identical": identical}
        )
    )


if __name__ == "__main__":
    main()
