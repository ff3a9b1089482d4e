"""The environment protocols (issue #32): a pool YAML as a suite dataset, rendered for real
(Sionna RT on CPU: 4 procedural cities + the street canyon + two re-drawn TRP layouts) and run
at the tiny budget of ``vinloc_envs``; the environment split, the pooled columns, the
per-environment frames; ``check_vinloc_envs`` on the run and on synthetic results."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml

from loc.errors import ConfigError, DivergedError
from loc.suite import load_protocol
from loc.suite.controls import check_with_controls
from loc.suite.envs import same_frame
from loc.suite.papers import PAPERS
from loc.suite.run import run_suite

UNSEEN = ["proc_s4", "proc_alt_s1", "canyon_alt"]
SEEN = ["proc_s1", "proc_s2", "proc_s3", "simple_street_canyon"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("envs")
    mp.setenv("SIMGEN_CACHE", str(tmp / "scenes"))  # the procedural cities are built here
    try:
        proto = load_protocol("vinloc_envs", "tiny")
        yield proto, run_suite(proto, tmp / "out", tmp / "cache", device="cpu"), tmp
    finally:
        mp.undo()


def test_protocol_expands_the_pool_by_split_and_name():
    proto = load_protocol("vinloc_envs", "tiny")
    exp = proto.experiments["envs"]
    assert [sc.dataset for sc in exp.train] == [f"envs/{n}" for n in SEEN]
    assert list(exp.test) == [
        "unseen/proc_s4",
        *(f"seen/{n}" for n in SEEN),
        "layout/proc_alt_s1",
        "layout/canyon_alt",
    ]
    assert {proto.datasets[f"envs/{n}"].split for n in UNSEEN} == {"unseen"}
    # environments have their own frames; other datasets share one
    assert not same_frame("envs/proc_s1", "envs/proc_s4")
    assert same_frame("envs/proc_s1", "envs/proc_s1") and same_frame("paris", "paris_traffic")
    for b in ("cpu", "short", "paper"):  # every budget loads (the cpu pool: 12 environments)
        p = load_protocol("vinloc_envs", b)
        assert len(p.experiments["envs"].train) == 9


@pytest.mark.parametrize(
    ("pool", "pairs"),
    [
        ("scenes/envs_tiny.yaml", {"proc_alt_s1": "proc_s1", "canyon_alt": "simple_street_canyon"}),
        ("scenes/envs_pool.yaml", {"proc_alt_s100": "proc_s100"}),
    ],
)
def test_layout_environments_are_a_seen_scene_with_other_trps(pool, pairs):
    """The `layout` columns' environments: the same scene as a seen environment (same world
    config), TRPs drawn or listed anew, held out of training (unseen)."""
    from simgen.pool import load_pool

    p = load_pool(pool)
    for alt, orig in pairs.items():
        a, o = p.env(alt), p.env(orig)
        assert a.unseen and not o.unseen
        assert a.cfg.scene == o.cfg.scene
        assert a.cfg.trps != o.cfg.trps


def test_unknown_environment_is_one_config_error(tmp_path):
    src = load_protocol("vinloc_envs", "tiny").path
    d = yaml.safe_load(src.read_text())
    d["budgets"]["tiny"]["experiments"]["envs"]["test"]["unseen"]["environments"] = ["nowhere"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(d))
    with pytest.raises(ConfigError, match="unknown environment.*nowhere"):
        load_protocol(tmp_path / "bad.yaml", "tiny")


def test_tiny_run_has_pooled_columns_split_and_a_verdict(tiny_run):
    proto, r, tmp = tiny_run
    labels = [c["label"] for c in r["columns"]]
    assert labels[:2] == ["unseen", "unseen/proc_s4"] and "seen" in labels and "layout" in labels
    assert r["environments"] == {"envs": {"seen": SEEN, "unseen": UNSEEN}}
    pooled = next(c for c in r["columns"] if c["label"] == "layout")
    assert pooled["environments"] == ["proc_alt_s1", "canyon_alt"] and pooled["n_test"] == 24
    for lab in ("unseen", "seen", "layout"):
        rows = r["results"][lab]
        for m in proto.models:
            assert rows[m]["overall"]["n"] == next(
                c["n_test"] for c in r["columns"] if c["label"] == lab
            )
        assert any(k.startswith("training mean") for k in rows)
    # the pooled mean is the n-weighted mean of its environments' means
    per = [r["results"][f"seen/{n}"]["vinloc"]["overall"]["mean"] for n in SEEN]
    assert r["results"]["seen"]["vinloc"]["overall"]["mean"] == pytest.approx(np.mean(per))
    # seen columns: test positions gap_m away from their own environment's training positions
    for c in r["columns"]:
        if c["test"].startswith("seen/"):
            assert c["min_train_distance_m"] > proto.data["gap_m"]
        if c["test"].startswith(("unseen/", "layout/")):  # nothing trained in that frame
            assert c["min_train_distance_m"] == float("inf")
    # the pool was rendered once into the cache: one store holds every environment
    stores = sorted(p.name for p in (tmp / "cache").glob("*.zarr"))
    assert len(stores) == 1
    v = PAPERS["vinloc_envs"].check(r)
    assert v.holds in (True, False) and "unseen" in v.text
    f = check_with_controls(PAPERS["vinloc_envs"], r)
    assert "training mean" in f.controls


def _synthetic(vin_seen, vin_unseen, res_seen, res_unseen, mean_unseen=50.0) -> dict:
    def row(m):
        return {"overall": {"mean": m, "rmse": m * 1.1, "n": 10}}

    cols = [
        {"label": lab, "experiment": "envs", "test": lab} for lab in ("unseen", "seen", "layout")
    ]
    res = {
        "unseen": {"training mean": row(mean_unseen), "vinloc": row(vin_unseen),
                   "resnet_fp": row(res_unseen)},
        "seen": {"training mean": row(40.0), "vinloc": row(vin_seen), "resnet_fp": row(res_seen)},
        "layout": {"vinloc": row(vin_unseen), "resnet_fp": row(res_unseen)},
    }  # fmt: skip
    return {"columns": cols, "results": res, "baselines": ["training mean"]}


def test_check_vinloc_envs_passes_and_fails_on_synthetic_results():
    check = PAPERS["vinloc_envs"].check
    good = _synthetic(2.0, 2.6, 1.5, 9.0)
    assert check(good).holds is True
    # ResNet generalises as well as VIn-Loc: the finding does not hold
    assert check(_synthetic(2.0, 2.6, 1.5, 2.0)).holds is False
    # VIn-Loc degrades too much
    assert check(_synthetic(2.0, 4.0, 1.5, 9.0)).holds is False
    # VIn-Loc not below the training mean on unseen environments
    assert check(_synthetic(2.0, 2.6, 0.5, 9.0, mean_unseen=2.5)).holds is False
    # the control (training mean in VIn-Loc's place) must fail the check
    f = check_with_controls(PAPERS["vinloc_envs"], good)
    assert f.holds is True and f.controls == {"training mean": False}
    missing = copy.deepcopy(good)
    del missing["results"]["seen"]["resnet_fp"]
    assert check(missing).holds is None


@pytest.mark.parametrize("budget", ["tiny", "cpu", "short", "paper"])
def test_metaloc_envs_adapts_with_the_meta_training_inner_loop(budget):
    proto = load_protocol("metaloc_envs", budget)
    assert len(proto.data["alpha_sweep"]) >= 2  # alpha is chosen, on seen environments only
    a = proto.data["adapt"]
    for m in ("maml", "maml_dg"):
        meta = proto.model_kwargs[m]["meta"]
        assert a["optimizer"] == "sgd" and a["steps"] == meta["inner_steps"]
    assert all(sc.dataset.startswith("envs/") for sc in proto.experiments["envs"].train)


def test_metaloc_envs_tiny_run(tiny_run):
    _, _, tmp = tiny_run  # the pool is already rendered in this cache
    proto = load_protocol("metaloc_envs", "tiny")
    r = run_suite(proto, tmp / "out_meta", tmp / "cache", device="cpu")
    assert [c["label"] for c in r["columns"]] == [
        "unseen", "unseen/proc_s4", "unseen/canyon_alt", "seen", "seen/proc_s1"
    ]  # fmt: skip
    assert len(list((tmp / "cache").glob("*.zarr"))) == 1  # the same pool, rendered once
    curve = r["results"]["unseen/proc_s4"]["maml"]["adaptation_curve"]
    assert sorted(int(k) for k in curve) == [4, 16]
    assert all(c["steps"] == 2 and c["monitor"] == "none" for c in curve.values())
    # alpha from the sweep on the meta-training environments, the same for every model
    sweeps = [r["training"]["envs"][m]["alpha_sweep"] for m in proto.models]
    assert all(s == sweeps[0] for s in sweeps)
    assert sweeps[0]["alpha"] in (0.01, 0.03) and set(sweeps[0]["scores"]) == {"0.01", "0.03"}
    assert sweeps[0]["validation_environment"].endswith(SEEN[-1])
    pooled = r["results"]["unseen"]["maml"]["adaptation_curve"]  # n-weighted over the envs
    per = [r["results"][f"unseen/{e}"]["maml"]["adaptation_curve"] for e in UNSEEN[::2]]
    assert pooled[4]["mean"] == pytest.approx(np.mean([c[4]["mean"] for c in per]))
    v = PAPERS["metaloc_envs"].check(r)
    assert v.holds in (True, False) and "K = 4" in v.text


def test_alpha_sweep_skips_a_diverging_alpha(tiny_run, monkeypatch):
    """A candidate alpha whose meta-training diverges loses the sweep (score inf) instead of
    ending the run (measured: metaloc_envs at the cpu budget diverged at alpha 0.03); all
    candidates diverging is one error."""
    import loc.fit.meta as meta

    _, _, tmp = tiny_run
    real = meta.meta_train

    def diverge_at(bad, error=DivergedError):
        def fake(cfg, sets, *a, **kw):
            if cfg.alpha in bad:
                raise error(f"meta-training diverged at meta step 3 (alpha {cfg.alpha})")
            return real(cfg, sets, *a, **kw)

        return fake

    monkeypatch.setattr(meta, "meta_train", diverge_at({0.03}))
    proto = load_protocol("metaloc_envs", "tiny")
    r = run_suite(proto, tmp / "out_meta_div", tmp / "cache", device="cpu", models=["maml"])
    sweep = r["training"]["envs"]["maml"]["alpha_sweep"]
    assert sweep["alpha"] == 0.01 and sweep["scores"]["0.03"] == float("inf")
    monkeypatch.setattr(meta, "meta_train", diverge_at({0.01, 0.03}))
    with pytest.raises(ConfigError, match="diverged at every alpha"):
        run_suite(proto, tmp / "out_meta_div2", tmp / "cache", device="cpu", models=["maml"])
    # any other error of a candidate ends the run, whatever its text says (typed, not parsed)
    monkeypatch.setattr(meta, "meta_train", diverge_at({0.03}, ConfigError))
    with pytest.raises(ConfigError, match="alpha 0.03"):
        run_suite(proto, tmp / "out_meta_div3", tmp / "cache", device="cpu", models=["maml"])
