"""Rain: cost of N weather conditions from one trace vs N separate renders, and the mean
received-power drop per rain rate.

    python benchmarks/rain.py scenes/paris_mmwave_rain.yaml scenes/paris_60ghz_rain.yaml \
        --ue-count 200

For each scene: (a) one render with all rain rates (one trace), (b) one render per rain rate
(a trace each), same process, after a warm-up trace. Prints the wall-time ratio (b)/(a) and,
per rain rate, the mean drop of rx_power (dB) over links that have a path.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr


def timed_render(cfg_path: str, out: Path, ue_count: int, rates: list[float] | None, device: str):
    from simgen.config import WeatherConfig
    from simgen.render import Renderer, plan

    p = plan(cfg_path, out=out, ue_count=ue_count)
    if rates is not None:
        weather = WeatherConfig(rain_rates_mm_h=rates, polarization=p.cfg.weather.polarization)
        p.cfg = p.cfg.model_copy(update={"weather": weather})
    r = Renderer(p, device)
    r.trace(r.ue_position[: r.batch_ues])  # warm-up: JIT kernels for a full batch
    store = r.open_store(overwrite=True)
    t0 = time.perf_counter()
    r.render(store)
    return time.perf_counter() - t0, r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("scenes", nargs="+")
    ap.add_argument("--ue-count", type=int, default=200)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    results = []
    for scene in args.scenes:
        with tempfile.TemporaryDirectory() as tmp:
            t_one, r = timed_render(scene, Path(tmp) / "all.zarr", args.ue_count, None, args.device)
            rates = list(r.conditions.values())
            t_sep = sum(
                timed_render(scene, Path(tmp) / f"r{i}.zarr", args.ue_count, [rate], args.device)[0]
                for i, rate in enumerate(rates)
            )
            tree = xr.open_datatree(r.plan.out, engine="zarr")
            dry = tree["dry"]["rx_power"].values
            drops = {}
            for name, rate in r.conditions.items():
                wet = tree[name]["rx_power"].values
                ok = np.isfinite(dry) & np.isfinite(wet)
                drops[rate] = float(np.mean(dry[ok] - wet[ok]))
        res = {
            "scene": scene,
            "freq_ghz": r.plan.cfg.frequency_hz / 1e9,
            "ues": args.ue_count,
            "conditions": len(rates),
            "one_trace_s": t_one,
            "separate_s": t_sep,
            "speedup": t_sep / t_one,
            "mean_drop_db": drops,
        }
        results.append(res)
        print(
            f"{scene}: {len(rates)} conditions from one trace {t_one:.1f} s vs separate "
            f"{t_sep:.1f} s -> {t_sep / t_one:.2f}x",
            flush=True,
        )
        print(
            "  mean rx-power drop (dB): "
            + ", ".join(f"{k:g} mm/h {v:.2f}" for k, v in drops.items()),
            flush=True,
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
