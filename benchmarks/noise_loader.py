"""Cost of receiver noise drawn at read time: samples/s of ``CSIStore.read`` (the loader every
model, kNN and the FeatureBank use) without noise and with each kind of impairment, one process,
same samples, the chunk cache cleared before every pass (what a per-epoch redraw costs).

    python benchmarks/noise_loader.py out/cache/paris_vinloc_ue4000_44b8fe6d.zarr --variable cir
    python benchmarks/noise_loader.py out/paris.zarr --trps 0 --subcarriers 0:32

Prints one JSON line per variant and its ratio to the noiseless read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VARIANTS = ("noiseless", "awgn:10", "link_budget", "awgn:10,clock:3", "mult:0.1")


def main() -> None:
    from loc.data import CSIStore, CSITransform, Selection, parse_index_list
    from loc.noise import parse_noise

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--variable", default="csi")
    ap.add_argument("--trps", default="all")
    ap.add_argument("--subcarriers", default="all")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    sel = Selection(parse_index_list(a.trps), subcarriers=parse_index_list(a.subcarriers))
    st = CSIStore(a.store, selection=sel, transform=CSITransform(scale=1.0), variable=a.variable)
    idx = np.arange(min(a.samples, len(st)))
    base = None
    for spec in VARIANTS:
        noise = parse_noise(spec)
        best = np.inf
        for _ in range(a.repeat):
            st.set_noise(noise, queries=idx if noise.mult else None)  # clears the cache
            t0 = time.perf_counter()
            st.read(idx)
            best = min(best, time.perf_counter() - t0)
        rate = len(idx) / best
        base = base or rate
        print(json.dumps({"noise": spec, "samples_per_s": round(rate, 1),
                          "ratio_to_noiseless": round(rate / base, 3),
                          "shape": list(st.shape)}))  # fmt: skip


if __name__ == "__main__":
    main()
