"""Controls that must fail (benchmark-fairness rules §1.1): every finding check of
``loc.suite.papers`` rerun with each CSI-free estimator in the model's place; and the prior
each model is handed (§1.2, ``priors_of``: the tables print the model's error over it).

A control is a row of the run that reads no CSI:

- ``training mean``: the mean training location (every column);
- ``x′``: the coarse location x + U[-l, l]^2 the set models are given (where a set model is
  compared, ``coarse location (l = ... m)``);
- ``neighbour centroid``: the centroid of the k database samples nearest x′ (Mateformer's
  x_init, ``x_init (centroid of k neighbours)``);
- ``kNN on positions``: the mean position of the 5 database samples nearest x′
  (``kNN (k=5) on positions``, ``loc.suite.run.position_knn``). A CSI-free estimator cannot see
  the test position itself, so "kNN on positions" is the kNN regressor of the database fed the
  position the model is given, x′ (k = 5 as the fingerprinting kNN; x_init is the same with
  the model's k);
- ``mean of K`` (MetaLoc only): the mean of the K labelled target samples every init adapts on.

The x′-based controls stand in only for a model that is given x′ (a model without a location
prior is not judged against one), so each check names its subjects (the models a control
replaces) and whether they are given x′ (``SUBJECTS``).

``check_with_controls(paper, result)`` reruns ``paper.check`` on a copy of ``result`` in which
every subject's row, in every column, is the control's row. A finding holds only if its check
passes and no control passes it: a check a control passes measures the prior, not the model.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

from loc.suite.papers import (
    NO_PRIOR,
    POSITION_KNN,
    SET_MODEL,
    TRAINING_MEAN,
    XINIT,
    XPRIME,
    Paper,
    Verdict,
    models_of,
    row_named,
)

MEAN_OF_K = "mean of K"
# row prefix -> (short name on the page, given only to a model that is given x′)
CONTROLS = {
    TRAINING_MEAN: ("training mean", False),
    XPRIME: ("x′", True),
    XINIT: ("neighbour centroid", True),
    POSITION_KNN: ("kNN on positions", True),
    MEAN_OF_K: (MEAN_OF_K, False),
}


def _vinloc(result: dict) -> list[str]:
    return ["vinloc@variable" if "vinloc@variable" in models_of(result) else "vinloc"]


def _no_prior_models(result: dict) -> list[str]:
    return [m for m in models_of(result) if m.split("@")[0] in NO_PRIOR]


@dataclasses.dataclass(frozen=True)
class Subjects:
    """The models a control replaces in one check (all at once), and whether they are given
    x′ (then the x′-based controls apply too)."""

    models: Callable[[dict], list[str]]
    given_xprime: bool


SUBJECTS = {
    # ALLoc: the finding is about Mateformer; the other models are what it is compared with
    "single_scenario": Subjects(lambda r: [SET_MODEL], True),
    "cross_scenario": Subjects(lambda r: [SET_MODEL], True),
    "multi_cell": Subjects(lambda r: [SET_MODEL], True),
    # HDA < MDA < DCNN: the claimed winner (replacing MDA too would fail on the tie)
    "semantic_da": Subjects(lambda r: ["hda"], False),
    # MAML-DG <= MAML < TL < RI: the meta-learned inits against transfer and random init
    "metaloc": Subjects(lambda r: ["maml", "maml_dg"], False),
    # VIn-Loc (trained on subsets where run) against ResNet and kNN fingerprinting
    "vinloc": Subjects(_vinloc, False),
    # VIn-Loc across environments: the model whose generalisation is claimed
    "vinloc_envs": Subjects(lambda r: ["vinloc"], False),
    "metaloc_envs": Subjects(lambda r: ["maml", "maml_dg"], False),
    # "a learned model beats multilateration and kNN": every learned model without a prior
    "snr": Subjects(_no_prior_models, False),
    "snr_paris": Subjects(_no_prior_models, False),
}


@dataclasses.dataclass(frozen=True)
class Finding:
    """A check's verdict on the run and on each control. ``holds``: the check passes and no
    control does (None: not measured); ``controls``: short name -> the control passes
    (None: not measured there)."""

    holds: bool | None
    text: str
    check: Verdict
    controls: dict[str, bool | None]

    @property
    def passing(self) -> list[str]:
        return [c for c, ok in self.controls.items() if ok]

    def status(self) -> str:
        """'holds' / 'does not hold' / 'does not hold (a control passes: x′)' / 'not
        measured'."""
        if self.passing:
            return f"does not hold (a control passes: {', '.join(self.passing)})"
        return {True: "holds", False: "does not hold", None: "not measured"}[self.holds]

    def controls_cell(self) -> str:
        """The summary table's "controls" cell: 'all 4 fail', 'fails' (one control), '**x′
        passes**', 'not measured', '–' (no controls)."""
        if not self.controls:
            return "–"
        if self.passing:
            return f"**{', '.join(self.passing)} pass{'es' if len(self.passing) == 1 else ''}**"
        failed = [c for c, ok in self.controls.items() if ok is False]
        if not failed:
            return "not measured"
        if len(failed) == len(self.controls):
            return "fails" if len(failed) == 1 else f"all {len(failed)} fail"
        unmeasured = [c for c, ok in self.controls.items() if ok is None]
        return f"{', '.join(failed)} fail; {', '.join(unmeasured)} not measured"


def controls_of(result: dict, protocol: str) -> dict[str, str]:
    """Short name -> control name (a row prefix, or ``MEAN_OF_K``) of the controls that apply
    to ``protocol``'s check on ``result``: those with a row in some column (``mean of K``:
    where a model has adaptation baselines), the x′-based ones only for subjects given x′."""
    subj = SUBJECTS.get(protocol)
    if subj is None:
        return {}
    out = {}
    for prefix, (short, needs_xprime) in CONTROLS.items():
        if needs_xprime and not subj.given_xprime:
            continue
        for label, col in result["results"].items():
            if prefix == MEAN_OF_K:
                found = any(MEAN_OF_K in r.get("adaptation_baselines", {}) for r in col.values())
            else:
                found = row_named(result, label, prefix) is not None
            if found:
                out[short] = prefix
                break
    return out


def _control_entry(result: dict, label: str, control: str, subject: dict) -> dict | None:
    """The row that replaces ``subject`` (a model's entry) in column ``label``: the control's
    row, with a constant adaptation curve (or the ``mean of K`` curve) where the subject has
    one; None when the control is not defined in that column."""
    col = result["results"][label]
    if control == MEAN_OF_K:
        curve = (subject.get("adaptation_baselines") or {}).get(MEAN_OF_K)
        if not curve:
            return None
        last = curve[max(curve, key=int)]
        return {"overall": {"n": subject["overall"].get("n", 1), **last},
                "adaptation_curve": copy.deepcopy(curve)}  # fmt: skip
    name = row_named(result, label, control)
    if name is None:
        return None
    entry = copy.deepcopy(col[name])
    if "adaptation_curve" in subject:
        entry["adaptation_curve"] = {k: dict(entry["overall"]) for k in subject["adaptation_curve"]}
    return entry


def substitute(result: dict, control: str, subjects: list[str]) -> dict:
    """A copy of ``result`` in which every subject's row, in every column where it ran, is
    ``control``'s row (removed where the control is not defined: the check then reads it as
    not run)."""
    out = copy.deepcopy(result)
    for label, col in out["results"].items():
        for s in subjects:
            if s in col:
                entry = _control_entry(result, label, control, result["results"][label][s])
                if entry is None:
                    del col[s]
                else:
                    col[s] = entry
    return out


def check_with_controls(paper: Paper, result: dict) -> Finding:
    """``paper.check`` on ``result`` and on ``result`` with each control in the subjects'
    place (``SUBJECTS``). The finding holds only if the check passes and every control fails
    (a control whose check is not measured does not count either way)."""
    v = paper.check(result)
    subj = SUBJECTS.get(paper.protocol)
    controls: dict[str, bool | None] = {}
    texts = []
    present = set(models_of(result))
    subjects = [m for m in subj.models(result) if m in present] if subj is not None else []
    who = ", ".join(subjects)
    if subjects:  # (no subject ran: nothing to replace, the check itself says not measured)
        for short, prefix in controls_of(result, paper.protocol).items():
            cv = paper.check(substitute(result, prefix, subjects))
            controls[short] = cv.holds
            mark = {True: "passes", False: "fails", None: "not measured"}[cv.holds]
            texts.append(f"{short} {mark}")
    holds = v.holds
    if holds and any(controls.values()):
        holds = False
    text = v.text
    if texts:
        text += f" Controls (CSI-free, in {who}'s place): " + "; ".join(texts) + "."
    return Finding(holds, text, v, controls)


# ----------------------------------------------------------------------------- priors (§1.2)

# models handed a first-arrival index and level per TRP (``loc.models.vinloc.aligned_taps``):
# judged against first-arrival ToA multilateration, the estimator of that prior alone
FIRST_ARRIVAL_MODELS = ("vinloc", "vinloc_nopos")
FIRST_ARRIVAL_PRIOR = "multilat"


def priors_of(result: dict) -> dict[str, str]:
    """Model -> the row of the prior it is handed (rules §1.2): x′ (the coarse-location row)
    for every set model (``result["priors"]``, written by the run; derived from the model
    kinds for a result from before), first-arrival multilateration for VIn-Loc."""
    models = models_of(result)
    out = dict(result.get("priors") or {})
    if "priors" not in result:
        from loc.models import MODELS
        from loc.suite.runners import base_model

        xprime = next(
            (n for lab in result["results"] if (n := row_named(result, lab, XPRIME))), None
        )
        for m in models:
            b = base_model(m)
            if xprime and b in MODELS and MODELS[b][0].kind == "set":
                out[m] = xprime
    if FIRST_ARRIVAL_PRIOR in models:
        for m in models:
            if m.split("@")[0] in FIRST_ARRIVAL_MODELS:
                out[m] = FIRST_ARRIVAL_PRIOR
    return out
