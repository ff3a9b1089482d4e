"""`loc suite all`: every protocol's tiny budget in one command, the results page beside the
papers' numbers, and the finding checks (which must be able to say "does not hold")."""

from __future__ import annotations

import copy
import json

import pytest
from typer.testing import CliRunner

from loc.cli import app
from loc.suite.papers import PAPERS, check_cross, check_metaloc, check_single, check_vinloc
from loc.suite.protocol import list_protocols
from loc.suite.results import protocols_for


def test_all_tiny_runs_every_protocol_and_writes_the_page(suite_all_tiny):
    root = suite_all_tiny
    assert protocols_for("tiny") == [*PAPERS, "rain", "dynamic_traffic"]
    assert sorted(protocols_for("tiny")) == sorted(list_protocols())
    assert protocols_for("cpu") == list(PAPERS)  # every paper has a CPU budget
    for name in protocols_for("tiny"):
        res = json.loads((root / "runs" / f"{name}_tiny" / f"{name}.json").read_text())
        assert res["complete"] and res["budget"] == "tiny"
    page = (root / "results.md").read_text()
    assert "`loc suite all --budget tiny`" in page
    summary = json.loads((root / "figures" / "results.json").read_text())
    for name, paper in PAPERS.items():
        assert f"## {name}" in page and paper.title in page
        assert all(f"| {row} | {nums} |" in page for row, nums in paper.reference)
        assert (root / "figures" / f"results_{name}.png").stat().st_size > 5_000
        f = summary["findings"][name]
        assert f["holds"] in (True, False, None) and f["text"]
        verdict = {True: "holds", False: "does not hold", None: "not measured"}[f["holds"]]
        assert f"**The finding {verdict} on our data.** {f['text']}" in page
    for name in protocols_for("tiny"):  # every fit's time is known, every protocol's wall time
        assert summary["fit_seconds"][name] > 0 and summary["wall_seconds"][name] > 0
    assert all(v > 0 for v in summary["render_seconds"].values())


def test_all_refuses_models_option():
    r = CliRunner().invoke(app, ["suite", "all", "--budget", "tiny", "--models", "cnn"])
    assert r.exit_code != 0 and "not of 'all'" in r.output


def _result(columns: list[tuple[str, str, str, int]], rows: dict[str, list[float]]) -> dict:
    """A run_suite-shaped dict: columns (label, experiment, test, n_train), mean per column."""
    res = {"columns": [], "results": {}, "baselines": ["training mean"], "budget": "x"}
    for i, (label, exp, test, n) in enumerate(columns):
        res["columns"].append(
            {"label": label, "experiment": exp, "test": test, "train": [f"paris/dry n={n}"]}
        )
        res["results"][label] = {
            m: {"overall": {"n": 10, "mean": v[i], "rmse": v[i]}} for m, v in rows.items()
        }
    return res


def test_single_scenario_check_can_fail():
    cols = [("2k", "2k", "paris", 2000), ("10k", "10k", "paris", 10000)]
    good = _result(cols, {"mateformer": [3.0, 2.0], "cnn": [8.0, 6.0], "training mean": [99, 99]})
    assert check_single(good).holds is True
    worse_mf = copy.deepcopy(good)
    worse_mf["results"]["10k"]["mateformer"]["overall"]["mean"] = 7.0
    v = check_single(worse_mf)
    assert v.holds is False and "most accurate model is cnn" in v.text
    rising = copy.deepcopy(good)
    rising["results"]["10k"]["cnn"]["overall"]["mean"] = 9.0
    assert check_single(rising).holds is False
    assert check_single(_result(cols, {"cnn": [8.0, 6.0]})).holds is None


def test_cross_and_vinloc_checks_can_fail():
    cols = [
        ("a", "train_static", "static", 100),
        ("b", "train_static", "traffic", 100),
    ]
    good = _result(cols, {"mateformer": [2.0, 3.0], "cnn": [5.0, 20.0]})
    assert check_cross(good).holds is True
    bad = _result(cols, {"mateformer": [2.0, 12.0], "cnn": [5.0, 20.0]})
    assert check_cross(bad).holds is False
    easier = [("c", "train_traffic", "traffic", 100), ("d", "train_traffic", "static", 100)]
    v = check_cross(_result(easier, {"mateformer": [3.0, 2.0], "cnn": [7.0, 6.0]}))
    assert v.holds is None and "no point model degrades" in v.text  # nothing to compare
    cols = [("f", "all_trps", "fixed", 100), ("v", "all_trps", "variable", 100)]
    # VIn-Loc and ResNet trained the same way (both on TRP subsets: `@variable`)
    res = "resnet_fp@variable"
    good = _result(cols, {res: [3.0, 30.0], "vinloc@variable": [4.0, 4.5]})
    assert check_vinloc(good).holds is True
    unfair = _result(cols, {"resnet_fp": [3.0, 30.0], "vinloc@variable": [4.0, 4.5]})
    assert check_vinloc(unfair).holds is None  # trained differently: no comparison
    robust_but_poor = _result(cols, {res: [3.0, 30.0], "vinloc@variable": [40.0, 41.0]})
    assert check_vinloc(robust_but_poor).holds is False  # VIn-Loc must also beat it there
    knn_better = {res: [3.0, 30.0], "vinloc@variable": [4.0, 4.5], "knn_fp": [2.0, 4.0]}
    assert check_vinloc(_result(cols, knn_better)).holds is False  # ... and kNN fingerprinting
    assert (
        check_vinloc(_result(cols, {"resnet_fp": [3.0, 4.0], "vinloc": [4.0, 4.5]})).holds is False
    )


def test_metaloc_check_reads_the_adaptation_curves():
    def entry(curve):
        return {
            "overall": {"n": 5, "mean": curve[-1]},
            "adaptation_curve": {k: {"mean": v} for k, v in zip((8, 32), curve, strict=True)},
        }

    res = {
        "columns": [{"label": "u", "experiment": "e", "test": "u", "train": []}],
        "baselines": [],
        "results": {
            "u": {
                "maml_dg": entry([5.0, 3.0]),
                "maml": entry([6.0, 3.5]),
                "metaloc_tl": entry([8.0, 4.0]),
                "metaloc_ri": entry([9.0, 5.0]),
            }
        },
    }
    assert check_metaloc(res).holds is True
    res["results"]["u"]["metaloc_tl"] = entry([5.5, 4.0])  # TL beats MAML at K = 8
    v = check_metaloc(res)
    assert v.holds is False and "holds at K = 32 of 8, 32" in v.text


@pytest.mark.parametrize("name", list(PAPERS))
def test_every_paper_check_says_not_measured_on_an_empty_run(name):
    empty = {"columns": [], "results": {}, "baselines": []}
    assert PAPERS[name].check(empty).holds is None


def test_page_only_rewrites_the_page_from_finished_runs(suite_all_tiny, tmp_path):
    args = ["suite", "all", "--budget", "tiny", "--page-only", "--out"]
    page = tmp_path / "again.md"
    r = CliRunner().invoke(app, [*args, str(suite_all_tiny / "runs"), "--results", str(page)])
    assert r.exit_code == 0, r.output
    first = json.loads((suite_all_tiny / "figures" / "results.json").read_text())
    again = json.loads((tmp_path / "figures" / "again.json").read_text())
    assert again["findings"] == first["findings"] and again["fit_seconds"] == first["fit_seconds"]
    assert (tmp_path / "figures" / "again_vinloc.png").exists()
    r = CliRunner().invoke(app, [*args, str(tmp_path / "none"), "--results", str(page)])
    assert r.exit_code == 2 and r.output.startswith("error: no finished tiny run in ")


def test_cpu_budgets_fit_a_working_session():
    """Every paper's protocol has a cpu budget sized for 2 cores: <= 128k training samples per
    fit (e.g. 4,000 x 32), renders of <= 15,000 UEs (60,000 links), stores shared where
    protocols need the same data, and the designs of issues #23 and #31: ALLoc's protocols on
    a regular survey grid at >= 1.5 UEs/m2 with 10k training samples, semantic_da's source
    and target differ only in traffic, metaloc's environments are distinct regions of tens of
    metres with their own TRPs."""
    from loc.suite import load_protocol
    from simgen.render import plan

    protos = {name: load_protocol(name, "cpu") for name in PAPERS}
    for p in protos.values():
        assert p.steps * p.batch_size <= 128_000 and p.data["recipe"] == "conditioned"
        used = {sc.dataset for e in p.experiments.values() for sc in (*e.train, *e.test.values())}
        for name in used:  # (vinloc's pool64 is declared but used by the GPU budgets only)
            spec = p.datasets[name]
            if spec.ue_count is None:  # the scene's regular grid: its size from the config
                cfg = plan(spec.scene).cfg
                s, regions = cfg.ue.sampling.grid_spacing_m, cfg.ue.regions
                area = sum((r.x[1] - r.x[0]) * (r.y[1] - r.y[0]) for r in regions)
                n = round(area / s**2)
                trps = len(spec.scene_overrides.get("trps") or cfg.trps)
                assert n <= 15_000 and n * trps <= 60_000 and 10_000 / area >= 1.5
            else:
                assert spec.ue_count <= 15_000
    alloc = [
        protos[n].datasets[d]
        for n, d in (("single_scenario", "paris"), ("cross_scenario", "static"))
    ]
    assert alloc[0].scene == alloc[1].scene  # one alloc_street render (the store's hash)
    # the traffic store holds as many distinct positions as the static one: one traffic draw
    cross = protos["cross_scenario"].datasets
    static, traffic = (plan(cross[d].scene).cfg for d in ("static", "traffic"))
    assert traffic.ue == static.ue and traffic.trps == static.trps
    assert (traffic.traffic.mode, traffic.traffic.snapshots) == ("conditions", 1)
    da = protos["semantic_da"]
    static, traffic = (dict(da.datasets[n].scene_overrides) for n in ("static", "traffic"))
    assert static.pop("traffic") is None and traffic.pop("traffic")["density_scale"] > 1
    assert static == traffic and da.datasets["static"].ue_count == da.datasets["traffic"].ue_count
    assert all(t["position"][2] <= 8 for t in static["trps"])  # small cells below the buses' view
    (exp,) = protos["metaloc"].experiments.values()
    envs = [sc.dataset for sc in exp.train]
    (target,) = [sc.dataset for sc in exp.test.values()]
    assert len(set(envs)) == len(envs) >= 8 and target not in envs
    meta = protos["metaloc"].datasets
    boxes, cells = [], []
    for name in [*envs, target]:
        (region,) = meta[name].scene_overrides["ue"]["regions"]
        assert 30 <= region["x"][1] - region["x"][0] <= 60
        assert 30 <= region["y"][1] - region["y"][0] <= 60
        boxes.append((*region["x"], *region["y"]))
        cells.append(tuple(tuple(t["position"]) for t in meta[name].scene_overrides["trps"]))
    assert len(set(cells)) == len(cells)  # each environment its own TRPs
    for i, a in enumerate(boxes):  # distinct regions: no two overlap
        for b in boxes[i + 1 :]:
            assert a[1] <= b[0] or b[1] <= a[0] or a[3] <= b[2] or b[3] <= a[2], (a, b)
