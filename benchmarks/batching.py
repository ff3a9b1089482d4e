"""Paths lost and links/s of batched tracing: Sionna's stock de-duplication vs simgen's fix.

For each scene: a reference trace of one UE per call with Sionna's stock generator and a large
hash table (``--ref-table`` slots per source), then every size in ``--sizes`` with the stock
generator (default table) and with :mod:`simgen.dedupe`'s collision-tolerant one, all in this
process on the same UEs and solver settings. Paths are matched per link by interaction codes
and delay (< 1 ps). Each (variant, size) is timed after a warm-up call of that size.

    python benchmarks/batching.py scenes/paris.yaml scenes/munich.yaml --ue-count 50 \\
        [--sizes 1 5 25 50] [--samples 1e5] [--device gpu] [--json out.json]

A link is one TRP-UE pair; links/s counts tracing plus our path compaction, not CSI or writes.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def trace_all(tracer, positions: np.ndarray, size: int):
    """All ``positions`` traced ``size`` per call; (PathBatch, seconds)."""
    from simgen.trace import concat

    t0 = time.perf_counter()
    parts = [tracer.trace(positions[a : a + size]) for a in range(0, len(positions), size)]
    return concat(parts), time.perf_counter() - t0


def run_scene(
    path: str, n_ue: int, sizes: list[int], samples: int | None, ref_table: int, device: str
):
    from simgen import dedupe
    from simgen.render import Renderer, plan
    from simgen.trace import Tracer

    r = Renderer(plan(path, ue_count=n_ue), device)
    cfg = r.plan.cfg.solver
    if samples is not None:
        cfg = cfg.model_copy(update={"samples_per_src": samples})
    r.tracer.clear()
    pos = r.ue_position
    n_trp = len(r.ctx.trps)
    stock = Tracer(r.ctx.scene, cfg, exact=False)
    with dedupe.table_slots(ref_table):
        stock.trace(pos[:1])  # warm-up
        ref, t_ref = trace_all(stock, pos, 1)
    stock.clear()  # tracers share the scene: only one set of receivers at a time
    rows = [
        dict(variant="reference", size=1, lost=0, extra=0, max_db=0.0,
             links_per_s=len(pos) * n_trp / t_ref)
    ]  # fmt: skip
    exact = Tracer(r.ctx.scene, cfg, exact=True)
    assert exact.exact, dedupe.unsupported_reason()
    for size in sizes:
        for name, tracer in (("stock", stock), ("fixed", exact)):
            tracer.trace(pos[:size])  # warm-up at this size
            dups = tracer.duplicates_removed
            pb, t = trace_all(tracer, pos, size)
            tracer.clear()
            d = dedupe.compare_paths(ref, pb)
            rows.append(
                dict(
                    variant=name,
                    size=size,
                    lost=d.lost,
                    extra=d.extra,
                    max_db=d.max_db,
                    links_per_s=len(pos) * n_trp / t,
                    duplicates_removed=tracer.duplicates_removed - dups,
                )
            )
            print(json.dumps({"scene": path, **rows[-1]}), flush=True)
    return dict(scene=path, ue=len(pos), trp=n_trp, reference_paths=int(ref.valid.sum()), rows=rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("scenes", nargs="+")
    ap.add_argument("--ue-count", type=int, default=50)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 25, 50])
    ap.add_argument("--samples", type=float, help="samples_per_src (default: the scene's)")
    ap.add_argument("--ref-table", type=float, default=2**24, help="reference table slots")
    ap.add_argument("--device", default="cpu", help="cpu, gpu or auto")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    samples = None if args.samples is None else int(args.samples)
    table = int(args.ref_table)
    results = [
        run_scene(s, args.ue_count, args.sizes, samples, table, args.device) for s in args.scenes
    ]
    for res in results:
        print(f"\n{res['scene']}: {res['ue']} UEs x {res['trp']} TRPs, "
              f"{res['reference_paths']} reference paths")  # fmt: skip
        print("| variant | UEs per call | paths lost | extra | max dB | links/s |")
        print("|---|---|---|---|---|---|")
        for w in res["rows"]:
            print(f"| {w['variant']} | {w['size']} | {w['lost']} | {w['extra']} | "
                  f"{w['max_db']:.2g} | {w['links_per_s']:.1f} |")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
