"""Semantic multi-task domain adaptation (spec ``semantic-da-mda-hda.md``): MDA, HDA (stable
homoscedastic weighting), DANN (gradient reversal; the paper's RDA baseline) and the DCNN
supervised baseline, with their own source + target training loop (``train_da``).

Input: CSI features (B, G, A, C, 2) -> angle-delay power profile (ADP, spec §2.2)
X = |F_angle H F_delay^H|^2 per link group (G image channels of A angle x C delay bins),
normalised per sample (§2.4, option A "antenna-wise": each angle row divided by its maximum).
Outputs: coordinates (B, 2) m (regression, "CR") and propagation-condition logits (B, 3)
("PCP": 0 LOS, 1 DNLOS = vehicle blockage, 2 SNLOS = static blockage; ``semantic_labels``).

Networks (spec §5.2): Θ1 = 4 x [Conv(k) BN MaxPool(2) ReLU], k = 6, 4, 3, 2, widths 32, 64, 96,
128 -> ω (512 for a 64 x 64 ADP); g (CR) and h (PCP) = Linear 481 BN ReLU, Linear 16 BN ReLU,
Linear. MDA/HDA keep unshared source and target streams by default (``shared=False``, the
authors' code; reproduces Tab. III's 1.301M parameters) and predict with the source stream.
Losses (§6): MSE on standardised coordinates, focal CE (γ = 2), L_KT = SKL of batch-mean
normalised features + SKL of softmax'ed batch-mean focal-Kronecker maps Φ = FL(ξ) ⊗ ζ,
λ3 = 2 / (1 + exp(-10 κ)) - 1 with κ = step / steps; L_WR is the optimiser's weight decay.
HDA: 0.5 exp(-s1) L_CR + 0.5 s1 + exp(-s2) L_PCP + s2 with s = log σ² clamped to [-10, 10]
(Kendall & Gal; bounded below, unlike the printed Eq. (16)).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from loc.data import FeatureBank, dft_matrices
from loc.errors import ConfigError, DataError
from loc.models.vinloc import TargetNorm
from simgen.schema import LinkState

log = logging.getLogger("loc.da")

N_CLASSES = 3  # LOS, DNLOS (dynamic / vehicle), SNLOS (static)
S_BOUND = 10.0  # |log sigma^2| bound of the HDA weights


def semantic_labels(link_state: np.ndarray) -> np.ndarray:
    """LinkState codes -> PCP classes (int64): LOS 0; BLOCKED (vehicle, static scene clear) 1;
    NLOS and OLOS (buildings, foliage: static) 2; NO_PATH / unrendered -1 (ignored)."""
    ls = np.asarray(link_state)
    out = np.full(ls.shape, -1, np.int64)
    out[ls == LinkState.LOS] = 0
    out[ls == LinkState.BLOCKED] = 1
    out[(ls == LinkState.NLOS) | (ls == LinkState.OLOS)] = 2
    return out


class GradReverse(torch.autograd.Function):
    """Identity forward, -coef * gradient backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coef: float) -> torch.Tensor:
        ctx.coef = coef
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return -ctx.coef * g, None


def grad_reverse(x: torch.Tensor, coef: float = 1.0) -> torch.Tensor:
    return GradReverse.apply(x, coef)


def lambda_ramp(kappa: float) -> float:
    """λ3 = 2 / (1 + exp(-10 κ)) - 1, κ in [0, 1] -> 0 .. ~1."""
    return 2.0 / (1.0 + math.exp(-10.0 * kappa)) - 1.0


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Mean focal CE -(1 - p_t)^γ log p_t over samples with target >= 0 (γ = 0: CE)."""
    keep = target >= 0
    if not keep.any():
        return logits.sum() * 0.0
    logp = F.log_softmax(logits[keep].float(), dim=1).gather(1, target[keep, None]).squeeze(1)
    return (-((1 - logp.exp()) ** gamma) * logp).mean()


def skl(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Symmetric KL D(p||q) + D(q||p) of two distributions (last axis)."""
    p, q = p + eps, q + eps
    return ((p - q) * (p.log() - q.log())).sum(-1)


def local_alignment(ws: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
    """Eq. (10): SKL of the batch-mean (non-negative) features, each normalised to sum 1."""
    ps, pt = ws.float().mean(0), wt.float().mean(0)
    return skl(ps / (ps.sum() + 1e-12), pt / (pt.sum() + 1e-12))


def focal_kronecker(logits: torch.Tensor, z: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Φ(ξ, ζ) = [-(1 - ξ)^γ log ξ] ⊗ ζ per sample: (B, C), (B, D) -> (B, C * D)."""
    xi = F.softmax(logits.float(), dim=1)
    f = -((1 - xi) ** gamma) * torch.log(xi + 1e-8)
    return (f[:, :, None] * z.float()[:, None, :]).flatten(1)


def global_alignment(ls, zs, lt, zt, gamma: float = 2.0) -> torch.Tensor:
    """Eqs. (11)-(12): SKL of softmax(batch-mean Φ) of source and target (softmax maps the
    possibly negative map onto the simplex: our choice, spec §6.3)."""
    ms = focal_kronecker(ls, zs, gamma).mean(0)
    mt = focal_kronecker(lt, zt, gamma).mean(0)
    return skl(F.softmax(ms, -1), F.softmax(mt, -1))


class HomoscedasticWeights(nn.Module):
    """Stable HDA weighting: 0.5 e^{-s1} L_CR + 0.5 s1 + e^{-s2} L_PCP + s2, s = log σ².

    Minimised over s at s1 = log L_CR, s2 = log L_PCP; s is clamped to [-10, 10], so the
    weights e^{-s} stay finite and the term is bounded below (>= -15 for L >= 0).
    """

    def __init__(self) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.zeros(2))

    def forward(self, l_cr: torch.Tensor, l_pcp: torch.Tensor) -> torch.Tensor:
        s1, s2 = self.s.clamp(-S_BOUND, S_BOUND)
        return 0.5 * torch.exp(-s1) * l_cr + 0.5 * s1 + torch.exp(-s2) * l_pcp + s2


def adp(h: torch.Tensor, f_angle: torch.Tensor, f_delay_h: torch.Tensor, norm: str) -> torch.Tensor:
    """(B, G, A, C, 2) -> ADP power (B, G, A, C), normalised per sample.

    norm: "antenna" (each angle row / its max, + 1e-3 of the sample max against 0/0),
    "matrix" (/ the sample max) or "none".
    """
    hc = torch.view_as_complex(h.float().contiguous())
    x = (f_angle @ hc @ f_delay_h).abs() ** 2
    if norm == "none":
        return x
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    if norm == "matrix":
        return x / (peak + 1e-30)
    return x / (x.amax(dim=3, keepdim=True) + 1e-3 * peak + 1e-30)


class FeatureExtractor(nn.Module):
    """Θ1: 4 x [Conv(k) BN2d MaxPool(2) ReLU] on (B, G, A, C) -> ω (B, dim), non-negative.

    padding "valid" is the paper's (64 x 64 -> 128 x 2 x 2 = 512); "same" (ceil pooling) lets
    small test inputs through.
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        widths: tuple[int, ...] = (32, 64, 96, 128),
        kernels: tuple[int, ...] = (6, 4, 3, 2),
        padding: str = "valid",
    ) -> None:
        super().__init__()
        if padding not in ("valid", "same"):
            raise ConfigError(f"padding must be valid | same, got {padding!r}")
        g, a, c = in_shape
        layers: list[nn.Module] = []
        c_in = g
        for w, k in zip(widths, kernels, strict=True):
            layers += [
                nn.Conv2d(c_in, w, k, padding=padding),
                nn.BatchNorm2d(w),
                nn.MaxPool2d(2, ceil_mode=padding == "same"),
                nn.ReLU(),
            ]
            c_in = w
        layers.append(nn.Flatten())
        self.net = nn.Sequential(*layers)
        try:
            with torch.no_grad():
                self.dim = int(self.net.eval()(torch.zeros(1, g, a, c)).shape[1])
        except RuntimeError:
            raise ConfigError(f"ADP {a}x{c} too small for valid convolutions") from None
        self.net.train()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mlp_bn(d_in: int, widths: tuple[int, ...], d_out: int) -> nn.Sequential:
    """[Linear BN1d ReLU] per width, then Linear(-> d_out)."""
    mods: list[nn.Module] = []
    for w in widths:
        mods += [nn.Linear(d_in, w), nn.BatchNorm1d(w), nn.ReLU()]
        d_in = w
    mods.append(nn.Linear(d_in, d_out))
    return nn.Sequential(*mods)


class _ADPModel(TargetNorm):
    """Shared ADP front-end: DFT buffers, input normalisation and Θ1 construction."""

    kind = "point"
    bf16_ok = False

    def _setup(self, in_shape, norm: str) -> None:
        if norm not in ("antenna", "matrix", "none"):
            raise ConfigError(f"unknown ADP normalisation {norm!r} (antenna | matrix | none)")
        _, a, c = in_shape
        f_a, f_d = dft_matrices(a, c)
        self.register_buffer("f_angle", torch.from_numpy(f_a.astype(np.complex64)), False)
        self.register_buffer(
            "f_delay_h", torch.from_numpy(f_d.conj().T.astype(np.complex64)), False
        )
        self.norm = norm

    def adp(self, h: torch.Tensor) -> torch.Tensor:
        return adp(h, self.f_angle, self.f_delay_h, self.norm)


class DCNN(_ADPModel):
    """DCNN supervised baseline (Vieira et al.; the authors' DR_net): Θ1 + 512-128-16-2 head,
    MSE on standardised coordinates. 207,378 parameters on a (1, 64, 64) ADP.

    Also trainable by the standard loop (``loc.train.train``, labelled data only).
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int] = (1, 64, 64),
        widths: tuple[int, ...] = (32, 64, 96, 128),
        head: tuple[int, ...] = (128, 16),
        padding: str = "valid",
        norm: str = "antenna",
    ) -> None:
        super().__init__()
        self.hparams = dict(
            in_shape=tuple(in_shape),
            widths=tuple(widths),
            head=tuple(head),
            padding=padding,
            norm=norm,
        )
        self._setup(in_shape, norm)
        self.features = FeatureExtractor(in_shape, tuple(widths), padding=padding)
        self.regressor = mlp_bn(self.features.dim, tuple(head), 2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(B, G, A, C, 2) -> (B, 2) m."""
        return self.to_metres(self.regressor(self.features(self.adp(h))))

    def training_loss(self, h, xy, rng=None) -> torch.Tensor:
        z = (xy - self.origin) / self.scale
        return F.mse_loss(self.regressor(self.features(self.adp(h))), z)


class DANN(DCNN):
    """DANN / RDA: DCNN + gradient reversal (coefficient λ3) + domain classifier
    512-128-2 (log-softmax). Loss = MSE + NLL(source = 0) + NLL(target = 1).
    273,556 parameters on a (1, 64, 64) ADP."""

    trainer = "loc.models.da.train_da"

    def __init__(self, in_shape=(1, 64, 64), domain_hidden: int = 128, **kw) -> None:
        super().__init__(in_shape, **kw)
        self.hparams["domain_hidden"] = domain_hidden
        self.domain = mlp_bn(self.features.dim, (domain_hidden,), 2)

    def da_loss(self, hs, zs, ds, ht, lam: float, cfg: DAConfig) -> dict[str, torch.Tensor]:
        ws, wt = self.features(self.adp(hs)), self.features(self.adp(ht))
        l_cr = F.mse_loss(self.regressor(ws), zs)
        dom = self.domain(grad_reverse(torch.cat([ws, wt]), lam))
        lab = torch.cat([torch.zeros(len(ws)), torch.ones(len(wt))]).long().to(dom.device)
        l_dom = F.cross_entropy(dom, lab)
        return {"loss": l_cr + l_dom, "l_cr": l_cr, "l_dom": l_dom}


class _Stream(nn.Module):
    def __init__(self, in_shape, widths, head, padding) -> None:
        super().__init__()
        self.features = FeatureExtractor(in_shape, widths, padding=padding)
        self.regressor = mlp_bn(self.features.dim, head, 2)
        self.classifier = mlp_bn(self.features.dim, head, N_CLASSES)

    def forward(self, x):
        w = self.features(x)
        return w, self.regressor(w), self.classifier(w)


class SemanticDA(_ADPModel):
    """MDA / HDA: multi-task CR + PCP with feature and conditional-map alignment.

    Args:
        method: "mda" (fixed λ_CR, λ_PCP from ``DAConfig``) or "hda" (learned σ1, σ2).
        shared: one network for both domains (False: the code's unshared source/target
            streams; the source stream predicts).
        head: hidden widths of g and h (481, 16 in the paper).
    Parameters on a (1, 64, 64) ADP: 1,300,662 (unshared, 3 classes); HDA adds 2.
    """

    trainer = "loc.models.da.train_da"

    def __init__(
        self,
        in_shape: tuple[int, int, int] = (1, 64, 64),
        method: str = "hda",
        widths: tuple[int, ...] = (32, 64, 96, 128),
        head: tuple[int, ...] = (481, 16),
        shared: bool = False,
        padding: str = "valid",
        norm: str = "antenna",
    ) -> None:
        super().__init__()
        if method not in ("mda", "hda"):
            raise ConfigError(f"unknown semantic DA method {method!r} (mda | hda)")
        self.hparams = dict(
            in_shape=tuple(in_shape),
            method=method,
            widths=tuple(widths),
            head=tuple(head),
            shared=shared,
            padding=padding,
            norm=norm,
        )
        self._setup(in_shape, norm)
        self.method = method
        self.source = _Stream(in_shape, tuple(widths), tuple(head), padding)
        self.target = None if shared else _Stream(in_shape, tuple(widths), tuple(head), padding)
        self.weights = HomoscedasticWeights() if method == "hda" else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(B, G, A, C, 2) -> (B, 2) m (source stream)."""
        return self.to_metres(self.source(self.adp(h))[1])

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        """(B, G, A, C, 2) -> PCP logits (B, 3)."""
        return self.source(self.adp(h))[2]

    def da_loss(self, hs, zs, ds, ht, lam: float, cfg: DAConfig) -> dict[str, torch.Tensor]:
        ws, zhat_s, ls = self.source(self.adp(hs))
        wt, zhat_t, lt = (self.target or self.source)(self.adp(ht))
        l_cr = F.mse_loss(zhat_s, zs)
        l_pcp = focal_loss(ls, ds, cfg.gamma)
        l_kt = local_alignment(ws, wt) + global_alignment(ls, zhat_s, lt, zhat_t, cfg.gamma)
        if self.weights is not None:
            sup = self.weights(l_cr, l_pcp)
        else:
            sup = cfg.lambda_cr * l_cr + cfg.lambda_pcp * l_pcp
        out = {"loss": sup + lam * l_kt, "l_cr": l_cr, "l_pcp": l_pcp, "l_kt": l_kt}
        if self.weights is not None:
            out["s1"], out["s2"] = self.weights.s.detach().clamp(-S_BOUND, S_BOUND)
        return out


@dataclasses.dataclass
class DAConfig:
    """Options of ``train_da``. Paper: batch 256, lr 1e-3, weight decay 1e-4 (as L_WR),
    2000 epochs; λ_CR 0.7 / λ_PCP 0.3 (Tab. II), focal γ = 2; ``label_trp`` = which selected
    TRP's link state gives the PCP label (the paper has one BS)."""

    model: str = "hda"
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    gamma: float = 2.0
    lambda_cr: float = 0.7
    lambda_pcp: float = 0.3
    label_trp: int = 0
    seed: int = 1
    device: str = "auto"
    log_every: int = 100


def train_da(
    cfg: DAConfig,
    source,
    target,
    out_dir: str | Path | None = None,
    on_log: Callable[[dict], None] | None = None,
):
    """Train MDA / HDA / DANN (or DCNN, which ignores the target) with Adam.

    Args:
        source: ``loc.train.TrainSet`` of labelled source samples (locations, link states).
        target: ``TrainSet`` whose ``train`` indices are the unlabelled target samples (their
            labels are never read); same CSI shape and transform as the source.
    Returns ``loc.train.TrainResult``; the checkpoint (if ``out_dir``) loads with
    ``loc.train.load_checkpoint`` and evaluates with ``loc.evaluate.evaluate``.
    """
    from loc.models import build_model
    from loc.train import (
        CHECKPOINT_FORMAT,
        CHECKPOINT_NAME,
        TrainResult,
        _Batches,
        resolve_device,
        save_checkpoint,
    )

    if source.store.shape != target.store.shape:
        raise DataError("source and target must have the same CSI shape after selection")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, source.store.shape, **cfg.model_kwargs)
    if not hasattr(model, "da_loss") and not isinstance(model, DCNN):
        raise ConfigError(f"model {cfg.model!r} is not a DA model (dcnn | dann | mda | hda)")
    model.fit_targets(source.store.xy[source.train])
    model = model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    labels = semantic_labels(source.store.link_state[:, cfg.label_trp])
    bank_s, bank_t = FeatureBank(source.store, device), FeatureBank(target.store, device)
    bs = _Batches(len(source.train), cfg.batch_size, cfg.seed, 0)
    bt = _Batches(len(target.train), cfg.batch_size, cfg.seed, 1)
    history: list[dict] = []
    acc: dict[str, float] = {}
    for step in range(cfg.steps):
        i_s, i_t = source.train[bs.rows(step)], target.train[bt.rows(step)]
        hs = bank_s(i_s)
        zs = (bank_s.xy(i_s) - model.origin) / model.scale
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
            if not all(math.isfinite(v) for v in rec.values()):
                raise ConfigError(f"DA training diverged at step {step + 1}: {rec}")
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
    and PCP accuracy over samples with a label (models with a classifier only)."""
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
        out["pcp_accuracy"] = (
            float((np.concatenate(cls)[ok] == lab[ok]).mean()) if ok.any() else None
        )
    return out
