"""Checkpoints are data: a planted pickle payload is refused without running, on every loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from loc.cli import app
from loc.errors import CheckpointError
from loc.fit.checkpoint import convert_checkpoint, load_plain, plain, save_checkpoint
from loc.fit.supervised import CHECKPOINT_FORMAT, load_checkpoint
from loc.lwlm.pretrain import load_encoder


class _Payload:
    """Unpickling this object creates ``marker`` (what a malicious checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _plant(path: Path, marker: Path) -> Path:
    torch.save({"format": CHECKPOINT_FORMAT, "model": "cnn", "x": _Payload(marker)}, path)
    return path


def test_a_planted_payload_is_refused_without_running(tmp_path):
    # the payload is live: an unrestricted load runs it
    live = tmp_path / "live"
    torch.load(_plant(tmp_path / "a.pt", live), weights_only=False)
    assert live.exists()
    # every loader refuses the same file before it runs anything
    marker = tmp_path / "ran"
    (tmp_path / "run").mkdir()
    bad = _plant(tmp_path / "run" / "checkpoint.pt", marker)
    for load, path in ((load_checkpoint, tmp_path / "run"), (load_plain, bad), (load_encoder, bad)):
        with pytest.raises(CheckpointError, match="refused") as e:
            load(path)
        assert "\n" not in str(e.value) and "convert-checkpoint" in str(e.value)
    res = CliRunner().invoke(app, ["eval", str(tmp_path / "run")])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "refused" in res.output
    assert not marker.exists()


def test_checkpoints_round_trip_as_plain_data(tmp_path):
    sd = torch.nn.Linear(3, 2).state_dict()
    payload = {"format": "f", "state_dict": sd, "hp": {"in_shape": (1, 2, 3)},
               "n": np.int64(3), "xy": np.zeros((2, 2)), "path": tmp_path}  # fmt: skip
    save_checkpoint(tmp_path / "c.pt", payload)
    ck = torch.load(tmp_path / "c.pt", weights_only=True)
    assert ck["hp"]["in_shape"] == (1, 2, 3) and ck["n"] == 3 and isinstance(ck["n"], int)
    assert torch.equal(ck["xy"], torch.zeros((2, 2), dtype=torch.float64))
    assert ck["path"] == str(tmp_path) and torch.equal(ck["state_dict"]["weight"], sd["weight"])
    with pytest.raises(TypeError, match="Linear"):
        plain({"model": torch.nn.Linear(1, 1)})


def test_convert_makes_an_old_checkpoint_loadable(tmp_path):
    old = tmp_path / "old.pt"
    torch.save({"format": "f", "scale": np.float64(2.0), "state": {"w": torch.ones(2)}}, old)
    with pytest.raises(CheckpointError, match="refused"):
        load_plain(old)  # numpy scalars are globals the restricted unpickler refuses
    res = CliRunner().invoke(app, ["convert-checkpoint", str(old)])
    assert res.exit_code == 0, res.output
    ck = load_plain(old)
    assert ck["scale"] == 2.0 and torch.equal(ck["state"]["w"], torch.ones(2))
    with pytest.raises(CheckpointError, match="not found"):
        convert_checkpoint(tmp_path / "missing.pt", tmp_path / "x.pt")
