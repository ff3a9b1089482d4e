"""``simgen render``: config -> scene -> per shard (trace, labels, CSI per condition, write)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import channel, labels, memory, provenance, receiver
from .backend import Device, select_backend
from .config import AUTO_BATCH_CPU, AUTO_BATCH_GPU, SamplingConfig, SceneConfig, load_config
from .dedupe import FALLBACK_BATCH
from .errors import ConfigError, StoreError
from .rain import port_tilts
from .schema import CRS_ATTR, WORLD_ATTR
from .store import Layout, Store, condition_name, create_or_resume, open_store
from .trace import PathBatch, Tracer, concat

Progress = Callable[[int], None]  # called with the number of samples just finished


@dataclass
class RenderPlan:
    """Everything decided before tracing starts."""

    cfg: SceneConfig
    config_text: str
    scene_path: str
    out: Path
    overrides: dict = field(default_factory=dict)
    samples_per_src: int | None = None  # resolved density when the config says "auto"
    config_path: str = ""  # the scene YAML (an input the output must not overlap)
    pipeline: bool = True  # overlap shard k's channel + write with shard k+1's tracing
    memory_gb: float | None = None  # budget for batch_ues: auto (None: memory.default_budget)


@dataclass
class RenderResult:
    store: Path
    samples: int
    trps: int
    links_rendered: int
    shards_rendered: int
    shards_skipped: int
    solver_calls: int
    seconds: float
    backend: str
    times: dict = field(default_factory=dict)  # stage -> seconds (see Renderer.stage_times)

    @property
    def links_per_s(self) -> float:
        return self.links_rendered / self.seconds if self.seconds > 0 else float("nan")

    def time_split(self) -> str:
        """One line: seconds spent per stage (channel and write overlap tracing when
        pipelined; waiting is the tracing thread blocked on the previous shard)."""
        t = self.times
        return "time: " + " / ".join(f"{k} {t.get(k, 0.0):.1f}" for k in STAGES) + " s"


# Stages of a render (Renderer.stage_times): trace = solver calls (+ receivers, conversion,
# dedupe), labels = link state by ray test, channel = CSI / CIR / rain / SNR / path arrays,
# write = Zarr region writes, waiting = tracing blocked until the previous shard is written.
STAGES = ("trace", "labels", "channel", "write", "waiting")


def plan(
    config_path: str | Path,
    *,
    out: str | Path | None = None,
    ue_count: int | None = None,
    batch_ues: int | None = None,
    pipeline: bool = True,
    memory_gb: float | None = None,
) -> RenderPlan:
    """Read and validate the config and apply command-line overrides."""
    cfg, text, scene_path = load_config(config_path)
    overrides: dict = {}
    if ue_count is not None:
        ue = cfg.ue.model_copy(update={"sampling": SamplingConfig(count=ue_count)})
        cfg = cfg.model_copy(update={"ue": ue})
        overrides["ue_count"] = ue_count
    if batch_ues is not None:
        cfg = cfg.model_copy(
            update={"solver": cfg.solver.model_copy(update={"batch_ues": batch_ues})}
        )
    out_path = Path(out) if out is not None else Path(cfg.output.path)  # relative to the CWD
    return RenderPlan(
        cfg,
        text,
        scene_path,
        out_path,
        overrides,
        config_path=str(config_path),
        pipeline=pipeline,
        memory_gb=memory_gb,
    )


def _select_paths(pb: PathBatch, max_paths: int) -> PathBatch:
    """Keep the ``max_paths`` strongest paths per link (re-sorted by delay), pad to max_paths."""
    p = pb.tau.shape[-1]
    if p > max_paths:
        power = np.where(pb.valid, (np.abs(pb.a) ** 2).mean(axis=(2, 3)), -1.0)
        keep = np.sort(np.argsort(-power, axis=-1, kind="stable")[..., :max_paths], axis=-1)
        pb = pb.take_paths(keep)
    return pb


def _path_arrays(pb: PathBatch, a: np.ndarray, max_paths: int, depth: int) -> dict:
    """Path-level variables padded to (…, max_paths): NaN delay/angles, 0 gain for padding."""
    p = pb.tau.shape[-1]
    pad = max_paths - p

    def padded(x: np.ndarray, fill, axis: int = -1) -> np.ndarray:
        widths = [(0, 0)] * x.ndim
        widths[axis] = (0, pad)
        return np.pad(x, widths, constant_values=fill)

    def masked(x: np.ndarray) -> np.ndarray:
        return padded(np.where(pb.valid, x, np.nan).astype(np.float32), np.nan)

    inter = pb.interactions[..., :depth]
    inter = np.pad(inter, [(0, 0)] * 3 + [(0, depth - inter.shape[-1])])
    return {
        "path_tau": masked(pb.tau),
        "path_a": padded(a, 0),
        "path_aod_az": masked(pb.aod_az),
        "path_aod_zen": masked(pb.aod_zen),
        "path_aoa_az": masked(pb.aoa_az),
        "path_aoa_zen": masked(pb.aoa_zen),
        "path_doppler": masked(pb.doppler),
        "path_interactions": padded(inter, 0, axis=2),
    }


@dataclass
class Traced:
    """Paths and geometric labels of a block of samples (labels need the scene of their
    snapshot, so they are computed right after tracing)."""

    pb: PathBatch
    link_state: np.ndarray  # (B, T) int8
    blocker: np.ndarray  # (B, T) int16

    @staticmethod
    def concat(parts: list[Traced]) -> Traced:
        if len(parts) == 1:
            return parts[0]
        return Traced(
            concat([t.pb for t in parts]),
            np.concatenate([t.link_state for t in parts]),
            np.concatenate([t.blocker for t in parts]),
        )


def add_duplicates(store: Store, n: int) -> None:
    """Add ``n`` to the store's root attribute ``duplicate_paths_removed``: repeated paths of a
    link dropped after the solves (:func:`simgen.dedupe.duplicate_mask`). A run that stops
    before its end does not add the count of the shards it finished."""
    attrs = store.root.attrs
    attrs["duplicate_paths_removed"] = int(attrs.get("duplicate_paths_removed", 0)) + int(n)


class Renderer:
    """Holds the loaded scene and tracer; renders shards into a store.

    Samples are snapshot-major: sample = snapshot * n_ue + ue, every snapshot has the same UEs.
    """

    def __init__(self, p: RenderPlan, device: Device = "auto"):
        self.plan = p
        self.backend = select_backend(device)
        from . import scene  # imports sionna.rt: only after the backend is chosen

        self.ctx = scene.load(p.cfg, p.scene_path)
        self.category_counts = scene.category_counts(self.ctx)  # category -> number of objects
        self.ue_position = self.ctx.ue_position  # (n_ue, 3)
        self.tracer = Tracer(self.ctx.scene, p.cfg.solver)
        if p.samples_per_src is not None:
            self._use_density(p.samples_per_src)
        cfg = p.cfg
        self.stage_times = dict.fromkeys(STAGES, 0.0)  # seconds per stage, summed over renders
        self.memory_note = ""  # how batch_ues was chosen / a warning (printed by the CLI)
        self.batch_ues = self._batch_size()
        self.frequencies = cfg.frequency_hz + channel.subcarrier_offsets(
            cfg.ofdm.num_subcarriers, cfg.ofdm.spacing_hz
        )
        self.conditions = {condition_name(r): r for r in cfg.weather.rain_rates_mm_h}
        self.tilts = port_tilts(cfg.trp_array.polarization, cfg.weather.polarization)
        cell = cfg.weather.rain_cell_km
        self.rain_cell_m = None if cell is None else cell * 1000.0
        fleet = self.ctx.fleet
        self.times = fleet.plan.time if fleet is not None else np.zeros(1)
        n_ue, n_snap = len(self.ue_position), len(self.times)
        self.sample_snapshot = np.repeat(np.arange(n_snap, dtype=np.int32), n_ue)
        self.sample_position = self.ctx.ue_track.reshape(n_snap * n_ue, 3)  # moves in time
        self.ue_velocity = self.ctx.ue_velocity
        self.sample_velocity = np.tile(self.ue_velocity, (n_snap, 1))
        rx = cfg.receiver
        self.bandwidth_hz = cfg.ofdm.num_subcarriers * cfg.ofdm.spacing_hz
        self.tx_power_dbm = np.array([t.tx_power_dbm for t in self.ctx.trps], np.float32)
        noise = receiver.noise_power_dbm(self.bandwidth_hz, rx.noise_figure_db, rx.temperature_k)
        self.noise_dbm = np.full(len(self.ctx.trps), noise, np.float32)  # same UE for all TRPs

    def _batch_size(self) -> int:
        """UEs per solver call: the config's number, or for ``auto`` the largest that the
        memory model (:mod:`simgen.memory`) fits in the budget, at most AUTO_BATCH_*."""
        cfg, gpu = self.plan.cfg, not self.backend.startswith("llvm")
        cap = AUTO_BATCH_GPU if gpu else AUTO_BATCH_CPU
        if not self.tracer.exact:  # stock Sionna de-duplication: exact only one UE per call
            cap = FALLBACK_BATCH
        spp = self.tracer.cfg.samples_per_src
        spp = max(cfg.solver.calibration.candidates) if spp == "auto" else spp
        shape = memory.TraceShape.of(cfg, len(self.ctx.trps), spp)
        budget = memory.budget_bytes(self.plan.memory_gb, gpu)
        if cfg.solver.batch_ues == "auto":
            n = memory.largest_batch(shape, budget, cap)
            peak = memory.predict_peak_bytes(shape, n)
            self.memory_note = (
                f"batch_ues auto: {n} UEs per solver call (predicted peak "
                f"{peak / 2**30:.1f} GB of a {budget / 2**30:.1f} GB budget"
                + (", nothing fits: one UE per call" if peak > budget else "")
                + ")"
            )
            return n
        n = int(cfg.solver.batch_ues)
        peak = memory.predict_peak_bytes(shape, n)
        if peak > budget:
            self.memory_note = (
                f"warning: batch_ues {n} is predicted to peak at {peak / 2**30:.1f} GB, over the "
                f"{budget / 2**30:.1f} GB budget (--memory-gb); batch_ues: auto would use "
                f"{memory.largest_batch(shape, budget, cap)}"
            )
        return n

    def layout(self) -> Layout:
        cfg, fleet = self.plan.cfg, self.ctx.fleet
        return Layout(
            sample=len(self.sample_position),
            trp=len(self.ctx.trps),
            ue_ant=cfg.ue.array.num_ant,
            trp_ant=cfg.trp_array.num_ant,
            subcarrier=cfg.ofdm.num_subcarriers,
            path=cfg.output.max_paths,
            depth=max(cfg.solver.max_depth, 1),
            chunk=cfg.output.chunk_samples,
            with_paths=cfg.output.paths,
            snapshot=len(self.times),
            tap=cfg.output.cir_taps or 0,
            vehicle=0 if fleet is None else len(fleet.plan.vtype),
        )

    def _use_density(self, samples: int) -> None:
        self.plan.samples_per_src = int(samples)
        self.tracer.cfg = self.plan.cfg.solver.model_copy(update={"samples_per_src": int(samples)})

    def resolve_density(self, overwrite: bool = False) -> dict | None:
        """For ``samples_per_src: auto``: the density a store being resumed used, else the
        cheapest one meeting the calibration target (measured now). Returns the calibration."""
        cfg, p = self.plan.cfg, self.plan
        if cfg.solver.samples_per_src != "auto" or p.samples_per_src is not None:
            return None
        if p.out.exists() and not overwrite:
            attrs = open_store(p.out).root.attrs
            if attrs.get("config_hash") == cfg.content_hash() and "samples_per_src" in attrs:
                self._use_density(attrs["samples_per_src"])
                return attrs.get("calibration")
        from .calibrate import calibrate

        cal = calibrate(self, cfg.solver.calibration)
        if cal.chosen is None:
            best = max(cal.rows, key=lambda r: r.both_ok)
            raise ConfigError(
                "solver.samples_per_src: auto: no candidate density reaches the calibration "
                f"target of {cal.target:.1%} (best {best.both_ok:.1%} at "
                f"{best.samples_per_src:.0e}); add denser candidates or lower "
                "solver.calibration.target"
            )
        self._use_density(cal.chosen)
        return cal.as_dict()

    def open_store(self, overwrite: bool = False, force_resume: bool = False) -> Store:
        """Create the store, or reopen it to resume; StoreError if it was made from another
        config, other scene files, package versions or backend (unless ``force_resume``, whose
        overridden differences are kept in ``self.forced_resume`` and the store's attrs)."""
        calibration = self.resolve_density(overwrite)
        cfg, p = self.plan.cfg, self.plan
        fp = provenance.fingerprint(cfg.scene, p.scene_path, self.backend)
        attrs = {
            "title": f"simgen dataset: {cfg.name}",
            "scene_name": cfg.name,
            "scene_config_yaml": p.config_text,
            "overrides": p.overrides,
            "carrier_frequency_hz": cfg.frequency_hz,
            "subcarrier_spacing_hz": cfg.ofdm.spacing_hz,
            "num_subcarriers": cfg.ofdm.num_subcarriers,
            "solver_seed": cfg.solver.seed,
            "samples_per_src": self.tracer.cfg.samples_per_src,
            "calibration": calibration,
            "exact_batching": self.tracer.exact,  # simgen.dedupe's fix in use
            "duplicate_paths_removed": 0,  # summed over shards by add_duplicates
            "ue_seed": cfg.ue.seed,
            "traffic_mode": None if cfg.traffic is None else cfg.traffic.mode,
            "versions": provenance.versions(),
            provenance.ATTR: {k: v for k, v in fp.items() if k != "versions"},
            "Conventions": "CF-1.10",
            "scene_bbox_m": None
            if self.ctx.bbox_min is None
            else [self.ctx.bbox_min.tolist(), self.ctx.bbox_max.tolist()],
            "link_state_codes": {s.name: int(s) for s in labels.LinkState},
            "object_categories": self.category_counts,
            "rain_polarization_tilts_deg": list(self.tilts),  # per TRP port
            **self.world_attrs(),
        }
        static = {
            "ue_position": self.sample_position,
            "ue_velocity": self.sample_velocity,
            "snapshot": self.sample_snapshot,
            "time": self.times[self.sample_snapshot].astype(np.float32),
            "trp": np.array([t.name for t in self.ctx.trps]),
            "trp_position": self.ctx.trp_position,
            "trp_orientation": self.ctx.trp_orientation,
            "trp_tx_power": self.tx_power_dbm,
            "subcarrier": self.frequencies - cfg.frequency_hz,
            "noise_power_dbm": self.noise_dbm,
            "noise_figure_db": cfg.receiver.noise_figure_db,
            "temperature_k": cfg.receiver.temperature_k,
            "bandwidth_hz": self.bandwidth_hz,
        }
        if self.ctx.fleet is not None:
            fleet = self.ctx.fleet.plan
            static.update(
                vehicle_position=fleet.position,
                vehicle_velocity=fleet.velocity,
                vehicle_yaw=fleet.yaw,
                vehicle_type=fleet.vtype,
            )
        store = create_or_resume(
            p.out,
            config_hash=cfg.content_hash(),
            layout=self.layout(),
            conditions=self.conditions,
            attrs=attrs,
            static=static,
            overwrite=overwrite,
            inputs=(p.config_path, p.scene_path),
        )
        attrs_now = store.root.attrs
        self.forced_resume = provenance.check_resume(p.out, dict(attrs_now), fp, force_resume)
        if self.forced_resume:
            forced = list(attrs_now.get("forced_resumes", []))
            attrs_now["forced_resumes"] = forced + ["; ".join(self.forced_resume)]
        if not np.array_equal(store.read("ue_position"), self.sample_position):
            raise StoreError(
                f"{p.out}: stored UE positions differ from this config's; use --overwrite"
            )
        return store

    def world_attrs(self) -> dict:
        """Root attributes of a world scene: ``crs`` (when geo-referenced) and the world's
        provenance (``schema.CRS_ATTR`` / ``schema.WORLD_ATTR``); none for other scenes."""
        st = self.ctx.streets
        if st is None:
            return {}
        out = {WORLD_ATTR: json.loads(json.dumps(st.world.provenance, default=str))}
        if st.world.crs:
            out[CRS_ATTR] = str(st.world.crs)
        return out

    def trace(
        self,
        positions: np.ndarray,
        snapshot: int = 0,
        progress: Progress | None = None,
        velocities: np.ndarray | None = None,
    ) -> Traced:
        """Trace UEs at ``positions`` (B, 3) m moving at ``velocities`` (B, 3) m/s (static if
        None) in traffic snapshot ``snapshot``, then label."""
        if self.tracer.cfg.samples_per_src == "auto":
            self.resolve_density()
        if self.ctx.fleet is not None:
            self.ctx.fleet.apply(snapshot)
        n = self.batch_ues
        batches = []
        t0 = time.perf_counter()
        for a in range(0, len(positions), n):
            vel = None if velocities is None else velocities[a : a + n]
            batches.append(self.tracer.trace(positions[a : a + n], vel))
            if progress:
                progress(len(positions[a : a + n]))
        pb = concat(batches)
        t1 = time.perf_counter()
        state, blocker = labels.link_state(self.ctx, positions, pb.num_paths)
        self.stage_times["trace"] += t1 - t0
        self.stage_times["labels"] += time.perf_counter() - t1
        return Traced(pb, state, blocker)

    def trace_samples(self, sl: slice, progress: Progress | None = None) -> Traced:
        """Trace the samples ``sl`` (they may span snapshots)."""
        snaps = self.sample_snapshot[sl]
        pos = self.sample_position[sl]
        vel = self.sample_velocity[sl]
        parts = [
            self.trace(pos[snaps == s], int(s), progress, vel[snaps == s]) for s in np.unique(snaps)
        ]
        return Traced.concat(parts)

    def shard_arrays(
        self, positions: np.ndarray, traced: Traced
    ) -> dict[str, dict[str, np.ndarray]]:
        """Per-condition variables for one shard (labels shared, CSI/power per condition)."""
        cfg, pb = self.plan.cfg, traced.pb
        num_paths = pb.num_paths
        common = {
            "link_state": traced.link_state,
            "blocking_vehicle": traced.blocker,
            "toa": labels.first_arrival(pb.tau, pb.valid),
            "los_distance": labels.los_distance(self.ctx.trp_position, positions),
            "num_paths": num_paths.astype(np.int16),
        }
        kept = _select_paths(pb, cfg.output.max_paths) if cfg.output.paths else None
        phasor = channel.phasors(pb.tau, self.frequencies)  # shared by all conditions
        out = {}
        for cond, rate in self.conditions.items():
            a = self._in_rain(pb, rate)
            arrays = {
                **common,
                "csi": channel.cfr(a, pb.tau, self.frequencies, phasor),
                "rx_power": channel.path_gain_db(a, cfg.ue.array.ports),
            }
            if cfg.output.cir_taps:
                bandwidth = cfg.ofdm.num_subcarriers * cfg.ofdm.spacing_hz
                arrays["cir"] = channel.cir_taps(
                    a, pb.tau, cfg.frequency_hz, bandwidth, cfg.output.cir_taps
                )
            if kept is not None:
                ka = self._in_rain(kept, rate)
                arrays.update(_path_arrays(kept, ka, cfg.output.max_paths, self.layout().depth))
            arrays["snr_db"] = receiver.snr_db(arrays["csi"], self.tx_power_dbm, self.noise_dbm)
            out[cond] = arrays
        return out

    def _in_rain(self, pb: PathBatch, rate: float) -> np.ndarray:
        """Path gains ``pb.a`` attenuated by rain rate ``rate`` mm/h (the same array if 0)."""
        return channel.rain_attenuated(
            pb.a, pb.tau, pb.aod_zen, self.plan.cfg.frequency_hz, rate, self.tilts, self.rain_cell_m
        )

    def _finish(self, store: Store, index: int, traced: Traced) -> None:
        """Channel assembly and the region write of shard ``index`` (timed per stage)."""
        t0 = time.perf_counter()
        arrays = self.shard_arrays(self.sample_position[store.layout.shards[index]], traced)
        t1 = time.perf_counter()
        store.write_shard(index, arrays)
        self.stage_times["channel"] += t1 - t0
        self.stage_times["write"] += time.perf_counter() - t1

    def render(self, store: Store, progress: Progress | None = None) -> RenderResult:
        """Render every pending shard.

        Pipelined (``plan.pipeline``, the default): the calling thread traces and labels shard
        k + 1 (the scene is only touched here) while one background thread assembles shard k's
        channel (CSI, CIR, rain, SNR, path arrays; NumPy releases the GIL, and so does Dr.Jit
        while the solver's kernels run) and writes it. At most one shard is in flight; a shard
        is marked done only by its own completed write. Serial: each shard traced, assembled
        and written in turn (same bytes; tests/test_pipeline.py)."""
        t0 = time.perf_counter()
        pending = store.pending()
        links = 0
        dups = self.tracer.duplicates_removed
        times0 = dict(self.stage_times)
        if not self.plan.pipeline:
            for i in pending:
                sl = store.layout.shards[i]
                self._finish(store, i, self.trace_samples(sl, progress))
                links += (sl.stop - sl.start) * len(self.ctx.trps)
        else:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="simgen-post") as post:
                in_flight = None
                for i in pending:
                    sl = store.layout.shards[i]
                    traced = self.trace_samples(sl, progress)
                    if in_flight is not None:
                        tw = time.perf_counter()
                        in_flight.result()  # re-raises a failed channel assembly or write
                        self.stage_times["waiting"] += time.perf_counter() - tw
                    in_flight = post.submit(self._finish, store, i, traced)
                    links += (sl.stop - sl.start) * len(self.ctx.trps)
                if in_flight is not None:
                    tw = time.perf_counter()
                    in_flight.result()
                    self.stage_times["waiting"] += time.perf_counter() - tw
        add_duplicates(store, self.tracer.duplicates_removed - dups)
        store.finalize()
        n_shards = len(store.layout.shards)
        return RenderResult(
            self.plan.out,
            len(self.sample_position),
            len(self.ctx.trps),
            links,
            len(pending),
            n_shards - len(pending),
            self.tracer.calls,
            time.perf_counter() - t0,
            self.backend,
            {k: self.stage_times[k] - times0[k] for k in STAGES},
        )
