"""An environment pool rendered in one process and with one Dask task per environment.

    python benchmarks/pool.py scenes/helsinki_pool.yaml --workers 2 --ue-count 50 --out out/bench

Both renders start from built scenes (the scene cache is warmed first, so neither pays the
OSM / procedural builds); each wall time includes the per-environment scene load and JIT (and,
for the cluster, the worker start-up), which is what a user waits for. Prints the links/s of
each, the ratio, whether the two stores are byte-identical, and the link-state mix per
environment as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import xarray as xr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("scene")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ue-count", type=int, default=None)
    ap.add_argument("--out", default="out/bench_pool", help="folder for the two stores")
    args = ap.parse_args()

    from simgen.pool import load_pool
    from simgen.pool_render import Options, render_pool, scene_path
    from simgen.schema import LinkState

    pool = load_pool(args.scene, ue_count=args.ue_count)
    t0 = time.perf_counter()
    for e in pool.environments:  # warm the scene cache: builds are not part of the comparison
        scene_path(e.cfg, pool.base.resolve())
    print(f"scenes built / found in {time.perf_counter() - t0:.1f} s", flush=True)
    out = Path(args.out)
    runs = {}
    for mode in ("in-process", f"local:{args.workers}"):
        dest = out / f"{mode.replace(':', '_')}.zarr"
        t0 = time.perf_counter()
        res = render_pool(
            pool,
            Options(out=dest, device="cpu"),
            overwrite=True,
            cluster=None if mode == "in-process" else mode,
        )
        dt = time.perf_counter() - t0
        links = sum(s["links"] for s in res)
        runs[mode] = {"seconds": dt, "links": links, "links_per_s": links / dt, "store": dest}
        print(f"{mode:>12}: {links} links in {dt:.1f} s ({links / dt:.1f} links/s)", flush=True)
    a, b = (r["store"] for r in runs.values())
    identical = all(
        np.array_equal(
            xr.open_zarr(a, group=f"{e.name}/dry")[v].values,
            xr.open_zarr(b, group=f"{e.name}/dry")[v].values,
            equal_nan=True,
        )
        for e in pool.environments
        for v in xr.open_zarr(a, group=f"{e.name}/dry").data_vars
    )
    ratio = runs[f"local:{args.workers}"]["links_per_s"] / runs["in-process"]["links_per_s"]
    print(f"local:{args.workers} vs one process: x{ratio:.2f} links/s; identical: {identical}")
    head = "| environment | kind | split | samples x TRPs | " + " | ".join(
        f"{s.name} %" for s in LinkState
    )
    print(head + " |")
    print("|---|---|---|---:|" + "---:|" * len(LinkState))
    for e in pool.environments:
        ds = xr.open_zarr(a, group=f"{e.name}/dry")
        st = ds.link_state.values
        share = [100 * float((st == s).mean()) for s in LinkState]
        print(
            f"| {e.name} | {e.kind} | {e.split} | {st.shape[0]} x {st.shape[1]} | "
            + " | ".join(f"{x:.1f}" for x in share)
            + " |"
        )
    print(
        json.dumps(
            {
                "scene": args.scene,
                "environments": len(pool.environments),
                "ue_count": args.ue_count,
                "runs": {
                    k: {kk: vv for kk, vv in v.items() if kk != "store"} for k, v in runs.items()
                },
                "ratio_links_per_s": ratio,
                "identical": identical,
            }
        )
    )


if __name__ == "__main__":
    main()
