"""Findings checks of the environment-pool protocols (issue #32). Registered
in ``loc.suite.papers.PAPERS`` (and their controls in ``loc.suite.controls.SUBJECTS``);
``metaloc_envs`` reuses ``check_metaloc`` on its pooled unseen column.

The columns read are the pooled ones that ``loc.suite.envs.add_pooled_columns`` adds: every
model's errors over all environments of one test group (``unseen``, ``seen``, ``layout``).
"""

from __future__ import annotations

from loc.suite.papers import (
    TRAINING_MEAN,
    Paper,
    Verdict,
    _fmt,
    check_metaloc,
    column,
    mean,
    rmse,
    row_named,
)

VINLOC, RESNET, SITE = "vinloc", "resnet_fp", "site_resnet_fp@site"
SEEN_RATIO = 1.5  # VIn-Loc: unseen / seen mean error at most this
FP_RATIO = 3.0  # fingerprinting: unseen / seen mean error at least this


def check_vinloc_envs(result: dict) -> Verdict:
    """Mean 2-D error over the pooled environments of each group, VIn-Loc and ResNet trained
    the same way on the seen environments: VIn-Loc's unseen-environment error is within 1.5x
    of its seen-environment (held-out blocks) error, ResNet's grows >= 3x, VIn-Loc is below
    ResNet and below the training mean on the unseen environments. The unseen-layout column,
    the per-site ResNet (trained on each test environment's own survey), kNN and
    multilateration are listed beside it."""
    unseen, seen = column(result, "envs", "unseen"), column(result, "envs", "seen")
    if unseen is None or seen is None:
        return Verdict(None, "needs the pooled unseen and seen columns")
    vu, vs = mean(result, unseen, VINLOC), mean(result, seen, VINLOC)
    ru, rs = mean(result, unseen, RESNET), mean(result, seen, RESNET)
    tm_row = row_named(result, unseen, TRAINING_MEAN)
    tm = None if tm_row is None else mean(result, unseen, tm_row)
    if None in (vu, vs, ru, rs, tm):
        return Verdict(None, "needs VIn-Loc, ResNet and the training mean in both columns")
    ok = vu <= SEEN_RATIO * vs and ru >= FP_RATIO * rs and vu < ru and vu < tm
    text = (
        f"mean error seen → unseen environments: {VINLOC} {_fmt(vs)} → {_fmt(vu)} "
        f"({vu / vs:.2f}x, needs <= {SEEN_RATIO:g}x); {RESNET} {_fmt(rs)} → {_fmt(ru)} "
        f"({ru / rs:.2f}x, needs >= {FP_RATIO:g}x); training mean on unseen {_fmt(tm)}; "
        f"RMSE unseen {VINLOC} {_fmt(rmse(result, unseen, VINLOC))}, "
        f"{RESNET} {_fmt(rmse(result, unseen, RESNET))}"
    )
    layout = column(result, "envs", "layout")
    if layout is not None:
        parts = [
            f"{m} {_fmt(mean(result, layout, m))}"
            for m in (VINLOC, RESNET)
            if mean(result, layout, m) is not None
        ]
        text += "; unseen TRP layout of a seen environment: " + ", ".join(parts)
    others = [
        f"{m} {_fmt(mean(result, unseen, m))}"
        for m in (SITE, "knn_fp", "multilat")
        if mean(result, unseen, m) is not None
    ]
    if others:
        text += "; on unseen environments with their own survey / no training: " + ", ".join(others)
    return Verdict(ok, text + ".")


ENV_PAPERS = {
    "metaloc_envs": Paper(
        "metaloc_envs",
        "MetaLoc across environments (a pool's unseen cities, the meta-training inner loop)",
        "specs/metaloc.md, issue #32",
        "Fast adaptation on an unseen environment: error falls with K; MAML-DG ≤ MAML < TL < "
        "RI (read on the pooled unseen column, every model adapting with the meta-training "
        "inner loop).",
        (
            ("MAML-DG, hall / lab", "2.07 / 3.04 m"),
            ("MAML", "2.11 / 3.10 m"),
            ("TL", "2.27 / 3.97 m"),
            ("RI", "2.59 / 4.19 m"),
        ),
        check_metaloc,
    ),
    "vinloc_envs": Paper(
        "vinloc_envs",
        "VIn-Loc across environments (a pool of cities and TRP layouts)",
        "specs/vinloc.md, issue #32",
        "Trained on many environments, VIn-Loc localises in unseen ones within 1.5x of its "
        "seen-environment error while ResNet fingerprinting, trained the same way, degrades "
        ">= 3x; VIn-Loc is below ResNet (and the training mean) on unseen environments.",
        (
            ("VIn-Loc, Sionna scenario 1 (12 TRPs)", "RMSE 0.93 m, MAE 0.9 m, P90 1.5 m"),
            ("ResNet fp, IIoT fixed → variable TRPs", "RMSE 0.81 → 26.8 m"),
            ("VIn-Loc, IIoT fixed → variable TRPs", "RMSE 0.99 → 0.95 m"),
        ),
        check_vinloc_envs,
    ),
}
