"""Fitting MetaLoc (``loc.models.metaloc.MetaLocNet``): MAML meta-training over environments,
centralized (vanilla MAML) and distributed (MAML-TS, MAML-DG), and fast adaptation with K
target samples (spec ``metaloc.md``).

Environments are ``loc.fit.supervised.TrainSet`` objects (a store / condition group / TRP layout
and its training indices). A task is N reference points ("ways") with ``k_spt`` support and
``k_qry`` query samples each: samples that share a UE position (e.g. several traffic snapshots)
form one reference point; when an environment has too few repeated positions a task is
N * (k_spt + k_qry) distinct random samples (support and query disjoint).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from loc.data import FeatureBank
from loc.errors import CheckpointError, ConfigError, DataError, DivergedError
from loc.models.metaloc import PARADIGMS, MetaLocNet

log = logging.getLogger("loc.metaloc")


# ----------------------------------------------------------------------------- MAML core


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return dict(model.named_parameters())


def _call_loss(model: MetaLocNet, params: dict, h: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """MSE on standardised locations with the parameter dict ``params`` (functional call)."""
    pred = functional_call(model, params, (h,), {}, strict=False)
    return F.mse_loss(model.standardise(pred), model.standardise(xy))


def inner_adapt(
    model: nn.Module,
    params: dict[str, torch.Tensor],
    h: torch.Tensor,
    xy: torch.Tensor,
    alpha: float,
    steps: int = 1,
    first_order: bool = True,
) -> dict[str, torch.Tensor]:
    """θ' = θ - α ∇L(θ; support), ``steps`` times. First order: the gradient is treated as a
    constant (the paper's approximation), so dθ'/dθ = I; else second-order MAML."""
    for _ in range(steps):
        loss = _call_loss(model, params, h, xy)
        grads = torch.autograd.grad(
            loss, list(params.values()), create_graph=not first_order, allow_unused=True
        )
        params = {
            k: p if g is None else p - alpha * (g.detach() if first_order else g)
            for (k, p), g in zip(params.items(), grads, strict=True)
        }
    return params


Task = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # h_s, xy_s, h_q, xy_q


def maml_loss(
    model: nn.Module,
    params: dict,
    tasks: Sequence[Task],
    alpha: float,
    steps: int,
    first_order: bool,
) -> torch.Tensor:
    """Mean query loss over tasks after inner adaptation from ``params``."""
    losses = []
    for h_s, x_s, h_q, x_q in tasks:
        adapted = inner_adapt(model, params, h_s, x_s, alpha, steps, first_order)
        losses.append(_call_loss(model, adapted, h_q, x_q))
    return torch.stack(losses).mean()


# ----------------------------------------------------------------------------- tasks


class TaskSampler:
    """Draws tasks (support/query batches) from one environment (a ``TrainSet``)."""

    def __init__(self, env, n_way: int, k_spt: int, k_qry: int, device) -> None:
        self.env, self.n_way, self.k_spt, self.k_qry = env, n_way, k_spt, k_qry
        self.bank = FeatureBank(env.store, device)
        idx = np.asarray(env.train, np.int64)
        key = np.round(env.store.xy[idx], 2)
        _, inv = np.unique(key, axis=0, return_inverse=True)
        groups = [idx[inv.reshape(-1) == g] for g in range(inv.max() + 1)]
        need = k_spt + k_qry
        self.points = [g for g in groups if len(g) >= need]
        if len(self.points) < n_way:
            self.points = None  # too few repeated positions: random disjoint samples
            if len(idx) < n_way * need:
                raise DataError(f"environment has {len(idx)} samples, a task needs {n_way * need}")
        self.idx = idx

    def sample(self, rng: np.random.Generator) -> Task:
        need = self.k_spt + self.k_qry
        if self.points is not None:
            pick = rng.choice(len(self.points), self.n_way, replace=False)
            rows = np.stack([rng.choice(self.points[p], need, replace=False) for p in pick])
            s, q = rows[:, : self.k_spt].ravel(), rows[:, self.k_spt :].ravel()
        else:
            rows = rng.choice(self.idx, self.n_way * need, replace=False)
            s, q = rows[: self.n_way * self.k_spt], rows[self.n_way * self.k_spt :]
        return self.bank(s), self.bank.xy(s), self.bank(q), self.bank.xy(q)


# ----------------------------------------------------------------------------- meta-training


@dataclasses.dataclass
class MetaConfig:
    """Meta-training options (defaults: the paper's real-data setting, spec "Settings").

    paradigm: "maml" (centralized: tasks from every environment), "maml_ts" (one θ*_i per
        environment; the test task picks by MMD) or "maml_dg" (two domains per step,
        L = F(θ) + dg_weight * G(θ'), θ' = θ - beta ∇F(θ)).
    n_way, k_spt, k_qry: reference points per task and support / query samples per point.
    alpha, inner_steps: inner-loop SGD step and count; beta: outer (Adam) learning rate.
    meta_batch: tasks per outer step; first_order: first-order MAML (the paper's choice).
    """

    paradigm: str = "maml"
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    meta_steps: int = 2500
    meta_batch: int = 4
    n_way: int = 10
    k_spt: int = 3
    k_qry: int = 5
    alpha: float = 0.01
    inner_steps: int = 5
    beta: float = 1e-3
    first_order: bool = True
    dg_weight: float = 1.0
    seed: int = 1
    device: str = "cpu"
    log_every: int = 100

    def __post_init__(self) -> None:
        if self.paradigm not in PARADIGMS:
            raise ConfigError(f"unknown paradigm {self.paradigm!r} ({' | '.join(PARADIGMS)})")


META_FORMAT = "loc-meta-init-1"


@dataclasses.dataclass
class MetaResult:
    """Meta-trained initialisation(s). ``models`` has one entry, or one per environment for
    MAML-TS (with ``env_fingerprints`` (n_i, D) per environment for MMD selection)."""

    models: list[MetaLocNet]
    history: list[dict]
    env_fingerprints: list[torch.Tensor] | None = None

    @property
    def model(self) -> MetaLocNet:
        return self.models[0]

    def to_payload(self) -> dict:
        """Tensors and plain metadata (``loc.fit.checkpoint.save_checkpoint``)."""
        return {
            "format": META_FORMAT,
            "hparams": dict(self.models[0].hparams),
            "state_dicts": [m.state_dict() for m in self.models],
            "history": self.history,
            "env_fingerprints": self.env_fingerprints,
        }

    @staticmethod
    def from_payload(ck: dict, device: torch.device | str = "cpu") -> MetaResult:
        """The inverse of ``to_payload`` (a dict read with ``loc.fit.checkpoint.load_plain``)."""
        if not isinstance(ck, dict) or ck.get("format") != META_FORMAT:
            raise CheckpointError("not a MetaLoc initialisation")
        models = []
        for sd in ck["state_dicts"]:
            m = MetaLocNet(**ck["hparams"])
            m.load_state_dict(sd)
            models.append(m.to(device))
        return MetaResult(models, list(ck["history"]), ck["env_fingerprints"])


def _new_model(cfg: MetaConfig, envs) -> MetaLocNet:
    torch.manual_seed(cfg.seed)
    model = MetaLocNet(
        envs[0].store.shape, **{"array": envs[0].store.array_shape, **cfg.model_kwargs}
    )
    model.fit_targets(np.concatenate([e.store.xy[e.train] for e in envs]))
    return model.to(cfg.device)


def _maml_loop(cfg: MetaConfig, envs, model: MetaLocNet, dg: bool) -> list[dict]:
    """Outer loop shared by every paradigm. Task draws come from their own generators so
    that MAML-DG with one domain and dg_weight 0 takes MAML's exact steps."""
    samplers = [TaskSampler(e, cfg.n_way, cfg.k_spt, cfg.k_qry, cfg.device) for e in envs]
    opt = torch.optim.Adam(model.parameters(), lr=cfg.beta)
    rng_f = np.random.default_rng([cfg.seed, 10])  # F tasks (and MAML's tasks)
    rng_g = np.random.default_rng([cfg.seed, 11])  # G tasks (MAML-DG)
    rng_d = np.random.default_rng([cfg.seed, 12])  # domain draws
    history, run = [], 0.0
    inner = dict(alpha=cfg.alpha, steps=cfg.inner_steps, first_order=cfg.first_order)
    for step in range(cfg.meta_steps):
        params = params_of(model)
        if dg:
            d1, d2 = rng_d.choice(len(envs), 2, replace=False) if len(envs) > 1 else (0, 0)
            t1 = [samplers[d1].sample(rng_f) for _ in range(cfg.meta_batch)]
            t2 = [samplers[d2].sample(rng_g) for _ in range(cfg.meta_batch)]
            f = maml_loss(model, params, t1, **inner)
            g_f = torch.autograd.grad(
                f, list(params.values()), create_graph=not cfg.first_order, retain_graph=True
            )
            virt = {
                k: p - cfg.beta * (g.detach() if cfg.first_order else g)
                for (k, p), g in zip(params.items(), g_f, strict=True)
            }
            loss = f + cfg.dg_weight * maml_loss(model, virt, t2, **inner)
        else:
            tasks = []
            for _ in range(cfg.meta_batch):
                e = int(rng_f.integers(len(envs)))
                tasks.append(samplers[e].sample(rng_f))
            loss = maml_loss(model, params, tasks, **inner)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run += float(loss.detach())
        if not math.isfinite(run):
            raise DivergedError(
                f"meta-training diverged at meta step {step + 1} (query loss {float(loss)}); "
                f"lower alpha (inner step, now {cfg.alpha}) or beta (now {cfg.beta})"
            )
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.meta_steps:
            n = (step % cfg.log_every) + 1
            history.append({"step": step + 1, "loss": run / n})
            log.info("meta step %d/%d query loss %.4g", step + 1, cfg.meta_steps, run / n)
            run = 0.0
    return history


def meta_train(cfg: MetaConfig, envs: Sequence) -> MetaResult:
    """Meta-train on the environments (``TrainSet`` list) with ``cfg.paradigm``."""
    envs = list(envs)
    if not envs:
        raise ConfigError("no environments given")
    if any(e.store.shape != envs[0].store.shape for e in envs):
        raise DataError("all environments must have the same CSI shape after selection")
    if cfg.paradigm == "maml_ts":  # distributed: data never leaves its environment
        models, hist, fps = [], [], []
        for i, e in enumerate(envs):
            m = _new_model(cfg, [e])
            hist += [{**r, "env": i} for r in _maml_loop(cfg, [e], m, dg=False)]
            with torch.no_grad():
                bank = FeatureBank(e.store, cfg.device)
                fps.append(m.fingerprint(bank(np.asarray(e.train))).cpu())
            models.append(m.eval())
        return MetaResult(models, hist, fps)
    model = _new_model(cfg, envs)
    hist = _maml_loop(cfg, envs, model, dg=cfg.paradigm == "maml_dg")
    return MetaResult([model.eval()], hist)


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidth: float | None = None) -> float:
    """Biased squared MMD with a Gaussian kernel (median heuristic bandwidth) of (n, D), (m, D)."""
    z = torch.cat([x, y]).double()
    d2 = torch.cdist(z, z) ** 2
    if bandwidth is None:
        bandwidth = float(d2[d2 > 0].median().sqrt()) if (d2 > 0).any() else 1.0
    k = torch.exp(-d2 / (2 * bandwidth**2))
    n = len(x)
    return float(k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean())


def select_init(result: MetaResult, support_h: torch.Tensor, max_ref: int = 512) -> int:
    """MAML-TS: index of the environment whose fingerprints have the smallest MMD to the
    test task's support fingerprints."""
    if result.env_fingerprints is None:
        return 0
    with torch.no_grad():
        fp = result.models[0].fingerprint(support_h.to(next(result.model.parameters()).device))
    scores = [mmd2(fp.cpu(), ref[:max_ref]) for ref in result.env_fingerprints]
    return int(np.argmin(scores))


# ----------------------------------------------------------------------------- adaptation


@dataclasses.dataclass
class AdaptConfig:
    """Fast adaptation (meta-test) on K support samples, the same for every initialisation.

    optimizer: "adam" (default: run to convergence) or "sgd" (the paper's recipe: exactly
        ``steps`` full-batch steps θ <- θ - lr ∇L, no early stop, e.g. steps 20, lr = α).
    steps: the most full-batch steps (Adam) or the exact number (SGD).
    lr: Adam's learning rate or SGD's α.
    holdout: Adam: fraction of the K samples held out to pick the step with the lowest held-out
        loss; when that is fewer than ``min_holdout`` samples, all K are fitted and the
        training loss picks the step (plateau). The best weights are restored.
    patience: Adam: stop after this many steps without a relative improvement of ``min_delta``.
    """

    optimizer: str = "adam"
    steps: int = 300
    lr: float = 1e-3
    holdout: float = 0.25
    min_holdout: int = 4
    patience: int = 30
    min_delta: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"adapt.optimizer must be adam | sgd, got {self.optimizer!r}")
        if self.steps < 0 or not self.lr > 0 or not 0 <= self.holdout < 1 or self.patience < 1:
            raise ConfigError(
                "adapt: steps >= 0, lr > 0, 0 <= holdout < 1 and patience >= 1 are required"
            )

    @staticmethod
    def from_dict(d: dict | None) -> AdaptConfig:
        """From a protocol's ``data.adapt`` mapping; unknown keys are a ConfigError."""
        d = dict(d or {})
        bad = set(d) - {f.name for f in dataclasses.fields(AdaptConfig)}
        if bad:
            raise ConfigError(f"data.adapt: unknown key(s) {', '.join(sorted(bad))}")
        return AdaptConfig(**d)


def adapt(
    model: MetaLocNet, h: torch.Tensor, xy: torch.Tensor, cfg: AdaptConfig | None = None
) -> MetaLocNet:
    """Fast adaptation: a copy of ``model`` fitted on the K support samples h (K, G, A, C, 2),
    xy (K, 2) m per ``cfg`` (full batch). The copy's ``adapt_info`` says how it stopped:
    {"steps": steps run, "best_step": steps of the kept weights, "monitor": "holdout" |
    "train" | "none"}."""
    cfg = cfg or AdaptConfig()
    m = copy.deepcopy(model).train()
    with torch.no_grad():  # the fingerprint has no parameters: computed once
        fp, z = m.fingerprint(h), (xy - m.origin) / m.scale

    def loss(rows=slice(None)) -> torch.Tensor:
        return F.mse_loss(m.net(fp[rows]), z[rows])

    if cfg.optimizer == "sgd":  # the paper: a fixed number of α-steps
        opt = torch.optim.SGD(m.parameters(), lr=cfg.lr)
        for _ in range(cfg.steps):
            opt.zero_grad(set_to_none=True)
            loss().backward()
            opt.step()
        m.adapt_info = {"steps": cfg.steps, "best_step": cfg.steps, "monitor": "none"}
        return m.eval()
    k = len(h)
    n_val = round(cfg.holdout * k)
    if n_val >= cfg.min_holdout and k - n_val >= 1:
        perm = torch.from_numpy(np.random.default_rng([cfg.seed, k]).permutation(k))
        fit, val = perm[n_val:].to(h.device), perm[:n_val].to(h.device)
        monitor = "holdout"
    else:
        fit = val = torch.arange(k, device=h.device)
        monitor = "train"
    opt = torch.optim.Adam(m.parameters(), lr=cfg.lr)

    def score() -> float:
        with torch.no_grad():
            return float(loss(val))

    best, best_step, best_state, since, step = score(), 0, copy.deepcopy(m.state_dict()), 0, 0
    for step in range(1, cfg.steps + 1):
        opt.zero_grad(set_to_none=True)
        loss(fit).backward()
        opt.step()
        s = score()
        if not math.isfinite(s):
            break
        since = 0 if s < best * (1 - cfg.min_delta) else since + 1
        if s < best:
            best, best_step, best_state = s, step, copy.deepcopy(m.state_dict())
        if since >= cfg.patience:
            break
    m.load_state_dict(best_state)
    m.adapt_info = {"steps": step, "best_step": best_step, "monitor": monitor}
    return m.eval()


@torch.no_grad()
def _errors(model, bank, idx) -> np.ndarray:
    return np.linalg.norm(model(bank(idx)).cpu().numpy() - bank.store.xy[idx], axis=1)


def adaptation_curve(
    inits: dict[str, MetaLocNet | MetaResult],
    target,
    test: np.ndarray,
    ks: Sequence[int],
    adapt_cfg: AdaptConfig | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, dict[int, dict[str, float]]]:
    """Error vs K target samples: for each K, adapt every initialisation (MAML / MAML-DG, a
    MAML-TS ``MetaResult`` (picks by MMD), TL = a pooled-pretrained ``MetaLocNet``, RI = a
    fresh one) on the same K samples of ``target.train`` and report mean / median error (m)
    on ``test``."""
    bank = FeatureBank(target.store, device)
    rng = np.random.default_rng(seed)
    out: dict[str, dict[int, dict[str, float]]] = {n: {} for n in inits}
    for k in ks:
        sup = rng.choice(np.asarray(target.train), k, replace=False)
        h_s, x_s = bank(sup), bank.xy(sup)
        for name, init in inits.items():
            base = init.models[select_init(init, h_s)] if isinstance(init, MetaResult) else init
            e = _errors(adapt(base, h_s, x_s, adapt_cfg), bank, np.asarray(test))
            out[name][k] = {"mean": float(e.mean()), "median": float(np.median(e))}
    return out
