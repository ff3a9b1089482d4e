"""CLI: train -> checkpoint + report, eval (incl. another group), one-line errors, exit 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from loc.cli import app

runner = CliRunner()
SMALL = [
    "--n-train",
    "64",
    "--n-test",
    "50",
    "--trps",
    "0",
    "--batch-size",
    "16",
    "--log-every",
    "5",
    "--quiet",
    "--device",
    "cpu",
]


def test_train_and_eval_point_model(store_path, tmp_path):
    out = tmp_path / "cnn"
    r = runner.invoke(
        app,
        ["train", str(store_path), "--model", "cnn", "--steps", "10", "--out", str(out), *SMALL],
    )
    assert r.exit_code == 0, r.output
    assert (out / "checkpoint.pt").exists()
    rep = json.loads((out / "eval_dry.json").read_text())
    assert rep["overall"]["n"] == 50 and "mean" in rep["overall"]
    assert (out / "eval_dry_cdf.png").exists()
    r = runner.invoke(
        app,
        [
            "eval",
            str(out),
            "--group",
            "rain_25mmh",
            "--label",
            "rain",
            "--device",
            "cpu",
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    rain = json.loads((out / "rain.json").read_text())
    assert rain["store"]["group"] == "rain_25mmh"
    assert rain["store"]["transform"] == rep["store"]["transform"]  # training scale reused
    r = runner.invoke(
        app,
        [
            "train",
            str(store_path),
            "--group",
            "rain_25mmh",
            "--model",
            "cnn",
            "--steps",
            "2",
            "--init-from",
            str(out),
            "--constant-lr",
            "--lr",
            "1e-4",
            "--out",
            str(tmp_path / "ft"),
            *SMALL,
        ],
    )
    assert r.exit_code == 0, r.output


def test_train_and_eval_set_model(store_path, tmp_path):
    out = tmp_path / "mf"
    r = runner.invoke(
        app,
        [
            "train",
            str(store_path),
            "--model",
            "mateformer",
            "--k",
            "8",
            "--model-kwargs",
            '{"depth": 1, "d_model": 32, "d_ff": 32}',
            "--steps",
            "5",
            "--out",
            str(out),
            *SMALL,
        ],
    )
    assert r.exit_code == 0, r.output
    assert "mean" in r.output
    r = runner.invoke(
        app, ["eval", str(out / "checkpoint.pt"), "--mode", "random", "--quiet", "--device", "cpu"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads((out / "eval.json").read_text())["mode"] == "random"


@pytest.mark.parametrize(
    "args,msg",
    [
        (["train", "{tmp}/missing.zarr"], "store not found"),
        (["train", "{store}", "--group", "wet"], "group 'wet' not in store"),
        (["train", "{store}", "--model", "resnet"], "unknown model"),
        (["train", "{store}", "--n-train", "1000"], "cannot split"),
        (
            [
                "train",
                "{store}",
                "--n-train",
                "40",
                "--n-test",
                "10",
                "--batch-size",
                "8",
                "--steps",
                "1",
            ],
            "need 64 neighbours but the database has only 39",
        ),
        (["train", "{store}", "--trps", "7"], "bad trps selection"),
        (["train", "{store}", "--scale", "big"], "--scale must be a number"),
        (["eval", "{tmp}/nothing"], "checkpoint not found"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(store_path, tmp_path, args, msg):
    args = [a.format(tmp=tmp_path, store=store_path) for a in args]
    r = runner.invoke(app, [*args, "--device", "cpu", "--quiet"])
    assert r.exit_code == 2, r.output
    assert msg in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_cuda_request_without_gpu(store_path, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    r = runner.invoke(
        app,
        [
            "train",
            str(store_path),
            "--device",
            "cuda",
            "--steps",
            "1",
            "--out",
            str(tmp_path),
            *SMALL[:-2],
        ],
    )
    assert r.exit_code == 2 and "no CUDA GPU" in r.output
