"""Traffic: cost of moving the vehicles for a snapshot vs tracing it, and link-state shares.

    python benchmarks/traffic.py scenes/paris_traffic.yaml --ue-count 100 --snapshots 5

Per snapshot, in one process after a warm-up: the time of ``Fleet.apply`` (moving every vehicle
in place) and of tracing + labelling all UEs. Prints both, their ratio, and the share of links
per link state over the snapshots measured.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("scene")
    ap.add_argument("--ue-count", type=int, default=100)
    ap.add_argument("--snapshots", type=int, default=5)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    from simgen.render import Renderer, plan
    from simgen.schema import LinkState

    with tempfile.TemporaryDirectory() as tmp:
        r = Renderer(
            plan(args.scene, out=Path(tmp) / "t.zarr", ue_count=args.ue_count), args.device
        )
    fleet = r.ctx.fleet
    if fleet is None:
        raise SystemExit(f"{args.scene} has no traffic section")
    pos = r.ue_position
    r.trace(pos, snapshot=0)  # warm-up (JIT)
    moves, traces, states = [], [], []
    n = min(args.snapshots, len(fleet.plan.time) - 1)
    for s in range(1, n + 1):
        t0 = time.perf_counter()
        fleet.apply(s)
        t1 = time.perf_counter()
        traced = r.trace(pos, snapshot=s)  # apply() is a no-op now: already at s
        t2 = time.perf_counter()
        moves.append(t1 - t0)
        traces.append(t2 - t1)
        states.append(traced.link_state)
    st = np.concatenate(states)
    share = {s.name: float(np.mean(st == s)) for s in LinkState}
    res = {
        "scene": args.scene,
        "backend": r.backend,
        "vehicles": len(fleet.objects),
        "ues": len(pos),
        "trps": len(r.plan.cfg.trps),
        "snapshots": n,
        "move_s_mean": float(np.mean(moves)),
        "trace_s_mean": float(np.mean(traces)),
        "move_over_trace": float(np.mean(moves) / np.mean(traces)),
        "link_state_share": share,
    }
    print(
        f"{len(fleet.objects)} vehicles: move {res['move_s_mean'] * 1e3:.1f} ms vs trace+labels "
        f"{res['trace_s_mean']:.2f} s per snapshot ({100 * res['move_over_trace']:.2f} %)"
    )
    print("link states: " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in share.items()))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
