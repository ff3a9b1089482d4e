"""``loc suite all``: every protocol at one budget, and the results page beside the papers.

``run_all`` runs (or reuses, see ``run_suite``) every shipped protocol that defines the budget,
in the order of ``ORDER``, each into ``<out_root>/<protocol>_<budget>``, then writes one
Markdown page (the papers' numbers, ours, one figure per protocol, and whether each paper's
finding holds on our data, ``loc.suite.papers``) and the wall time of the run.

Times: a model's fit time is what the run that trained it measured (kept beside its
checkpoint), a dataset's render time what the suite measured when it rendered it (kept beside
the store in the cache), so a rerun that reuses both still reports the cost of the whole run.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from pathlib import Path

import numpy as np

from loc.suite.controls import Finding, check_with_controls
from loc.suite.notes import why
from loc.suite.papers import PAPERS, mean, models_of, noiseless_columns
from loc.suite.protocol import LWLM_DIR, list_protocols, load_protocol
from loc.suite.report import budget_text, steps_run_text

log = logging.getLogger("loc.suite")

ORDER = (*PAPERS, "rain", "dynamic_traffic")  # the papers' protocols first
PREVIOUS_PAGE = "results_unstamped.md"  # beside the page: the last page of unstamped runs


def protocols_for(budget: str) -> list[str]:
    """Shipped protocols that define ``budget``, in page order."""
    import yaml

    from loc.suite.protocol import find_protocol

    names = [
        *(p for p in ORDER if p in list_protocols()),
        *(p for p in list_protocols() if p not in ORDER),
    ]
    return [
        n
        for n in names
        if budget in (yaml.safe_load(find_protocol(n).read_text()).get("budgets") or {})
    ]


def run_all(
    budget: str,
    out_root: str | Path,
    cache_dir: str | Path,
    results_path: str | Path,
    device: str = "auto",
    resume: bool = True,
    page_only: bool = False,
) -> dict:
    """Run every protocol with ``budget``, then write the results page to ``results_path`` (its
    figures in ``figures/`` beside it) from the protocols' finished JSONs in ``out_root``
    (``page_only``: run nothing). Returns {protocol: result JSON}."""
    from loc.errors import DataError
    from loc.suite.run import run_suite

    out_root = Path(out_root)
    names = protocols_for(budget)
    if not names:
        from loc.suite.protocol import EXPERIMENTS_DIR

        shipped = ", ".join(list_protocols()) or f"none in {EXPERIMENTS_DIR}"
        raise DataError(f"no shipped protocol defines budget {budget!r} (protocols: {shipped})")
    for name in [] if page_only else names:
        log.info("suite all: %s (%s)", name, budget)
        run_suite(
            load_protocol(name, budget),
            out_root / f"{name}_{budget}",
            cache_dir,
            device=device,
            resume=resume,
        )
    lwlm_res, lwlm_missing = {}, []  # LWLM protocols (loc/lwlm/*.yaml): finished runs, none
    from loc.lwlm import suite as lwlm

    for name in LWLM_PROTOCOLS:
        if budget not in lwlm.budgets(lwlm.protocol_path(name)):
            continue
        res = _lwlm(name, budget, out_root, cache_dir, device, resume, page_only)
        if res is not None:
            lwlm_res[name] = res
        else:
            lwlm_missing.append(name)
    results = {}  # read back as JSON either way: one key type (str) for the page's code
    for name in names:
        f = out_root / f"{name}_{budget}" / f"{name}.json"
        res = json.loads(f.read_text()) if f.exists() else {}
        if res.get("complete"):
            results[name] = res
    if not results:
        raise DataError(f"no finished {budget} run in {out_root} (run without --page-only)")
    missing = [n for n in names if n not in results] + lwlm_missing
    write_results_page(results, budget, Path(results_path), missing, lwlm=lwlm_res)
    return results


def _lwlm(name, budget, out_root: Path, cache_dir, device, resume, page_only) -> dict | None:
    """``loc suite <name>`` (an LWLM protocol, ``loc.lwlm.suite``: its own format) at
    ``budget`` (one it defines), run unless ``page_only`` -> its finished result, or None."""
    from loc.lwlm import suite as lwlm

    path = lwlm.protocol_path(name)
    out = out_root / f"{name}_{budget}"
    if not page_only:
        log.info("suite all: %s (%s)", name, budget)
        lwlm.run(lwlm.load(budget, path), out, Path(cache_dir), device=device, resume=resume)
    f = out / f"{name}.json"
    res = json.loads(f.read_text()) if f.exists() else {}
    return res if res.get("complete") else None


# ----------------------------------------------------------------------------- stamps, anchors


def anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading (github-slugger): lower case, every
    character but letters, digits, marks, '_' , '-' and ' ' removed, each space a '-'
    (``## snr_paris`` -> ``snr_paris``; a repeated heading gets -1, -2, ... on the page)."""
    keep = (c for c in heading.strip().lower() if c in "_- " or unicodedata.category(c)[0] in "LNM")
    return "".join(keep).replace(" ", "-")


def run_status(name: str, budget: str, result: dict, files: dict[str, str]) -> str | None:
    """None when ``result`` is the current protocol's and code's run, else why not
    (``loc.suite.stamp.staleness``): the protocol is re-resolved at ``budget`` and hashed."""
    from loc.suite.stamp import protocol_hash, staleness

    if name in LWLM_PROTOCOLS:
        from loc.lwlm import suite as lwlm

        path = lwlm.protocol_path(name)
        now = protocol_hash(lwlm.load(budget, path)) if budget in lwlm.budgets(path) else None
    else:
        now = protocol_hash(load_protocol(name, budget)) if name in list_protocols() else None
    return staleness(result.get("stamp"), now, files)


def mixed_fits(result: dict) -> list[str]:
    """Models whose fit was (partly) done by other code than the run's (a checkpoint reused
    or resumed across a code change): '<experiment>/<model>'."""
    code = (result.get("stamp") or {}).get("code_hash")
    return [
        f"{e}/{m}"
        for e, fits in result.get("training", {}).items()
        for m, t in fits.items()
        if code and t.get("code_hashes") and t["code_hashes"] != [code]
    ]


def mixed_fits_text(result: dict) -> str:
    """The page's sentence on ``mixed_fits``, grouped by the commit that fitted them and the
    imported modules changed since (``loc.suite.run._fit_record``); '' when none."""
    groups: dict[tuple, list[str]] = {}
    for name in mixed_fits(result):
        e, m = name.split("/", 1)
        t = result["training"][e][m]
        changed = t.get("changed_files")
        groups.setdefault(
            (t.get("commit"), None if changed is None else tuple(changed)), []
        ).append(name)
    if not groups:
        return ""
    parts = []
    for (commit, changed), names in groups.items():
        when = f"fitted at {commit[:7]}" if commit else "fitted by earlier code"
        listed = ", ".join(f"`{f}`" for f in changed or ()) or "none"
        what = (
            f"modules changed since: {listed}"
            if changed is not None
            else "which modules changed since is not recorded"
        )
        parts.append(f"{', '.join(names)} ({when}; {what})")
    return "Fits reused or resumed from other code than this run's: " + "; ".join(parts) + "."


# ----------------------------------------------------------------------------- timing


def render_seconds(store: str | Path) -> float | None:
    """Render time (s) recorded by ``loc.suite.datasets.dataset_store``; None if unknown."""
    side = Path(str(store) + ".json")
    if side.exists():
        return float(json.loads(side.read_text()).get("render_seconds", 0.0))
    from loc.suite.envs import pool_render_seconds  # one environment of a pool

    return pool_render_seconds(store)


def fit_seconds(result: dict) -> float:
    return float(
        sum(r.get("seconds") or 0.0 for exp in result["training"].values() for r in exp.values())
    )


# ----------------------------------------------------------------------------- figures


def _sizes(result: dict) -> list[int] | None:
    """Training sizes of the noiseless columns (``size_labels``) when each is one experiment of
    one training set."""
    out = []
    for c in noiseless_columns(result):
        if len(c["train"]) != 1:
            return None
        out.append(int(c["train"][0].rsplit("n=", 1)[1]))
    return out if len(set(out)) == len(out) > 1 else None


def size_labels(result: dict) -> list[str]:
    """Labels of the columns a learning curve reads (the noiseless ones)."""
    return [c["label"] for c in noiseless_columns(result)]


def env_counts(result: dict) -> dict[str, list[tuple[int, str]]]:
    """{test column: [(training environments n, its label), ...] by n} of a protocol whose
    experiments are named ``envs_<n>`` (``vinloc_envs_scaling``), pooled columns only."""
    out: dict[str, list[tuple[int, str]]] = {}
    for c in result["columns"]:
        m = re.fullmatch(r"envs_(\d+)", c.get("experiment", ""))
        if m and "/" not in c["test"]:
            out.setdefault(c["test"], []).append((int(m[1]), c["label"]))
    return {t: sorted(v) for t, v in out.items() if len(v) > 1}


def snr_columns(result: dict) -> list[tuple[float, str]]:
    """(SNR dB, label) of the columns tested at one fixed AWGN SNR, ascending."""
    out = []
    for c in result["columns"]:
        m = re.fullmatch(r"AWGN (-?[\d.]+) dB", c.get("noise", ""))
        if m:
            out.append((float(m[1]), c["label"]))
    return sorted(out)


def _means(result: dict, model: str, labels: list[str]) -> np.ndarray:
    """Mean error (m) of ``model`` per column label; NaN where it was not run."""
    return np.array([np.nan if (v := mean(result, lab, model)) is None else v for lab in labels])


def power_laws(result: dict) -> dict[str, tuple[float, float]]:
    """Per model with an error at every training size: (b, a) of the least-squares fit
    log(mean error) = a + b log(n) over the measured sizes (b < 0: error falls with data)."""
    sizes, labels = _sizes(result), size_labels(result)
    out = {}
    for m in models_of(result) if sizes else []:
        y = _means(result, m, labels)
        if np.all(y > 0):
            b, a = np.polyfit(np.log(sizes), np.log(y), 1)
            out[m] = (float(b), float(a))
    return out


def _extrapolation(result: dict, n: int) -> list[str]:
    fits = power_laws(result)
    if not fits:
        return []
    parts = [f"{m} ∝ n^{b:.2f} → {np.exp(a + b * np.log(n)):.2f} m" for m, (b, a) in fits.items()]
    return [
        f"Learning curves extrapolated to the paper's n = {n:,} (least-squares power law over "
        f"the measured sizes; a rough guide, not a measurement): {'; '.join(parts)}.",
        "",
    ]


def plot_protocol(name: str, result: dict, path: Path) -> Path:
    """Error vs the number of training environments (experiments ``envs_<n>``), vs SNR, vs
    training size (one experiment per size), vs K (MetaLoc), else grouped bars of the mean
    error per column; baselines dashed / hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models, base = models_of(result), result.get("baselines", [])
    labels = [c["label"] for c in result["columns"]]
    res = result["results"]
    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    sizes = _sizes(result)
    curve = (
        next(
            (
                res[labels[0]][m].get("adaptation_curve")
                for m in models
                if "adaptation_curve" in res[labels[0]].get(m, {})
            ),
            None,
        )
        if labels
        else None
    )
    snrs = snr_columns(result)
    counts = env_counts(result)
    if counts:  # error vs the number of training environments, per test column
        for (test, pts), style in zip(counts.items(), ("-o", ":s", "-.^"), strict=False):
            n, cols = [k for k, _ in pts], [lab for _, lab in pts]
            for m in [*models, *base]:
                ax.plot(n, _means(result, m, cols), style, label=f"{m}: {test}")
        ax.set_xlabel("training environments")
        ax.set_xscale("log")
    elif len(snrs) > 1:  # error vs SNR beside the PEB
        x, cols = [s for s, _ in snrs], [lab for _, lab in snrs]
        for rows, style in ((models, "-o"), (base, "--")):
            for m in rows:
                ax.plot(x, _means(result, m, cols), style, label=m)
        peb = result.get("peb") or {}
        if any(lab in peb for lab in cols):
            y = [peb[lab]["overall"]["mean"] if lab in peb else np.nan for lab in cols]
            ax.plot(x, y, "k:", lw=2, label="PEB (mean over finite)")
        ax.set_xlabel("per-element SNR of the test queries (dB)")
    elif sizes:
        labels = size_labels(result)
        for rows, style in ((models, "-o"), (base, "--")):
            for m in rows:
                ax.plot(sizes, _means(result, m, labels), style, label=m)
        ax.set_xlabel("training samples")
        ax.set_xscale("log")
    elif curve is not None:
        ks = sorted(int(k) for k in curve)
        for m in models:
            c = res[labels[0]].get(m, {}).get("adaptation_curve", {})
            ax.plot(ks, [c.get(str(k), {}).get("mean", np.nan) for k in ks], "-o", label=m)
        any_m = next(m for m in models if "adaptation_baselines" in res[labels[0]].get(m, {}))
        for b, c in res[labels[0]][any_m]["adaptation_baselines"].items():
            ax.plot(ks, [c.get(str(k), {}).get("mean", np.nan) for k in ks], "--", label=b)
        ax.set_xlabel("K labelled target samples")
        ax.set_xscale("log")
    else:
        rows = [*models, *base]
        width = 0.8 / max(1, len(rows))
        x = np.arange(len(labels))
        for i, m in enumerate(rows):
            hatch = "//" if m in base else None
            ax.bar(x + i * width, _means(result, m, labels), width, label=m, hatch=hatch)
        ax.set_xticks(x + 0.4 - width / 2, labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("mean 2-D error (m)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(f"{name} ({result['budget']})", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- the page


LWLM_PROTOCOLS = sorted(p.stem for p in LWLM_DIR.glob("*.yaml"))  # lwlm, lwlm_envs
LWLM_TEXT = {
    "lwlm": "**Large Wireless Localization Model** (arXiv 2505.10134, abstract + the authors' "
    "code; docs/lwlm.md). Finding: pretraining on unlabelled CSI (SF-MCM + DTI + PICL) gives "
    "26.0 %-87.5 % lower error than the same transformer without pretraining, on ToA, AoA, "
    "single- and multi-BS localization, strongest with few labels and on unseen BSs.",
    "lwlm_envs": "**LWLM pretrained on many environments** (issue #32; the paper's claim of "
    "a foundation model that generalises): pretrained without labels on the seen cities of an "
    "environment pool, fine-tuned and tested on a city it never saw (its streets and TRP "
    "layout new). Finding: pretraining beats the same transformer from scratch by >= 26 % at "
    "every label budget <= 2,000, on every task.",
}
LWLM_TITLE = {
    "lwlm": "Large Wireless Localization Model (pretrained vs scratch)",
    "lwlm_envs": "LWLM pretrained on many environments, tested on an unseen one",
}


def _lwlm_section(name: str, res: dict, path: Path, status: str | None) -> list[str]:
    """An LWLM protocol's section (``loc.lwlm.suite.page``) with its figure beside the page's."""
    from loc.lwlm import suite as lwlm
    from loc.suite.stamp import stamp_line

    fig = path.parent / "figures" / f"{path.stem}_{name}.png"
    lwlm.plot(res, fig)
    failed, note = (res.get("finding") or {}).get("holds") is False, why(name, res["budget"])
    return [
        "",
        f"## {name}",
        "",
        stamp_line(res.get("stamp"), status),
        "",
        LWLM_TEXT.get(name, ""),
        "",
        *lwlm.page(res, f"figures/{fig.name}"),
        "",
        *([f"Why, at this budget (measured): {note}", ""] if failed and note else []),
        f"Wall time {_minutes(res.get('wall_seconds'))}. At full scale on a GPU: "
        f"`loc suite {name} --budget short --device cuda`.",
    ]


def _minutes(s: float | None) -> str:
    return "–" if s is None else f"{s / 60:.1f} min"


def _ours_table(result: dict) -> list[str]:
    """Models and baselines x columns: mean / median / p90 (m); bold = below every baseline."""
    from loc.suite.report import markdown_table

    body = markdown_table(result, models_of(result)).splitlines()
    start = next(i for i, ln in enumerate(body) if ln.startswith("| model |"))
    return body[start:]


def write_results_page(
    results: dict[str, dict],
    budget: str,
    path: Path,
    missing: list[str] = (),
    lwlm: dict[str, dict] | None = None,
) -> Path:
    """The Markdown page: summary of findings and times, then per protocol the paper's
    numbers, ours, a figure and the verdict. ``missing``: protocols without a finished run,
    listed as not run; ``lwlm``: the LWLM protocols' results by name."""
    from loc.lwlm import suite as lwlm_suite

    lwlm = lwlm or {}
    path.parent.mkdir(parents=True, exist_ok=True)
    renders = {}
    for r in results.values():
        for store in r["datasets"].values():
            renders[store] = render_seconds(store)
    fits = {n: fit_seconds(r) for n, r in results.items()}
    known_render = sum(v for v in renders.values() if v is not None)
    total = known_render + sum(fits.values())
    lines = [
        f"# Results: the papers' findings on our data (budget `{budget}`)",
        "",
        f"Regenerate everything on this page (renders are cached, finished fits reused): "
        f"`loc suite all --budget {budget}`. Each protocol's full table, CDF figure and JSON "
        f"are in `runs/suite/<protocol>_{budget}/`.",
        "",
        f"Cost of the whole run on this machine: **{_minutes(total)}** "
        f"({_minutes(known_render)} rendering {len([v for v in renders.values() if v])} "
        f"datasets, {_minutes(sum(fits.values()))} fitting models; evaluation and the "
        f"model-free rows add the rest of each protocol's wall time below).",
        "",
        "A finding holds only if its check passes and no control passes it (controls: the "
        "check rerun with each CSI-free estimator in the model's place, `loc.suite.controls`). "
        "Run: whether the section is the current protocol's and code's output "
        "(`loc.suite.stamp`); a stale or unstamped section is an old run, shown as such.",
        "",
        "| protocol | paper | finding holds | controls | run | fit time | wall time of its "
        "last run |",
        "|---|---|---|---|---|---|---|",
    ]
    from loc.suite.stamp import code_files, stamp_line

    files = code_files()
    verdicts: dict[str, Finding | None] = {}
    status = {n: run_status(n, budget, r, files) for n, r in results.items()}
    for name, r in results.items():
        paper = PAPERS.get(name)
        v = check_with_controls(paper, r) if paper else None
        verdicts[name] = v
        mark = "–" if v is None or v.holds is None else ("yes" if v.holds else "**no**")
        lines.append(
            f"| [{name}](#{anchor(name)}) | {paper.title if paper else '–'} | {mark} | "
            f"{v.controls_cell() if v else '–'} | {status[name] or 'current'} | "
            f"{_minutes(fits[name])} | {_minutes(r.get('wall_seconds'))} |"
        )
    for name, res in lwlm.items():
        status[name] = run_status(name, budget, res, files)
        lv = lwlm_suite.finding(res)
        mark = {True: "yes", False: "**no**"}.get(lv.holds, "–")
        cell = lv.controls_cell()
        pre = (res.get("pretrain") or {}).get("seconds")
        lines.append(
            f"| [{name}](#{anchor(name)}) | {LWLM_TITLE.get(name, name)} | {mark} | {cell} | "
            f"{status[name] or 'current'} | {_minutes(pre)} pretraining | "
            f"{_minutes(res.get('wall_seconds'))} |"
        )
    for name in missing:
        title = PAPERS[name].title if name in PAPERS else LWLM_TITLE.get(name, "–")
        lines.append(f"| {name} | {title} | not run | – | – | – | – |")
    previous = path.parent / PREVIOUS_PAGE
    if missing and previous.exists():
        lines += ["", f"Not run: no finished run of this budget in the runs folder. Earlier, "
                  f"unstamped runs of them (older code and protocols): [{PREVIOUS_PAGE}]"
                  f"({PREVIOUS_PAGE})."]  # fmt: skip
    for name, r in results.items():
        paper, v = PAPERS.get(name), verdicts[name]
        fig = path.parent / "figures" / f"{path.stem}_{name}.png"
        plot_protocol(name, r, fig)
        lines += ["", f"## {name}", "", stamp_line(r.get("stamp"), status[name]), ""]
        mixed = mixed_fits_text(r)
        if mixed:
            lines += [mixed, ""]
        if paper:
            lines += [
                f"**{paper.title}** ({paper.source}). Finding: {paper.finding}",
                "",
                "| the paper | its numbers |",
                "|---|---|",
                *(f"| {a} | {b} |" for a, b in paper.reference),
                "",
            ]
        desc = (  # the protocol file's current text (a page-only rewrite reads old JSONs)
            load_protocol(name, budget).description
            if name in list_protocols()
            else r.get("description")
        )
        if desc:
            lines += [f"Ours: {desc}", ""]
        steps_run = steps_run_text(r)
        lines += [
            f"{budget_text(r)}, {r['device']}. Cells: 2-D error mean / median / p90 (m).",
            "",
            *_ours_table(r),
            "",
            *([steps_run, ""] if steps_run else []),
            *_extrapolation(r, 40_000),
            f"![{name}](figures/{fig.name})",
            "",
        ]
        if v is not None:
            lines.append(f"**The finding {v.status()} on our data.** {v.text}")
            note = why(name, budget, paper.cpu_note if budget == "cpu" else "")
            if v.holds is False and note:
                lines += ["", f"Why, at this budget (measured): {note}"]
        elif note := why(name, budget):  # a protocol without a finding: what it measured
            lines.append(f"Measured: {note}")
        lines += ["", f"At full scale on a GPU: `loc suite {name} --budget short --device cuda`."]
    for name, res in lwlm.items():
        lines += _lwlm_section(name, res, path, status[name])
    path.write_text("\n".join(lines) + "\n")
    (path.parent / "figures" / f"{path.stem}.json").write_text(
        json.dumps(
            {
                "budget": budget,
                "wall_seconds": {n: r.get("wall_seconds") for n, r in results.items()},
                "fit_seconds": fits,
                "render_seconds": renders,
                "findings": {
                    n: None
                    if v is None
                    else {
                        "holds": v.holds,
                        "status": v.status(),
                        "text": v.text,
                        "check_holds": v.check.holds,
                        "controls": v.controls,
                    }
                    for n, v in verdicts.items()
                },
                "run_status": {n: s or "current" for n, s in status.items()},
            },
            indent=1,
        )
    )
    return path
