"""Suite outputs: the Markdown table(s), the CDF figure and the JSON of a protocol run."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from loc.suite.controls import priors_of
from loc.suite.papers import XPRIME
from loc.suite.protocol import Protocol

log = logging.getLogger("loc.suite")
STATES = ("LOS", "OLOS", "NLOS", "BLOCKED")  # simgen.schema.LinkState with a path

# ----------------------------------------------------------------------------- outputs


def _cell(r: dict | None) -> str:
    if not r or r["overall"].get("n", 0) == 0:
        return "–"
    o = r["overall"]
    return f"{o['mean']:.2f} / {o['median']:.2f} / {o['p90']:.2f}"


def _prior_ratio(res: dict, model: str, prior: str | None) -> str:
    """' (1.46× x′)': ``model``'s mean error over its prior row's in one column; '' when
    either is missing."""
    r, p = res.get(model), res.get(prior) if prior else None
    if not r or not p or not r["overall"].get("n") or not p["overall"].get("n"):
        return ""
    name = "x′" if prior.startswith(XPRIME) else prior
    return f" ({r['overall']['mean'] / max(p['overall']['mean'], 1e-12):.2f}× {name})"


def _finite(r: dict | None) -> str:
    f = (r or {}).get("finite_fraction", 1.0)
    return "" if not r or f >= 1 else f" ({100 * f:.0f} %)"


def budget_text(result: dict) -> str:
    """'1000 steps, batch 32' or, with data.epochs, '30 epochs (at most 20000 steps), batch
    32, early stopping on a 10 % hold-out (patience 5)'; then the per-model steps run."""
    if result.get("epochs") is None:
        text = f"{result['steps']} steps, batch {result['batch_size']}"
    else:
        text = (
            f"{result['epochs']:g} epochs (at most {result['steps']} steps), "
            f"batch {result['batch_size']}"
        )
    if result.get("val_fraction"):
        text += f", early stopping on a {result['val_fraction']:.0%} hold-out of the training"
        text += f" samples (patience {result['patience']})" if result.get("patience") else ""
    return text


def steps_run_text(result: dict) -> str:
    """'Steps run (best validation step): exp: model 1200 (900), ...' when early stopping ran,
    else ''."""
    parts = []
    for ename, fits in result.get("training", {}).items():
        runs = [
            f"{m} {t['stopped'] or t['steps']} ({t['best_step']})"
            for m, t in fits.items()
            if t.get("best_step") is not None
        ]
        if runs:
            parts.append(f"{ename}: " + ", ".join(runs))
    return "Steps run (best validation step): " + "; ".join(parts) + "." if parts else ""


def state_mix_text(result: dict) -> list[str]:
    """One line per experiment: the LinkState shares of its training and test links, e.g.
    'Link states, static_to_jammed: train static/dry: LOS 61 %, NLOS 30 %, ...' (states under
    0.5 % left out); [] for results written before the shares were recorded."""
    lines = []
    for ename, parts in result.get("state_mix", {}).items():
        text = "; ".join(
            f"{what}: "
            + ", ".join(f"{s} {100 * v:.0f} %" for s, v in mix.items() if v >= 0.005)
            for what, mix in parts.items()
        )
        lines.append(f"- link states (share of the selected links), {ename}: {text}")
    return lines


def markdown_table(result: dict, models: list[str]) -> str:
    """The suite table: one row per model, one column per (experiment, test)."""
    cols = result["columns"]
    lines = [
        f"# Localization suite: {result['protocol']} (budget {result['budget']})",
        "",
    ]
    if result.get("description"):
        lines += [result["description"].splitlines()[0], ""]
    lines += [
        f"{budget_text(result)}, k = {result['k']} neighbours, "
        f"coarse location error l = {result['coarse_error_l_m']} m, {result['device']}. "
        "Cells: 2-D error mean / median / p90 in metres.",
        "",
        "| model | " + " | ".join(c["label"] for c in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    base = result.get("baselines", [])
    priors = priors_of(result)
    for m in models:
        cells = []
        for c in cols:
            res = result["results"][c["label"]]
            cell = _cell(res.get(m)) + _prior_ratio(res, m, priors.get(m))
            if (
                res.get(m)
                and base
                and all(
                    res[m]["overall"]["mean"] < res[b]["overall"]["mean"] for b in base if b in res
                )
            ):
                cell = f"**{cell}**"
            cells.append(cell)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    for b in base:
        cells = [_cell(result["results"][c["label"]].get(b)) for c in cols]
        lines.append(f"| *baseline: {b}* | " + " | ".join(cells) + " |")
    peb = result.get("peb") or {}
    if peb:
        cells = [_cell(peb.get(c["label"])) + _finite(peb.get(c["label"])) for c in cols]
        lines.append(f"| *{next(iter(peb.values()))['definition']}* | " + " | ".join(cells) + " |")
    if base:
        lines += ["", "**Bold**: the model's mean error is below every baseline row's."]
    if any(m in priors for m in models):
        lines += [
            "(r× prior): the model's mean error over that of the prior it is handed "
            "(x′: the coarse location every set model is given; multilat: first-arrival ToA "
            "multilateration, the estimator of the first-arrival index and level VIn-Loc is "
            "given per TRP); below 1 the model beats its prior."
        ]
    if peb:
        lines += [
            "The PEB row is the Cramér–Rao bound on position at each column's noise (statistics "
            "over the test samples where it is finite, their share in brackets when not all): "
            "no unbiased estimator does better (docs/noise.md)."
        ]
    lines += _extra_tables(result, models)
    lines.append("")
    for c in cols:
        noise = ""
        if "noise" in c:
            train = c.get("training_noise", c["database_noise"])
            noise = (
                f"; noise: queries {c['noise']}, database {c['database_noise']}, training {train}"
            )
        lines.append(
            f"- {c['label']}: train {' + '.join(c['train'])}; test {c['test_scenario']} "
            f"n={c['n_test']}, database {c['n_database']}{noise}"
        )
    methods = {  # rows whose runner names its method (e.g. fair vs oracle multilateration)
        m: r["method"]
        for c in cols
        for m in models
        if (r := result["results"][c["label"]].get(m)) and r.get("method")
    }
    lines += [f"- {m}: {text}" for m, text in methods.items()]
    lines += state_mix_text(result)
    return "\n".join(lines) + "\n"


def _extra_tables(result: dict, models: list[str]) -> list[str]:
    """RMSE and link-state (PCP) accuracy of DA models; error vs K of MetaLoc models; error
    vs fine-tuning samples (transfer-learning curves)."""
    cols, res = result["columns"], result["results"]
    lines = []
    if any("pcp_accuracy" in (res[c["label"]].get(m) or {}) for c in cols for m in models):
        lines += _da_tables(result, models)
    lines += _curve_table(
        res,
        cols,
        models,
        "adaptation_curve",
        "Fast adaptation: mean error (m) vs K labelled target samples.",
    )
    lines += _curve_table(
        res,
        cols,
        models,
        "transfer_curve",
        "Transfer learning: mean error (m) after "
        "fine-tuning on n samples of the test scenario (n = 0: direct reuse).",
    )
    return lines


def _seeds_cell(r: dict, key: str, scale: float = 1.0) -> str:
    """'9.12 ± 0.31 (8.80–9.50)' over a DA row's seeds (one seed: the value), '–' without."""
    v = [s[key] * scale for s in r.get("seeds", {}).values() if s.get(key) is not None]
    if not v:
        return "–"
    if len(v) == 1:
        return f"{v[0]:.2f}"
    return f"{np.mean(v):.2f} ± {np.std(v):.2f} ({min(v):.2f}–{max(v):.2f})"


def _da_tables(result: dict, models: list[str]) -> list[str]:
    """DA models: RMSE and link-state (PCP) accuracy over the seeds, then per link state of the
    test links the PCP accuracy and the mean error (seeds pooled), beside the baseline rows."""
    cols, res = result["columns"], result["results"]
    n_seeds = max(
        (len(r.get("seeds", {})) for c in cols for r in res[c["label"]].values()), default=1
    )
    lines = [
        "",
        f"Domain adaptation: RMSE (m) / link-state (PCP) accuracy (%), over {n_seeds} seed(s): "
        "mean ± std (min–max).",
        "",
        "| model | " + " | ".join(c["label"] for c in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for m in models:
        cells = []
        for c in cols:
            r = res[c["label"]].get(m)
            if not r:
                cells.append("–")
            elif "seeds" not in r:
                acc = r.get("pcp_accuracy")
                pcp = "–" if acc is None else f"{100 * acc:.1f}"
                cells.append(f"{r['overall']['rmse']:.2f} / {pcp}")
            else:
                cells.append(f"{_seeds_cell(r, 'rmse')} / {_seeds_cell(r, 'pcp_accuracy', 100)}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    for c in cols:
        col = res[c["label"]]
        states = [
            s for s in STATES if any(s in (r.get("by_link_state") or {}) for r in col.values())
        ]
        if not states:
            continue
        lines += [
            "",
            f"{c['label']}: per link state of the test links, PCP accuracy (%) / mean error (m)"
            " (seeds pooled).",
            "",
            "| model | " + " | ".join(states) + " |",
            "|---|" + "---|" * len(states),
        ]
        for m in [*models, *result.get("baselines", [])]:
            r = col.get(m)
            if not r:
                continue
            cells = []
            for s in states:
                acc = (r.get("pcp_by_state") or {}).get(s)
                err = (r.get("by_link_state") or {}).get(s, {})
                cells.append(
                    ("–" if acc is None else f"{100 * acc:.0f}")
                    + " / "
                    + (f"{err['mean']:.2f}" if err.get("n") else "–")
                )
            name = m if m in models else f"*{m}*"
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        prior = next((r["pcp_prior"] for r in col.values() if r.get("pcp_prior")), None)
        if prior and prior.get("accuracy") is not None:
            lines.append(
                f"A CSI-free classifier that always answers the source's most frequent class "
                f"({prior['class']}) is right on {100 * prior['accuracy']:.0f} % of these links."
            )
    return lines


def _curve_table(res: dict, cols: list, models: list[str], key: str, title: str) -> list[str]:
    """Models x (column, size) table of the mean errors in each result's ``key`` curve; a
    transfer curve also gets n = 0 (the model as trained, no fine-tuning)."""
    rows = [m for m in models if any(key in (res[c["label"]].get(m) or {}) for c in cols)]
    if not rows:
        return []
    direct = key == "transfer_curve"
    heads = []
    for c in cols:
        sizes = sorted(
            {n for m in rows for n in (res[c["label"]].get(m) or {}).get(key, {})}, key=int
        )
        heads += [(c["label"], n) for n in ([0] if direct else []) + sizes]
    sym = "n" if direct else "K"
    lines = [
        "",
        title,
        "",
        "| model | " + " | ".join(f"{lab} {sym}={n}" for lab, n in heads) + " |",
        "|---|" + "---|" * len(heads),
    ]
    for m in rows:
        cells = []
        for lab, n in heads:
            r = res[lab].get(m) or {}
            curve = {0: r["overall"], **r.get(key, {})} if direct and r else r.get(key, {})
            cells.append(f"{curve[n]['mean']:.2f}" if n in curve else "–")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    # baselines on the same K samples (MetaLoc: "mean of K", kNN on K), from any model's entry
    base = {lab: (res[lab].get(rows[0]) or {}).get("adaptation_baselines", {}) for lab, _ in heads}
    for b in dict.fromkeys(b for v in base.values() for b in v):
        cells = [
            f"{base[lab][b][n]['mean']:.2f}" if n in base[lab].get(b, {}) else "–"
            for lab, n in heads
        ]
        lines.append(f"| *{b}* | " + " | ".join(cells) + " |")
    return lines


def plot_suite_cdf(errors: dict[str, dict[str, np.ndarray]], path: Path, title: str) -> Path:
    """One panel per column, one CDF curve per model (log error axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    n = max(1, len(errors))
    ncol = min(3, n)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    for ax, (label, curves) in zip(axes.flat, errors.items(), strict=False):
        for m, e in curves.items():
            e = np.sort(np.asarray(e, np.float64))
            if len(e):
                ax.plot(np.maximum(e, 1e-3), np.arange(1, len(e) + 1) / len(e), label=m)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("2-D error (m)")
        ax.set_ylabel("CDF")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(result, errors, out: Path, proto: Protocol, models, final: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    result["complete"] = final
    (out / f"{proto.name}.json").write_text(json.dumps(result, indent=2))
    (out / f"{proto.name}.md").write_text(markdown_table(result, models))
    if final:
        plot_suite_cdf(errors, out / f"{proto.name}_cdf.png", f"{proto.name} ({proto.budget})")
