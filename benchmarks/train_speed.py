"""Training speed of one model in several precision / attention settings, in one process.

    python benchmarks/train_speed.py                          # Mateformer, 32x32 CSI, CPU or GPU
    python benchmarks/train_speed.py --store out/paris.zarr --trps 0 --subcarriers 0:32
    python benchmarks/train_speed.py --batch-size 500 --steps 200 --device cuda

Variants (same data, same seed, same model): on CUDA ``fp32 eager`` (the baseline: fp32, the
hand-written attention) vs ``bf16 fused`` (bf16 autocast + PyTorch SDPA); on a CPU (always fp32)
``fp32 eager`` vs ``fp32 fused``. For each: training samples/s after ``--warmup`` steps (JIT,
cuDNN autotune and allocator warm-up excluded), peak device memory, and the share of a step
spent gathering the batch (``FeatureBank``: pure indexing into the preloaded table) — if that
share is small the GPU is not starved by data loading. Prints one JSON line per variant and the
ratio of each to the baseline.

Without ``--store`` a synthetic contract store (random CSI, random positions) of ``--samples``
samples is written to a temporary folder: speed does not depend on the values.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def synthetic_store(path: Path, n: int, ant: int, sc: int, seed: int = 0) -> Path:
    """A one-TRP store per the dataset contract with random CSI (n, 1, 1, ant, sc)."""
    import xarray as xr
    import zarr

    from simgen.schema import VARIABLES, LinkState

    rng = np.random.default_rng(seed)
    csi = (rng.normal(size=(n, 1, 1, ant, sc)) + 1j * rng.normal(size=(n, 1, 1, ant, sc))) * 1e-5
    ue = np.column_stack([rng.uniform(-100, 100, (n, 2)), np.full(n, 1.5)])

    def var(name, data):
        dims, dtype, attrs = VARIABLES[name]
        return xr.Variable(dims, np.asarray(data).astype(dtype), attrs)

    xr.Dataset(
        {
            "csi": var("csi", csi),
            "ue_position": var("ue_position", ue),
            "link_state": var("link_state", np.full((n, 1), int(LinkState.LOS))),
        },
        coords={"trp_position": (("trp", "xyz"), np.array([[0.0, 0.0, 25.0]]))},
    ).chunk({"sample": 1024}).to_zarr(path, group="dry", zarr_format=3, consolidated=False)
    zarr.open_group(str(path), mode="a").attrs["carrier_frequency"] = 3.5e9
    return path


def data_seconds(sets, cfg, bank_cls, steps: int) -> float:
    """Seconds to gather ``steps`` batches the way the training loop does (indices -> tensors)."""
    import torch

    from loc.fit.supervised import _Batches

    ts = sets[0]
    bank = bank_cls(ts.store, cfg.device, preload=ts.train)
    batches = _Batches(len(ts.train), cfg.batch_size, cfg.seed, 0)
    sync = torch.cuda.synchronize if cfg.device == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for step in range(steps):
        rows = batches.rows(step)
        idx = ts.sequences[rows] if ts.sequences is not None else ts.train[rows]
        bank(idx), bank.xy(idx)
    sync()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mateformer")
    ap.add_argument("--store", type=Path, help="a simgen store (default: synthetic 32x32)")
    ap.add_argument("--group", default="dry")
    ap.add_argument("--trps", default="0")
    ap.add_argument("--subcarriers", default="all")
    ap.add_argument("--samples", type=int, default=4096, help="synthetic store size")
    ap.add_argument("--steps", type=int, default=60, help="measured steps per variant")
    ap.add_argument("--warmup", type=int, default=10, help="unmeasured first steps")
    ap.add_argument("--batch-size", type=int, default=32, help="paper: 500 (GPU)")
    ap.add_argument("--device", default="auto", help="cpu | cuda | auto")
    args = ap.parse_args()

    import torch

    from loc.data import CSIStore, FeatureBank, Selection, parse_index_list
    from loc.fit.supervised import TrainConfig, TrainSet, build_sequences, resolve_device, train

    dev = resolve_device(args.device)
    path = args.store or synthetic_store(
        Path(tempfile.mkdtemp(prefix="loc_speed_")) / "synthetic.zarr", args.samples, 32, 32
    )
    sel = Selection(
        trps=parse_index_list(args.trps), subcarriers=parse_index_list(args.subcarriers)
    )
    st = CSIStore(path, args.group, sel)
    train_idx = np.flatnonzero(st.valid)
    st.fit_transform(train_idx)
    if dev.type == "cuda":
        variants = {"fp32 eager": ("fp32", False), "bf16 fused": ("bf16", True)}
    else:
        variants = {"fp32 eager": ("fp32", False), "fp32 fused": ("fp32", True)}
    total = args.warmup + args.steps
    results = {}
    for name, (precision, fused) in variants.items():
        cfg = TrainConfig(
            model=args.model,
            steps=total,
            batch_size=args.batch_size,
            device=str(dev),
            precision=precision,
            fused_attention=fused,
            preload=True,
            log_every=args.warmup,  # first record = warm-up; the rest are measured
            n_neighbours=min(64, len(train_idx) - 1),
        )
        ts = TrainSet(st, train_idx)
        if cfg.model in ("mateformer", "alloc", "iclloc_gen", "iclloc_disc"):
            ts.sequences = build_sequences(ts, cfg)
        res = train(cfg, [ts])
        measured = [r for r in res.history if r["step"] > args.warmup]
        sps = float(np.mean([r["samples_per_s"] for r in measured]))
        step_s = args.batch_size / sps
        data_s = data_seconds([ts], cfg, FeatureBank, args.steps) / args.steps
        results[name] = {
            "model": args.model,
            "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
            "batch_size": args.batch_size,
            "samples_per_s": round(sps, 1),
            "step_ms": round(1e3 * step_s, 2),
            "data_ms": round(1e3 * data_s, 3),
            "data_share": round(data_s / step_s, 4),
            "peak_memory_mb": None
            if res.peak_memory_bytes is None
            else round(res.peak_memory_bytes / 2**20, 1),
        }
        print(json.dumps({"variant": name, **results[name]}), flush=True)
    base = results["fp32 eager"]
    for name, r in results.items():
        if name != "fp32 eager":
            ratio = r["samples_per_s"] / base["samples_per_s"]
            print(f"{name} / fp32 eager: samples/s x{ratio:.2f}")


if __name__ == "__main__":
    main()
