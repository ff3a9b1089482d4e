"""Render throughput: full ``simgen render`` vs a bare Sionna RT PathSolver + cfr loop.

Both run in this process on the same scene, TRPs, UE positions, solver settings and OFDM grid,
after a warm-up trace (JIT compilation and, on a fresh GPU machine, a slow first minute).

    python benchmarks/throughput.py scenes/paris.yaml --ue-count 400 [--device gpu] [--repeat 2]

Prints links/s of each and the ratio render/bare (1.0 = no overhead). A link is one TRP-UE pair.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def bare_loop(renderer, positions: np.ndarray) -> float:
    """Seconds for PathSolver + cfr(normalize_delays=False) over ``positions`` in batches,
    the way a user would write it by hand: add receivers, solve, cfr to numpy, remove."""
    import mitsuba as mi
    import sionna.rt as rt

    from simgen.channel import subcarrier_offsets
    from simgen.trace import solver_kwargs

    renderer.tracer.clear()  # only the bare loop's receivers may be in the scene
    scene, c = renderer.ctx.scene, renderer.plan.cfg
    freqs = subcarrier_offsets(c.ofdm.num_subcarriers, c.ofdm.spacing_hz).astype(np.float32)
    solver = rt.PathSolver(deterministic=True)
    kwargs = solver_kwargs(renderer.tracer.cfg)  # the very settings the render uses
    t0 = time.perf_counter()
    for a in range(0, len(positions), renderer.batch_ues):
        names = []
        for i, p in enumerate(positions[a : a + renderer.batch_ues]):
            names.append(f"bare{i}")
            scene.add(rt.Receiver(names[-1], position=mi.Point3f(*map(float, p))))
        paths = solver(scene, **kwargs)
        h = paths.cfr(frequencies=freqs, normalize_delays=False, out_type="numpy")
        np.asarray(h)
        for n in names:
            scene.remove(n)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("scene")
    ap.add_argument("--ue-count", type=int, default=400)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--no-pipeline", action="store_true", help="render shards serially")
    args = ap.parse_args()

    from simgen.render import Renderer, plan

    with tempfile.TemporaryDirectory() as tmp:
        p = plan(
            args.scene,
            out=Path(tmp) / "bench.zarr",
            ue_count=args.ue_count,
            pipeline=not args.no_pipeline,
        )
        r = Renderer(p, args.device)
        pos = r.ue_position
        links = len(pos) * len(r.ctx.trps)
        warm = time.perf_counter()
        r.trace(pos[: r.batch_ues])  # warm-up: JIT compilation
        bare_loop(r, pos[: r.batch_ues])
        warm = time.perf_counter() - warm
        rows = []
        for rep in range(args.repeat):
            t_bare = bare_loop(r, pos)
            store = r.open_store(overwrite=True)
            t0 = time.perf_counter()
            res = r.render(store)
            t_render = time.perf_counter() - t0
            rows.append(
                {
                    "repeat": rep,
                    "bare_s": t_bare,
                    "render_s": t_render,
                    "bare_links_per_s": links / t_bare,
                    "render_links_per_s": links / t_render,
                    "ratio": t_bare / t_render,
                    "stages_s": res.times,
                }
            )
            print(
                f"[{rep}] bare {links / t_bare:8.1f} links/s   render {links / t_render:8.1f} "
                f"links/s   render/bare {t_bare / t_render:.3f}   {res.time_split()}",
                flush=True,
            )
    result = {
        "scene": args.scene,
        "backend": r.backend,
        "ues": len(pos),
        "trps": len(r.ctx.trps),
        "links": links,
        "samples_per_src": p.cfg.solver.samples_per_src,
        "max_depth": p.cfg.solver.max_depth,
        "warmup_s": warm,
        "runs": rows,
    }
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
