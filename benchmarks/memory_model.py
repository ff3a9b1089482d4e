"""Calibrate :mod:`simgen.memory`: peak RSS of one solver call + one shard, per (scene, U, S).

Each point runs in a fresh process (peak RSS = ``ru_maxrss``): load the scene, trace U UEs in
one PathSolver call at S samples per source, assemble their channel (one shard of U samples).
A watchdog kills a point whose RSS passes ``--limit-gb`` (the machine is shared). Then a
least-squares fit of the model in simgen/memory.py on the points, and each point's prediction
with the shipped constants.

    python benchmarks/memory_model.py [--limit-gb 9] [--json out.json]
    python benchmarks/memory_model.py --point scenes/paris.yaml 50 1e5 1e6    # one point
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

POOL64 = "scenes/paris_vinloc_pool64.yaml"
POINTS = [  # (scene, UEs per call, samples_per_src, max_num_paths_per_src)
    ("scenes/paris.yaml", 5, 100_000, 1_000_000),
    ("scenes/paris.yaml", 50, 100_000, 1_000_000),
    ("scenes/paris.yaml", 50, 30_000, 1_000_000),
    (POOL64, 1, 10_000, 1_000_000),
    (POOL64, 1, 10_000, 100_000),
    (POOL64, 1, 100_000, 100_000),
    (POOL64, 5, 100_000, 100_000),
    (POOL64, 10, 100_000, 100_000),
]


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30


def point(scene: str, ues: int, samples: int, max_paths: int) -> dict:
    """Run in the child process: one call, one shard; RSS peaks in GiB."""
    from simgen.render import Renderer, plan

    p = plan(scene, ue_count=ues, batch_ues=ues)
    solver = p.cfg.solver.model_copy(
        update={"samples_per_src": samples, "max_num_paths_per_src": max_paths}
    )
    p.cfg = p.cfg.model_copy(update={"solver": solver})
    r = Renderer(p, "cpu")
    loaded = peak_gb()
    t0 = time.perf_counter()
    traced = r.trace(r.ue_position)
    t_trace = time.perf_counter() - t0
    traced_peak = peak_gb()
    r.shard_arrays(r.ue_position, traced)
    return {
        "scene": scene,
        "trps": len(r.ctx.trps),
        "ue_ant": p.cfg.ue.array.num_ant,
        "ues": ues,
        "samples_per_src": samples,
        "max_num_paths_per_src": max_paths,
        "max_depth": p.cfg.solver.max_depth,
        "paths": int(traced.pb.tau.shape[-1]),
        "loaded_gb": loaded,
        "trace_peak_gb": traced_peak,
        "peak_gb": peak_gb(),
        "trace_s": t_trace,
    }


def run_point(scene: str, ues: int, samples: int, max_paths: int, limit_gb: float):
    """One point in a child process; None if it failed or passed ``limit_gb``."""
    import psutil

    cmd = [sys.executable, __file__, "--point", scene, str(ues), str(samples), str(max_paths)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            if ps.memory_info().rss > limit_gb * 2**30:
                proc.kill()
                proc.wait()
                print(f"{scene} U={ues} S={samples}: killed above {limit_gb} GB", flush=True)
                return None
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    out = proc.stdout.read().strip().splitlines()
    return json.loads(out[-1]) if proc.returncode == 0 and out else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--point", nargs=4, metavar=("SCENE", "UES", "SAMPLES", "MAX_PATHS"))
    ap.add_argument("--limit-gb", type=float, default=9.0)
    ap.add_argument("--json")
    ap.add_argument("--refit", help="fit the points of an earlier --json instead of measuring")
    args = ap.parse_args()
    if args.point:
        scene, ues, samples, max_paths = args.point
        print(json.dumps(point(scene, int(ues), int(float(samples)), int(float(max_paths)))))
        return

    from simgen import memory
    from simgen.config import load_config

    rows = []
    if args.refit:  # the points of an earlier run, predictions with the constants of now
        rows = json.load(open(args.refit))["rows"]
    for scene, ues, samples, max_paths in [] if args.refit else POINTS:
        row = run_point(scene, ues, samples, max_paths, args.limit_gb)
        if row is not None:
            rows.append(row)
        print(json.dumps(row), flush=True)
    for row in rows:
        cfg = load_config(row["scene"])[0]
        solver = cfg.solver.model_copy(
            update={"max_num_paths_per_src": row["max_num_paths_per_src"]}
        )
        output = cfg.output.model_copy(update={"chunk_samples": row["ues"]})
        if row.get("solver_only"):  # a trace without its shard (the pool64 batching check)
            output = output.model_copy(update={"cir_taps": None, "chunk_samples": 1})
        row.setdefault("ue_ant", cfg.ue.array.num_ant)
        cfg = cfg.model_copy(update={"output": output, "solver": solver})
        shape = memory.TraceShape.of(cfg, row["trps"], row["samples_per_src"])
        row["shard_bytes"] = shape.shard_bytes
        row["predicted_gb"] = memory.predict_peak_bytes(shape, row["ues"]) / 2**30
    # least squares on the model's solver terms (simgen.memory.terms); the shard term is fixed
    # non-negative, BASE fixed at memory.BASE_BYTES
    from scipy.optimize import nnls

    x = np.array([memory.terms(r["trps"], r["samples_per_src"], r["max_num_paths_per_src"],
                               r["max_depth"], r["ues"], r["ue_ant"]) for r in rows])  # fmt: skip
    y = (
        np.array([r["peak_gb"] * 2**30 - memory.SHARD_FACTOR * r["shard_bytes"] for r in rows])
        - memory.BASE_BYTES
    )
    coef, _ = nnls(x[:, 1:], y)
    fit = dict(zip(memory.COEFFICIENTS[1:], coef.tolist(), strict=True))
    print("fit:", json.dumps(fit))
    print("| scene | T | U | S | M | paths | trace peak GB | peak GB | predicted GB | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['scene']} | {r['trps']} | {r['ues']} | {r['samples_per_src']:.0e} | "
            f"{r['max_num_paths_per_src']:.0e} | {r['paths']} | {r['trace_peak_gb']:.2f} | "
            f"{r['peak_gb']:.2f} | {r['predicted_gb']:.2f} | {r['trace_s']:.0f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "fit": fit}, f, indent=2)


if __name__ == "__main__":
    main()
