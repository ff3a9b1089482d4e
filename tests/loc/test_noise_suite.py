"""Receiver noise end to end: `loc train --noise`, the snr protocols' tiny runs (from `loc suite
all --budget tiny`), ALLoc's query-noise columns, and the finding checks (which can fail)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from loc.cli import app
from loc.suite.papers import check_noise_robustness, check_snr

runner = CliRunner()
SMALL = ["--n-train", "64", "--n-test", "50", "--trps", "0", "--batch-size", "16",
         "--steps", "5", "--log-every", "5", "--device", "cpu"]  # fmt: skip


def test_train_with_noise_says_so_and_differs_from_noiseless(store_path, tmp_path):
    reports = {}
    for noise in ("noiseless", "awgn:-5"):
        out = tmp_path / noise.replace(":", "_")
        args = ["train", str(store_path), "--model", "cnn", "--out", str(out), *SMALL]
        r = runner.invoke(app, [*args, "--noise", noise])
        assert r.exit_code == 0, r.output
        label = "noiseless" if noise == "noiseless" else "AWGN -5 dB"
        assert f"({label})" in r.output  # every printed row names its noise
        reports[noise] = json.loads((out / "eval_dry.json").read_text())
        assert reports[noise]["store"]["noise_label"] == label
    assert reports["noiseless"]["overall"]["mean"] != reports["awgn:-5"]["overall"]["mean"]
    # eval re-reads the training noise from the checkpoint and takes a query noise
    r = runner.invoke(app, ["eval", str(tmp_path / "awgn_-5"), "--noise", "mult:0.3",
                            "--label", "m", "--device", "cpu", "--quiet"])  # fmt: skip
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "awgn_-5" / "m.json").read_text())
    assert rep["store"]["noise"] == "awgn:-5" and rep["store"]["query_noise"] == "mult:0.3"
    r = runner.invoke(app, ["train", str(store_path), *SMALL, "--noise", "awgn:loud"])
    assert r.exit_code == 2 and r.output.startswith("error: noise 'awgn:loud'")


def _load(root, name):
    return json.loads((root / "runs" / f"{name}_tiny" / f"{name}.json").read_text())


@pytest.mark.parametrize("name", ["snr", "snr_paris"])
def test_snr_protocols_tiny(suite_all_tiny, name):
    res = _load(suite_all_tiny, name)
    cols = {c["test"]: c for c in res["columns"] if c["experiment"] == "snr"}  # not the blocks
    assert cols["snr_10dB"]["noise"] == "AWGN 10 dB"
    assert cols["link_budget"]["noise"] == "link budget"
    assert all(c["training_noise"] == "AWGN -10..40 dB" for c in cols.values())
    assert all(c["database_noise"] == "link budget" for c in cols.values())
    peb = res["peb"]
    assert "noiseless" not in {c["test"] for c in res["columns"] if c["label"] in peb}
    means = [peb[cols[f"snr_{s}dB"]["label"]]["overall"]["mean"] for s in (-10, 0, 10, 20, 30)]
    assert np.allclose(np.diff(np.log10(means)), -0.5, atol=0.02)  # PEB ~ SNR^-1/2
    # the multipath-aware bound beside it (the snr check's reference), at the same columns
    mp = res["peb_multipath"]
    assert set(mp) == set(peb) and all(v["overall"]["n"] > 0 for v in mp.values())
    ml = [res["results"][cols[f"snr_{s}dB"]["label"]]["multilat"]["overall"]["mean"]
          for s in (-10, 30)]  # fmt: skip
    assert ml[0] > 2 * ml[1]  # multilateration from the noisy channel degrades
    oracle = [res["results"][c["label"]]["multilat_oracle"]["overall"]["mean"]
              for c in cols.values()]  # fmt: skip
    assert np.ptp(oracle) == 0  # the oracle reads the true ToA: no noise reaches it
    page = (suite_all_tiny / "results.md").read_text()
    assert f"## {name}" in page and "physical limit: PEB" in page


def test_single_scenario_has_query_noise_columns(suite_all_tiny):
    res = _load(suite_all_tiny, "single_scenario")
    noisy = [c for c in res["columns"] if c["noise"].startswith("mult")]
    assert [c["noise"] for c in noisy] == [f"mult sigma {s}" for s in (0.1, 0.2, 0.3, 0.5)]
    assert all(c["database_noise"] == "noiseless" for c in noisy)
    clean = next(c for c in res["columns"] if c["label"] == "40k: paris")
    knn = "kNN (k=5) on the input features"
    e0 = res["results"][clean["label"]][knn]["overall"]["mean"]
    e5 = res["results"][noisy[-1]["label"]][knn]["overall"]["mean"]
    assert e5 != e0  # the queries are distorted, the database is not
    assert check_noise_robustness(res).holds in (True, False)


def _snr_result(rows: dict[str, list[float]], bound_rms: float) -> dict:
    noises = ["AWGN -10 dB", "AWGN 0 dB", "AWGN 10 dB", "AWGN 30 dB", "link budget"]
    res = {"columns": [], "results": {}, "baselines": ["training mean"], "peb_multipath": {}}
    for i, n in enumerate(noises):
        res["columns"].append({"label": n, "experiment": "snr", "test": n, "noise": n})
        res["results"][n] = {
            m: {"overall": {"n": 10, "mean": v[i], "rmse": v[i]}} for m, v in rows.items()
        }
        res["peb_multipath"][n] = {"overall": {"n": 10, "mean": bound_rms, "rmse": bound_rms}}
    return res


def test_snr_check_can_hold_and_fail():
    """The restated claim (loc.suite.papers.SNR_FINDING); tests/loc/test_fair_protocols.py has
    the not-measured case (no multipath-aware bound recorded)."""
    good = _snr_result({"vinloc": [4, 3, 2, 1, 1.5], "multilat": [30, 9, 4, 0.3, 2]}, 0.2)
    assert check_snr(good).holds is True
    bad = copy.deepcopy(good)  # multilateration 4x the bound at the highest SNR
    bad["results"]["AWGN 30 dB"]["multilat"]["overall"]["rmse"] = 0.8
    assert check_snr(bad).holds is False
    worse = copy.deepcopy(good)  # the learned model loses to multilateration at 0 dB
    worse["results"]["AWGN 0 dB"]["vinloc"]["overall"]["mean"] = 10.0
    v = check_snr(worse)
    assert v.holds is False and "0 dB" in v.text
    prior_only = _snr_result({"mateformer": [1] * 5, "multilat": [30, 9, 4, 0.3, 2]}, 0.2)
    assert check_snr(prior_only).holds is not True  # a model given a location does not count
