"""Fitting the semantic domain-adaptation models (``loc.models.da``: DCNN, DANN, MDA, HDA) on
labelled source + unlabelled target samples, and their link-state (PCP) evaluation."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from loc.data import FeatureBank
from loc.errors import ConfigError, DataError, DivergedError
from loc.fit.schedule import lr_factor
from loc.fit.supervised import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    TrainResult,
    _Batches,
    resolve_device,
    save_checkpoint,
)
from loc.models import build_model
from loc.models.da import DCNN, lambda_ramp, semantic_labels
from simgen.schema import LinkState

log = logging.getLogger("loc.da")


@dataclasses.dataclass
class DAConfig:
    """Options of ``train_da``. Paper: batch 256, lr 1e-3 (constant), weight decay 1e-4 (as
    L_WR), 2000 epochs; λ_CR 0.7 / λ_PCP 0.3 (Tab. II), focal γ = 2; ``label_trp`` = which
    selected TRP's link state gives the PCP label (the paper has one BS).

    schedule, warmup: LR schedule over ``steps`` (``loc.fit.schedule.lr_factor``): "cosine"
    (linear warm-up over ``warmup`` * steps, then cosine decay; the default for budgets shorter
    than the paper's) or "constant" (the paper recipe)."""

    model: str = "hda"
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    schedule: str = "cosine"
    warmup: float = 0.05
    weight_decay: float = 1e-4
    gamma: float = 2.0
    lambda_cr: float = 0.7
    lambda_pcp: float = 0.3
    label_trp: int = 0
    seed: int = 1
    device: str = "auto"
    log_every: int = 100


PRELOAD_BYTES = 2 << 30  # a training set up to 2 GiB is read once into memory


def _bank(ts, device) -> FeatureBank:
    """The training samples of ``ts`` (a ``TrainSet``) read once when they fit in
    ``PRELOAD_BYTES`` (a random batch read lazily costs ~0.14 s for 32 samples of 64 x 64 CSI,
    more than a half-width training step on 2 CPU cores), else lazily."""
    per_sample = 8 * int(np.prod(ts.store.shape))  # complex64 as 2 x float32
    pre = ts.train if len(ts.train) * per_sample <= PRELOAD_BYTES else None
    return FeatureBank(ts.store, device, preload=pre)


def train_da(
    cfg: DAConfig,
    source,
    target,
    out_dir: str | Path | None = None,
    on_log: Callable[[dict], None] | None = None,
):
    """Train MDA / HDA / DANN (or DCNN, which ignores the target) with Adam.

    Args:
        source: ``loc.fit.supervised.TrainSet`` of labelled source samples (locations, link states).
        target: ``TrainSet`` whose ``train`` indices are the unlabelled target samples (their
            labels are never read); same CSI shape and transform as the source.
    Returns ``loc.fit.supervised.TrainResult``; the checkpoint (if ``out_dir``) loads with
    ``loc.fit.supervised.load_checkpoint`` and evaluates with ``loc.evaluate.evaluate``.
    """

    if source.store.shape != target.store.shape:
        raise DataError("source and target must have the same CSI shape after selection")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = build_model(
        cfg.model, source.store.shape, array=source.store.array_shape, **cfg.model_kwargs
    )
    if not hasattr(model, "da_loss") and not isinstance(model, DCNN):
        raise ConfigError(f"model {cfg.model!r} is not a DA model (dcnn | dann | mda | hda)")
    model.fit_targets(source.store.xy[source.train])
    model = model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    labels = semantic_labels(source.store.link_state[:, cfg.label_trp])
    bank_s, bank_t = _bank(source, device), _bank(target, device)
    bs = _Batches(len(source.train), cfg.batch_size, cfg.seed, 0)
    bt = _Batches(len(target.train), cfg.batch_size, cfg.seed, 1)
    history: list[dict] = []
    acc: dict[str, float] = {}
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, cfg.steps, cfg.schedule, cfg.warmup)
        i_s, i_t = source.train[bs.rows(step)], target.train[bt.rows(step)]
        hs = bank_s(i_s)
        zs = model.standardise(bank_s.xy(i_s))
        if hasattr(model, "da_loss"):
            ds = torch.as_tensor(labels[i_s], device=device)
            lam = lambda_ramp(step / cfg.steps)
            terms = model.da_loss(hs, zs, ds, bank_t(i_t), lam, cfg)
        else:
            terms = {"loss": model.training_loss(hs, bank_s.xy(i_s))}
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        for k, v in terms.items():
            acc[k] = acc.get(k, 0.0) + float(torch.as_tensor(v).detach())
        acc["n"] = acc.get("n", 0) + 1
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            n = acc.pop("n")
            rec = {"step": step + 1, **{k: v / n for k, v in acc.items()}}
            rec["lr"] = opt.param_groups[0]["lr"]
            if not all(math.isfinite(v) for v in rec.values()):
                raise DivergedError(f"DA training diverged at step {step + 1}: {rec}")
            history.append(rec)
            if on_log is not None:
                on_log(rec)
            log.info("step %d/%d %s", step + 1, cfg.steps, rec)
            acc = {}
    model.eval()
    path = None
    if out_dir is not None:
        path = Path(out_dir) / CHECKPOINT_NAME
        save_checkpoint(
            path,
            {
                "format": CHECKPOINT_FORMAT,
                "model": cfg.model,
                "hparams": dict(model.hparams),
                "state_dict": model.state_dict(),
                "step": cfg.steps,
                "config": {**dataclasses.asdict(cfg), "n_neighbours": 0},
                "data": [
                    {**source.store.describe(), **source.meta},
                    {**target.store.describe(), **target.meta},
                ],
                "history": history,
            },
        )
    return TrainResult(model=model, history=history, checkpoint=path)


@torch.no_grad()
def evaluate_da(
    model: nn.Module,
    store,
    idx: np.ndarray,
    label_trp: int = 0,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> dict:
    """Tab. II metrics on ``idx``: Euclidean RMSE sqrt(mean ||p - p_hat||^2) (m), mean error,
    and PCP accuracy over samples with a label (models with a classifier only), overall and per
    ``LinkState`` of the labelled link (``pcp_by_state``: the share of that state's samples
    given its class; OLOS and NLOS are both the static class)."""
    model = model.to(device).eval()
    bank = FeatureBank(store, device)
    idx = np.asarray(idx, np.int64)
    pred, cls = [], []
    for a in range(0, len(idx), batch_size):
        h = bank(idx[a : a + batch_size])
        pred.append(model(h).cpu().numpy())
        if hasattr(model, "classify"):
            cls.append(model.classify(h).argmax(1).cpu().numpy())
    err = np.linalg.norm(np.concatenate(pred) - store.xy[idx], axis=1)
    out = {"n": len(idx), "rmse": float(np.sqrt(np.mean(err**2))), "mean": float(err.mean())}
    if cls:
        lab = semantic_labels(store.link_state[idx, label_trp])
        ok = lab >= 0
        hit = np.concatenate(cls) == lab
        out["pcp_accuracy"] = float(hit[ok].mean()) if ok.any() else None
        states = store.link_state[idx, label_trp]
        out["pcp_by_state"] = {
            s.name: float(hit[states == s].mean())
            for s in LinkState
            if (states == s).any() and semantic_labels(np.array([s]))[0] >= 0
        }
    return out
