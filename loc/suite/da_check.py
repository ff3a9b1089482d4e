"""The semantic-DA finding's check (``loc.suite.papers.PAPERS["semantic_da"]``, issue #33):
the ranking HDA < MDA < DCNN in target RMSE beyond the spread over >= 3 seeds (rule 5 of
specs/benchmark-fairness.md) and the link-state (PCP) accuracy on the target. Reads a
``run_suite`` JSON dict whose DA rows keep their seeds (``loc.suite.runners.run_da``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from loc.suite.papers import Verdict

DA_MIN_SEEDS = 3  # benchmark-fairness rule 5
DA_MIN_PCP = 0.8  # issue #33: link-state accuracy on the target (the paper: 0.94)


def seed_values(result: dict, label: str, model: str, key: str = "rmse") -> list[float] | None:
    """Per-seed ``key`` of ``model`` in column ``label`` (DA rows, ``seeds``); a row without
    seeds (a baseline, a control) gives its one value; None when it was not run."""
    r = result["results"].get(label, {}).get(model)
    if not r or not r["overall"].get("n"):
        return None
    if "seeds" in r:
        return [float(v[key]) for v in r["seeds"].values()]
    return [float(r["overall"][key])]


def _spread_text(v: list[float]) -> str:
    from loc.suite.papers import _fmt

    if len(v) == 1:
        return _fmt(v[0])
    return f"{np.mean(v):.2f} ± {np.std(v):.2f} m ({min(v):.2f}–{max(v):.2f})"


def check_da(result: dict) -> Verdict:
    """On the unlabelled target (the paper's split), in RMSE over >= 3 seeds: HDA < MDA < DCNN
    (DCNN trained in the same loop and recipe as the DA models) with every seed of the better
    model below every seed of the worse one (a gap inside the seed spread is "not
    distinguishable"), and link-state (PCP) accuracy >= 0.8 for MDA and HDA (seed mean, where
    the row has a PCP head: a CSI-free control in HDA's place is judged on the ranking). The
    held-out blocks column is reported beside it."""
    from loc.suite.papers import Verdict

    cols = [c for c in result["columns"] if c["test"] == "target"]
    main = next((c["label"] for c in cols if c.get("split") != "blocks"), None)
    blocks = next((c["label"] for c in cols if c.get("split") == "blocks"), None)
    models = ("hda", "mda", "dcnn", "dann")
    r = {m: seed_values(result, main, m) for m in models} if main else {}
    if not r or any(r[m] is None for m in ("hda", "mda", "dcnn")):
        return Verdict(None, "needs DCNN, MDA and HDA on the target column")
    res = result["results"][main]
    few = [m for m in ("hda", "mda", "dcnn") if "seeds" in res[m] and len(r[m]) < DA_MIN_SEEDS]
    text = "Target RMSE: " + ", ".join(f"{m} {_spread_text(v)}" for m, v in r.items() if v)
    if few:
        return Verdict(None, f"needs >= {DA_MIN_SEEDS} seeds ({', '.join(few)}). {text}.")
    apart = {
        pair: max(r[pair[0]]) < min(r[pair[1]]) for pair in (("hda", "mda"), ("mda", "dcnn"))
    }
    mean_order = np.mean(r["hda"]) < np.mean(r["mda"]) < np.mean(r["dcnn"])
    acc = {m: res[m].get("pcp_accuracy") for m in ("mda", "hda") if m in res}
    pcp_ok = all(a >= DA_MIN_PCP for a in acc.values() if a is not None)
    ok = all(apart.values()) and pcp_ok
    if all(apart.values()):
        text += "; HDA < MDA < DCNN beyond the seed spread"
    else:
        tied = [f"{a.upper()}–{b.upper()}" for (a, b), sep in apart.items() if not sep]
        text += (
            f"; {'the means are in order but ' if mean_order else ''}"
            f"not distinguishable ({', '.join(tied)} seed ranges overlap or are reversed)"
        )
    known = {m: a for m, a in acc.items() if a is not None}
    if known:
        text += f"; PCP accuracy (≥ {DA_MIN_PCP:.0%} asked) " + ", ".join(
            f"{m} {100 * a:.1f} %" for m, a in known.items()
        )
        by = res.get("hda", {}).get("pcp_by_state") or res.get("mda", {}).get("pcp_by_state")
        if by:
            text += " (per state: " + ", ".join(f"{k} {100 * v:.0f} %" for k, v in by.items())
            prior = res.get("hda", res.get("mda", {})).get("pcp_prior") or {}
            if prior.get("accuracy") is not None:
                text += f"; always {prior['class']}: {100 * prior['accuracy']:.0f} %"
            text += ")"
    if blocks is not None:
        rb = {m: seed_values(result, blocks, m) for m in models}
        text += "; held-out blocks: " + ", ".join(
            f"{m} {_spread_text(v)}" for m, v in rb.items() if v
        )
    return Verdict(ok, text + ".")
