"""loc suite: shipped protocols, typed errors, the snapshot filter / UE split, and the whole
tiny-budget path (render a street canyon with simgen -> train every model -> table, CDF, JSON)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml
from typer.testing import CliRunner

from loc.cli import app
from loc.data import CSIStore, Selection, split_indices
from loc.errors import ConfigError, DataError
from loc.suite import (
    EXPERIMENTS_DIR,
    load_protocol,
    ordered_samples,
    run_suite,
    snapshot_mask,
    ue_ids,
)
from loc.suite.protocol import REPO_ROOT
from loc.suite.run import _Prepared

runner = CliRunner()
PAPER_PROTOCOLS = ["cross_scenario", "dynamic_traffic", "multi_cell", "rain", "single_scenario"]
# own runners (loc.suite.runners; issue 7) and the snr protocols (issue 21)
FAMILY_PROTOCOLS = [
    "snr", "snr_paris", "metaloc", "semantic_da", "vinloc", "vinloc_envs", "metaloc_envs",
    "vinloc_envs_scaling",
]  # fmt: skip
PAPER_MODELS = {"mateformer", "iclloc_gen", "iclloc_disc", "cnn", "ad_cnn", "mfcnet"}
OUR_MODELS = PAPER_MODELS - {"ad_cnn"}  # = CNN on our default angle-delay power input
BASELINES = [
    "training mean",
    "kNN (k=5) on the input features",
    "coarse location (l = 1 m)",
    "x_init (centroid of 8 neighbours)",
    "kNN (k=5) on positions (from x′)",
]


def _finite_numbers(obj) -> list[float]:
    """Every number in a JSON tree (bools and None excluded)."""
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _finite_numbers(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in _finite_numbers(v)]
    if isinstance(obj, int | float) and not isinstance(obj, bool):
        return [float(obj)]
    return []


def test_shipped_protocols_and_budgets():
    assert sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml")) == sorted(
        PAPER_PROTOCOLS + FAMILY_PROTOCOLS
    )
    for name in FAMILY_PROTOCOLS:
        paper, tiny = load_protocol(name, "paper"), load_protocol(name, "tiny")
        assert tiny.models == paper.models and tiny.steps <= 100 < paper.steps
    for name in PAPER_PROTOCOLS:
        paper = load_protocol(name, "paper")
        assert (paper.steps, paper.batch_size) == (300_000, 500)
        assert set(paper.models) == PAPER_MODELS
        assert paper.data["k"] == 64 and paper.data["selection"]["subcarriers"] == tuple(range(32))
        assert (paper.data["recipe"], paper.data["domain"]) == ("paper", "freq")
        short, tiny = load_protocol(name, "short"), load_protocol(name, "tiny")
        assert short.steps < paper.steps and tiny.steps <= 100
        assert set(tiny.models) == set(short.models) == OUR_MODELS
        assert (tiny.data["recipe"], tiny.data["domain"]) == ("conditioned", "ad_power")
        for spec in tiny.datasets.values():  # tiny renders a street canyon on a CPU
            assert spec.scene.name.startswith("street_canyon") and spec.ue_count <= 256
        for e in tiny.experiments.values():
            assert all(sc.n <= 256 for sc in (*e.train, *e.test.values()))
    single = load_protocol("single_scenario", "paper")
    paper_split = [e for e in single.experiments.values() if e.split != "blocks"]
    assert [e.train[0].n for e in paper_split] == [10_000, 20_000, 40_000]
    assert {sc.n for e in single.experiments.values() for sc in e.test.values()} == {20_000}
    assert single.datasets["paris"].ue_count >= 60_000  # 40k train + 20k test
    multi = load_protocol("multi_cell", "paper")
    (e,) = multi.experiments.values()
    train_cells = {sc.trps for sc in e.train}
    assert len(train_cells) == 3 and e.test["unseen_cell"].trps not in train_cells
    rain = load_protocol("rain", "paper")
    assert [sc.group for sc in rain.experiments["dry"].test.values()] == [
        "dry",
        "rain_10mmh",
        "rain_25mmh",
        "rain_50mmh",
        "rain_90mmh",
    ]
    dyn = load_protocol("dynamic_traffic", "paper")
    assert dyn.data["split"] == "ue"
    e = dyn.experiments["snapshots_0_9"]
    assert set(e.train[0].snapshots).isdisjoint(e.test["later_snapshots"].snapshots)
    with pytest.raises(ConfigError, match="unknown budget"):
        load_protocol("rain", "huge")
    with pytest.raises(ConfigError, match="unknown protocol"):
        load_protocol("no_such_protocol")


def _write_protocol(tmp_path, **changes) -> str:
    base = yaml.safe_load((EXPERIMENTS_DIR / "single_scenario.yaml").read_text())
    for key, value in changes.items():
        node = base
        *parents, leaf = key.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    path = tmp_path / "proto.yaml"
    path.write_text(yaml.safe_dump(base))
    return str(path)


def test_bad_protocols_are_one_line_typed_errors(tmp_path, store_path):
    bad = _write_protocol(tmp_path, models=["mateformer", "transformer_xl"])
    with pytest.raises(ConfigError, match="unknown model 'transformer_xl'"):
        load_protocol(bad, "tiny")
    r = runner.invoke(app, ["suite", bad, "--budget", "tiny", "--device", "cpu"])
    assert r.exit_code == 2 and r.output.count("\n") == 1
    assert r.output.startswith("error: unknown model 'transformer_xl'")
    with pytest.raises(ConfigError, match="budgets lack tiny"):
        load_protocol(_write_protocol(tmp_path, budgets={"paper": {}, "short": {}}), "paper")
    with pytest.raises(ConfigError, match="unknown dataset 'nowhere'"):
        load_protocol(_write_protocol(tmp_path, experiments__10k__train__dataset="nowhere"))
    with pytest.raises(ConfigError, match="data.split"):
        load_protocol(_write_protocol(tmp_path, data__split="by_week"))

    # data-level checks run on a store (the synthetic 2-TRP 8x8 store) before any training
    def prepared(**changes):
        proto = load_protocol(
            _write_protocol(tmp_path, data__selection={"trps": "0"}, **changes), "tiny"
        )
        e = next(iter(proto.experiments.values()))
        return _Prepared(proto, e, {"paris": store_path})

    p = prepared()
    assert len(p.train[0][1]) == 48 and len(p.test["paris"][2]) == 64
    with pytest.raises(DataError, match="group 'rain_5mmh' not in store"):
        prepared(budgets__tiny__experiments__10k__test__paris__group="rain_5mmh")
    with pytest.raises(DataError, match="too few samples.*needs 48 \\+ 400"):
        prepared(budgets__tiny__experiments__10k__test__paris__n=400)
    with pytest.raises(DataError, match="need 8 neighbours but the database has 6"):
        prepared(budgets__tiny__experiments__10k__test__paris__db=6)
    with pytest.raises(DataError, match="batch size 16 exceeds"):
        prepared(budgets__tiny__experiments__10k__train__n=10)


def test_snapshot_filter_and_ue_split(tmp_path, store_path):
    path = tmp_path / "snap.zarr"
    shutil.copytree(store_path, path)  # 384 samples, no snapshot variable
    st0 = CSIStore(path, "dry", Selection(trps=(0,)))
    with pytest.raises(DataError, match="no snapshot variable"):
        snapshot_mask(st0, (0,))
    # 4 snapshots of the same 96 UEs (snapshot-major, as simgen writes traffic stores)
    ds = xr.open_zarr(str(path), group="dry", consolidated=False)
    ue_pos = ds["ue_position"].values[:96]
    snap = np.repeat(np.arange(4, dtype=np.int32), 96)
    xr.Dataset(
        {
            "snapshot": (("sample",), snap),
            "ue_position": (("sample", "xyz"), np.tile(ue_pos, (4, 1))),
        }
    ).to_zarr(str(path), group="dry", mode="a", consolidated=False, zarr_format=3)
    st = CSIStore(path, "dry", Selection(trps=(0,)))
    m = snapshot_mask(st, (1, 2))
    assert m.sum() == 192 and set(snap[m]) == {1, 2} and not m[:96].any()
    with pytest.raises(DataError, match="snapshot\\(s\\) 7 not in"):
        snapshot_mask(st, (0, 7))
    ue = ue_ids(st)
    assert len(np.unique(ue)) == 96 and (ue[:96] == ue[96:192]).all()
    # UE split: head/tail of one filter never share a UE, and two filters agree on the UE order
    early = ordered_samples(snapshot_mask(st, (0, 1)), 3, "ue", ue)
    late = ordered_samples(snapshot_mask(st, (2, 3)), 3, "ue", ue)
    assert np.array_equal(ue[early], ue[late])
    train, test = early[:120], late[-60:]
    assert np.intersect1d(ue[train], ue[test]).size == 0
    naive = ordered_samples(snapshot_mask(st, (0, 1)), 3, "sample")
    assert np.intersect1d(ue[naive[:120]], ue[naive[-60:]]).size > 0  # what the UE split avoids
    # sample split == loc.data.split_indices (the same split as `loc train`)
    ref = split_indices(st.valid, 50, 40, seed=5)
    order = ordered_samples(st.valid, 5, "sample")
    assert np.array_equal(order[:50], ref.train) and np.array_equal(order[-40:], ref.test)


def test_suite_end_to_end_tiny(tmp_path, monkeypatch):
    """Render street_canyon (256 UEs, CPU) via `loc suite`, train all six models on three
    training sizes, then a second protocol reuses the cached store without rendering."""
    cache, out = tmp_path / "cache", tmp_path / "single"
    monkeypatch.chdir(tmp_path)  # relative scene paths must resolve from anywhere
    r = runner.invoke(
        app,
        [
            "suite",
            "single_scenario",
            "--budget",
            "tiny",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--cache",
            str(cache),
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    stores = list(cache.glob("street_canyon_ue256_*.zarr"))
    assert len(stores) == 1
    md = (out / "single_scenario.md").read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and "---" not in ln]
    noisy = [f"40k: mult_{s}" for s in ("0.1", "0.2", "0.3", "0.5")]  # ALLoc 4(d) columns
    head = "| model | 10k | 20k | 40k: paris | " + " | ".join(noisy) + " | 30k_blocks |"
    assert rows[0] == head  # the last column: whole blocks held out (split: blocks)
    names = [ln.split(" | ")[0][2:] for ln in rows[1:]]
    assert sorted(names[: len(OUR_MODELS)]) == sorted(OUR_MODELS)
    assert names[len(OUR_MODELS) :] == [f"*baseline: {b}*" for b in BASELINES]
    assert all(ln.count(" / ") == 16 for ln in rows[1:])  # mean / median / p90 in all 8 cells
    res = json.loads((out / "single_scenario.json").read_text())
    # every set model is shown beside its prior x′: (its mean error / x′'s) in each cell
    xprime = "coarse location (l = 1 m)"
    assert res["priors"] == {m: xprime for m in ("mateformer", "iclloc_gen", "iclloc_disc")}
    col = res["results"]["10k"]
    ratio = col["mateformer"]["overall"]["mean"] / col[xprime]["overall"]["mean"]
    (mf_row,) = [ln for ln in rows if ln.startswith("| mateformer |")]
    assert mf_row.split(" | ")[1].strip("*").endswith(f"({ratio:.2f}× x′)")
    assert all("× x′)" not in ln for ln in rows if ln.startswith(("| cnn |", "| mfcnet |")))
    # the stamp: commit, protocol and code hashes, date, machine, wall time
    from loc.suite.stamp import code_hash, protocol_hash

    stamp = res["stamp"]
    assert stamp["protocol_hash"] == protocol_hash(load_protocol("single_scenario", "tiny"))
    assert stamp["code_hash"] == code_hash() and stamp["wall_seconds"] == res["wall_seconds"]
    assert {"loc/suite/run.py", "loc/models/mateformer.py"} <= set(stamp["code_files"])
    assert "CPUs, cpu" in stamp["machine"] and stamp["date"].endswith("UTC")
    assert all(t["code_hashes"] == [code_hash()] for t in res["training"]["10k"].values())
    assert all(t["changed_files"] == [] for t in res["training"]["10k"].values())
    assert res["complete"] and res["budget"] == "tiny" and res["steps"] == 50
    splits = {c["label"]: c["split"] for c in res["columns"]}
    assert splits["10k"] == "sample" and splits["30k_blocks"] == "blocks"
    gaps = {c["label"]: c["min_train_distance_m"] for c in res["columns"]}
    assert gaps["30k_blocks"] > 1.0 and min(gaps.values()) > 0  # no test UE is a training UE
    assert res["baselines"] == BASELINES
    for label in ("10k", "20k", "40k: paris", *noisy):
        assert set(res["results"][label]) == OUR_MODELS | set(BASELINES)
        r = res["results"][label]
        assert r["coarse location (l = 1 m)"]["overall"]["mean"] < 1.5  # ~0.77 l
        for m in OUR_MODELS | set(BASELINES):
            o = res["results"][label][m]["overall"]
            assert o["n"] == 64 and 0 <= o["median"] <= o["p90"] and math.isfinite(o["mean"])
    nums = _finite_numbers(res["results"]) + _finite_numbers(res["training"])
    assert nums and all(math.isfinite(x) for x in nums)
    assert (out / "single_scenario_cdf.png").stat().st_size > 10_000
    assert (out / "runs" / "40k" / "mateformer" / "checkpoint.pt").exists()

    # second protocol on the same dataset: the cached store is reused, never re-rendered
    import simgen.render

    def no_render(*a, **k):
        raise AssertionError("the cached store should have been reused")

    monkeypatch.setattr(simgen.render, "Renderer", no_render)
    shutil.copytree(EXPERIMENTS_DIR, tmp_path / "exp")  # protocol outside the package
    proto = load_protocol(tmp_path / "exp" / "multi_cell.yaml", "tiny")
    assert proto.datasets["paris"].scene == (REPO_ROOT / "scenes" / "street_canyon.yaml")
    res = run_suite(proto, tmp_path / "multi", cache, device="cpu", models=["mateformer", "cnn"])
    assert set(res["results"]) == {"seen_cell", "unseen_cell"}
    assert res["datasets"]["paris"] == str(stores[0])
    assert res["baselines"] == BASELINES
    for col in res["results"].values():
        assert set(col) == {"mateformer", "cnn"} | set(BASELINES)
        col = {m: col[m] for m in ("mateformer", "cnn")}
        assert all(math.isfinite(x) for x in _finite_numbers(col))
        for r in col.values():  # transfer-learning curve: fine-tuned on 16 and 64 samples
            assert sorted(r["transfer_curve"]) == [16, 64]
    ft = tmp_path / "multi" / "runs" / "cells_0_1_2" / "cnn" / "unseen_cell" / "finetune_64"
    ck = torch.load(ft / "checkpoint.pt", weights_only=False)
    assert ck["step"] == 5 and ck["config"]["init_from"].endswith("checkpoint.pt")
    from loc.fit.finetune import FINETUNE_LR_FACTOR
    from loc.models import default_lr

    assert ck["config"]["lr"] == pytest.approx(FINETUNE_LR_FACTOR * default_lr("cnn"))
    assert ck["config"]["schedule"] == "constant"
    md = (tmp_path / "multi" / "multi_cell.md").read_text()
    assert "| mateformer |" in md and "| cnn |" in md and "| mfcnet |" not in md
    assert "| model | seen_cell n=0 | seen_cell n=16 | seen_cell n=64 | unseen_cell n=0 |" in md


def test_suite_model_families_tiny(suite_all_tiny):
    """DA (one model per target column, unlabelled target), MetaLoc (adaptation on the same K
    samples for every init) and the model-based baselines run through the suite on rendered
    street-canyon stores, with their extra numbers in the JSON and tables (`loc suite all
    --budget tiny`, shared with tests/loc/test_results.py)."""
    runs = suite_all_tiny / "runs"

    def load(name: str) -> dict:
        return json.loads((runs / f"{name}_tiny" / f"{name}.json").read_text())

    check_semantic_da_tiny(runs / "semantic_da_tiny")

    meta = load("metaloc")
    res = meta["results"]["unseen_cell"]
    models = {"maml", "maml_ts", "maml_dg", "metaloc_tl", "metaloc_ri"}
    assert set(res) == models | set(meta["baselines"])
    for r in (res[m] for m in models):
        assert sorted(map(int, r["adaptation_curve"])) == [4, 16] and r["k_shot"] == 16
        assert r["adaptation_curve"]["16"]["mean"] == pytest.approx(r["overall"]["mean"])
        # baselines on the same K samples, identical for every model
        assert r["adaptation_baselines"] == res["maml"]["adaptation_baselines"]
        assert sorted(map(int, r["adaptation_baselines"]["mean of K"])) == [4, 16]
    md = (runs / "metaloc_tiny" / "metaloc.md").read_text()
    assert "K labelled target samples" in md and "| *mean of K* |" in md and "| *kNN (k=5)" in md

    vin = load("vinloc")
    models = {"vinloc", "vinloc_nopos", "resnet_fp", "knn_fp", "multilat", "multilat_oracle"}
    models |= {f"{m}@variable" for m in ("vinloc", "vinloc_nopos", "resnet_fp")}
    for col in ("all_trps: fixed", "all_trps: variable", "random_split"):
        res = vin["results"][col]
        assert set(res) == models | set(vin["baselines"])
        for r in res.values():  # all_trps: held-out blocks (48 UEs); the paper's split: 64
            n = 64 if col == "random_split" else 48
            assert r["overall"]["n"] == n and math.isfinite(r["overall"]["rmse"])
    assert vin["columns"][1]["test_scenario"].endswith("2 random TRPs per sample")
    # synchronized exact ToA from 3 TRPs in a street canyon (oracle): most UEs within a metre;
    # with 2 of the 3 TRPs (z unknown) the position is underdetermined and the error grows.
    # ToA estimated from the 50 MHz CIR (fair): within a few metres.
    fixed, variable = vin["results"]["all_trps: fixed"], vin["results"]["all_trps: variable"]
    oracle = fixed["multilat_oracle"]
    from loc.suite.runners import MULTILAT_ORACLE

    assert oracle["overall"]["median"] < 2.0 and oracle["method"] == MULTILAT_ORACLE
    assert 0 < oracle["bound_fraction"] <= 1
    assert variable["multilat_oracle"]["overall"]["median"] > oracle["overall"]["median"]
    assert fixed["multilat"]["overall"]["median"] < 3.0
    assert fixed["multilat"]["method"] == "ToA multilateration (ToA estimated from CIR)"
    md = (runs / "vinloc_tiny" / "vinloc.md").read_text()
    assert f"- multilat_oracle: {MULTILAT_ORACLE}" in md
    # the TRP models read simgen's stored CIR taps (data.variable: cir) as they are
    import zarr

    st = CSIStore(vin["datasets"]["vinloc"], "dry", variable="cir")
    assert st.shape == (3, 4, 32)  # 3 TRPs x 1 UE antenna, 4 TRP antennas, 32 taps
    stored = zarr.open_group(vin["datasets"]["vinloc"], mode="r")["dry"]["cir"][:5]
    np.testing.assert_array_equal(st.read_raw(np.arange(5)), stored.reshape(5, 3, 4, 32))
    with pytest.raises(DataError, match="no cir variable.*output.cir_taps"):
        CSIStore(load("semantic_da")["datasets"]["source"], "dry", variable="cir")
    # the variant row is a model of its own, trained with random TRP subsets
    ck = torch.load(
        runs / "vinloc_tiny" / "runs" / "all_trps" / "vinloc@variable" / "checkpoint.pt",
        weights_only=False,
    )
    assert ck["hparams"]["train_subset"] == 2


def check_semantic_da_tiny(run: Path) -> None:
    """The tiny semantic_da run in ``run`` (`loc suite semantic_da --budget tiny`): every DA
    model fitted once per seed and column, the seeds pooled in the row and kept in the JSON,
    PCP per link state, the kNN row marked as an oracle, the state mix of source, target
    database and test links, and the check's verdict with its control."""
    from loc.suite.controls import check_with_controls
    from loc.suite.papers import PAPERS
    from loc.suite.runners import DA_ORACLE, PCP_CLASSES

    da = json.loads((run / "semantic_da.json").read_text())
    oracle = "kNN (k=5) on the input features" + DA_ORACLE
    assert da["baselines"] == ["training mean", oracle]  # no set model: no x′ / x_init
    for col in ("source_to_target", "source_to_target_blocks"):  # UE split, held-out blocks
        r = da["results"][col]
        assert set(r) == {"dcnn", "dann", "mda", "hda"} | set(da["baselines"])
        n_test = r["training mean"]["overall"]["n"]
        for m in ("dcnn", "dann", "mda", "hda"):
            assert sorted(r[m]["seeds"]) == ["1", "2", "3"]
            assert r[m]["overall"]["n"] == 3 * n_test  # the three seeds' estimates pooled
            rm = [s["rmse"] for s in r[m]["seeds"].values()]
            sp = r[m]["seed_spread"]["rmse"]
            assert sp["min"] == min(rm) and sp["max"] == max(rm) and len(set(rm)) > 1
        for m in ("mda", "hda"):
            assert 0 <= r[m]["pcp_accuracy"] <= 1
            by = r[m]["pcp_by_state"]
            assert by and set(by) <= {"LOS", "OLOS", "NLOS", "BLOCKED"}
            assert all(0 <= v <= 1 for v in by.values())
            assert r[m]["pcp_prior"]["class"] in PCP_CLASSES
        assert "pcp_accuracy" not in r["dcnn"]
    # one checkpoint per target column and seed, trained with the column's database as target
    for seed in (1, 2, 3):
        ck = run / "runs" / "source_to_target" / "hda" / "target" / f"seed_{seed}"
        assert (ck / "checkpoint.pt").exists()
    md = (run / "semantic_da.md").read_text()
    assert "link-state (PCP) accuracy (%), over 3 seed(s)" in md and "| hda |" in md
    assert "per link state of the test links" in md and f"| *{oracle}* |" in md
    # the link-state mix of the source, the target database and the test links (one selected
    # TRP: NO_PATH samples are dropped); the source has blocked links, the target more
    mix = da["state_mix"]["source_to_target"]
    assert set(mix) == {"train source/dry", "test target", "database target"}, mix
    for shares in mix.values():
        assert set(shares) == {"LOS", "OLOS", "NLOS", "BLOCKED", "NO_PATH"}
        assert sum(shares.values()) == pytest.approx(1.0) and shares["NO_PATH"] == 0
    assert mix["train source/dry"]["BLOCKED"] > 0
    assert "- link states (share of the selected links), source_to_target: train source" in md
    f = check_with_controls(PAPERS["semantic_da"], da)
    assert f.check.holds in (True, False) and "Target RMSE: hda" in f.text
    assert set(f.controls) == {"training mean"}
