"""The "fingerprint each site" row of the environment protocols (``vinloc_envs``): ResNet
fingerprinting trained, for every test column, on that column's own labelled database (the
site survey of the test environment, the head of its sample order, disjoint from its test
positions) with the recipe of the pooled ``resnet_fp`` row (its ``model_kwargs``, steps, batch,
LR, recipe, seed). On an unseen environment this row reads labels of that environment that the
pooled models never see: it is what fingerprinting costs a new site (a survey), not a
generalisation result, and the tables say so.

Suite name: ``site_resnet_fp`` (with a variant tag, e.g. ``site_resnet_fp@site``, so the
recipe comparison of ``loc.suite.recipes`` does not pair it with the pooled models).
"""

from __future__ import annotations

import numpy as np

from loc.errors import DataError

SITE = ("site_resnet_fp",)
SITE_MODEL = "resnet_fp"  # the network each site fits


def run_site(name, proto, train_sets, tests, device, run_dir, masks=None):
    from loc.evaluate import predict
    from loc.fit.supervised import TrainSet, train
    from loc.suite.recipes import train_config
    from loc.suite.runners import Fitted

    steps = proto.steps
    preds, extra, training = {}, {}, {}
    for tname, (st, db, te) in tests.items():
        if len(db) < proto.batch_size:
            raise DataError(
                f"{name}: {tname}'s database ({len(db)}) is smaller than a batch "
                f"({proto.batch_size})"
            )
        cfg = train_config(proto, name, SITE_MODEL, steps, device)
        site = TrainSet(st, np.asarray(db), meta={"suite": proto.name, "site": tname})
        res = train(cfg, [site], out_dir=run_dir / tname.replace("/", "_"), resume=True)
        mask = (masks or {}).get(tname)
        preds[tname] = predict(res.model, st, te, device=device, present=mask)
        extra[tname] = {"site_survey_samples": int(len(db))}
        hist = res.history
        training[tname] = {
            "final_loss": hist[-1]["loss"] if hist else None,
            "checkpoint": str(res.checkpoint),
            "steps": steps,
        }
    return Fitted(preds, extra, training)
