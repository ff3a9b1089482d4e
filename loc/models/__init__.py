"""Model zoo and registry.

Three interfaces (``model.kind``):

- ``"point"`` (CNN, AD_CNN, MFCNet): ``forward(h (B, G, A, C, 2)) -> (B, 2)`` metres.
- ``"set"``   (Mateformer, ICLLoc):  ``forward(nei_h (B, P, ...), nei_x (B, P, 2),
  cur_h (B, Q, ...)) -> (B, Q, 2)``; trained on [k neighbours..., self] sequences.
- ``"trp"``   (VIn-Loc, ResNet fingerprinting): ``forward(h (B, G, A, C, 2), trp_xyz (B, T, 3),
  present (B, T)) -> (B, 2)``; one token / input slot per TRP, absent TRPs masked.

Also "point" models: DCNN (semantic-DA supervised baseline) and MetaLoc's MLP (trained by the
loop = the TL / RI baselines; MAML in ``loc.fit.meta``). DANN, MDA and HDA are "point"
models at inference but train on source + target data with ``loc.fit.da.train_da``
(``trainer`` attribute); ``loc.fit.supervised.train`` refuses them. Model-based baselines (ToA
multilateration, kNN fingerprinting) are functions in ``loc.models.multilateration``.

Every model has ``training_loss(...)`` (its own sampling / loss from the spec), ``hparams``
(the kwargs that rebuild it) and ``bf16_ok`` (whether bf16 autocast is numerically safe).
"""

from __future__ import annotations

from torch import nn

from loc.errors import ConfigError
from loc.models.cnn import ADCNN, CNN
from loc.models.da import DANN, DCNN, SemanticDA
from loc.models.iclloc import ICLLoc
from loc.models.mateformer import Mateformer
from loc.models.metaloc import MetaLocNet
from loc.models.mfcnet import MFCNet
from loc.models.resnet_fp import AlignedResNetFingerprint
from loc.models.vinloc import ResNetFingerprint, VInLoc

# name -> (class, fixed kwargs). "alloc" is the paper's name for the Mateformer system.
MODELS: dict[str, tuple[type[nn.Module], dict]] = {
    "mateformer": (Mateformer, {}),
    "alloc": (Mateformer, {}),
    "cnn": (CNN, {}),
    "ad_cnn": (ADCNN, {}),
    "mfcnet": (MFCNet, {}),
    "iclloc_gen": (ICLLoc, {"scheme": "generative"}),
    "iclloc_disc": (ICLLoc, {"scheme": "discriminative"}),
    "vinloc": (VInLoc, {}),
    "vinloc_nopos": (VInLoc, {"use_positions": False}),
    "resnet_fp": (AlignedResNetFingerprint, {}),  # ResNetFingerprint + VIn-Loc's aligned input
    "dcnn": (DCNN, {}),
    "dann": (DANN, {}),
    "mda": (SemanticDA, {"method": "mda"}),
    "hda": (SemanticDA, {"method": "hda"}),
    "metaloc": (MetaLocNet, {}),
}

# Peak learning rates per model kind. PAPER_LR: the specs' (Adam 1e-4 for ALLoc and ICLLoc,
# "same settings"; 1e-3 for the baselines; VIn-Loc 4e-4 with AdamW, its own ``make_optimizer``).
# PEAK_LR: our default recipe (conditioned targets, warm-up + cosine), from the measured sweep
# in docs/benchmarks.md ("Learning-rate sweep": 3e-3 won for every family at CPU widths; set
# models keep 1e-3, 2-14 % behind there, as full-width transformers are the least stable); a
# model name overrides its kind.
PAPER_LR = {"set": 1e-4, "point": 1e-3, "trp": 4e-4}
# VIn-Loc is a transformer like the set models: at the paper's width (8.9 M parameters) and 3e-3
# its loss did not move in 1,000 steps on paris_vinloc (vinloc cpu budget, 4,000 samples).
PEAK_LR: dict[str, float] = {"set": 1e-3, "point": 3e-3, "trp": 3e-3, "vinloc": 1e-3}


def default_lr(name: str, recipe: str = "conditioned") -> float:
    """Peak LR of model ``name`` under ``recipe`` ("conditioned" | "paper")."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r} (choose from {', '.join(MODELS)})")
    kind = MODELS[name][0].kind
    if recipe == "paper":
        return PAPER_LR[kind]
    return PEAK_LR.get(name, PEAK_LR[kind])


def default_domain(names: list[str], recipe: str = "conditioned", variable: str = "csi") -> str:
    """The CSI input transform (``loc.data.CSITransform.domain``) for models ``names``: the
    angle-delay power ("ad_power") under the conditioned recipe on the CFR when none of them
    transforms the complex channel itself (``complex_input``: AD_CNN, the TRP-token, DA and
    MetaLoc models) and all are registered (suite-only rows, e.g. multilateration, read the
    channel as stored); else the stored channel as is ("freq", the papers' input)."""
    plain = all(n in MODELS and not getattr(MODELS[n][0], "complex_input", False) for n in names)
    return "ad_power" if plain and recipe == "conditioned" and variable == "csi" else "freq"


def build_model(
    name: str, in_shape: tuple[int, int, int], array: tuple | None = None, **overrides
) -> nn.Module:
    """Instantiate a registered model for CSI samples of shape ``in_shape`` = (G, A, C).
    ``array``: the TRP array's (rows, cols, ports) (``CSIStore.array_shape``), given to the
    models that compute their own angle DFT (``takes_array``); None: their 1-D DFT."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r} (choose from {', '.join(MODELS)})")
    cls, fixed = MODELS[name]
    if array is not None and getattr(cls, "takes_array", False):
        overrides = {"array": tuple(array), **overrides}
    try:
        model = cls(in_shape=tuple(in_shape), **{**fixed, **overrides})
    except TypeError as e:
        raise ConfigError(f"bad options for model {name!r}: {e}") from None
    model.name = name
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "ADCNN",
    "CNN",
    "DANN",
    "DCNN",
    "PAPER_LR",
    "PEAK_LR",
    "ICLLoc",
    "MFCNet",
    "MODELS",
    "Mateformer",
    "MetaLocNet",
    "ResNetFingerprint",
    "SemanticDA",
    "VInLoc",
    "build_model",
    "count_parameters",
    "default_domain",
    "default_lr",
]
