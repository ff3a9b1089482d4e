"""VIn-Loc (spec ``vinloc.md``): one token per TRP, a learnable [LOC] token, a transformer
encoder and an MLP regressor; plus the "no TRP positions" ablation and a ResNet
RF-fingerprinting baseline.

Interface (``kind == "trp"``)::

    forward(h (B, G, A, C, 2), trp_xyz (B, T, 3) m, present (B, T) bool) -> (B, out_dim) m

G = T * U link groups (the store's trp and ue_ant axes merged, TRP-major), A TRP antennas,
C subcarriers. ``present`` marks TRPs that have a path to the UE (``loc.data.FeatureBank.
trp_context`` derives it from ``link_state``); absent TRPs are padded tokens hidden by the
key-padding mask, so the output depends neither on their CSI/position nor on the token order.

Per-TRP input (the paper's "N_TRP x 256 x 3"): the CIR of every antenna pair, i.e. the
orthonormal inverse DFT of the CFR over subcarriers -> C taps at 1/B spacing. Simgen's CFR
keeps absolute delays (exp(-j 2 pi (f_c + f_k) tau) on a common clock), so the taps are
synchronized across TRPs (delays modulo C/B). The 3 per-tap features are (Re, Im, |h|)
[spec ambiguity, our choice]. ``domain="angle_delay"`` also takes the unitary angle DFT of the
TRP array (``loc.transforms.angle_dft``: the 2-D Kronecker DFT of a planar array, read from the
store's array shape; a ULA's 1-D DFT) over each UE antenna's A TRP antennas, the AoA x ToF
image of the paper's scenario 2.

Locations are standardised with ``origin``/``scale`` buffers fitted on the training labels
(``fit_targets``, called by ``loc.fit.supervised.train``); TRP positions enter in the same units.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from loc.errors import ConfigError
from loc.models.targets import TargetNorm
from loc.transforms import ArrayShape, angle_dft, array_hparams

DOMAINS = ("delay", "angle_delay", "taps")  # channel input of the TRP-token models
TAP_NORMS = ("global", "peak", "aligned")  # see cir_features / aligned_taps
TAP_FEATURES = {"peak": 4, "global": 3, "aligned": 3}  # features per tap (CIR image channels)
ALIGN_PRE = 4  # aligned_taps: taps kept before the first arrival
ALIGN_REL_DB = 20.0  # aligned_taps: the first arrival is within this many dB of the peak ...
ALIGN_FLOOR_DB = 15.0  # ... and this many dB above the TRP's median tap power (noise floor)
ALIGN_DELAY_UNIT = 16.0  # aligned_taps: the delay feature counts taps in units of 16


def trp_layout(in_shape: tuple[int, int, int], n_trp: int | None, domain: str) -> tuple[int, int]:
    """(n_trp, R) for samples of shape (G, A, C) split into ``n_trp`` TRPs (default G: one UE
    antenna), R = (G / n_trp) * A antenna rows per TRP; checks the split and ``domain``."""
    g, a, _ = in_shape
    n_trp = g if n_trp is None else int(n_trp)
    if n_trp < 1 or g % n_trp:
        raise ConfigError(f"{g} link groups do not split into {n_trp} TRPs")
    if domain not in DOMAINS:
        raise ConfigError(f"unknown VIn-Loc domain {domain!r} ({' | '.join(DOMAINS)})")
    return n_trp, (g // n_trp) * a


def complex_taps(
    h: torch.Tensor, n_trp: int, domain: str = "delay", f_angle: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, G, A, C, 2) channel -> (B, T, R, C) complex CIR taps per TRP and antenna row (the
    IDFT over C of a CFR; "taps": as stored). "angle_delay": then ``f_angle`` (A, A) complex
    (``angle_buffer``; None: the 1-D DFT) over the A TRP antennas of every link group."""
    b, g, a, c, _ = h.shape
    n_trp, rows = trp_layout((g, a, c), n_trp, domain)
    taps = torch.view_as_complex(h.float().contiguous())  # (B, G, A, C)
    if domain != "taps":
        taps = torch.fft.ifft(taps, dim=-1, norm="ortho")
    if domain == "angle_delay":
        if f_angle is None:
            f_angle = torch.from_numpy(angle_dft(a).astype(np.complex64))
        taps = f_angle.to(taps.device) @ taps
    return taps.reshape(b, n_trp, rows, c)


def angle_buffer(
    model: nn.Module, domain: str, n_ant: int, array: ArrayShape | None
) -> torch.Tensor | None:
    """For ``domain == "angle_delay"``: the TRP array's unitary angle DFT (A, A) complex64
    (``loc.transforms.angle_dft``), registered on ``model`` as the non-persistent buffer
    ``f_angle``, and the array's shape put in its hparams; else None."""
    if domain != "angle_delay":
        return None
    model.hparams.update(array_hparams(array))
    f = torch.from_numpy(angle_dft(n_ant, array).astype(np.complex64))
    model.register_buffer("f_angle", f, persistent=False)
    return model.f_angle


def cir_features(
    h: torch.Tensor,
    n_trp: int,
    domain: str = "delay",
    tap_norm: str = "global",
    f_angle: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, G, A, C, 2) channel features -> (B, T, F, R, C) per-TRP CIR tap features,
    F = ``TAP_FEATURES[tap_norm]``.

    R = U * A antenna rows (U = G / T UE antennas). domain "delay": the input is a CFR and the
    taps are its orthonormal IDFT over C; "angle_delay": then also the angle DFT ``f_angle``;
    "taps": the input already is a CIR (simgen's ``cir`` variable), used as is.

    tap_norm "global" (the paper's, and our default by measurement): (Re, Im, |h|) of the taps
    as scaled by the one global CSI constant. "peak": per TRP, normalised by its peak |h|
    (Re / peak, Im / peak, the log-power re the peak in dB / 40 + 1 clipped to [0, 1], the
    TRP's peak level in dB re the global scale / 20; absent TRPs give zeros), meant to lift weak
    TRPs' first arrivals (14 dB median per-UE power spread across paris_vinloc's 12 TRPs) but
    measured worse for VIn-Loc (paris_vinloc, 1,000 UEs, CIR: 61.6 vs 21.0 m mean) and about
    even for ResNet fingerprinting (10.6 vs 11.5 m); docs/benchmarks.md.
    """
    if tap_norm not in ("global", "peak"):
        raise ConfigError(f"unknown tap_norm {tap_norm!r} for a CIR image (global | peak)")
    taps = complex_taps(h, n_trp, domain, f_angle)
    mag = taps.abs()
    if tap_norm == "global":
        return torch.stack([taps.real, taps.imag, mag], dim=2)
    peak = mag.amax(dim=(-2, -1), keepdim=True)  # (B, T, 1, 1)
    alive = (peak > 0).float()
    rel_db = 20 * torch.log10(mag.clamp_min(1e-30) / peak.clamp_min(1e-30))
    level = 20 * torch.log10(peak.clamp_min(1e-30)) / 20
    unit = taps / peak.clamp_min(1e-30)
    feats = [
        unit.real,
        unit.imag,
        (rel_db / 40 + 1).clamp(0, 1),
        (level.clamp(-10, 10) * alive).expand_as(mag),
    ]
    return torch.stack(feats, dim=2) * alive[:, :, None]


def aligned_taps(
    h: torch.Tensor,
    n_trp: int,
    window: int,
    domain: str = "delay",
    f_angle: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Peak-aligned, power-normalised CIR windows and the first arrival of every TRP.

    h (B, G, A, C, 2) -> (win (B, T, 3, R, window), scalars (B, T, 2)).

    Per TRP, i0 = the first tap whose power (summed over the R antenna rows) is within
    ``ALIGN_REL_DB`` of the TRP's strongest tap and ``ALIGN_FLOOR_DB`` above its median tap (the
    noise floor at low SNR; the strongest tap when none is). ``win`` holds taps i0 - ALIGN_PRE
    ... i0 - ALIGN_PRE + window - 1 (cyclic: simgen's taps are delays modulo C / B), each row
    de-rotated by its phase at i0 and divided by the TRP's peak amplitude: (Re, Im, log-power re
    the peak in dB / 40 + 1 clipped to [0, 1]). ``scalars`` = (i0 / ALIGN_DELAY_UNIT, the peak
    level in dB re the global CSI scale / 20): the synchronized delay that ranges the TRP, and
    how much to trust it. Absent TRPs (all-zero channel) give zeros.
    """
    taps = complex_taps(h, n_trp, domain, f_angle)
    b, n_trp, rows, c = taps.shape
    power = (taps.abs() ** 2).sum(-2)  # (B, T, C)
    peak = power.amax(-1, keepdim=True)
    floor = power.median(-1, keepdim=True).values
    ok = (power >= peak * 10 ** (-ALIGN_REL_DB / 10)) & (
        power >= floor * 10 ** (ALIGN_FLOOR_DB / 10)
    )
    i0 = torch.where(ok.any(-1), ok.float().argmax(-1), power.argmax(-1))  # (B, T)
    idx = (i0[..., None] - ALIGN_PRE + torch.arange(window, device=h.device)) % c  # (B, T, W)
    win = taps.gather(-1, idx[:, :, None, :].expand(b, n_trp, rows, window))
    alive = (peak[..., 0] > 0).float()  # (B, T)
    amp = peak.sqrt().clamp_min(1e-30)[..., None]  # (B, T, 1, 1)
    ref = win[..., ALIGN_PRE : ALIGN_PRE + 1]
    unit = win * ref.conj() / ref.abs().clamp_min(1e-30) / amp
    rel_db = 20 * torch.log10(unit.abs().clamp_min(1e-30))
    feats = torch.stack([unit.real, unit.imag, (rel_db / 40 + 1).clamp(0, 1)], dim=2)
    level = 10 * torch.log10(peak[..., 0].clamp_min(1e-30)) / 20
    scalars = torch.stack([i0.float() / ALIGN_DELAY_UNIT, level.clamp(-10, 10)], dim=-1)
    return feats * alive[:, :, None, None, None], scalars * alive[..., None]


def random_subset(present: torch.Tensor, s: int, rng: np.random.Generator) -> torch.Tensor:
    """Keep a uniformly random subset of min(s, #present) present TRPs per row.

    present: (B, T) bool. Returns (B, T) bool, a subset of ``present``.
    """
    keys = torch.as_tensor(rng.random(present.shape), device=present.device)
    keys = keys.masked_fill(~present, float("inf"))
    rank = keys.argsort(dim=1).argsort(dim=1)
    return present & (rank < s)


class ChannelEncoder(nn.Module):
    """UNet-like contracting conv encoder on one TRP's (F, R, D) CIR image -> d_out.

    Each of the 4 levels: Conv(k) ReLU Conv(k) ReLU MaxPool, k = 3x3 (1x3 when R == 1) and
    pooling (2, 2) ((1, 2) once the antenna rows are down to 1); then a 1x1 conv to
    ``out_channels`` (6), flatten, MLP -> d_out.
    """

    def __init__(
        self,
        rows: int,
        taps: int,
        channels: tuple[int, ...] = (16, 32, 64, 128),
        out_channels: int = 6,
        d_out: int = 256,
        in_features: int = 3,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in, r, d = in_features, rows, taps
        for c_out in channels:
            kr = 3 if r > 1 else 1
            layers += [
                nn.Conv2d(c_in, c_out, (kr, 3), padding=(kr // 2, 1)),
                nn.ReLU(),
                nn.Conv2d(c_out, c_out, (kr, 3), padding=(kr // 2, 1)),
                nn.ReLU(),
                nn.MaxPool2d((2 if r > 1 else 1, 2), ceil_mode=True),
            ]
            r, d = (r + 1) // 2 if r > 1 else 1, (d + 1) // 2
            c_in = c_out
        layers += [nn.Conv2d(c_in, out_channels, 1), nn.Flatten()]
        self.conv = nn.Sequential(*layers)
        self.mlp = nn.Sequential(
            nn.Linear(out_channels * r * d, d_out), nn.ReLU(), nn.Linear(d_out, d_out)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, F, R, D) -> (N, d_out)."""
        return self.mlp(self.conv(x))


def _mlp(d_in: int, hidden: int, layers: int, d_out: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(layers - 1):
        mods += [nn.Linear(d_in if i == 0 else hidden, hidden), nn.ReLU()]
    mods.append(nn.Linear(hidden if layers > 1 else d_in, d_out))
    return nn.Sequential(*mods)


class VInLoc(TargetNorm):
    """VIn-Loc transformer (paper Table 1). Defaults are the paper's sizes.

    Args:
        in_shape: (G, A, C) of one sample; ``n_trp`` TRPs (default G: one UE antenna).
        d_emb: channel and position embedding width (256; tokens are 2 * d_emb = 512).
        depth, n_heads, d_ff: transformer encoder (4 blocks, 4 heads, MLP 1024, pre-LN).
        head_hidden, head_layers: output MLP on the [LOC] output (4 layers, hidden 256).
        use_positions: False = the "no TRP positions" ablation (tokens carry a zero position
            embedding slot, so the width stays 512).
        train_subset: S, the number of present TRPs kept per training example (random subset;
            None = all). On a TRP pool this also draws a random layout per example.
        out_dim: 2 (x, y; the loc labels) or 3 (z regressed around 0).
        tap_norm: the channel token's input: "global" (the paper's: every tap as scaled by the
            global CSI constant), "peak" (per-TRP peak-normalised), or "aligned" (our CPU
            width: ``window`` taps from each TRP's first arrival, ``aligned_taps``, plus an
            embedding of that arrival's delay and level added to the channel embedding).
        window: taps per TRP under "aligned".
    """

    takes_array = True  # build_model passes the store's TRP array shape (angle_delay)

    kind = "trp"
    bf16_ok = True
    complex_input = True  # makes its own CIR features from the complex channel

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        n_trp: int | None = None,
        d_emb: int = 256,
        depth: int = 4,
        n_heads: int = 4,
        d_ff: int = 1024,
        head_hidden: int = 256,
        head_layers: int = 4,
        enc_channels: tuple[int, ...] = (16, 32, 64, 128),
        enc_out: int = 6,
        use_positions: bool = True,
        train_subset: int | None = None,
        domain: str = "delay",
        out_dim: int = 2,
        tap_norm: str = "global",
        window: int = 32,
        array: ArrayShape | None = None,
    ) -> None:
        super().__init__()
        n_trp, rows = trp_layout(in_shape, n_trp, domain)
        if tap_norm not in TAP_NORMS:
            raise ConfigError(f"unknown tap_norm {tap_norm!r} ({' | '.join(TAP_NORMS)})")
        aligned = tap_norm == "aligned"
        if aligned and not ALIGN_PRE < window <= in_shape[2]:
            raise ConfigError(f"window must be in ({ALIGN_PRE}, {in_shape[2]}], got {window}")
        c = window if aligned else in_shape[2]
        if out_dim not in (2, 3):
            raise ConfigError(f"out_dim must be 2 or 3, got {out_dim}")
        self.hparams = dict(
            in_shape=tuple(in_shape),
            n_trp=n_trp,
            d_emb=d_emb,
            depth=depth,
            n_heads=n_heads,
            d_ff=d_ff,
            head_hidden=head_hidden,
            head_layers=head_layers,
            enc_channels=tuple(enc_channels),
            enc_out=enc_out,
            use_positions=use_positions,
            train_subset=train_subset,
            domain=domain,
            out_dim=out_dim,
            tap_norm=tap_norm,
            window=window,
        )
        self.n_trp, self.domain, self.use_positions = n_trp, domain, use_positions
        self.f_angle = angle_buffer(self, domain, in_shape[1], array)
        self.window = window
        self.tap_norm = tap_norm
        self.train_subset = train_subset
        self.channel = ChannelEncoder(
            rows, c, tuple(enc_channels), enc_out, d_emb, TAP_FEATURES[tap_norm]
        )
        self.arrival = (  # "aligned": the first arrival's (delay, level) -> d_emb
            nn.Sequential(nn.Linear(2, d_emb), nn.ReLU(), nn.Linear(d_emb, d_emb))
            if aligned
            else None
        )
        self.position = (
            nn.Sequential(nn.Linear(3, d_emb), nn.ReLU(), nn.Linear(d_emb, d_emb))
            if use_positions
            else None
        )
        d_model = 2 * d_emb
        self.loc_token = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, d_ff, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(
            layer, depth, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )
        self.head = _mlp(d_model, head_hidden, head_layers, out_dim)

    def tokens(self, h: torch.Tensor, trp_xyz: torch.Tensor) -> torch.Tensor:
        """(B, G, A, C, 2), (B, T, 3) m -> TRP tokens (B, T, 2 * d_emb); any T >= 1 with
        G = T * U (U UE antennas, as in training)."""
        if self.arrival is None:
            x = cir_features(h, trp_xyz.shape[1], self.domain, self.tap_norm, self.f_angle)
        else:
            x, arrival = aligned_taps(h, trp_xyz.shape[1], self.window, self.domain, self.f_angle)
        b, t = x.shape[:2]
        emb = self.channel(x.flatten(0, 1)).view(b, t, -1)
        if self.arrival is not None:
            emb = emb + self.arrival(arrival)
        if self.position is None:
            return torch.cat([emb, torch.zeros_like(emb)], dim=-1)
        pos = torch.nan_to_num(self.normalise_xyz(trp_xyz.float()))
        return torch.cat([emb, self.position(pos)], dim=-1)

    def forward(
        self, h: torch.Tensor, trp_xyz: torch.Tensor, present: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Location (B, out_dim) m. trp_xyz (B, T, 3) m; present (B, T) bool (None: every
        TRP). T may differ from the training n_trp: tokens are a set."""
        tok = self.tokens(h, trp_xyz)
        b = tok.shape[0]
        if present is None:
            present = torch.ones(tok.shape[:2], dtype=torch.bool, device=tok.device)
        seq = torch.cat([self.loc_token.expand(b, -1, -1).to(tok.dtype), tok], dim=1)
        pad = torch.cat([present.new_zeros(b, 1), ~present.bool()], dim=1)  # True = ignore
        out = self.encoder(seq, src_key_padding_mask=pad)
        return self.to_metres(self.head(out[:, 0]).float())

    def training_loss(
        self,
        h: torch.Tensor,
        xy: torch.Tensor,
        rng: np.random.Generator,
        trp_xyz: torch.Tensor,
        present: torch.Tensor,
    ) -> torch.Tensor:
        """l2-norm loss (standardised units); a random subset of S present TRPs per example."""
        if self.train_subset is not None:
            present = random_subset(present, self.train_subset, rng)
        return self.l2_loss(self(h, trp_xyz, present), xy)

    def make_optimizer(self, lr: float) -> torch.optim.Optimizer:
        return vinloc_optimizer(self.parameters(), lr)


def vinloc_optimizer(params, lr: float) -> torch.optim.Optimizer:
    """VIn-Loc's optimiser (spec): AdamW, weight decay 0.1, "momentum 0.99" read as beta1. The
    ResNet fingerprinting baseline compared with VIn-Loc trains with it too (benchmark-fairness
    rule 3: compared models share their optimiser)."""
    return torch.optim.AdamW(params, lr=lr, betas=(0.99, 0.999), weight_decay=0.1)


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: tuple[int, int], kr: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, (kr, 3), stride, (kr // 2, 1), bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, (kr, 3), 1, (kr // 2, 1), bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.skip = (
            nn.Identity()
            if c_in == c_out and stride == (1, 1)
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.skip(x))


class ResNetFingerprint(TargetNorm):
    """ResNet RF-fingerprinting baseline: every TRP's CIR features stacked as channels in a
    fixed TRP order, (B, F T, R, C) -> ResNet (stem + 3 stages of 2 basic blocks, widths
    ``widths``, delay stride 2 per stage) -> pool to (1, pool_taps) -> MLP -> (B, 2) m.

    Absent TRPs (``present`` False) are zero inputs; TRP positions are ignored. With
    ``train_subset`` it sees random TRP subsets in training (the paper's variable case).
    """

    takes_array = True  # build_model passes the store's TRP array shape (angle_delay)

    kind = "trp"
    bf16_ok = False
    complex_input = True  # makes its own CIR features from the complex channel

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        n_trp: int | None = None,
        widths: tuple[int, ...] = (32, 64, 128),
        pool_taps: int = 4,
        hidden: int = 256,
        train_subset: int | None = None,
        domain: str = "delay",
        tap_norm: str = "global",
        array: ArrayShape | None = None,
    ) -> None:
        super().__init__()
        n_trp, rows = trp_layout(in_shape, n_trp, domain)
        if tap_norm not in ("global", "peak"):
            raise ConfigError(f"unknown tap_norm {tap_norm!r} for ResNet fingerprinting")
        self.hparams = dict(
            in_shape=tuple(in_shape),
            n_trp=n_trp,
            widths=tuple(widths),
            pool_taps=pool_taps,
            hidden=hidden,
            train_subset=train_subset,
            domain=domain,
            tap_norm=tap_norm,
        )
        self.n_trp, self.domain, self.train_subset = n_trp, domain, train_subset
        self.f_angle = angle_buffer(self, domain, in_shape[1], array)
        self.tap_norm = tap_norm
        kr = 3 if rows > 1 else 1
        layers: list[nn.Module] = [
            nn.Conv2d(
                TAP_FEATURES[tap_norm] * n_trp, widths[0], (kr, 3), padding=(kr // 2, 1), bias=False
            ),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        ]
        c_in = widths[0]
        for w in widths:
            stride = (2 if rows > 1 else 1, 2)
            kr = 3 if rows > 1 else 1
            layers += [_BasicBlock(c_in, w, stride, kr), _BasicBlock(w, w, (1, 1), kr)]
            rows, c_in = (rows + 1) // 2 if rows > 1 else 1, w
        layers += [nn.AdaptiveAvgPool2d((1, pool_taps)), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(c_in * pool_taps, hidden), nn.ReLU(), nn.Linear(hidden, 2)
        )

    def forward(
        self, h: torch.Tensor, trp_xyz: torch.Tensor | None = None, present=None
    ) -> torch.Tensor:
        """Location (B, 2) m; ``trp_xyz`` is ignored (fingerprinting)."""
        x = cir_features(h, self.n_trp, self.domain, self.tap_norm, self.f_angle)  # (B,T,F,R,C)
        if present is not None:
            x = x * present[:, :, None, None, None].to(x.dtype)
        return self.to_metres(self.head(self.features(x.flatten(1, 2))))

    def training_loss(self, h, xy, rng, trp_xyz, present) -> torch.Tensor:
        """Same l2-norm loss and TRP subsetting as VIn-Loc."""
        if self.train_subset is not None:
            present = random_subset(present, self.train_subset, rng)
        return self.l2_loss(self(h, trp_xyz, present), xy)

    def make_optimizer(self, lr: float) -> torch.optim.Optimizer:
        """VIn-Loc's own (``vinloc_optimizer``): the two compared models share their recipe."""
        return vinloc_optimizer(self.parameters(), lr)
