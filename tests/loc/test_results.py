"""`loc suite all`: every protocol's tiny budget in one command, the results page beside the
papers' numbers, and the finding checks (which must be able to say "does not hold")."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from loc.cli import app
from loc.suite.controls import SUBJECTS, check_with_controls, controls_of
from loc.suite.papers import PAPERS, check_cross, check_metaloc, check_single, check_vinloc
from loc.suite.protocol import list_protocols
from loc.suite.results import anchor, protocols_for

XPRIME = "coarse location (l = 1 m)"


def test_all_tiny_runs_every_protocol_and_writes_the_page(suite_all_tiny):
    root = suite_all_tiny
    # the papers' protocols first, then the others (vinloc_envs_scaling: no finding of its own)
    assert protocols_for("tiny") == [*PAPERS, "rain", "dynamic_traffic", "vinloc_envs_scaling"]
    assert sorted(protocols_for("tiny")) == sorted(list_protocols())
    assert protocols_for("cpu") == [*PAPERS, "vinloc_envs_scaling"]  # every paper has a cpu budget
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
        if any(f["controls"].values()):
            verdict = "does not hold (a control passes: "
        assert f"**The finding {verdict}" in page and f"on our data.** {f['text']}" in page
    for name in protocols_for("tiny"):  # every fit's time is known, every protocol's wall time
        assert summary["fit_seconds"][name] > 0 and summary["wall_seconds"][name] > 0
    assert all(v > 0 for v in summary["render_seconds"].values())


def test_all_refuses_models_option():
    r = CliRunner().invoke(app, ["suite", "all", "--budget", "tiny", "--models", "cnn"])
    assert r.exit_code != 0 and "not of 'all'" in r.output


def _result(columns: list[tuple[str, str, str, int]], rows: dict[str, list[float]]) -> dict:
    """A run_suite-shaped dict: columns (label, experiment, test, n_train), mean per column."""
    base = [m for m in rows if m.startswith(("training mean", "coarse location", "x_init", "kNN"))]
    res = {"columns": [], "results": {}, "baselines": base, "budget": "x"}
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
    good = _result(
        cols,
        {"mateformer": [3.0, 2.0], "cnn": [8.0, 6.0], "training mean": [99, 99], XPRIME: [4, 4]},
    )
    assert check_single(good).holds is True
    below = copy.deepcopy(good)  # ALLoc's findings need Mateformer below its prior x′
    below["results"]["10k"][XPRIME]["overall"]["mean"] = 1.5
    v = check_single(below)
    assert v.holds is False and "not below its prior x′" in v.text and "(1.33×)" in v.text
    no_prior = copy.deepcopy(good)
    del no_prior["results"]["10k"][XPRIME]
    assert check_single(no_prior).holds is None
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
    good = _result(cols, {"mateformer": [2.0, 3.0], "cnn": [5.0, 20.0], XPRIME: [4.0, 4.0]})
    assert check_cross(good).holds is True
    bad = _result(cols, {"mateformer": [2.0, 12.0], "cnn": [5.0, 20.0], XPRIME: [4.0, 4.0]})
    assert check_cross(bad).holds is False
    above = _result(cols, {"mateformer": [2.0, 3.0], "cnn": [5.0, 20.0], XPRIME: [4.0, 2.5]})
    assert check_cross(above).holds is False  # degrades less, but above x′ on the reuse column
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
    da = protos["semantic_da"]  # one street, the same UE positions, two traffic regimes
    src, tgt = da.datasets["source"], da.datasets["target"]
    assert src.scene == tgt.scene and src.ue_count == tgt.ue_count
    assert set(tgt.scene_overrides) == {"traffic"} and not src.scene_overrides
    assert tgt.scene_overrides["traffic"]["density_scale"] > 1
    assert all(t.position[2] <= 8 for t in plan(src.scene).cfg.trps)  # below the buses' view
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


# ----------------------------------------------------------------------------- controls


def test_a_control_that_passes_a_check_makes_the_finding_not_hold():
    cols = [("2k", "2k", "paris", 2000), ("10k", "10k", "paris", 10000)]
    rows = {"mateformer": [3.0, 0.8], "cnn": [8.0, 6.0], "training mean": [99, 99], XPRIME: [1, 1]}
    f = check_with_controls(PAPERS["single_scenario"], _result(cols, rows))
    assert f.check.holds is True and f.holds is True and f.status() == "holds"
    assert f.controls == {"training mean": False, "x′": False}  # the rows this run has
    assert f.controls_cell() == "all 2 fail"
    # the database positions nearest x′ (no CSI) beat x′ and every model: the check passes
    # with that control in Mateformer's place, so it measures the prior, not the model
    knn_pos = "kNN (k=5) on positions (from x′)"
    f = check_with_controls(PAPERS["single_scenario"], _result(cols, {**rows, knn_pos: [3, 0.5]}))
    assert f.check.holds is True and f.holds is False
    assert f.controls["kNN on positions"] is True and f.controls["x′"] is False
    assert f.status() == "does not hold (a control passes: kNN on positions)"
    assert f.controls_cell() == "**kNN on positions passes**"
    assert "Controls (CSI-free, in mateformer's place): training mean fails" in f.text
    # semantic DA: the source's training mean below MDA and DCNN in HDA's place
    da_cols = [("target", "source", "target", 100)]
    da = {"hda": [5.0], "mda": [6.0], "dcnn": [7.0], "training mean": [9.0], XPRIME: [0.5]}
    f = check_with_controls(PAPERS["semantic_da"], _result(da_cols, da))
    assert f.holds is True and f.controls == {"training mean": False}  # x′: not DA's prior
    da["training mean"] = [5.5]
    f = check_with_controls(PAPERS["semantic_da"], _result(da_cols, da))
    assert f.check.holds is True and f.holds is False and f.passing == ["training mean"]


def test_metaloc_controls_read_the_mean_of_k_curve():
    def entry(curve, mean_of_k=(8.5, 6.5)):
        return {
            "overall": {"n": 5, "mean": curve[-1]},
            "adaptation_curve": {str(k): {"mean": v} for k, v in zip((8, 32), curve, strict=True)},
            "adaptation_baselines": {
                "mean of K": {str(k): {"mean": v} for k, v in zip((8, 32), mean_of_k, strict=True)}
            },
        }

    res = {
        "columns": [{"label": "u", "experiment": "e", "test": "u", "train": []}],
        "baselines": ["training mean"],
        "results": {
            "u": {
                "maml_dg": entry([5.0, 3.0]),
                "maml": entry([6.0, 3.5]),
                "metaloc_tl": entry([8.0, 4.0]),
                "metaloc_ri": entry([9.0, 5.0]),
                "training mean": {"overall": {"n": 5, "mean": 30.0}},
            }
        },
    }
    f = check_with_controls(PAPERS["metaloc"], res)
    assert f.holds is True and f.controls == {"training mean": False, "mean of K": False}
    for m in ("maml_dg", "maml", "metaloc_tl", "metaloc_ri"):  # the K labels' mean beats TL
        res["results"]["u"][m]["adaptation_baselines"]["mean of K"] = {
            "8": {"mean": 7.5},
            "32": {"mean": 3.8},
        }
    f = check_with_controls(PAPERS["metaloc"], res)
    assert f.check.holds is True and f.passing == ["mean of K"] and f.holds is False


def test_position_knn_is_the_mean_of_the_nearest_database_positions():
    from types import SimpleNamespace

    from loc.suite.run import position_knn

    rng = np.random.default_rng(0)
    st = SimpleNamespace(xy=rng.uniform(0, 50, (40, 2)))
    db, q = np.arange(5, 40), rng.uniform(0, 50, (6, 2))
    got = position_knn(st, db, q, k=5)
    for i in range(len(q)):  # brute force over the database
        near = db[np.argsort(np.linalg.norm(st.xy[db] - q[i], axis=1))[:5]]
        np.testing.assert_allclose(got[i], st.xy[near].mean(axis=0))


def test_tiny_controls_fail_or_the_page_says_so(suite_all_tiny):
    """Every paper's check on the tiny runs with each control in the model's place: a control
    that passes is a finding (the page must say "a control passes"); the x′ control can never
    pass an ALLoc check (Mateformer must be below x′, and x′ is not below itself)."""
    summary = json.loads((suite_all_tiny / "figures" / "results.json").read_text())
    page = (suite_all_tiny / "results.md").read_text()
    for name, paper in PAPERS.items():
        res = json.loads((suite_all_tiny / "runs" / f"{name}_tiny" / f"{name}.json").read_text())
        f = check_with_controls(paper, res)
        alloc = SUBJECTS[name].given_xprime
        expect = {"training mean"}
        expect |= {"x′", "neighbour centroid", "kNN on positions"} if alloc else set()
        expect |= {"mean of K"} if name in ("metaloc", "metaloc_envs") else set()
        assert set(controls_of(res, name)) == expect, name
        assert set(f.controls) == expect and f.check.holds in (True, False, None)
        if alloc:
            assert f.controls["x′"] is not True
        assert summary["findings"][name]["controls"] == f.controls
        for c, ok in f.controls.items():
            assert f"{c} {'passes' if ok else 'fails' if ok is False else 'not measured'}" in f.text
        if f.passing:
            assert f.holds is False and f"a control passes: {', '.join(f.passing)}" in page
            assert f"**{', '.join(f.passing)} pass" in page


# ----------------------------------------------------------------------------- page


def _headings_and_links(text: str) -> tuple[set[str], list[str]]:
    """GitHub anchors of every heading (duplicates get -1, -2, ...) and every in-page link of a
    Markdown page, parsed by markdown-it-py (headings in code blocks are not headings)."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    anchors, seen, links = set(), {}, []
    for i, t in enumerate(tokens):
        if t.type == "heading_open":
            inline = tokens[i + 1].children
            a = anchor("".join(c.content for c in inline if c.type in ("text", "code_inline")))
            n = seen.get(a, 0)
            seen[a] = n + 1
            anchors.add(a if n == 0 else f"{a}-{n}")
        if t.type == "inline":
            links += [c.attrs["href"][1:] for c in t.children if c.type == "link_open"
                      and str(c.attrs["href"]).startswith("#")]  # fmt: skip
    return anchors, links


def test_github_anchors():
    assert anchor("snr_paris") == "snr_paris" and anchor("single_scenario") == "single_scenario"
    assert (
        anchor("Real receivers (issue #21): error vs SNR, the link budget and ALLoc's query noise")
        == "real-receivers-issue-21-error-vs-snr-the-link-budget-and-allocs-query-noise"
    )
    assert anchor("Results: budget `cpu`") == "results-budget-cpu"


def test_every_summary_row_links_to_its_section(suite_all_tiny):
    page = (suite_all_tiny / "results.md").read_text()
    anchors, links = _headings_and_links(page)
    assert set(links) >= {"snr", "snr_paris", "lwlm", "lwlm_envs", *PAPERS}
    assert all(x in anchors for x in links), sorted(set(links) - anchors)
    assert "## snr_paris" in page.splitlines()


def test_sections_are_stamped_and_stale_ones_marked(suite_all_tiny, tmp_path):
    """Each section starts with its run's stamp; `--page-only` marks a section whose protocol
    or code changed since its run as stale, and one without a stamp as unstamped."""
    import shutil

    page = (suite_all_tiny / "results.md").read_text()
    summary = json.loads((suite_all_tiny / "figures" / "results.json").read_text())
    assert set(summary["run_status"].values()) == {"current"}
    runs = tmp_path / "runs"
    shutil.copytree(suite_all_tiny / "runs", runs)
    for name in protocols_for("tiny"):
        res = json.loads((runs / f"{name}_tiny" / f"{name}.json").read_text())
        s = res["stamp"]
        assert f"Run: commit `{s['commit'][:12]}`" in page and s["protocol_hash"][:12] in page
    f = runs / "vinloc_tiny" / "vinloc.json"
    res = json.loads(f.read_text())
    res["stamp"]["protocol_hash"] = "0" * 64
    f.write_text(json.dumps(res))
    f = runs / "metaloc_tiny" / "metaloc.json"
    res = json.loads(f.read_text())
    assert "loc/suite/run.py" in res["stamp"]["code_files"]
    res["stamp"]["code_files"]["loc/suite/run.py"] = "1" * 64  # a file it ran, changed since
    f.write_text(json.dumps(res))
    f = runs / "rain_tiny" / "rain.json"
    res = json.loads(f.read_text())
    del res["stamp"]
    f.write_text(json.dumps(res))
    out = tmp_path / "page.md"
    args = ["suite", "all", "--budget", "tiny", "--page-only", "--out", str(runs)]
    r = CliRunner().invoke(app, [*args, "--results", str(out)])
    assert r.exit_code == 0, r.output
    status = json.loads((tmp_path / "figures" / "page.json").read_text())["run_status"]
    assert status["vinloc"] == "stale: protocol changed"
    assert status["metaloc"].startswith("stale: code changed since ")
    assert status["metaloc"].endswith("(loc/suite/run.py)")
    assert status["rain"] == "unstamped" and status["single_scenario"] == "current"
    text = out.read_text()
    assert "| stale: protocol changed |" in text and "**Stale: protocol changed**" in text
    assert "**Unstamped**" in text and "| stale: code changed since " in text


def test_a_change_to_code_a_run_never_imported_leaves_it_current():
    """Staleness reads the files the run imported: another module's change keeps it current,
    a change to one of them (or a stamp without the file list, and any code change) stales it."""
    from loc.suite.stamp import code_files, code_hash, make_stamp, staleness

    files = code_files()
    stamp = make_stamp("p" * 64, files, "cpu", 1.0)
    used = stamp["code_files"]
    assert "loc/suite/stamp.py" in used and set(used) < set(files)
    unused = next(p for p in files if p not in used)
    assert staleness(stamp, "p" * 64, {**files, unused: "0" * 64}) is None
    why = staleness(stamp, "p" * 64, {**files, "loc/suite/stamp.py": "0" * 64})
    assert why.startswith("stale: code changed since ") and why.endswith("(loc/suite/stamp.py)")
    assert staleness(stamp, "q" * 64, files) == "stale: protocol changed"
    old = {k: v for k, v in stamp.items() if k != "code_files"}  # a stamp of the whole code
    assert old["code_hash"] == code_hash(files) and staleness(old, "p" * 64, files) is None
    assert staleness(old, "p" * 64, {**files, unused: "0" * 64}).startswith("stale: code")


def test_error_vs_training_environments_figure(tmp_path):
    """Experiments named envs_<n> give one curve per model and test column over n."""
    from loc.suite.results import env_counts, plot_protocol

    cols, res = [], {}
    for n, err in ((1, 40.0), (3, 30.0), (9, 20.0)):
        for test in ("unseen", "unseen/proc_s108"):
            lab = f"envs_{n}: {test}"
            cols.append({"experiment": f"envs_{n}", "test": test, "label": lab, "train": []})
            res[lab] = {
                m: {"overall": {"mean": e, "n": 160}}
                for m, e in (("vinloc", err), ("resnet_fp", 2 * err))
            }
    result = {"columns": cols, "results": res, "baselines": [], "budget": "cpu"}
    assert env_counts(result) == {"unseen": [(1, "envs_1: unseen"), (3, "envs_3: unseen"),
                                             (9, "envs_9: unseen")]}  # fmt: skip
    path = plot_protocol("vinloc_envs_scaling", result, tmp_path / "f.png")
    assert path.stat().st_size > 1000
    result["columns"] = [c for c in cols if c["experiment"] == "envs_1"]
    assert env_counts(result) == {}


def test_a_reused_fit_names_the_modules_changed_since_it_was_fitted(tmp_path):
    """``_fit_record``: the first run records the commit and the imported modules' hashes; a
    later run reusing the fit reports which imported modules changed since (none when none),
    and the page's sentence groups the fits by commit and changes."""
    from loc.suite.results import mixed_fits_text
    from loc.suite.run import _fit_record
    from loc.suite.stamp import code_files

    files = code_files()
    first = _fit_record(tmp_path, 0.0, "A", files)
    assert first["changed_files"] == [] and first["code_hashes"] == ["A"]
    later = dict(files, **{"loc/data.py": "0" * 64})  # the run's loc/data.py differs
    again = _fit_record(tmp_path, 0.0, "B", later)
    assert again["changed_files"] == ["loc/data.py"] and again["code_hashes"] == ["A", "B"]
    assert again["commit"] == first["commit"] and again["seconds"] >= first["seconds"]
    res = {"stamp": {"code_hash": "B"}, "training": {"10k": {"cnn": again, "mlp": first}}}
    text = mixed_fits_text(res)
    assert "10k/cnn" in text and "10k/mlp" in text and "`loc/data.py`" in text
    assert mixed_fits_text({"stamp": {"code_hash": "A"}, "training": {"10k": {"mlp": first}}}) == ""
    old = {**again, "changed_files": None}  # a fit from before the record
    assert "not recorded" in mixed_fits_text({**res, "training": {"10k": {"cnn": old}}})
