"""Checkpoints are data, not code: tensors plus plain metadata, read with
``torch.load(weights_only=True)``.

A checkpoint file is a ``torch.save``d dict whose leaves are tensors, ``torch.Size``, str, int,
float, bool or None, inside dicts, lists and tuples (``plain`` converts numpy values and paths
on the way in and refuses anything else). Every loader in ``loc`` goes through ``load_plain``,
so a shared checkpoint or run folder cannot run code when ``loc eval``, ``loc train
--init-from``, a resume or ``loc pretrain`` / the LWLM tasks read it: PyTorch's restricted
unpickler refuses any other global before it is called, and we turn that into one line
(``CheckpointError``, CLI exit 2) with a hint for checkpoints written by older code.
``convert_checkpoint`` re-saves such a file as plain data; it unpickles the old file fully,
i.e. runs whatever it holds, so it is only for files you made yourself.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from collections import OrderedDict
from pathlib import Path, PurePath

import numpy as np
import torch

from loc.errors import CheckpointError

CONVERT_HINT = (
    "re-train it, or, only if you made the file yourself, convert it with "
    "`loc convert-checkpoint {path}` (that runs the code the file holds)"
)
_SCALARS = (str, int, float, bool, type(None))


def plain(obj, where: str = "checkpoint"):
    """``obj`` with numpy arrays as tensors, numpy scalars as Python numbers, paths as str and
    dataclasses as dicts; TypeError for anything else that is not a tensor, ``torch.Size``,
    str / int / float / bool / None, or a dict / list / tuple of those (``where`` names it)."""
    if isinstance(obj, np.generic):  # before the scalars: np.float64 is a float subclass
        return obj.item()
    if isinstance(obj, (torch.Tensor, torch.Size, *_SCALARS)):
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, PurePath):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):  # a state_dict stays an OrderedDict with its version _metadata
        out = OrderedDict() if isinstance(obj, OrderedDict) else {}
        for k, v in obj.items():
            if not isinstance(k, str | int):
                raise TypeError(f"{where}: key {k!r} is not a str or int")
            out[k] = plain(v, f"{where}[{k!r}]")
        if hasattr(obj, "_metadata"):
            out._metadata = plain(obj._metadata, f"{where}._metadata")
        return out
    if isinstance(obj, list | tuple):
        items = [plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    raise TypeError(f"{where}: {type(obj).__name__} is not plain checkpoint data")


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """Atomic ``torch.save`` of ``plain(payload)`` (a temp file, then a rename)."""
    path = Path(path)
    data = plain(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(data, tmp)
    os.replace(tmp, path)


def load_plain(path: str | Path, map_location: torch.device | str = "cpu"):
    """The content of a plain-data file, read with ``torch.load(weights_only=True)``;
    CheckpointError (one line) when it is missing, unreadable, or holds anything but tensors
    and plain metadata (refused before any of it runs)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path} holds more than tensors and plain data, refused (loading it could run "
            f"code): {CONVERT_HINT.format(path=path)}"
        ) from None
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {first}") from None


def read_checkpoint(path: str | Path, fmt: str, name: str, what: str) -> dict:
    """The payload of checkpoint ``path`` (a file, or a folder holding ``name``) of format
    ``fmt``; CheckpointError (one line) when it is missing, unreadable, not plain data or of
    another kind (``what`` names the kind expected)."""
    path = Path(path)
    if path.is_dir():
        path = path / name
    ckpt = load_plain(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        raise CheckpointError(f"{path} is not a {what}")
    return ckpt


def convert_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Re-save checkpoint ``src`` as plain data at ``dst`` (numpy values as tensors / numbers).
    Unpickles ``src`` fully, running whatever code it holds: only for files you made."""
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise CheckpointError(f"checkpoint not found: {src}")
    try:
        data = torch.load(src, map_location="cpu", weights_only=False)
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint {src}: {type(e).__name__}") from None
    try:
        save_checkpoint(dst, data)
    except TypeError as e:
        raise CheckpointError(f"cannot convert {src}: {e}") from None
    return dst
