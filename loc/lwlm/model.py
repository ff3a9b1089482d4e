"""LWLM networks (docs/lwlm.md; ../shared/specs/lwlm.md §3-§5): the encoder over one link's
antenna x subcarrier grid, the three self-supervised heads, and the task decoders.

Shapes (B links, K subcarriers, A TRP antennas, P = (K / pk) (A / pa) patches, D = d_model):

    grid    float32 (B, 2, K, A)   per-link power-normalised |H| and angle(H) (``loc.lwlm.links``)
    cfg     float32 (B, N_CFG)     the link's configuration c: TRP (x, y, z) / 100 m, bandwidth
                                   MHz / 10 (spec §2 item 5), level dB / 100 (``with_level``)
    tokens  float32 (B, 1 + P, D)  encoder output; token 0 is CLS

The token features are split into three slices, one per objective (spec §1, the authors'
96 / 96 / 64 of 256): DTI reads the first 3/8, SF-MCM the next 3/8, PICL the last 1/4.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from loc.errors import ConfigError

N_CFG = 5  # TRP x, y, z / 100 m, bandwidth MHz / 10, link level dB / 100 (loc.lwlm.links)
OBJECTIVES = ("sfmcm", "dti", "picl")
# encoder + SSL-decoder widths. "paper": the authors' code (spec §7: D 256, depth 4, 4 heads,
# FFN 2048, dropout 0.1, two decoder layers); "cpu": ours, sized for pretraining on 2 cores in
# ~15 min: without dropout (on a CPU, dropout's random draws cost 6x the layer: 93 vs 16 ms for
# one layer's forward on 64 x 129 tokens, measured here) and with 8 x 4 patches (half the tokens).
WIDTHS: dict[str, dict] = {
    "cpu": {"d_model": 64, "depth": 2, "n_heads": 4, "d_ff": 128, "dec_depth": 1, "dropout": 0.0,
            "patch": [8, 4]},
    "paper": {"d_model": 256, "depth": 4, "n_heads": 4, "d_ff": 2048, "dec_depth": 2,
              "dropout": 0.1, "patch": [4, 4]},
}  # fmt: skip
PICL_DIM = 32  # projector output (spec §4.3)
HEAD_HIDDEN = 128  # task decoders: [h ; cfg] -> 128 -> out (spec §5)


def patch_size(n_sc: int, n_ant: int, patch: tuple[int, int] = (4, 4)) -> tuple[int, int]:
    """(subcarriers, antennas) per patch: ``patch`` (the spec's 4 x 4), halved along an axis
    that it does not divide (e.g. one antenna)."""

    def pick(n: int, p: int) -> int:
        while n % p:
            p //= 2
        return max(p, 1)

    return pick(n_sc, int(patch[0])), pick(n_ant, int(patch[1]))


def slices(d_model: int) -> dict[str, slice]:
    """Feature slice of each objective: DTI 3/8, SF-MCM 3/8, PICL the rest."""
    a = 3 * d_model // 8
    return {"dti": slice(0, a), "sfmcm": slice(a, 2 * a), "picl": slice(2 * a, d_model)}


def sinusoidal(n: int, d: int) -> torch.Tensor:
    """Fixed (n, d) sine / cosine position embedding (not trained, spec §3)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    out = torch.zeros(n, d)
    out[:, 0::2] = torch.sin(pos * div)
    out[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    return out


def _layers(d: int, heads: int, ff: int, depth: int, dropout: float) -> nn.TransformerEncoder:
    """Post-norm ReLU transformer layers (PyTorch's default, as the authors' code)."""
    layer = nn.TransformerEncoderLayer(d, heads, ff, dropout, batch_first=True)
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)


class Encoder(nn.Module):
    """Patch-embedding transformer over one link's grid (spec §3): Conv2d patches, a CLS token,
    fixed sinusoidal positions, post-norm layers, a final LayerNorm. Masked grid entries are
    replaced by a learnt mask tensor (SF-MCM)."""

    def __init__(
        self,
        n_sc: int,
        n_ant: int,
        d_model: int = 64,
        depth: int = 2,
        n_heads: int = 4,
        d_ff: int = 128,
        dropout: float = 0.0,
        patch: tuple[int, int] = (4, 4),
    ) -> None:
        super().__init__()
        if d_model % n_heads or d_model % 8:
            raise ConfigError(f"d_model {d_model} must divide by n_heads {n_heads} and by 8")
        self.n_sc, self.n_ant, self.d_model = n_sc, n_ant, d_model
        self.patch = patch_size(n_sc, n_ant, patch)
        self.n_patches = (n_sc // self.patch[0]) * (n_ant // self.patch[1])
        self.embed = nn.Conv2d(2, d_model, self.patch, stride=self.patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        self.mask_token = nn.Parameter(torch.zeros(2, n_sc, n_ant))
        self.register_buffer("pos", sinusoidal(1 + self.n_patches, d_model), persistent=False)
        self.blocks = _layers(d_model, n_heads, d_ff, depth, dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, grid: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """grid (B, 2, K, A), mask (B, K, A) bool (True = hidden) -> tokens (B, 1 + P, D)."""
        if mask is not None:
            grid = torch.where(mask[:, None], self.mask_token.expand_as(grid), grid)
        x = self.embed(grid).flatten(2).transpose(1, 2)  # (B, P, D)
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1) + self.pos
        return self.norm(self.blocks(x))


def unfold_patches(grid: torch.Tensor, patch: tuple[int, int]) -> torch.Tensor:
    """(B, 2, K, A) -> (B, P, 2 pk pa), the patch order of ``Encoder.embed``."""
    return F.unfold(grid, patch, stride=patch).transpose(1, 2)


def fold_patches(p: torch.Tensor, patch: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """Inverse of ``unfold_patches``: (B, P, 2 pk pa) -> (B, 2, K, A)."""
    return F.fold(p.transpose(1, 2), size, patch, stride=patch)


class PatchDecoder(nn.Module):
    """SF-MCM / DTI decoder (spec §4.1): a feature slice -> Linear(D) -> transformer layers ->
    LayerNorm -> Linear(2 pk pa) per patch token (CLS dropped)."""

    def __init__(
        self, d_in: int, d_model: int, n_heads: int, d_ff: int, depth: int, out: int, dropout: float
    ) -> None:
        super().__init__()
        self.inp = nn.Linear(d_in, d_model)
        self.blocks = _layers(d_model, n_heads, d_ff, depth, dropout)
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, out)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(self.blocks(self.inp(tokens))))[:, 1:]


class PICLHead(nn.Module):
    """PICL embedding (spec §4.3): slice -> Linear(D) -> mean over tokens -> + Linear(cfg) ->
    MLP D -> D -> ReLU -> 32 -> L2-normalised."""

    def __init__(self, d_in: int, d_model: int) -> None:
        super().__init__()
        self.inp = nn.Linear(d_in, d_model)
        self.cfg = nn.Linear(N_CFG, d_model)
        self.proj = nn.Sequential(
            nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, PICL_DIM)
        )

    def forward(self, tokens: torch.Tensor, cfg: torch.Tensor) -> torch.Tensor:
        z = self.inp(tokens).mean(1) + self.cfg(cfg)
        return F.normalize(self.proj(z), dim=-1)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float = 0.2) -> torch.Tensor:
    """Symmetric NT-Xent (spec §4.3): (B, E) unit embeddings of two views; the positive of row
    i is row i of the other view, the other 2B - 2 rows are negatives."""
    z = torch.cat([z1, z2])
    sim = z @ z.T / tau
    sim.fill_diagonal_(float("-inf"))
    b = len(z1)
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(sim, target)


def complex_cosine(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """DTI loss (spec §4.2): mean_b [1 - |<t, y>| / (||t|| ||y|| + 0.1)] of complex (B, ...)."""
    t, y = t.flatten(1), y.flatten(1)
    inner = (t.conj() * y).sum(1).abs()
    return (1 - inner / (t.abs().norm(dim=1) * y.abs().norm(dim=1) + 0.1)).mean()


class LWLM(nn.Module):
    """Encoder + the three pretraining heads. ``hparams`` rebuilds it; ``encoder`` is what the
    task decoders take over."""

    def __init__(
        self,
        n_sc: int,
        n_ant: int,
        d_model: int = 64,
        depth: int = 2,
        n_heads: int = 4,
        d_ff: int = 128,
        dec_depth: int = 1,
        dropout: float = 0.0,
        patch: tuple[int, int] = (4, 4),
    ) -> None:
        super().__init__()
        self.hparams = {
            "n_sc": n_sc, "n_ant": n_ant, "d_model": d_model, "depth": depth,
            "n_heads": n_heads, "d_ff": d_ff, "dec_depth": dec_depth, "dropout": dropout,
            "patch": list(patch),
        }  # fmt: skip
        self.encoder = Encoder(n_sc, n_ant, d_model, depth, n_heads, d_ff, dropout, patch)
        s = slices(d_model)
        self.slices = s
        per_patch = 2 * self.encoder.patch[0] * self.encoder.patch[1]
        width = lambda sl: sl.stop - sl.start  # noqa: E731
        self.cfg_tokens = nn.Linear(N_CFG, d_model)  # SF-MCM: the config added to every token
        dec = (d_model, n_heads, d_ff, dec_depth, per_patch, dropout)
        self.sfmcm = PatchDecoder(width(s["sfmcm"]), *dec)
        self.dti = PatchDecoder(width(s["dti"]), *dec)
        self.picl = PICLHead(width(s["picl"]), d_model)

    def losses(
        self,
        grid1: torch.Tensor,
        target1: torch.Tensor,
        cfg1: torch.Tensor,
        mask: torch.Tensor,
        grid2: torch.Tensor | None = None,
        cfg2: torch.Tensor | None = None,
        objectives: tuple[str, ...] = OBJECTIVES,
        tau: float = 0.2,
    ) -> dict[str, torch.Tensor]:
        """The objectives' losses on a batch (spec §4).

        grid1 (B, 2, K, A) view 1; target1 complex (B, K, A) its angle-delay channel (DTI);
        cfg1 (B, N_CFG); mask (B, K, A) bool, the SF-MCM mask; grid2 / cfg2: view 2, the same
        sample seen over another link (PICL's positive); tau: PICL's NT-Xent temperature.
        Returns {objective: scalar loss}.
        """
        enc, out = self.encoder, {}
        if "sfmcm" in objectives:
            tok = enc(grid1, mask) + self.cfg_tokens(cfg1)[:, None]
            rec = self.sfmcm(tok[..., self.slices["sfmcm"]])
            out["sfmcm"] = F.mse_loss(rec, unfold_patches(grid1, enc.patch))
        if "dti" in objectives or "picl" in objectives:
            tok1 = enc(grid1)
            if "dti" in objectives:
                y = self.dti(tok1[..., self.slices["dti"]])
                y = fold_patches(y, enc.patch, grid1.shape[2:])
                out["dti"] = complex_cosine(target1, torch.complex(y[:, 0], y[:, 1]))
            if "picl" in objectives:
                if grid2 is None or cfg2 is None:
                    raise ConfigError("PICL needs a second view of every sample")
                tok2 = enc(grid2)
                pl = self.slices["picl"]
                z1, z2 = self.picl(tok1[..., pl], cfg1), self.picl(tok2[..., pl], cfg2)
                out["picl"] = nt_xent(z1, z2, tau)
        return out


# ----------------------------------------------------------------------------- task decoders

TASKS = ("toa", "aoa", "single", "multi")


class TaskModel(nn.Module):
    """An encoder (pretrained or random) + one task decoder (spec §5).

    Every link gives [CLS ; ReLU(Linear(cfg))] -> Linear(2D, 128) -> ReLU. ``toa`` / ``aoa`` /
    ``single`` read one link and end in Linear(128, 1 or 2). ``multi`` reads L links of one
    sample: per-link position p_i = Linear(128, 2)(e_i) and attention weights a = softmax_i(w2
    tanh(W1 e_i)) over the present links, p = sum_i a_i p_i. One decoder serves every TRP (the
    link's TRP is in its cfg; the authors' code has one MLP per BS, which cannot take a TRP it
    has not seen). Outputs are in standardised units (``loc.lwlm.tasks`` maps them back).
    """

    def __init__(self, encoder_hparams: dict, task: str) -> None:
        super().__init__()
        if task not in TASKS:
            raise ConfigError(f"unknown LWLM task {task!r} ({' | '.join(TASKS)})")
        self.task, self.encoder_hparams = task, dict(encoder_hparams)
        hp = {k: v for k, v in encoder_hparams.items() if k != "dec_depth"}
        self.encoder = Encoder(**hp)
        d = self.encoder.d_model
        self.cfg = nn.Sequential(nn.Linear(N_CFG, d), nn.ReLU())
        self.hidden = nn.Sequential(nn.Linear(2 * d, HEAD_HIDDEN), nn.ReLU())
        self.out = nn.Linear(HEAD_HIDDEN, 1 if task in ("toa", "aoa") else 2)
        if task == "multi":
            self.attn = nn.Sequential(nn.Linear(HEAD_HIDDEN, 32), nn.Tanh(), nn.Linear(32, 1))

    def link_features(self, grid: torch.Tensor, cfg: torch.Tensor) -> torch.Tensor:
        """(N, 2, K, A), (N, N_CFG) -> e (N, 128). The link's vector is the mean of its tokens
        (CLS included; the pooling of PICL), not the CLS token alone as in the authors' code:
        no pretraining objective reads CLS, so it carries nothing pretrained."""
        h = self.encoder(grid).mean(1)
        return self.hidden(torch.cat([h, self.cfg(cfg)], dim=-1))

    def forward(
        self, grid: torch.Tensor, cfg: torch.Tensor, present: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """grid (B, L, 2, K, A), cfg (B, L, N_CFG), present (B, L) bool -> (prediction (B, n_out),
        per-link positions (B, L, 2) for ``multi``, else None). L = 1 except for ``multi``."""
        b, n = grid.shape[:2]
        e = self.link_features(grid.flatten(0, 1), cfg.flatten(0, 1)).view(b, n, -1)
        if self.task != "multi":
            return self.out(e[:, 0]), None
        p = self.out(e)  # (B, L, 2)
        if present is None:
            present = torch.ones(b, n, dtype=torch.bool, device=grid.device)
        score = self.attn(e)[..., 0].masked_fill(~present, float("-inf"))
        a = torch.softmax(score, dim=1)
        return (a[..., None] * p).sum(1), p
