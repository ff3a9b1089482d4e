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

import logging
import math
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from loc.errors import ConfigError
from loc.models.targets import TargetNorm
from loc.transforms import ArrayShape, array_hparams, dft_matrices
from simgen.schema import LinkState

log = logging.getLogger("loc.da")


class LossWeights(Protocol):
    """The loss weights ``da_loss`` reads: focal γ, λ_CR and λ_PCP (Tab. II). The fitting
    options ``loc.fit.da.DAConfig`` carry them; models never import ``fit``."""

    gamma: float
    lambda_cr: float
    lambda_pcp: float


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
    complex_input = True  # computes its angle-delay power profile from the complex CFR

    takes_array = True  # build_model passes the store's TRP array shape

    def _setup(self, in_shape, norm: str, array: ArrayShape | None) -> None:
        """DFT buffers (the 2-D angle DFT of a planar TRP ``array``, (rows, cols, ports); None:
        1-D) and the normalisation; ``array`` joins the hparams."""
        if norm not in ("antenna", "matrix", "none"):
            raise ConfigError(f"unknown ADP normalisation {norm!r} (antenna | matrix | none)")
        _, a, c = in_shape
        self.hparams.update(array_hparams(array))
        f_a, f_d = dft_matrices(a, c, array)
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

    Also trainable by the standard loop (``loc.fit.supervised.train``, labelled data only).
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int] = (1, 64, 64),
        widths: tuple[int, ...] = (32, 64, 96, 128),
        head: tuple[int, ...] = (128, 16),
        padding: str = "valid",
        norm: str = "antenna",
        array: ArrayShape | None = None,
    ) -> None:
        super().__init__()
        self.hparams = dict(
            in_shape=tuple(in_shape),
            widths=tuple(widths),
            head=tuple(head),
            padding=padding,
            norm=norm,
        )
        self._setup(in_shape, norm, array)
        self.features = FeatureExtractor(in_shape, tuple(widths), padding=padding)
        self.regressor = mlp_bn(self.features.dim, tuple(head), 2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(B, G, A, C, 2) -> (B, 2) m."""
        return self.to_metres(self.regressor(self.features(self.adp(h))))

    def training_loss(self, h, xy, rng=None) -> torch.Tensor:
        return self.std_mse(self.regressor(self.features(self.adp(h))), xy)


class DANN(DCNN):
    """DANN / RDA: DCNN + gradient reversal (coefficient λ3) + domain classifier
    512-128-2 (log-softmax). Loss = MSE + NLL(source = 0) + NLL(target = 1).
    273,556 parameters on a (1, 64, 64) ADP."""

    trainer = "loc.fit.da.train_da"

    def __init__(self, in_shape=(1, 64, 64), domain_hidden: int = 128, **kw) -> None:
        super().__init__(in_shape, **kw)
        self.hparams["domain_hidden"] = domain_hidden
        self.domain = mlp_bn(self.features.dim, (domain_hidden,), 2)

    def da_loss(self, hs, zs, ds, ht, lam: float, cfg: LossWeights) -> dict[str, torch.Tensor]:
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
        method: "mda" (fixed λ_CR, λ_PCP from ``cfg``: ``LossWeights``) or "hda" (learned σ1, σ2).
        shared: one network for both domains (False: the code's unshared source/target
            streams; the source stream predicts).
        head: hidden widths of g and h (481, 16 in the paper).
    Parameters on a (1, 64, 64) ADP: 1,300,662 (unshared, 3 classes); HDA adds 2.
    """

    trainer = "loc.fit.da.train_da"

    def __init__(
        self,
        in_shape: tuple[int, int, int] = (1, 64, 64),
        method: str = "hda",
        widths: tuple[int, ...] = (32, 64, 96, 128),
        head: tuple[int, ...] = (481, 16),
        shared: bool = False,
        padding: str = "valid",
        norm: str = "antenna",
        array: ArrayShape | None = None,
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
        self._setup(in_shape, norm, array)
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

    def da_loss(self, hs, zs, ds, ht, lam: float, cfg: LossWeights) -> dict[str, torch.Tensor]:
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
