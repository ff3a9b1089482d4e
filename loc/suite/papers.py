"""The papers' headline numbers and findings, and a check of each finding on a suite result.

One ``Paper`` per protocol of the results page (``loc suite all``): where its numbers come from
(``../shared/specs``), the reference numbers as the paper gives them, the qualitative finding,
and ``check(result) -> Verdict`` that reads a ``run_suite`` JSON dict and says whether the
finding holds on our data, with the numbers that decide it. A check never passes on missing
rows: it answers ``holds=None`` ("not measured") instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from loc.suite.da_check import check_da

POINT_MODELS = ("cnn", "ad_cnn", "mfcnet")
SET_MODEL = "mateformer"
# baseline rows by the start of their names (``loc.evaluate.baseline_predictions``,
# ``loc.suite.run.add_baselines``): the CSI-free estimators and the set models' prior
TRAINING_MEAN = "training mean"
XPRIME = "coarse location"  # x′ = x + U[-l, l]^2, what every set model is given
XINIT = "x_init"  # the centroid of the neighbours x′ selects
POSITION_KNN = "kNN (k=5) on positions"  # the database positions nearest x′ (no CSI)


@dataclasses.dataclass(frozen=True)
class Verdict:
    holds: bool | None  # None: the rows it needs were not run
    text: str  # one or two sentences with the deciding numbers


@dataclasses.dataclass(frozen=True)
class Paper:
    protocol: str
    title: str
    source: str  # the spec section the numbers come from
    finding: str
    reference: tuple[tuple[str, str], ...]  # (row, the paper's numbers)
    check: Callable[[dict], Verdict]
    cpu_note: str = ""  # why the finding fails at the cpu budget, from measurements (docs)


# ----------------------------------------------------------------------------- result access


def stat(result: dict, label: str, model: str, key: str = "mean") -> float | None:
    """``key`` ("mean", "rmse", ...) of ``model``'s 2-D error (m) in column ``label``; None
    when it was not run."""
    r = result["results"].get(label, {}).get(model)
    return None if not r or not r["overall"].get("n") else float(r["overall"][key])


def mean(result: dict, label: str, model: str) -> float | None:
    return stat(result, label, model, "mean")


def rmse(result: dict, label: str, model: str) -> float | None:
    return stat(result, label, model, "rmse")


def row_named(result: dict, label: str, prefix: str) -> str | None:
    """The name of column ``label``'s row that starts with ``prefix`` (e.g. ``XPRIME``:
    "coarse location (l = 1 m)"), None when the column has none."""
    return next((m for m in result["results"].get(label, {}) if m.startswith(prefix)), None)


def prior_mean(result: dict, label: str) -> float | None:
    """Mean error (m) of x′, the coarse location the set models are given, in column ``label``;
    None when the column has no x′ row."""
    name = row_named(result, label, XPRIME)
    return None if name is None else mean(result, label, name)


def below_prior(
    result: dict, labels: list[str], model: str = SET_MODEL
) -> tuple[bool | None, str]:
    """Rules §1.2: whether ``model``'s mean error is below its prior x′'s in every column of
    ``labels`` (None when a column lacks either row), and a sentence with the ratios."""
    parts, ok = [], True
    for lab in labels:
        m, p = mean(result, lab, model), prior_mean(result, lab)
        if m is None or p is None:
            return None, f"needs {model} and the coarse-location (x′) row in {lab}"
        ok = ok and m < p
        parts.append(f"{lab} {_fmt(m)} vs x′ {_fmt(p)} ({m / p:.2f}×)")
    verdict = "below its prior x′" if ok else "not below its prior x′ everywhere"
    return ok, f"{model} is {verdict}: " + "; ".join(parts) + "."


def column(result: dict, experiment: str, test: str) -> str | None:
    """Label of the column (experiment, test), None when the run has no such column."""
    for c in result["columns"]:
        if c["experiment"] == experiment and c["test"] == test:
            return c["label"]
    return None


def noiseless_columns(result: dict) -> list[dict]:
    """Columns tested without receiver noise (every column of a run from before the noise
    model); noise-robustness columns are read by their own checks, and so are the spatially
    disjoint ones (``split: blocks``, held-out blocks beside the paper's split)."""
    return [
        c
        for c in result["columns"]
        if c.get("noise", "noiseless") == "noiseless" and c.get("split") != "blocks"
    ]


def noise_columns(result: dict, prefix: str) -> list[dict]:
    """Columns whose query noise label starts with ``prefix`` (e.g. "mult", "AWGN")."""
    return [c for c in result["columns"] if c.get("noise", "").startswith(prefix)]


def models_of(result: dict) -> list[str]:
    """Model rows (not baselines) that have a result in any column."""
    base = set(result.get("baselines", []))
    seen: dict[str, None] = {}
    for col in result["results"].values():
        for m in col:
            if m not in base:
                seen[m] = None
    return list(seen)


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f} m"


# ----------------------------------------------------------------------------- checks


def check_single(result: dict) -> Verdict:
    """Mateformer most accurate at the largest training size; error falls with data; and, where
    the run has ALLoc's noise-robustness columns (Fig. 4(d), query-only H (.) D), Mateformer
    degrades less than the CNN at every sigma."""
    labels = [c["label"] for c in noiseless_columns(result)]
    models = models_of(result)
    if SET_MODEL not in models or len(labels) < 2:
        return Verdict(None, "needs Mateformer and at least two training sizes")
    last = labels[-1]
    errs = {m: mean(result, last, m) for m in models}
    best = min((m for m in errs if errs[m] is not None), key=errs.get)
    falling = {
        m: all(
            (a := mean(result, x, m)) is not None
            and (b := mean(result, y, m)) is not None
            and b <= a
            for x, y in zip(labels, labels[1:], strict=False)
        )
        for m in models
    }
    prior_ok, prior_text = below_prior(result, [last])
    if prior_ok is None:
        return Verdict(None, prior_text)
    ok = best == SET_MODEL and all(falling.values()) and prior_ok
    flat = [m for m, f in falling.items() if not f]
    text = (
        f"At the largest size ({last}) the most accurate model is {best} ({_fmt(errs[best])}); "
        + (
            "every model's error falls with data."
            if not flat
            else f"error does not fall with data for {', '.join(flat)}."
        )
        + f" {prior_text}"
    )
    robust = check_noise_robustness(result)
    if robust.holds is None:
        return Verdict(ok, text)
    return Verdict(ok and robust.holds, text + " " + robust.text)


def check_noise_robustness(result: dict) -> Verdict:
    """ALLoc Fig. 4(d): with the query CSI distorted by H (.) D, D ~ N(1, sigma^2), Mateformer's
    error grows less than the CNN's at every sigma (against the noiseless column of the same
    experiment)."""
    cols = noise_columns(result, "mult")
    if not cols:
        return Verdict(None, "no noise-robustness columns")
    exp = cols[0]["experiment"]
    clean = next((c["label"] for c in noiseless_columns(result) if c["experiment"] == exp), None)
    if (
        clean is None
        or mean(result, clean, SET_MODEL) is None
        or mean(result, clean, "cnn") is None
    ):
        return Verdict(None, "needs Mateformer and the CNN in the noiseless and noisy columns")
    parts, ok, noisy = [], True, []
    for c in cols:
        inc = {}
        for m in (SET_MODEL, "cnn"):
            a, b = mean(result, clean, m), mean(result, c["label"], m)
            inc[m] = None if a is None or b is None else (a, b)
        if None in inc.values():
            continue
        ok = ok and inc[SET_MODEL][1] - inc[SET_MODEL][0] < inc["cnn"][1] - inc["cnn"][0]
        noisy.append(c["label"])
        parts.append(
            f"{c['noise']}: Mateformer {_fmt(inc[SET_MODEL][1])}, CNN {_fmt(inc['cnn'][1])}"
        )
    text = (
        f"Noise robustness (queries only, from {_fmt(mean(result, clean, SET_MODEL))} / "
        f"{_fmt(mean(result, clean, 'cnn'))} noiseless): "
        + "; ".join(parts)
        + (" — Mateformer degrades less at every sigma." if ok else " — not at every sigma.")
    )
    if not noisy:
        return Verdict(None, "needs Mateformer and the CNN in a noisy column")
    prior_ok, prior_text = below_prior(result, noisy)
    if prior_ok is None:
        return Verdict(None, text + " " + prior_text)
    return Verdict(ok and prior_ok, text + " " + prior_text)


NO_PRIOR = ("vinloc", "resnet_fp", "cnn", "ad_cnn", "mfcnet", "vinloc_nopos")  # no location given


SNR_BOUND_RATIO = 3.0  # multilateration's RMSE within this factor of the multipath bound
SNR_HIGH_DB = 20.0  # "high SNR": the columns at or above this per-element SNR


def _snr_columns(result: dict) -> tuple[list[tuple[float, str]], dict[str, str]]:
    """((SNR dB, label) of the fixed-SNR columns, ascending; {noise label: column label} of
    the random-split columns (the ``blocks`` columns are reported apart))."""
    named = {}
    for c in result["columns"]:
        if c.get("split") == "blocks":
            continue
        n = c.get("noise", "")
        if n.startswith("AWGN ") and ".." not in n and "+" not in n:
            named[n] = c["label"]
        elif n in ("link budget", "noiseless") or "clock" in n:
            named[n] = c["label"]
    awgn = sorted((float(n.split()[1]), lab) for n, lab in named.items() if n.startswith("AWGN"))
    return awgn, named


def check_snr(result: dict) -> Verdict:
    """What the physics allows (noise-and-peb.md §5): every estimator's error falls as the SNR
    rises; at high SNR multilateration comes within ``SNR_BOUND_RATIO`` of the multipath-aware
    bound (RMSE vs the bound's RMS) but not below it (a first-peak ToA is at best efficient);
    and at -10 and 0 dB, where first-arrival ranging breaks down, a learned model given no
    location (it carries the survey area as a prior, which no CRB holds) beats multilateration.
    The TRP sync error column and the held-out blocks are reported beside it."""
    awgn, named = _snr_columns(result)
    models = models_of(result)
    if len(awgn) < 3 or "multilat" not in models:
        return Verdict(None, "needs multilat and three fixed-SNR columns")
    learned = [m for m in models if m.split("@")[0] in NO_PRIOR]
    parts, oks = [], []
    lo_snr, lo = awgn[0]
    hi_snr, hi = awgn[-1]
    for m in ("multilat", *learned):  # error falls with SNR
        a, b = mean(result, lo, m), mean(result, hi, m)
        if a is not None and b is not None:
            oks.append(b <= a)
            if b > a:
                parts.append(f"{m} is worse at {hi_snr:g} dB ({_fmt(b)}) than at {lo_snr:g} dB")
    # the multipath-aware bound (noise-and-peb.md §5, loc.peb.store_peb(multipath=True)),
    # recorded per column by loc.suite.run.add_baselines; a run without it: "not measured"
    mp = result.get("peb_multipath") or {}
    bound_ok = None
    for snr_db, lab in awgn:
        bound = (mp.get(lab) or {}).get("overall", {})
        r_ml = stat(result, lab, "multilat", "rmse")
        if snr_db < SNR_HIGH_DB or r_ml is None or not bound.get("n"):
            continue
        ratio = r_ml / bound["rmse"]
        ok = 1.0 <= ratio <= SNR_BOUND_RATIO
        bound_ok = ok if bound_ok is None else bound_ok and ok
        parts.append(
            f"at {snr_db:g} dB multilateration RMSE {_fmt(r_ml)} = {ratio:.1f}x the multipath "
            f"bound ({_fmt(bound['rmse'])} RMS)"
        )
    if bound_ok is None:
        parts.append("the multipath-aware bound is not recorded (not measured)")
    for snr_db, lab in awgn:
        if snr_db > 0 or not learned:
            continue
        errs = {m: mean(result, lab, m) for m in (*learned, "multilat")}
        best = min((m for m in learned if errs[m] is not None), key=errs.get, default=None)
        if best is None or errs["multilat"] is None:
            continue
        beat = errs[best] < errs["multilat"]
        oks.append(beat)
        parts.append(
            f"{snr_db:g} dB: best learned {best} {_fmt(errs[best])} vs multilat "
            f"{_fmt(errs['multilat'])}" + ("" if beat else " (not below)")
        )
    for n, lab in named.items():  # the TRP sync error column, beside
        if "clock" in n:
            parts.append(
                f"{n}: multilat {_fmt(mean(result, lab, 'multilat'))}, "
                + ", ".join(f"{m} {_fmt(mean(result, lab, m))}" for m in learned)
            )
    if not learned:
        parts.append("no learned model without a location prior (not measured)")
    holds = None if bound_ok is None or not learned else bound_ok and all(oks)
    return Verdict(holds, "; ".join(parts) + ".")


def _degradation(result: dict, exp: str, own: str, other: str) -> dict[str, tuple]:
    a, b = column(result, exp, own), column(result, exp, other)
    if a is None or b is None:
        return {}
    return {m: (mean(result, a, m), mean(result, b, m)) for m in models_of(result)}


def check_cross(result: dict) -> Verdict:
    """Direct reuse on the other scenario: Mateformer (with that scenario's neighbour database)
    degrades far less (under half the increase) than every point model, and stays below its
    prior x′ in both columns. A direction where no point model degrades (error ratio < 1.2:
    the other scenario is no harder) is reported but does not decide."""
    texts, oks = [], []
    for exp, own, other in (
        ("train_static", "static", "traffic"),
        ("train_traffic", "traffic", "static"),
    ):
        d = _degradation(result, exp, own, other)
        if SET_MODEL not in d or not any(m in d for m in POINT_MODELS):
            continue
        inc = {m: b - a for m, (a, b) in d.items() if a is not None and b is not None}
        points = {m: inc[m] for m in POINT_MODELS if m in inc}
        text = f"{own} → {other}: Mateformer {_fmt(d[SET_MODEL][0])} → {_fmt(d[SET_MODEL][1])}, "
        text += ", ".join(f"{m} {_fmt(d[m][0])} → {_fmt(d[m][1])}" for m in points)
        if max(d[m][1] / d[m][0] for m in points) < 1.2:
            texts.append(text + f" (no point model degrades: {other} is no harder)")
            continue
        prior_ok, prior_text = below_prior(
            result, [column(result, exp, own), column(result, exp, other)]
        )
        if prior_ok is None:
            return Verdict(None, prior_text)
        oks.append(inc[SET_MODEL] < 0.5 * min(points.values()) and prior_ok)
        texts.append(text + f" ({prior_text[:-1]})")
    if not texts:
        return Verdict(None, "needs Mateformer and a point model in both columns")
    return Verdict(all(oks) if oks else None, "; ".join(texts) + ".")


def check_multi_cell(result: dict) -> Verdict:
    """Unseen cell: Mateformer within 1.5x its seen-cell error and below its prior x′ in both
    columns; point models fail (unseen error > 3x their seen-cell error, or above half the
    training-mean row)."""
    seen, unseen = (
        column(result, "cells_0_1_2", "seen_cell"),
        column(result, "cells_0_1_2", "unseen_cell"),
    )
    if seen is None or unseen is None or mean(result, unseen, SET_MODEL) is None:
        return Verdict(None, "needs Mateformer in the seen and unseen columns")
    tm = mean(result, unseen, "training mean")
    s, u = mean(result, seen, SET_MODEL), mean(result, unseen, SET_MODEL)
    prior_ok, prior_text = below_prior(result, [seen, unseen])
    if prior_ok is None:
        return Verdict(None, prior_text)
    ok = u <= 1.5 * s and prior_ok
    parts = [f"Mateformer {_fmt(s)} seen → {_fmt(u)} unseen"]
    for m in POINT_MODELS:
        ps, pu = mean(result, seen, m), mean(result, unseen, m)
        if ps is None or pu is None:
            continue
        fails = pu > 3 * ps or (tm is not None and pu > 0.5 * tm)
        ok = ok and fails
        parts.append(f"{m} {_fmt(ps)} → {_fmt(pu)}")
    if tm is not None:
        parts.append(f"training mean {_fmt(tm)}")
    return Verdict(ok, ", ".join(parts) + ". " + prior_text)


def check_metaloc(result: dict) -> Verdict:
    """Error falls with K for every model; MAML-DG <= MAML < TL < RI at the smallest K."""
    label = result["columns"][0]["label"] if result["columns"] else None
    res = result["results"].get(label, {}) if label else {}
    need = ("maml", "maml_dg", "metaloc_tl", "metaloc_ri")
    if any(m not in res or "adaptation_curve" not in res[m] for m in need):
        return Verdict(None, "needs MAML, MAML-DG, TL and RI adaptation curves")
    curves = {
        m: {int(k): v["mean"] for k, v in res[m]["adaptation_curve"].items()}
        for m in res
        if "adaptation_curve" in res[m]
    }
    ks = sorted(curves["maml"])
    falling = [
        m for m, c in curves.items() if all(c[b] <= c[a] for a, b in zip(ks, ks[1:], strict=False))
    ]
    holds_at = [
        k
        for k in ks
        if curves["maml_dg"][k]
        <= curves["maml"][k]
        < curves["metaloc_tl"][k]
        < curves["metaloc_ri"][k]
    ]
    k0 = ks[0]
    ok = len(falling) == len(curves) and k0 in holds_at
    text = (
        f"K = {k0}: "
        + ", ".join(f"{m} {_fmt(curves[m][k0])}" for m in curves)
        + ". The ordering MAML-DG ≤ MAML < TL < RI holds at K = "
        + (", ".join(map(str, holds_at)) or "none")
        + f" of {', '.join(map(str, ks))}; error falls with K for "
        + ("every model" if len(falling) == len(curves) else ", ".join(falling) or "no model")
        + "."
    )
    return Verdict(ok, text)


def check_vinloc(result: dict) -> Verdict:
    """In RMSE, the paper's metric, on held-out blocks (``all_trps``), VIn-Loc and ResNet
    fingerprinting trained the same way (both on random TRP subsets where run, else both on
    every TRP; same LR, input and steps): from fixed to variable TRPs VIn-Loc's RMSE grows
    < 1.5x and less than ResNet's, and under variable TRPs VIn-Loc beats ResNet and (where
    run) kNN fingerprinting. The model-based rows and the random-split column are listed."""
    fixed, var = column(result, "all_trps", "fixed"), column(result, "all_trps", "variable")
    if fixed is None or var is None:
        return Verdict(None, "needs the fixed and variable columns")
    r = {m: (rmse(result, fixed, m), rmse(result, var, m)) for m in models_of(result)}
    pair = next(
        ((v, f) for v, f in (("vinloc@variable", "resnet_fp@variable"), ("vinloc", "resnet_fp"))
         if v in r and f in r and None not in (*r[v], *r[f])),
        None,
    )  # fmt: skip
    if pair is None:
        return Verdict(None, "needs VIn-Loc and ResNet trained the same way")
    vin, res = pair
    (vf, vv), (rf, rv) = r[vin], r[res]
    ok = vv < 1.5 * vf and vv / vf < rv / rf and vv < rv
    if "knn_fp" in r and r["knn_fp"][1] is not None:
        ok = ok and vv < r["knn_fp"][1]
    text = (
        f"RMSE fixed → variable (held-out blocks): {vin} {_fmt(vf)} → {_fmt(vv)} "
        f"({vv / vf:.2f}x); {res} {_fmt(rf)} → {_fmt(rv)} ({rv / rf:.2f}x)"
    )
    for m in ("vinloc", "resnet_fp", "knn_fp", "multilat", "multilat_oracle"):
        if m in r and m not in pair and None not in r[m]:
            text += f"; {m} {_fmt(r[m][0])} → {_fmt(r[m][1])}"
    rand = column(result, "random_split", "fixed")
    if rand is not None and rmse(result, rand, vin) is not None:
        text += f"; random split (fixed TRPs): {vin} {_fmt(rmse(result, rand, vin))}"
        if rmse(result, rand, res) is not None:
            text += f", {res} {_fmt(rmse(result, rand, res))}"
    return Verdict(ok, text + ".")


# ----------------------------------------------------------------------------- the papers

SNR_REFERENCE = (
    (
        "PEB, 3 TRPs at 120°, R = 100 m, 64 × 480 kHz, one antenna, 10 dB",
        "0.17367 m (2 σ_d / √3, σ_d = 0.150 m)",
    ),
    ("ranging std σ_d at 0 / 10 / 20 dB (64 × 480 kHz)", "0.476 / 0.150 / 0.048 m"),
    ("VIn-Loc, Sionna scenario 1 (noise n ~ N(0, σ²I) in its system model)", "RMSE 0.93 m"),
)

# The snr finding, restated as a claim the physics allows (benchmark-fairness.md §2, snr): the
# LoS single-path PEB assumes no path within 1/B of the first, so a first-peak estimator keeps
# a multipath bias at any SNR and "within 2x of the PEB" could not pass; the multipath-aware
# bound (noise-and-peb.md §5) counts those paths. Below ~0 dB first-arrival ranging breaks
# down, while a learned model keeps the survey area as a prior, which no CRB holds.
SNR_FINDING = (
    "Every estimator's error falls as the SNR rises; at high SNR (>= 20 dB) multilateration "
    "comes within 3x of the multipath-aware bound and not below it (a single-path bound "
    "ignores paths within 1/B of the first, which bias a first-peak ToA at any SNR); at -10 and "
    "0 dB, where first-arrival ranging breaks down, a learned model given no location beats "
    "multilateration, as a model that has learnt the survey area holds a prior no CRB counts. "
    "A 5 ns TRP sync error column and held-out blocks are shown beside it."
)

PAPERS = {
    "single_scenario": Paper(
        "single_scenario",
        "ALLoc / Mateformer, single scenario (O1, Fig. 4a)",
        "specs/mateformer-alloc.md §9.2",
        "Mateformer (ALLoc) is the most accurate model at the largest training size and every "
        "model's error falls with data.",
        (
            ("ALLoc (Mateformer), 10k / 20k / 40k", "0.320 / 0.121 / 0.046 m"),
            ("MFCNet", "0.407 / 0.209 / 0.072 m"),
            ("AD_CNN", "0.418 / 0.271 / 0.213 m"),
            ("CNN", "0.473 / 0.352 / 0.275 m"),
            ("ICLLoc-generative (neighbourhood)", "1.212 / 0.613 / 0.339 m"),
        ),
        check_single,
        "at a fixed 1,500 steps x 32 (4.8 passes over 10k samples) the point models underfit "
        "and stayed flat (CNN 7.7 / 7.9 / 7.1 m at 2k / 5k / 10k); in epochs with early "
        "stopping (12 passes per size) every model fell with data (CNN 10.7 / 7.1 / 5.3 m, "
        "issue #23). A failure here means a model stopped converging at this budget: see the "
        "steps run and best validation steps above.",
    ),
    "cross_scenario": Paper(
        "cross_scenario",
        "ALLoc / Mateformer, direct reuse across scenarios (O1 ↔ O1B, Fig. 5a/b)",
        "specs/mateformer-alloc.md §9.2",
        "Reused without a weight update on a new scenario (with that scenario's neighbour "
        "database), Mateformer degrades far less than the point models.",
        (
            ("ALLoc, O1 → O1B", "0.046 → 0.510 m"),
            ("MFCNet, O1 → O1B", "0.072 → 43.1 m"),
            ("AD_CNN, O1 → O1B", "0.213 → 42.1 m"),
            ("CNN, O1 → O1B", "0.275 → 17.3 m"),
            ("ALLoc, O1B → O1", "0.088 → 0.382 m"),
            ("AD_CNN, O1B → O1", "0.421 → 9.03 m"),
        ),
        check_cross,
    ),
    "multi_cell": Paper(
        "multi_cell",
        "ALLoc / Mateformer, multi-cell (MO1, unseen cell 3, Fig. 6a)",
        "specs/mateformer-alloc.md §9.2",
        "Trained jointly on other cells, Mateformer on an unseen cell stays close to its "
        "seen-cell error; the point models fail.",
        (
            ("ALLoc, seen cells / unseen cell 3", "0.017–0.051 / 0.025 m"),
            ("MFCNet", "12.4–15.8 / 12.5 m"),
            ("AD_CNN", "8.06–9.87 / 7.66 m"),
            ("CNN", "11.2–14.2 / 10.8 m"),
        ),
        check_multi_cell,
    ),
    "semantic_da": Paper(
        "semantic_da",
        "Semantic multi-task domain adaptation (Chu et al., Tab. II)",
        "specs/semantic-da-mda-hda.md §9.1",
        "On the unlabelled target domain, HDA < MDA < no adaptation (DCNN) in RMSE beyond the "
        "spread over 3 seeds, with link-state (PCP) accuracy >= 0.8 (the paper: around 0.94).",
        (
            ("localization only, no DA (DCNN)", "RMSE 1.057 m"),
            ("localization + knowledge transfer (≈ DANN)", "RMSE 0.989 m"),
            ("MDA", "RMSE 0.830 m, PCP 0.942"),
            ("HDA", "RMSE 0.817 m, PCP 0.936"),
        ),
        check_da,
        "not yet measured on the Fabianinkatu street protocol (issue #33; the cpu command and "
        "its cost are in docs/gpu.md). The former paris ring protocol, whose source had no "
        "blocked link, gave HDA 11.41 < DANN 11.69 < DCNN 12.16 < MDA 12.83 m on one seed and "
        "36 % PCP: superseded.",
    ),
    "metaloc": Paper(
        "metaloc",
        "MetaLoc (Table III, real data, new environment)",
        "specs/metaloc.md",
        "Fast adaptation: error falls with K; MAML-DG ≤ MAML < TL < RI.",
        (
            ("MAML-DG, hall / lab", "2.07 / 3.04 m"),
            ("MAML", "2.11 / 3.10 m"),
            ("MAML-TS", "2.09 / 3.09 m"),
            ("TL", "2.27 / 3.97 m"),
            ("RI", "2.59 / 4.19 m"),
            ("KNN", "2.73 / 3.35 m"),
        ),
        check_metaloc,
        "on environments of the paper's scale (nine 40 m squares, each with its own two 8 m "
        "cells) MAML, TL and RI take the paper's order at K = 8 and 32 (MAML 11.95 / 8.31 m < "
        "TL 13.92 / 10.76 m < RI 21.41 / 21.88 m), but MAML-DG (two environments per meta "
        "step) is the worst pretrained init (24.77 / 22.77 m), RI does not improve from K = 8 "
        "to 32, and kNN on the K samples (6.92 m at K = 32) beats every model there. In each "
        "square's own frame (relative to its cell) the nine squares were one task: every "
        "pretrained init localised the unseen one without adapting (TL 0.95, MAML 1.09, "
        "MAML-DG 1.69 m at every K).",
    ),
    "vinloc": Paper(
        "vinloc",
        "VIn-Loc (Balaji et al., Sionna Paris and IIoT tables)",
        "specs/vinloc.md",
        "ResNet fingerprinting degrades sharply when the set of TRPs varies; VIn-Loc does not. "
        "Checked with both trained the same way (random TRP subsets, the same LR, steps and "
        "first-arrival input) on held-out blocks of the region.",
        (
            ("VIn-Loc, Sionna scenario 1 (12 TRPs)", "RMSE 0.93 m, MAE 0.9 m, P90 1.5 m"),
            ("VIn-Loc, Sionna scenario 2 (64-TRP pool)", "RMSE 7.3 m, MAE 6.1 m, P90 11 m"),
            ("ResNet fp, IIoT fixed → variable", "RMSE 0.81 → 26.8 m"),
            ("VIn-Loc, IIoT fixed → variable", "RMSE 0.99 → 0.95 m"),
        ),
        check_vinloc,
        "VIn-Loc trains at the CPU width (0.32 M parameters, peak-aligned CIR tokens; the "
        "paper's 8.9 M-parameter width was at 24.1 m after 1,000 steps here): it beats ResNet "
        "and kNN fingerprinting with fixed TRPs, and trained on 10-TRP subsets it beats both "
        "under variable TRPs in mean error. What fails is the robustness test: its RMSE grows "
        "1.74x (the check asks < 1.5x; the paper: 0.99 -> 0.95 m) as its tail widens (p90 "
        "1.91 -> 3.30 m), with its training loss still falling at 3,000 steps (0.032, against "
        "0.016 for VIn-Loc on all 12 TRPs).",
    ),
    "snr": Paper(
        "snr",
        "Error vs SNR beside the position error bound (paris_vinloc, 12 TRPs, CIR)",
        "specs/noise-and-peb.md §5, specs/vinloc.md",
        SNR_FINDING,
        SNR_REFERENCE,
        check_snr,
    ),
    "snr_paris": Paper(
        "snr_paris",
        "Error vs SNR beside the position error bound (paris, 4 TRPs, 4x8 arrays, CSI)",
        "specs/noise-and-peb.md §5, specs/mateformer-alloc.md §8",
        SNR_FINDING,
        SNR_REFERENCE,
        check_snr,
    ),
}

# the environment-pool protocols (issue #32), in their own module
from loc.suite.papers_envs import ENV_PAPERS  # noqa: E402 - needs the names above

PAPERS.update(ENV_PAPERS)
