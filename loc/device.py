"""Where and in what precision models run: the device choice and the bf16 autocast policy,
shared by training (``loc.fit``) and inference (``loc.evaluate``)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from loc.errors import ConfigError


def resolve_device(device: str) -> torch.device:
    """ "auto" -> CUDA when available, else CPU. Asking for CUDA without one is a ConfigError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"unknown device {device!r} (cpu | cuda | auto)")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was requested but no CUDA GPU is available")
    return torch.device(device)


def autocast(
    device: torch.device, model: nn.Module, precision: str
) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA for ``precision`` "bf16", or "auto" and a model that declares it
    safe (``bf16_ok``); a null context otherwise (CPU always runs fp32)."""
    use = device.type == "cuda" and (
        precision == "bf16" or (precision == "auto" and getattr(model, "bf16_ok", False))
    )
    return torch.autocast("cuda", dtype=torch.bfloat16) if use else contextlib.nullcontext()
