"""Peak-LR sweep of the default recipe (conditioned targets, warm-up + cosine): held-out mean
error of each model family at a few peak LRs, same store, split and steps, in one process.
The winners are ``loc.models.PEAK_LR``; results in docs/benchmarks.md ("Learning-rate sweep").

    python benchmarks/lr_sweep.py STORE [--n-train 450 --n-test 140 --steps 600]

STORE: any simgen store (the tests' tests/loc/scenes/learning_canyon.yaml render is the
default protocol: 600 UEs, 2 TRPs x 8 antennas, 32 subcarriers).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from loc.data import CSIStore, CSITransform, split_indices
from loc.evaluate import baseline_predictions, evaluate, localization_errors
from loc.fit.supervised import TrainConfig, TrainSet, train

SMALL = {  # CPU-sized widths (the test budget of tests/loc/test_learning.py)
    "cnn": {"width": 32},
    "mfcnet": {"hidden": 64},
    "mateformer": dict(d_model=32, depth=2, n_heads=4, d_ff=64, p_range=(8, 16), q_range=(1, 16)),
    "iclloc_gen": dict(d_model=32, depth=2, d_ff=64, max_context=16, min_context=4),
    "vinloc": dict(
        d_emb=16, depth=2, n_heads=2, d_ff=32, head_hidden=32, head_layers=2, enc_channels=(4, 8)
    ),
    "resnet_fp": dict(widths=(8, 16), hidden=32),
}
COMPLEX_INPUT = {"vinloc", "resnet_fp"}  # make their own features from the CFR


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--models", default=",".join(SMALL))
    ap.add_argument("--lrs", default="3e-4,1e-3,3e-3")
    ap.add_argument("--n-train", type=int, default=450)
    ap.add_argument("--n-test", type=int, default=140)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in a.models.split(","):
        domain = "freq" if name in COMPLEX_INPUT else "ad_power"
        st = CSIStore(a.store, "dry", transform=CSITransform(domain=domain))
        sp = split_indices(st.valid, a.n_train, a.n_test, seed=1)
        st.fit_transform(sp.train)
        base = baseline_predictions(st, st.xy[sp.train], sp.train, sp.test, k=a.k)
        b = {n: float(localization_errors(p, st.xy[sp.test]).mean()) for n, p in base.items()}
        for lr in (float(x) for x in a.lrs.split(",")):
            cfg = TrainConfig(
                model=name,
                model_kwargs=SMALL[name],
                steps=a.steps,
                batch_size=32,
                lr=lr,
                n_neighbours=a.k,
                device="cpu",
                log_every=a.steps,
            )
            t0 = time.perf_counter()
            model = train(cfg, [TrainSet(st, sp.train)]).model
            _, err = evaluate(model, st, sp.test, sp.train, k=a.k)
            rows.append(
                dict(
                    model=name,
                    lr=lr,
                    mean=float(err.mean()),
                    median=float(np.median(err)),
                    seconds=time.perf_counter() - t0,
                    **b,
                )
            )
            print(
                f"{name:11s} lr {lr:.0e}: mean {err.mean():6.2f} m, median {np.median(err):5.2f} m"
                f" ({rows[-1]['seconds']:.0f} s); "
                + ", ".join(f"{n} {v:.2f}" for n, v in b.items()),
                flush=True,
            )
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
