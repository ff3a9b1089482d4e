"""Held-out error vs training size for the single-TRP models and the baseline rows, on one
store, at a CPU budget (issue #13's measurement): one process, the same test samples for every
size and model (the tail of one seeded permutation; smaller training sets are subsets of larger
ones), conditioned recipe, angle-delay power input.

    python benchmarks/learning_curve.py STORE --sizes 1000,2000,3500 --n-test 600 \\
        --out docs/figures/learning_curve

Writes OUT.json, OUT.md (a table: mean / median / p90 m, fit seconds) and OUT.png (mean error
vs training size, log-log).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from loc.data import CSIStore, CSITransform, Selection, parse_index_list, split_indices
from loc.evaluate import baseline_predictions, error_metrics, evaluate, localization_errors
from loc.fit.supervised import TrainConfig, TrainSet, train

CPU = {  # the single_scenario protocol's cpu budget widths
    "cnn": {},
    "mfcnet": {},
    "mateformer": {"d_model": 64, "depth": 2, "n_heads": 4, "d_ff": 128},
    "iclloc_gen": {"d_model": 64, "depth": 2, "d_ff": 128},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--trps", default="0")
    ap.add_argument("--subcarriers", default="0:32")
    ap.add_argument("--sizes", default="1000,2000,3500")
    ap.add_argument("--n-test", type=int, default=600)
    ap.add_argument("--models", default="cnn,mfcnet,mateformer,iclloc_gen")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="learning_curve")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sel = Selection(trps=parse_index_list(a.trps), subcarriers=parse_index_list(a.subcarriers))
    sizes = [int(s) for s in a.sizes.split(",")]
    rows: dict[str, dict[int, dict]] = {}
    for n in sizes:
        st = CSIStore(a.store, "dry", sel, CSITransform(domain="ad_power"))
        sp = split_indices(st.valid, n, a.n_test, seed=1, test_start=int(st.valid.sum()) - a.n_test)
        st.fit_transform(sp.train)
        base = baseline_predictions(st, st.xy[sp.train], sp.train, sp.test, coarse_error=1.0, k=a.k)
        for name, pred in base.items():
            m = error_metrics(localization_errors(pred, st.xy[sp.test]))
            rows.setdefault(f"baseline: {name}", {})[n] = {**m, "seconds": 0.0}
        for model in a.models.split(","):
            cfg = TrainConfig(
                model=model,
                model_kwargs=CPU.get(model, {}),
                steps=a.steps,
                batch_size=a.batch_size,
                n_neighbours=a.k,
                device="cpu",
                log_every=a.steps,
            )
            t0 = time.perf_counter()
            res = train(cfg, [TrainSet(st, sp.train)])
            _, err = evaluate(res.model, st, sp.test, sp.train, k=a.k)
            rows.setdefault(model, {})[n] = {
                **error_metrics(err),
                "seconds": time.perf_counter() - t0,
            }
            print(
                f"n={n} {model}: mean {err.mean():.2f} m ({rows[model][n]['seconds']:.0f} s)",
                flush=True,
            )
        for name in (r for r in rows if r.startswith("baseline")):
            print(f"n={n} {name}: mean {rows[name][n]['mean']:.2f} m", flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "store": a.store,
        "trps": a.trps,
        "subcarriers": a.subcarriers,
        "steps": a.steps,
        "batch_size": a.batch_size,
        "k": a.k,
        "n_test": a.n_test,
        "sizes": sizes,
    }
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [
        "| model | " + " | ".join(f"n = {n}: mean / median / p90 (fit s)" for n in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for name, by in rows.items():
        cells = [
            f"{by[n]['mean']:.2f} / {by[n]['median']:.2f} / {by[n]['p90']:.2f}"
            + (f" ({by[n]['seconds']:.0f})" if by[n]["seconds"] else "")
            for n in sizes
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for name, by in rows.items():
        style = "--" if name.startswith("baseline") else "-o"
        ax.plot(sizes, [by[n]["mean"] for n in sizes], style, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training samples")
    ax.set_ylabel("held-out mean error (m)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{Path(a.store).name}, TRP {a.trps}, {a.steps} steps (CPU)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
