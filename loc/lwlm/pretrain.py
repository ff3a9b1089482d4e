"""Self-supervised pretraining of the LWLM encoder on unlabelled links (spec §4).

Every step draws B samples of one store (stores take turns) and two views of each, PICL's
positive pair (spec §4.3: the same UE seen "under another BS, or another bandwidth, or both"):
view 1 is a usable link at the full band; view 2, drawn uniformly among the kinds a sample
allows, is another link (another TRP or UE antenna) at the full band, another link on a
sub-band, or view 1's link on a sub-band (``_views``; a sample with one usable link always
gets the last). A sub-band view keeps half the subcarriers, contiguous at a random offset,
zeroes the rest and halves the bandwidth in its configuration. The step computes
L = w_dti L_DTI + w_sfmcm L_SFMCM + w_picl L_PICL (spec default weights 20 / 10 / 1).
Only the channel is read (``loc.lwlm.links``): no label of the store is ever touched.

Determinism: the model is initialised under ``torch.manual_seed(seed)``; the batch, its links,
the SF-MCM masks and dropout of step s come from generators seeded by (seed, s), so a run
resumed from its checkpoint takes exactly the steps an uninterrupted run would have taken.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from loc.device import resolve_device
from loc.errors import CheckpointError, ConfigError, DataError, DivergedError
from loc.fit.checkpoint import read_checkpoint, save_checkpoint
from loc.fit.schedule import lr_factor
from loc.lwlm.links import GridMaker, check_grid, link_config, read_links, usable, with_level
from loc.lwlm.model import LWLM, OBJECTIVES, WIDTHS

log = logging.getLogger("loc.lwlm")

CHECKPOINT = "encoder.pt"
FORMAT = "loc-lwlm-encoder-2"  # 2: the link level in the config (N_CFG 5)
DEFAULT_WEIGHTS = {"dti": 20.0, "sfmcm": 10.0, "picl": 1.0}  # spec §4 (the authors' code)


@dataclasses.dataclass
class PretrainConfig:
    """Pretraining options.

    width: "cpu" | "paper" (``loc.lwlm.model.WIDTHS``); encoder: overrides of its entries.
    weights: objective -> loss weight; an objective at weight 0 is not computed (ablation).
    mask_ant / mask_sc: SF-MCM: fraction of whole antenna columns / subcarrier rows hidden
        (spec: 16 / 32 and 64 / 128, so 75 % of the grid).
    lr: peak AdamW LR (warm-up + cosine, ``loc.fit.schedule``); the spec's 1e-4 without a
        schedule is for 100s of epochs.
    """

    width: str = "cpu"
    encoder: dict = dataclasses.field(default_factory=dict)
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: float = 0.05
    weights: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    tau: float = 0.2
    mask_ant: float = 0.5
    mask_sc: float = 0.5
    seed: int = 1
    device: str = "auto"
    log_every: int = 100
    ckpt_every: int = 500

    def __post_init__(self) -> None:
        if self.width not in WIDTHS:
            raise ConfigError(f"unknown width {self.width!r} ({' | '.join(WIDTHS)})")
        bad = set(self.weights) - set(OBJECTIVES)
        if bad:
            raise ConfigError(f"unknown objective(s) {', '.join(sorted(bad))} ({OBJECTIVES})")
        self.weights = {k: float(self.weights.get(k, 0.0)) for k in OBJECTIVES}
        if not any(w > 0 for w in self.weights.values()):
            raise ConfigError("every objective has weight 0: nothing to pretrain")
        if self.steps < 1 or self.batch_size < 2:
            raise ConfigError("pretraining needs steps >= 1 and batch_size >= 2")
        for f in ("mask_ant", "mask_sc"):
            if not 0.0 <= getattr(self, f) < 1.0:
                raise ConfigError(f"{f} must be in [0, 1)")

    @property
    def objectives(self) -> tuple[str, ...]:
        return tuple(k for k in OBJECTIVES if self.weights[k] > 0)

    def model_hparams(self, n_sc: int, n_ant: int) -> dict:
        return {"n_sc": n_sc, "n_ant": n_ant, **WIDTHS[self.width], **self.encoder}


class LinkPool:
    """Every usable link of some samples of one store, preloaded: channels (N, G, A, K) complex,
    usable (N, G), cfg (G, N_CFG - 1) (``link_config``: the level is each view's own)."""

    def __init__(self, store, idx: np.ndarray, device: torch.device) -> None:
        self.store = store
        h = read_links(store, idx)
        self.ok = usable(h)
        self.h = torch.from_numpy(h).to(device)
        self.cfg = torch.from_numpy(link_config(store)).to(device)
        self.n_links = int(self.ok.sum())

    def eligible(self) -> np.ndarray:
        """The samples with a usable link."""
        return np.flatnonzero(self.ok.any(1))

    def draw(self, rows: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Two different usable links (the second = the first when a sample has one) per row."""
        r = rng.random((len(rows), self.ok.shape[1])) + np.where(self.ok[rows], 0.0, 2.0)
        order = np.argsort(r, axis=1)
        if order.shape[1] < 2:  # a single-link store
            return order[:, 0], order[:, 0]
        second = np.where(self.ok[rows].sum(1) >= 2, order[:, 1], order[:, 0])
        return order[:, 0], second

    def views(self, rows: np.ndarray, rng: np.random.Generator) -> tuple:
        """PICL's two views of samples ``rows`` (module docstring): (h1 (B, A, K) complex,
        cfg1 (B, N_CFG), h2, cfg2, kind (B,) int: 0 another link, 1 another link on a
        sub-band, 2 the same link on a sub-band)."""
        dev = self.h.device
        l1, l2 = self.draw(rows, rng)
        n_sc = self.h.shape[-1]
        kind = rng.integers(0, 3, len(rows))
        kind[l1 == l2] = 2  # one usable link: only another bandwidth
        l2 = np.where(kind == 2, l1, l2)
        width = max(1, n_sc // 2)
        off = rng.integers(0, n_sc - width + 1, len(rows))
        k = np.arange(n_sc)[None]
        keep = (kind[:, None] == 0) | ((k >= off[:, None]) & (k < off[:, None] + width))
        rt = torch.from_numpy(rows).to(dev)
        h1 = self.h[rt, torch.from_numpy(l1).to(dev)]
        h2 = self.h[rt, torch.from_numpy(l2).to(dev)] * torch.from_numpy(keep[:, None]).to(dev)
        c2 = self.cfg[torch.from_numpy(l2).to(dev)].clone()
        c2[:, 3] *= torch.from_numpy(np.where(kind > 0, width / n_sc, 1.0)).to(c2)
        c1 = with_level(self.cfg[torch.from_numpy(l1).to(dev)], h1)
        return h1, c1, h2, with_level(c2, h2), kind


def _masks(b: int, k: int, a: int, cfg: PretrainConfig, gen: torch.Generator) -> torch.Tensor:
    """SF-MCM masks (b, K, A) bool: round(mask_sc K) whole subcarriers and round(mask_ant A)
    whole antennas hidden per sample (their union)."""
    n_s, n_a = round(cfg.mask_sc * k), round(cfg.mask_ant * a)
    sc = torch.rand(b, k, generator=gen).argsort(1) < n_s
    ant = torch.rand(b, a, generator=gen).argsort(1) < n_a
    return sc[:, :, None] | ant[:, None, :]


def batch_losses(
    model: LWLM,
    cfg: PretrainConfig,
    pool: LinkPool,
    maker: GridMaker,
    rows: np.ndarray,
    rng: np.random.Generator,
    gen: torch.Generator,
) -> dict[str, torch.Tensor]:
    """{objective: scalar loss} of samples ``rows`` of ``pool``: their two views (from ``rng``)
    and SF-MCM masks (from ``gen``)."""
    h1, c1, h2, c2, _ = pool.views(rows, rng)
    n_ant, n_sc = pool.h.shape[-2:]
    mask = _masks(len(rows), n_sc, n_ant, cfg, gen).to(pool.h.device)
    return model.losses(
        maker.grid(h1),
        maker.angle_delay(h1),
        c1,
        mask,
        maker.grid(h2),
        c2,
        objectives=cfg.objectives,
        tau=cfg.tau,
    )


@torch.no_grad()
def mean_losses(
    model: LWLM, cfg: PretrainConfig, pools: Sequence[LinkPool], makers: Sequence[GridMaker]
) -> dict[str, float]:
    """The weighted loss and each objective's, averaged over batches of ``cfg.batch_size`` of
    every eligible sample of ``pools`` (a remainder smaller than a batch is left out: PICL's
    chance level is log(2B - 1)). Views and masks come from generators seeded by ``cfg.seed``
    alone, so calls at different steps read the same batches. Leaves the model in eval mode."""
    model.eval()
    sums, n = dict.fromkeys(("loss", *cfg.objectives), 0.0), 0
    for i, (pool, maker) in enumerate(zip(pools, makers, strict=True)):
        rng = np.random.default_rng([cfg.seed, 12, i])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        rows = rng.permutation(pool.eligible())
        for b in range(len(rows) // cfg.batch_size):
            losses = batch_losses(
                model, cfg, pool, maker, rows[b * cfg.batch_size : (b + 1) * cfg.batch_size],
                rng, gen,
            )  # fmt: skip
            sums["loss"] += sum(cfg.weights[k] * v.item() for k, v in losses.items())
            for k, v in losses.items():
                sums[k] += v.item()
            n += 1
    if n == 0:
        raise DataError(f"fewer held-out samples than one batch of {cfg.batch_size}")
    return {k: v / n for k, v in sums.items()}


def run_identity(cfg: PretrainConfig, data: Sequence[tuple[object, np.ndarray]]) -> dict:
    """What decides the steps a pretraining takes: its options (not where or how often it logs
    or saves) and the samples it reads (each store's description and the sha256 of its sample
    indices). A checkpoint resumes only a run with the same identity."""
    skip = ("device", "log_every", "ckpt_every")
    opts = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in skip}
    sha = lambda idx: hashlib.sha256(np.asarray(idx, np.int64).tobytes()).hexdigest()  # noqa: E731
    stores = [{**st.describe(), "samples": sha(idx)} for st, idx in data]
    return {"options": opts, "data": stores}


def load_encoder(path: str | Path, device: torch.device | str = "cpu") -> tuple[LWLM, dict]:
    """(pretrained LWLM, checkpoint) from ``DIR`` or ``DIR/encoder.pt`` (``loc pretrain``)."""
    ck = read_checkpoint(path, FORMAT, CHECKPOINT, "LWLM encoder (run `loc pretrain` first)")
    model = LWLM(**ck["hparams"])
    model.load_state_dict(ck["state_dict"])
    return model.to(device), ck


@dataclasses.dataclass
class PretrainResult:
    model: LWLM
    history: list[dict]  # per log interval: step, lr, loss (weighted total), each objective,
    # held_out: {loss, each objective} on the held-out samples (when given)
    checkpoint: Path | None
    seconds: float  # of every run to this checkpoint (resumed ones included)


def pretrain(
    cfg: PretrainConfig,
    data: Sequence[tuple[object, np.ndarray]],
    out_dir: str | Path | None = None,
    resume: bool = True,
    on_log: Callable[[dict], None] | None = None,
    held_out: Sequence[tuple[object, np.ndarray]] = (),
) -> PretrainResult:
    """Pretrain an encoder on the usable links of ``data`` = [(CSIStore, sample indices)].

    ``held_out``: [(CSIStore, sample indices)] never pretrained on; at every log interval their
    ``mean_losses`` go into the history (``held_out``), the curve that shows a plateau or
    overfitting (the training loss alone falls as long as the samples can be memorised).
    All stores must share the link grid (A, K). With ``out_dir`` the checkpoint
    ``out_dir/encoder.pt`` is written every ``ckpt_every`` steps and at the end, and a run with
    ``resume`` continues from it (a finished one returns at once).
    """
    if not data:
        raise ConfigError("no pretraining data given")
    grids = {check_grid(st) for st, _ in [*data, *held_out]}
    for st, idx in held_out:
        both = [np.intersect1d(idx, i2) for s2, i2 in data if s2.path == st.path]
        if any(len(x) for x in both):
            raise DataError(f"{st.path}: a held-out sample is also a pretraining sample")
    if len(grids) > 1:
        raise DataError(f"pretraining stores differ in link grid (A, K): {sorted(grids)}")
    (n_ant, n_sc) = grids.pop()
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    hp = cfg.model_hparams(n_sc, n_ant)
    model = LWLM(**hp).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    t0 = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else None
    ckpt = out / CHECKPOINT if out is not None else None
    start, history, before = 0, [], 0.0  # before: seconds of the runs this one resumes
    identity = json.loads(json.dumps(run_identity(cfg, data), default=str))  # as stored
    if resume and ckpt is not None and ckpt.exists():
        _, ck = load_encoder(ckpt)
        if ck["hparams"] != hp or ck["config"]["weights"] != cfg.weights:
            raise CheckpointError(f"{ckpt} holds another encoder or objectives; use a new --out")
        if ck.get("run") != identity:
            raise CheckpointError(
                f"{ckpt} was pretrained with other options or samples (steps, LR, data ...); "
                "pretrain into a new --out, or rerun with --fresh"
            )
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        start, history = int(ck["step"]), list(ck["history"])
        before = float(ck.get("seconds", 0.0))
        log.info("resumed from %s at step %d", ckpt, start)
    if start >= cfg.steps:  # finished: nothing to read
        model.eval()
        return PretrainResult(model, history, ckpt, before)
    pools = [LinkPool(st, np.asarray(idx, np.int64), device) for st, idx in data]
    elig = [p.eligible() for p in pools]
    for p, e in zip(pools, elig, strict=True):
        if len(e) < cfg.batch_size:
            raise DataError(
                f"{p.store.path}: {len(e)} samples with usable links, fewer than the batch "
                f"size {cfg.batch_size}"
            )
    log.info(
        "pretraining on %s links of %s samples (%.1f s to read)",
        sum(p.n_links for p in pools),
        sum(len(e) for e in elig),
        time.perf_counter() - t0,
    )
    # the DTI target: each store's own TRP array (the 2-D angle DFT of a planar array)
    makers = [GridMaker(n_ant, n_sc, device, p.store.array_shape) for p in pools]
    val_pools = [LinkPool(st, np.asarray(idx, np.int64), device) for st, idx in held_out]
    val_makers = [GridMaker(n_ant, n_sc, device, p.store.array_shape) for p in val_pools]

    def payload(step: int) -> dict:
        return {
            "format": FORMAT,
            "hparams": hp,
            "state_dict": model.state_dict(),
            "optimizer": opt.state_dict(),
            "step": step,
            "config": dataclasses.asdict(cfg),
            "run": identity,
            "history": history,
            "seconds": before + time.perf_counter() - t0,
        }

    model.train()
    sums = dict.fromkeys(("loss", *cfg.objectives), 0.0)
    n_sum, t_last = 0, time.perf_counter()
    for step in range(start, cfg.steps):
        lr = cfg.lr * lr_factor(step, cfg.steps, "cosine", cfg.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        i_pool = step % len(pools)
        pool, eligible, maker = pools[i_pool], elig[i_pool], makers[i_pool]
        rng = np.random.default_rng([cfg.seed, 11, step])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        torch.manual_seed(int(rng.integers(2**62)))  # dropout
        rows = rng.choice(eligible, cfg.batch_size, replace=False)
        losses = batch_losses(model, cfg, pool, maker, rows, rng, gen)
        loss = sum(cfg.weights[k] * v for k, v in losses.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sums["loss"] += loss.item()
        for k, v in losses.items():
            sums[k] += v.item()
        n_sum += 1
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            dt = time.perf_counter() - t_last
            rec = {"step": done, "lr": lr, **{k: v / n_sum for k, v in sums.items()}}
            rec["samples_per_s"] = n_sum * cfg.batch_size / max(dt, 1e-9)
            if val_pools:
                rec["held_out"] = mean_losses(model, cfg, val_pools, val_makers)
                model.train()
            if not math.isfinite(rec["loss"]):
                raise DivergedError(f"pretraining diverged at step {done}; try a lower --lr")
            history.append(rec)
            if on_log is not None:
                on_log(rec)
            parts = " ".join(f"{k} {rec[k]:.4g}" for k in cfg.objectives)
            val = f", held out {rec['held_out']['loss']:.4g}" if val_pools else ""
            log.info(
                "pretrain step %d/%d loss %.4g (%s)%s lr %.2e %.0f samples/s",
                done,
                cfg.steps,
                rec["loss"],
                parts,
                val,
                lr,
                rec["samples_per_s"],
            )
            sums = dict.fromkeys(sums, 0.0)
            n_sum, t_last = 0, time.perf_counter()
        if ckpt is not None and (done % cfg.ckpt_every == 0 or done == cfg.steps):
            save_checkpoint(ckpt, payload(done))
    model.eval()
    return PretrainResult(model, history, ckpt, before + time.perf_counter() - t0)
