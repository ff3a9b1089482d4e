"""Peak-memory model of a render, for ``batch_ues: auto`` and ``simgen render --memory-gb``.

A render's peak is the solver call (Dr.Jit buffers of the ray tracer) plus what is alive
around it: the process after scene load and the channel arrays of the shards in flight
(with the pipeline, one shard being assembled while the next is traced). Model, in bytes:

    peak(U) = BASE + BUFFER * T * M * max(D, 1)       solver: candidate-path buffer, sized
                                                        max_num_paths_per_src per source
                   + RAY * T * S * (D + 1)            solver: rays of every source
                   + LINK * T * U * S * (D + 1)       solver: per receiver of the call
                   + RX_ANT * T * M * D * U * A         solver: per receiver antenna and slot
                   + SHARD * shard_bytes                CSI / CIR / path arrays of a shard

T TRPs (sources), U UEs per solver call, A antennas per UE, S samples_per_src,
M max_num_paths_per_src (Sionna allocates its candidate buffer for T * M paths up front: it is
what makes 64 TRPs heavy even at one UE per call), D max_depth, ``shard_bytes`` the
size of a shard's stored arrays per condition (+ CIR's float64 sinc kernel). Coefficients are
measured on CPU (LLVM) by ``benchmarks/memory_model.py`` (see the constants below); on a GPU
the same model is compared with the device memory, which over-estimates what the GPU holds of
the host-side terms, i.e. it errs towards smaller batches.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

# Measured 2026-12-03 on the 2-core / 24 GB CPU machine (Sionna RT 2.2, LLVM backend) with
# `python benchmarks/memory_model.py` (peak RSS, ru_maxrss, of a fresh process that loads the
# scene, traces one call of U UEs and assembles one shard): scenes/paris.yaml (4 TRPs) and
# scenes/paris_vinloc_pool64.yaml (64 TRPs) at several U, S and M (points in
# benchmarks/memory_model_points.json, table in docs/benchmarks.md, "Memory model"):
# non-negative least squares of the solver terms with BASE fixed, after subtracting the shard
# term. 9 points; the last (pool64, 7 UEs per call, M = 1e6: 19.5 GiB, /usr/bin/time -v) is
# what a first fit without the RX_ANT term under-predicted by 4 GiB. Within -1.2 / +0.6 GB of
# every point.
BASE_BYTES = 0.7e9  # interpreter, Sionna / Mitsuba / Dr.Jit, the loaded scene (fixed)
BUFFER_BYTES = 41.0  # per candidate path slot and depth (fit 41.5)
RAY_BYTES = 72.0  # per source ray and bounce (fit 71.5)
LINK_BYTES = 20.0  # per source ray, bounce and receiver of the call (fit 20.2)
RX_ANT_BYTES = 0.63  # per candidate slot, depth, receiver and receiver antenna (fit 0.634)
COEFFICIENTS = ("BASE_BYTES", "BUFFER_BYTES", "RAY_BYTES", "LINK_BYTES", "RX_ANT_BYTES")
SHARD_FACTOR = 3.0  # shard arrays: stored arrays, temporaries, two shards in flight (a bound,
# not fitted: the calibration points' shards are small next to the solver)
PATHS_GUESS = 64  # paths per link for shard sizes, before anything is traced

# Default budget: this share of the memory available now. The model is within -1.2 / +0.6 GB of
# every calibration point (docs/benchmarks.md); 0.6 would put pool64 (~14 GiB at one UE per
# call, most of it Sionna's fixed candidate buffer) at one UE per call on any 24 GB machine.
SAFE_FRACTION = 0.8


@dataclass(frozen=True)
class TraceShape:
    """The sizes the model needs (see the module docstring)."""

    trps: int
    samples_per_src: int
    max_paths_per_src: int
    max_depth: int
    ue_ant: int
    shard_bytes: float  # stored arrays of one shard, all conditions

    @classmethod
    def of(cls, cfg, trps: int, samples_per_src: int) -> TraceShape:
        """From a SceneConfig with ``trps`` TRPs and ``samples_per_src`` rays per source."""
        ants = cfg.ue.array.num_ant * cfg.trp_array.num_ant
        per_link = 8 * ants * cfg.ofdm.num_subcarriers  # csi, complex64
        if cfg.output.cir_taps:
            # taps (complex64) + the (P, taps) kernel: float64 x, float32 sinc, complex64
            per_link += 8 * ants * cfg.output.cir_taps + 20 * PATHS_GUESS * cfg.output.cir_taps
        if cfg.output.paths:
            per_link += cfg.output.max_paths * (8 * ants + 6 * 4 + max(cfg.solver.max_depth, 1))
        per_link += 8 * ants * PATHS_GUESS  # path gains of the trace
        conditions = len(cfg.weather.rain_rates_mm_h)
        shard = cfg.output.chunk_samples * trps * per_link * conditions
        return cls(
            trps,
            int(samples_per_src),
            int(cfg.solver.max_num_paths_per_src),
            int(cfg.solver.max_depth),
            int(cfg.ue.array.num_ant),
            float(shard),
        )


def terms(
    trps: int, samples: int, max_paths: int, depth: int, ues: int, ue_ant: int
) -> list[float]:
    """The solver terms of the model, in the order of COEFFICIENTS."""
    rays = trps * samples * (depth + 1)
    slots = trps * max_paths * max(depth, 1)
    return [1.0, slots, rays, rays * ues, slots * ues * ue_ant]


def predict_peak_bytes(shape: TraceShape, batch_ues: int) -> float:
    """Predicted peak resident memory (bytes) of a render tracing ``batch_ues`` UEs per call."""
    t = terms(
        shape.trps,
        shape.samples_per_src,
        shape.max_paths_per_src,
        shape.max_depth,
        batch_ues,
        shape.ue_ant,
    )
    coef = (BASE_BYTES, BUFFER_BYTES, RAY_BYTES, LINK_BYTES, RX_ANT_BYTES)
    return sum(c * x for c, x in zip(coef, t, strict=True)) + SHARD_FACTOR * shape.shard_bytes


def largest_batch(shape: TraceShape, budget_bytes: float, cap: int) -> int:
    """The largest batch in 1 .. ``cap`` predicted to fit ``budget_bytes`` (1 if none does)."""
    fits = [n for n in range(1, cap + 1) if predict_peak_bytes(shape, n) <= budget_bytes]
    return max(fits, default=1)


def available_bytes(gpu: bool = False) -> float:
    """Memory available now: the GPU's free memory (nvidia-smi) or the host's (psutil, else
    /proc/meminfo MemAvailable)."""
    if gpu:
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.split()
            return float(out[0]) * 2**20  # MiB, first GPU
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            pass  # fall back to host memory
    try:
        import psutil

        return float(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) * SAFE_FRACTION


def budget_bytes(memory_gb: float | None, gpu: bool = False) -> float:
    """The budget: ``memory_gb`` GiB if given, else SAFE_FRACTION of the memory available."""
    if memory_gb is not None:
        return float(memory_gb) * 2**30
    return SAFE_FRACTION * available_bytes(gpu)
