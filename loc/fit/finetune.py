"""Fine-tuning (transfer learning, spec §6.2): every parameter of a trained model updated on
n samples of a new scenario, for a curve over n."""

from __future__ import annotations

import dataclasses

from loc.evaluate import evaluate
from loc.fit.supervised import TrainSet, train


def transfer_curve(cfg, checkpoint, test, device, run_dir, sizes, steps) -> dict:
    """Transfer-learning curve of a model trained by the shared loop: for each n in ``sizes``,
    fine-tune every parameter from ``checkpoint`` on the first n database samples of the test
    scenario (constant LR, ``steps`` steps) and evaluate on its test samples with that
    scenario's database. Returns {n: {"mean", "median"}} (m); sizes above the database are
    skipped. Fine-tuned checkpoints go to ``run_dir/finetune_<n>``."""
    st, db, te = test
    curve = {}
    for n in sorted(sizes):
        if n > len(db):
            continue
        ft = dataclasses.replace(
            cfg,
            steps=steps,
            batch_size=min(cfg.batch_size, n),
            n_neighbours=min(cfg.n_neighbours, n - 1),
            schedule="constant",
            init_from=str(checkpoint),
            log_every=max(1, min(1000, steps // 5)),
            ckpt_every=steps,
        )
        res = train(
            ft, [TrainSet(st, db[:n], meta={"finetune": n})], run_dir / f"finetune_{n}", resume=True
        )
        report, _ = evaluate(res.model, st, te, db, k=cfg.n_neighbours, device=device)
        curve[n] = {"mean": report["overall"]["mean"], "median": report["overall"]["median"]}
    return curve
