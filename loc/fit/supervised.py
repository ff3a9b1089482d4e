"""One training loop for every model (spec §4): Adam, step-based LR schedule, deterministic
batches, bf16 autocast + fused attention on CUDA (fp32 on CPU), checkpoints and resume.

Determinism: the model is initialised under ``torch.manual_seed(seed)``; the batch of step s
(epoch-wise shuffling, drop_last), the scenario it comes from and the model's own sampling
(p/q, shuffles) are all drawn from generators seeded by (seed, s), so a resumed run takes
exactly the steps an uninterrupted run would have taken.

Multi-scenario training: each step draws its whole batch from one scenario (never mixed); in
every round of S steps each of the S scenarios is used once, in a random order ("batch-wise
mixing", spec §4.3).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from loc.data import CSIStore, FeatureBank, neighbour_sequences, random_sequences
from loc.device import autocast, resolve_device  # noqa: F401 - resolve_device re-exported
from loc.errors import CheckpointError, ConfigError, DataError, DivergedError
from loc.evaluate import evaluate
from loc.fit.checkpoint import read_checkpoint as _read
from loc.fit.checkpoint import save_checkpoint  # noqa: F401 - re-exported
from loc.fit.schedule import SCHEDULES, lr_factor
from loc.models import MODELS, build_model, default_lr
from loc.models.attention import set_fused_attention

log = logging.getLogger("loc.fit.supervised")

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "loc-checkpoint-1"
RECIPES = ("conditioned", "paper")

# Step budgets. "paper" is spec Table 2; "short" is meant to fit ~10 min of one H100 for
# Mateformer (to be measured); the LR schedule keeps its shape at any length.
BUDGETS: dict[str, dict[str, int]] = {
    "paper": {"steps": 300_000, "batch_size": 500},
    "short": {"steps": 20_000, "batch_size": 500},
}


@dataclasses.dataclass
class TrainConfig:
    """Training options.

    recipe: "conditioned" (default): standardised targets (point models), labels relative to
        the neighbour centroid (set models), warm-up + cosine schedule, the per-model peak LR
        of our sweep (``loc.models.PEAK_LR``); "paper": the spec exactly: raw metres,
        absolute labels, the step schedule and the spec's LR (``loc.models.PAPER_LR``).
    lr: peak Adam learning rate; None = the recipe's default for the model.
    schedule: "cosine" | "step" | "constant" (``loc.fit.schedule``); None = the recipe's
        ("step" for paper).
    warmup: cosine warm-up, a fraction of ``steps``.
    lr_milestones: step schedule: fractions of ``steps`` after which the LR is multiplied by
        ``lr_decay``; (1/2, 2/3, 5/6) of 300k = 150k/200k/250k (spec §4.2); () = constant.
    sampling: "neighbour" (k nearest training samples by true location) or "random"
        (k random training samples fixed once per sample) sequences for set models.
    precision: "auto" = bf16 autocast on CUDA for models that declare it safe, else fp32;
        "bf16" forces autocast on CUDA; "fp32" disables it. CPU always runs fp32.
    preload: read the training CSI once into one device tensor (None: when it takes at most
        2 GiB, e.g. 40k x 32 x 32 is 328 MB) instead of lazy chunk-cached reads every step.
    init_from: checkpoint whose weights initialise the model (transfer learning, spec §6.2:
        fine-tune all parameters, e.g. with lr=1e-4 and schedule="constant").
    noise_redraw: a store with receiver noise (``CSIStore.set_noise``) draws new noise for
        every epoch of its training samples (augmentation); False: one fixed draw (epoch 0).
    val_fraction: early stopping: this fraction of every scenario's training samples (seeded)
        is held out; the model is scored on it (mean 2-D error, m, as ``loc.evaluate``, the
        rest of the training samples as the database) every ``val_every`` steps, and the
        weights of the best score are the result. 0 = no validation (train every step).
    val_every: steps between validations (0: ``steps`` // 20, at least 1).
    patience: stop after this many validations without a better score, never in the first
        half of ``steps`` (warm-up and the high-LR phase, where scores swing; measured: an
        ICLLoc run stopped at 30 % of its steps on its warm-up score); 0: never stop early
        (the best weights are still kept).
    coarse_error: the coarse location error l (m) of set models' validation, as in evaluation.
    """

    model: str = "mateformer"
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    steps: int = BUDGETS["paper"]["steps"]
    batch_size: int = BUDGETS["paper"]["batch_size"]
    recipe: str = "conditioned"
    lr: float | None = None
    schedule: str | None = None
    warmup: float = 0.05
    lr_milestones: tuple[float, ...] = (1 / 2, 2 / 3, 5 / 6)
    lr_decay: float = 0.2
    n_neighbours: int = 64
    sampling: str = "neighbour"
    seed: int = 1
    device: str = "auto"
    precision: str = "auto"
    fused_attention: bool = True
    preload: bool | None = None
    log_every: int = 100
    ckpt_every: int = 5000
    init_from: str | None = None
    noise_redraw: bool = False
    val_fraction: float = 0.0
    val_every: int = 0
    patience: int = 0
    coarse_error: float = 1.0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"unknown model {self.model!r} (choose from {', '.join(MODELS)})")
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError("steps and batch_size must be >= 1")
        if self.sampling not in ("neighbour", "random"):
            raise ConfigError(f"unknown sampling {self.sampling!r} (neighbour | random)")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ConfigError(f"unknown precision {self.precision!r} (auto | bf16 | fp32)")
        if self.recipe not in RECIPES:
            raise ConfigError(f"unknown recipe {self.recipe!r} ({' | '.join(RECIPES)})")
        if self.schedule is None:
            self.schedule = "step" if self.recipe == "paper" else "cosine"
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown LR schedule {self.schedule!r} ({' | '.join(SCHEDULES)})")
        self.lr_milestones = tuple(float(m) for m in self.lr_milestones)
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.val_every < 0 or self.patience < 0:
            raise ConfigError("val_every and patience must be >= 0")

    @property
    def paper(self) -> bool:
        return self.recipe == "paper"

    def peak_lr(self, model: str) -> float:
        """The LR to use for ``model``: ``lr`` if set, else the recipe's default."""
        if self.lr is not None:
            return self.lr
        return default_lr(model, self.recipe)


@dataclasses.dataclass
class TrainSet:
    """One scenario's training data: a store, its training indices, a description for the
    checkpoint (store + split options), and for set models the (N, k+1) sequence table."""

    store: CSIStore
    train: np.ndarray
    meta: dict = dataclasses.field(default_factory=dict)
    sequences: np.ndarray | None = None


def lr_at(step: int, cfg: TrainConfig, base_lr: float) -> float:
    """LR for 0-based step ``step`` (= the spec's step number step + 1)."""
    return base_lr * lr_factor(
        step, cfg.steps, cfg.schedule, cfg.warmup, cfg.lr_milestones, cfg.lr_decay
    )


def build_sequences(ts: TrainSet, cfg: TrainConfig) -> np.ndarray:
    """[k neighbours..., self] tables for every training sample (spec §2.2 / §2.3)."""
    if cfg.sampling == "neighbour":
        return neighbour_sequences(ts.store.xy, ts.train, ts.train, cfg.n_neighbours)
    rng = np.random.default_rng([cfg.seed, 2])
    return random_sequences(ts.train, ts.train, cfg.n_neighbours, rng)


class _Batches:
    """Deterministic epoch-wise shuffled batches (drop_last) for one scenario."""

    def __init__(self, n: int, batch_size: int, seed: int, scenario: int) -> None:
        if batch_size > n:
            raise DataError(f"batch size {batch_size} exceeds the {n} training samples")
        self.n, self.b, self.seed, self.scenario = n, batch_size, seed, scenario
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, np.empty(0, np.int64)

    def rows(self, k: int) -> np.ndarray:
        """Rows (into the training set) of this scenario's k-th batch."""
        epoch, j = divmod(k, self.per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            rng = np.random.default_rng([self.seed, 3, self.scenario, epoch])
            self._perm = rng.permutation(self.n)
        return self._perm[j * self.b : (j + 1) * self.b]


def _scenario_for(step: int, n_sets: int, seed: int) -> tuple[int, int]:
    """(scenario, its own batch counter) for a global step: each round uses each scenario once."""
    if n_sets == 1:
        return 0, step
    rnd, pos = divmod(step, n_sets)
    return int(np.random.default_rng([seed, 4, rnd]).permutation(n_sets)[pos]), rnd


def read_checkpoint(
    path: str | Path,
    fmt: str = CHECKPOINT_FORMAT,
    name: str = CHECKPOINT_NAME,
    what: str = "loc checkpoint",
) -> dict:
    """The payload of checkpoint ``path`` (a file, or a folder holding ``name``) of format
    ``fmt``, read as plain data (``loc.fit.checkpoint``); CheckpointError (one line) when it
    is missing, unreadable, holds code or is of another kind."""
    return _read(path, fmt, name, what)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint and load its weights. Returns (model, checkpoint)."""
    ckpt = read_checkpoint(path)
    model = build_model(ckpt["model"], **ckpt["hparams"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device), ckpt


@dataclasses.dataclass
class TrainResult:
    model: nn.Module
    # one entry per log interval: step, mean loss, lr, samples_per_s (samples = batch rows,
    # i.e. sequences of k + 1 items for set models)
    history: list[dict]
    checkpoint: Path | None
    peak_memory_bytes: int | None = None
    # early stopping (TrainConfig.val_fraction): one entry per validation: step, val_mean_m;
    # best_step = the step whose weights are the result, stopped = the step training ended at
    validation: list[dict] = dataclasses.field(default_factory=list)
    best_step: int | None = None
    stopped: int | None = None


def hold_out(sets: Sequence[TrainSet], fraction: float, seed: int) -> list[tuple]:
    """Split each set's training samples into (fit TrainSet, validation indices): a seeded
    ``fraction`` (at least 1 sample, at most n - 1) is held out. The given sets are unchanged."""
    out = []
    for i, ts in enumerate(sets):
        n = len(ts.train)
        n_val = min(max(1, round(fraction * n)), n - 1)
        perm = np.random.default_rng([seed, 5, i]).permutation(n)
        fit = np.sort(ts.train[perm[n_val:]])
        out.append((dataclasses.replace(ts, train=fit, sequences=None), ts.train[perm[:n_val]]))
    return out


# ----------------------------------------------------------------------------- the steps of train


@dataclasses.dataclass
class _Progress:
    """What a run has done so far, all of it in the checkpoint (so a resume continues it):
    the next step, the loss history, the validations, the best (score, step, weights) and the
    step it stopped early at."""

    step: int = 0
    history: list[dict] = dataclasses.field(default_factory=list)
    validation: list[dict] = dataclasses.field(default_factory=list)
    best_val: float = math.inf
    best_step: int | None = None
    best_state: dict | None = None
    stopped: int | None = None


def check_data(
    cfg: TrainConfig, sets: Sequence[TrainSet]
) -> tuple[list[TrainSet], list[np.ndarray]]:
    """The sets to fit (all of one CSI shape) and, with ``cfg.val_fraction``, each set's
    held-out validation samples (else no validation lists)."""
    if getattr(MODELS[cfg.model][0], "trainer", None) is not None:  # DA: source + target data
        raise ConfigError(
            f"model {cfg.model!r} adapts to an unlabelled target domain: run it in a protocol "
            "(loc suite semantic_da) or from Python with loc.fit.da.train_da"
        )
    if not sets:
        raise ConfigError("no training data given")
    if any(s.store.shape != sets[0].store.shape for s in sets):
        raise DataError("all training scenarios must have the same CSI shape after selection")
    if cfg.val_fraction <= 0:
        return list(sets), []
    held = hold_out(sets, cfg.val_fraction, cfg.seed)
    return [fit for fit, _ in held], [val for _, val in held]


def make_model(cfg: TrainConfig, sets: list[TrainSet], device: torch.device) -> nn.Module:
    """The model under ``torch.manual_seed(cfg.seed)``: the recipe's options, set models'
    sequence tables, target conditioning from the training locations, ``init_from`` weights."""
    torch.manual_seed(cfg.seed)
    cls = MODELS[cfg.model][0]
    # the paper recipe: each model's spec options (e.g. absolute labels), unless overridden
    paper_kw = getattr(cls, "paper_kwargs", {}) if cfg.paper else {}
    model = build_model(
        cfg.model,
        in_shape=sets[0].store.shape,
        array=sets[0].store.array_shape,
        **{**paper_kw, **cfg.model_kwargs},
    )
    for ts in sets:  # sequence tables for set models (k + 1 items per training sample)
        if cls.kind == "set" and ts.sequences is None:
            ts.sequences = build_sequences(ts, cfg)
    if hasattr(model, "fit_targets"):  # target conditioning from the training locations
        rows = [ts.sequences if cls.kind == "set" else ts.train for ts in sets]
        model.fit_targets(
            np.concatenate([ts.store.xy[r] for ts, r in zip(sets, rows, strict=True)]),
            identity=cfg.paper,
        )
    model = model.to(device)
    if cfg.init_from is not None:
        src, ck = load_checkpoint(cfg.init_from)
        _same_model(ck, cfg, model, cfg.init_from)
        model.load_state_dict(src.state_dict())
    set_fused_attention(model, cfg.fused_attention)
    return model


def _same_model(ck: dict, cfg: TrainConfig, model: nn.Module, path) -> None:
    if ck["model"] != cfg.model or ck["hparams"] != dict(model.hparams):
        raise CheckpointError(f"{path} holds a different model ({ck['model']})")


def make_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """The model's own optimiser (e.g. VIn-Loc's AdamW) when it has one, else Adam."""
    if hasattr(model, "make_optimizer"):
        return model.make_optimizer(lr)
    return torch.optim.Adam(model.parameters(), lr=lr)


class _Feeder:
    """The batches of every step: per scenario its feature bank (preloaded when it fits),
    its deterministic batches and, with ``noise_redraw``, a new noise draw every epoch."""

    def __init__(self, cfg: TrainConfig, sets: list[TrainSet], device: torch.device) -> None:
        self.cfg, self.sets, self.device = cfg, sets, device
        self.banks = [self._bank(ts) for ts in sets]
        self.epoch = [0] * len(sets)
        self.redraw = cfg.noise_redraw and any(ts.store.noisy for ts in sets)
        self.batches = [
            _Batches(len(ts.train), cfg.batch_size, cfg.seed, i) for i, ts in enumerate(sets)
        ]

    def _bank(self, ts: TrainSet) -> FeatureBank:
        nbytes = len(ts.train) * math.prod(ts.store.shape) * 2 * 4
        preload = self.cfg.preload if self.cfg.preload is not None else nbytes <= 2**31
        return FeatureBank(ts.store, self.device, preload=ts.train if preload else None)

    def batch(self, step: int, kind: str) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        """(features, locations, TRP context for "trp" models) of global step ``step``."""
        si, k = _scenario_for(step, len(self.sets), self.cfg.seed)
        ts = self.sets[si]
        epoch = k // self.batches[si].per_epoch
        if self.redraw and epoch != self.epoch[si]:  # new noise this epoch
            self.epoch[si] = epoch
            ts.store.set_noise_epoch(epoch)
            self.banks[si] = self._bank(ts)
        bank = self.banks[si]
        rows = self.batches[si].rows(k)
        idx = ts.sequences[rows] if kind == "set" else ts.train[rows]
        extra = bank.trp_context(idx) if kind == "trp" else ()
        return bank(idx), bank.xy(idx), extra


def resume_from(
    path: Path, cfg: TrainConfig, model: nn.Module, opt: torch.optim.Optimizer
) -> _Progress:
    """The progress saved in checkpoint ``path``, its last weights and optimiser state loaded."""
    _, ck = load_checkpoint(path)
    _same_model(ck, cfg, model, path)
    model.load_state_dict(ck.get("last_state_dict") or ck["state_dict"])
    opt.load_state_dict(ck["optimizer"])
    run = _Progress(step=int(ck["step"]), history=list(ck["history"]))
    run.validation, run.stopped = list(ck.get("validation", [])), ck.get("stopped")
    if ck.get("best_step") is not None:
        run.best_val, run.best_step, run.best_state = (
            ck["best_val"],
            ck["best_step"],
            ck["state_dict"],
        )
    log.info("resumed from %s at step %d", path, run.step)
    return run


def train_step(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    batch: tuple,
    rng: np.random.Generator,
    device: torch.device,
    precision: str,
) -> torch.Tensor:
    """One optimiser step on ``batch`` (features, locations, TRP context); the detached loss."""
    h, x, extra = batch
    with autocast(device, model, precision):
        loss = model.training_loss(h, x, rng, *extra)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach().float()


def log_record(done: int, cfg: TrainConfig, lr: float, loss_sum: float, n: int, dt: float) -> dict:
    """The history entry of a log interval of ``n`` steps; DivergedError when the loss diverged."""
    mean_loss = loss_sum / n
    rec = {
        "step": done,
        "loss": mean_loss,
        "lr": lr,
        "samples_per_s": n * cfg.batch_size / max(dt, 1e-9),
    }
    if not math.isfinite(mean_loss):
        raise DivergedError(f"training diverged at step {done} (loss {mean_loss}); try a lower LR")
    log.info(
        "step %d/%d loss %.4g lr %.2e %.0f samples/s",
        done,
        cfg.steps,
        mean_loss,
        lr,
        rec["samples_per_s"],
    )
    return rec


def validate(
    run: _Progress,
    model: nn.Module,
    sets: list[TrainSet],
    val_idx: list[np.ndarray],
    cfg: TrainConfig,
    device: torch.device,
    done: int,
) -> bool:
    """Score the held-out samples at step ``done`` (mean 2-D error over the scenarios, the
    rest of the training samples as the database); keep the best weights. True = stop."""
    model.eval()
    with torch.no_grad():
        scores = [
            evaluate(
                model,
                ts.store,
                val,
                ts.train,
                k=cfg.n_neighbours,
                coarse_error=cfg.coarse_error,
                device=device,
            )[0]["overall"]["mean"]
            for ts, val in zip(sets, val_idx, strict=True)
        ]
    model.train()
    score = float(np.mean(scores))
    run.validation.append({"step": done, "val_mean_m": score})
    log.info("step %d/%d validation mean %.3f m", done, cfg.steps, score)
    if score < run.best_val:
        run.best_val, run.best_step = score, done
        run.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    since = sum(v["step"] > run.best_step for v in run.validation)
    return cfg.patience > 0 and since >= cfg.patience and 2 * done >= cfg.steps


def checkpoint_payload(
    run: _Progress,
    cfg: TrainConfig,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sets: list[TrainSet],
    step: int,
) -> dict:
    """Tensors and plain metadata: the selected weights (the best validated ones, with the
    last ones for a resume), the optimiser, the progress, the config and the data."""
    if run.best_step is not None:
        selected = {
            "state_dict": run.best_state,
            "last_state_dict": model.state_dict(),
            "best_step": run.best_step,
            "best_val": run.best_val,
            "validation": run.validation,
            "stopped": run.stopped,
        }
    else:
        selected = {"state_dict": model.state_dict()}
    return {
        "format": CHECKPOINT_FORMAT,
        "model": cfg.model,
        "hparams": dict(model.hparams),
        **selected,
        "optimizer": opt.state_dict(),
        "step": step,
        "config": dataclasses.asdict(cfg),
        "data": [{**ts.store.describe(), **ts.meta} for ts in sets],
        "history": run.history,
    }


# ----------------------------------------------------------------------------- train


def train(
    cfg: TrainConfig,
    sets: Sequence[TrainSet],
    out_dir: str | Path | None = None,
    resume: bool = False,
    on_log: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train ``cfg.model`` on one or more scenarios; returns the model and the loss history.

    All sets must share the CSI shape and transform (the first set's transform is used).
    With ``out_dir`` a checkpoint is written every ``ckpt_every`` steps and at the end; with
    ``resume`` training continues from ``out_dir/checkpoint.pt`` when it exists.
    """
    # data, model, optimiser
    sets, val_idx = check_data(cfg, sets)
    device = resolve_device(cfg.device)
    model = make_model(cfg, sets, device)
    base_lr = cfg.peak_lr(cfg.model)
    opt = make_optimizer(model, base_lr)
    feeder = _Feeder(cfg, sets, device)

    # where it stands: a fresh run, or the checkpoint's progress
    ckpt_path = Path(out_dir) / CHECKPOINT_NAME if out_dir is not None else None
    run = _Progress()
    if resume and ckpt_path is not None and ckpt_path.exists():
        run = resume_from(ckpt_path, cfg, model, opt)
    start = run.step

    # the loop: step, log, validate, checkpoint
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    loss_sum = torch.zeros((), device=device)
    n_sum, t_last = 0, time.perf_counter()
    val_every = cfg.val_every or max(1, cfg.steps // 20)
    for step in range(start, cfg.steps if run.stopped is None else start):
        lr = lr_at(step, cfg, base_lr)
        for g in opt.param_groups:
            g["lr"] = lr
        batch = feeder.batch(step, model.kind)
        rng = np.random.default_rng([cfg.seed, 1, step])
        loss_sum += train_step(model, opt, batch, rng, device, cfg.precision)
        n_sum += 1
        done = run.step = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:  # one device sync per interval
            rec = log_record(done, cfg, lr, float(loss_sum), n_sum, time.perf_counter() - t_last)
            run.history.append(rec)
            if on_log is not None:
                on_log(rec)
            loss_sum.zero_()
            n_sum, t_last = 0, time.perf_counter()
        if val_idx and (done % val_every == 0 or done == cfg.steps):
            if validate(run, model, sets, val_idx, cfg, device, done):
                run.stopped = done
                log.info("early stop at step %d: best validation at step %d", done, run.best_step)
        if ckpt_path is not None and (
            done % cfg.ckpt_every == 0 or done == cfg.steps or run.stopped is not None
        ):
            save_checkpoint(ckpt_path, checkpoint_payload(run, cfg, model, opt, sets, done))
        if run.stopped is not None:
            break

    # the result: the fixed noise draw for evaluation, the best weights
    for ts in sets:
        ts.store.set_noise_epoch(0)
    if ckpt_path is not None and start >= cfg.steps:
        log.info("checkpoint %s already at step %d", ckpt_path, start)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    if run.best_state is not None:
        model.load_state_dict(run.best_state)
    model.eval()
    return TrainResult(
        model=model,
        history=run.history,
        checkpoint=ckpt_path,
        peak_memory_bytes=peak,
        validation=run.validation,
        best_step=run.best_step,
        stopped=run.stopped,
    )
