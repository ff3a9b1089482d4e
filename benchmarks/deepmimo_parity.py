"""Parity and speed of our CSI against DeepMIMO's channel generator on the same ray-traced paths.

    python benchmarks/deepmimo_parity.py --quick         # 48 UEs x 2 TRPs, < 1 min on 2 cores
    python benchmarks/deepmimo_parity.py --ues 5000      # 10,000 links

1. Render ``scenes/street_canyon.yaml`` (2 TRPs with 2x4 arrays tilted by look_at, UEs with 1x2
   arrays, path arrays on) on the CPU.
2. Export the paths with :func:`simgen.interop.deepmimo.export_scenario` and open the folder with
   ``deepmimo.load``.
3. DeepMIMO's ``compute_channels`` on those paths, aligned to our conventions by
   :func:`simgen.interop.deepmimo.deepmimo_csi` (sqrt(N) scale, k*B/N grid from 0 vs centred
   subcarriers, element-0 vs centre phase reference and element order, carrier phase
   e^{-j2pi f_c tau}), against the store's CSI: relative error ||H_dm - H_ours|| / ||H_ours||
   per link (over antenna pairs and subcarriers).
4. Time to compute the channels of the same paths, each tool from the same inputs (one gain,
   delay and four angles per path): DeepMIMO ``compute_channels`` vs ours
   (:func:`simgen.interop.deepmimo.path_gains` steering vectors + :func:`simgen.channel.cfr`) on the
   CPU, and a torch port of ours on the GPU when ``torch.cuda.is_available()``.

The last line printed is ``max relative error <value>``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simgen.backend import select_backend  # noqa: E402


def render(tmp: Path, ues: int, subcarriers: int) -> Path:
    from simgen.render import Renderer, plan

    cfg = yaml.safe_load((ROOT / "scenes" / "street_canyon.yaml").read_text())
    cfg["trp_array"] = {"rows": 2, "cols": 4, "pattern": "iso", "polarization": "V"}
    cfg["ue"]["array"] = {"rows": 1, "cols": 2, "pattern": "iso", "polarization": "V"}
    cfg["ue"]["sampling"] = {"count": ues}
    cfg["ofdm"] = {"num_subcarriers": subcarriers, "subcarrier_spacing_hz": 30e3}
    cfg["solver"]["batch_ues"] = min(ues, 100)  # solver memory grows with UEs per call
    cfg["output"].update(path=str(tmp / "render.zarr"), chunk_samples=min(ues, 500))
    (tmp / "scene.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    r = Renderer(plan(tmp / "scene.yaml"), "cpu")
    res = r.render(r.open_store(overwrite=True))
    print(f"rendered {res.links_rendered} links in {res.seconds:.1f} s ({res.backend})")
    return tmp / "render.zarr"


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def ours_numpy(inp: dict, trp, ue, freqs):
    from simgen import channel
    from simgen.interop import deepmimo as sd

    pa = sd.path_gains(
        inp["a"],
        inp["aod_zen"],
        inp["aod_az"],
        inp["aoa_zen"],
        inp["aoa_az"],
        trp,
        ue,
        inp["orient"],
    )
    return channel.cfr(pa, inp["tau"], freqs)


def ours_torch(inp: dict, trp, ue, freqs, device: str):
    """Torch port of path_gains + channel.cfr (same formula: float64 phase, complex64 sum)."""
    import torch

    from simgen.interop import deepmimo as sd

    t = {k: torch.as_tensor(np.ascontiguousarray(v), device=device) for k, v in inp.items()}
    f = torch.as_tensor(freqs, dtype=torch.float64, device=device)

    def steer(array, zen, az, rot):
        u = torch.stack(
            [torch.sin(zen) * torch.cos(az), torch.sin(zen) * torch.sin(az), torch.cos(zen)], -1
        ).double()
        local = torch.einsum("...ji,...j->...i", rot, u)
        pos = torch.as_tensor(sd.element_positions(array), device=device)
        phase = torch.nan_to_num(2 * torch.pi * local @ pos.T, nan=0.0)
        return torch.polar(torch.ones_like(phase), phase).to(torch.complex64)

    rot_t = torch.as_tensor(sd.rotation_matrix(inp["orient"]), device=device)[:, None]
    s_t = steer(trp, t["aod_zen"], t["aod_az"], rot_t)  # (B, T, P, Mt)
    s_r = steer(ue, t["aoa_zen"], t["aoa_az"], torch.eye(3, dtype=torch.float64, device=device))
    a = torch.nan_to_num(t["a"].to(torch.complex64))  # padding: a = 0 (angles NaN)
    pa = a[:, :, None, None, :] * s_r.movedim(-1, 2)[:, :, :, None] * s_t.movedim(-1, 2)[:, :, None]
    cycles = t["tau"].double()[..., None] * f
    cycles = cycles - torch.floor(cycles)
    phasor = torch.exp(-2j * torch.pi * cycles).to(torch.complex64)  # (B, T, P, K)
    h = pa @ phasor[:, :, None]
    if device == "cuda":
        torch.cuda.synchronize()
    return h


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="48 UEs x 2 TRPs (< 1 min on 2 cores)")
    ap.add_argument("--ues", type=int, default=5000, help="UEs (links = 2 x UEs)")
    ap.add_argument("--subcarriers", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3, help="timing: best of N runs")
    ap.add_argument(
        "--threads", type=int, help="threads for our numpy code (default: channel.THREADS)"
    )
    ap.add_argument("--csv", type=Path, help="write the per-link errors here")
    ap.add_argument("--store", type=Path, help="reuse a rendered store instead of rendering")
    args = ap.parse_args()
    ues = 48 if args.quick else args.ues

    select_backend("cpu")
    from simgen import channel

    if args.threads:
        channel.THREADS = args.threads
    import deepmimo  # noqa: F401 - fail early when the optional extra is missing

    from simgen.interop import deepmimo as sd
    from simgen.store import open_store

    tmp = Path(tempfile.mkdtemp(prefix="simgen_dm_bench_"))
    path = args.store or render(tmp, ues, args.subcarriers)
    st = open_store(path)
    g = st.root["dry"]
    lay = st.layout
    trp, ue = sd.store_arrays(dict(st.root.attrs))
    orient = g["trp_orientation"][:].astype(np.float64)
    freqs = st.root.attrs["carrier_frequency_hz"] + g["subcarrier"][:]
    csi = g["csi"][:]
    n_paths = g["num_paths"][:]
    if (n_paths > lay.path).any():
        print(f"warning: links with more than {lay.path} paths: the store keeps the strongest")

    t0 = time.perf_counter()
    folder = sd.export_scenario(path, tmp / "deepmimo_export", overwrite=True)
    p_max = int(n_paths.max())
    ds = sd.load_with_deepmimo(folder, max_paths=p_max)
    print(f"exported + deepmimo.load in {time.perf_counter() - t0:.1f} s -> {folder}")

    # parity, per link
    errs, h_dm = [], []
    for t in range(lay.trp):
        h = sd.deepmimo_csi(
            ds[t], frequencies_hz=freqs, trp_array=trp, ue_array=ue, trp_orientation=orient[t]
        )
        h_dm.append(h)
        num = np.linalg.norm((h - csi[:, t]).reshape(lay.sample, -1), axis=1)
        den = np.linalg.norm(csi[:, t].reshape(lay.sample, -1), axis=1)
        errs.append(np.where(den > 0, num / np.where(den > 0, den, 1), np.nan))
    err = np.stack(errs, 1)  # (sample, trp)
    links = int(np.isfinite(err).sum())
    print(
        f"\nparity over {links} links with paths ({lay.sample} UEs x {lay.trp} TRPs, "
        f"{trp.num_ant}x{ue.num_ant} antennas, {lay.subcarrier} subcarriers, <= {p_max} paths)"
    )
    for t in range(lay.trp):
        e = err[:, t][np.isfinite(err[:, t])]
        print(
            f"  TRP {t}: max {e.max():.2e}  p99 {np.percentile(e, 99):.2e}  "
            f"median {np.median(e):.2e}"
        )
    worst = np.argsort(np.nan_to_num(err, nan=-1).ravel())[::-1][:5]
    print(
        "  worst links (ue, trp, error, paths): "
        + ", ".join(
            f"({i // lay.trp}, {i % lay.trp}, {err.ravel()[i]:.2e}, {n_paths.ravel()[i]})"
            for i in worst
        )
    )
    if args.csv:
        with args.csv.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["ue", "trp", "num_paths", "rel_error"])
            for (i, t), e in np.ndenumerate(err):
                w.writerow([i, t, int(n_paths[i, t]), f"{e:.3e}"])

    # timing on the same paths: single-element gains + angles + delays -> CSI
    a, p = sd.element_gains(st)
    sl = (slice(None), slice(None), slice(0, p_max))
    inp = {
        "a": a[sl],
        "tau": np.nan_to_num(p["path_tau"][sl]).astype(np.float32),
        **{k: p[f"path_{k}"][sl] for k in ("aod_zen", "aod_az", "aoa_zen", "aoa_az")},
        "orient": orient,
    }
    dm_params = []
    for t in range(lay.trp):  # the aligned inputs are prepared once, outside the timing
        dm_params.append(sd.deepmimo_channel_params(freqs, trp, ue, orient[t], p_max))
        ds[t].phase = sd.aligned_phase(ds[t], freqs, trp, ue, orient[t])

    def run_dm():
        return [ds[t].compute_channels(dm_params[t]) for t in range(lay.trp)]

    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()):  # tqdm bars
        t_dm, _ = best_of(run_dm, args.repeat)
    t_np, h_np = best_of(lambda: ours_numpy(inp, trp, ue, freqs), args.repeat)
    same = np.linalg.norm(h_np - csi) / np.linalg.norm(csi)
    print(f"\ntiming, same {links} links, best of {args.repeat} (CSI of shape {csi.shape})")
    print(f"  deepmimo compute_channels (CPU, numpy)  {t_dm:8.3f} s")
    print(
        f"  simgen steering + cfr     (CPU, numpy, {channel.THREADS} threads)  {t_np:8.3f} s   "
        f"speed-up x{t_dm / t_np:.1f}   (vs store CSI: {same:.1e})"
    )
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(max(torch.get_num_threads(), 1))
        t_tc, h_tc = best_of(lambda: ours_torch(inp, trp, ue, freqs, "cpu"), args.repeat)
        d = np.linalg.norm(h_tc.numpy() - h_np) / np.linalg.norm(h_np)
        print(
            f"  simgen torch port         (CPU)         {t_tc:8.3f} s   "
            f"speed-up x{t_dm / t_tc:.1f}   (vs numpy: {d:.1e})"
        )
        if torch.cuda.is_available():
            ours_torch(inp, trp, ue, freqs, "cuda")  # warm-up
            t_gpu, h_gpu = best_of(lambda: ours_torch(inp, trp, ue, freqs, "cuda"), args.repeat)
            d = np.linalg.norm(h_gpu.cpu().numpy() - h_np) / np.linalg.norm(h_np)
            print(
                f"  simgen torch port         (GPU {torch.cuda.get_device_name()})  "
                f"{t_gpu:8.4f} s   speed-up x{t_dm / t_gpu:.1f} vs deepmimo CPU "
                f"(vs numpy: {d:.1e}); deepmimo has no GPU generator"
            )
        else:
            print("  GPU: not measured (torch.cuda.is_available() is False)")
    print(f"max relative error {np.nanmax(err):.3e}")


if __name__ == "__main__":
    main()
