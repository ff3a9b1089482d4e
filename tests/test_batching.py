"""Batched tracing gives exactly the paths of one UE per call (simgen.dedupe), on etoile where
Sionna RT 2.2.0's stock de-duplication loses paths when receivers share a call."""

from __future__ import annotations

import warnings

import numpy as np
import zarr
from simgen_testutil import OPEN_SCENE, write_config

from simgen import dedupe
from simgen.config import AUTO_BATCH_CPU, AUTO_BATCH_GPU
from simgen.render import Renderer, plan
from simgen.trace import Tracer, concat


def trace_in(tracer: Tracer, pos: np.ndarray, size: int):
    out = concat([tracer.trace(pos[a : a + size]) for a in range(0, len(pos), size)])
    tracer.clear()  # tracers share the scene: one set of receivers at a time
    return out


def test_batched_tracing_matches_one_ue_per_call_on_etoile(tmp_path):
    # The paris TRPs and 200 UEs; 1e4 rays per TRP (not 1e5) keep 200 solver calls short.
    cfg = write_config(
        tmp_path, "paris.yaml", ue__sampling={"count": 200}, solver__samples_per_src=10000
    )
    r = Renderer(plan(cfg), "cpu")
    assert r.tracer.exact and r.batch_ues == AUTO_BATCH_CPU
    pos = r.ue_position
    stock = Tracer(r.ctx.scene, r.plan.cfg.solver, exact=False)
    with dedupe.table_slots(2**22):  # reference: one UE per call, a large table
        ref = trace_in(stock, pos, 1)
    assert ref.valid.sum() > 2000
    # stock Sionna at the same batch size loses paths here: the test can see the bug
    assert dedupe.compare_paths(ref, trace_in(stock, pos, r.batch_ues)).lost > 0
    for size in (r.batch_ues, len(pos)):
        diff = dedupe.compare_paths(ref, trace_in(r.tracer, pos, size))
        assert diff.identical, (size, diff)
        assert diff.max_db < 1e-4, (size, diff)


def test_duplicate_mask_keeps_the_first_copy():
    valid = np.array([[True, True, True, True, False]])
    tau = np.array([[1e-7, 1e-7 + 1e-13, 1e-7 + 1e-13, 2e-7, 1e-7]])
    inter = np.array([[[1, 0], [1, 0], [4, 0], [1, 0], [1, 0]]])
    objects = np.array([[[7, 0], [7, 0], [7, 0], [7, 0], [7, 0]]])
    prims = np.array([[[3, 0], [3, 0], [3, 0], [3, 0], [3, 0]]])
    dup = dedupe.duplicate_mask(valid, tau, inter, objects, prims)
    # path 1 repeats path 0; path 2 differs in type, path 3 in delay, path 4 is invalid
    np.testing.assert_array_equal(dup, [[False, True, False, False, False]])
    prims[0, 1, 0] = 4  # another primitive: another path
    assert not dedupe.duplicate_mask(valid, tau, inter, objects, prims).any()


def test_sionna_duplicate_path_is_removed(tmp_path):
    """At this UE Sionna returns one refraction-refraction-reflection path twice (same objects,
    primitives and delay) even with one UE per call; the tracer keeps one copy."""
    cfg = write_config(tmp_path, "paris.yaml", ue__sampling={"count": 1})
    r = Renderer(plan(cfg), "cpu")
    pos = np.array([[-164.71975708007812, -114.4732666015625, 1.5]], np.float32)
    pb = r.tracer.trace(pos)
    assert r.tracer.duplicates_removed >= 1
    # no two kept paths of a link share interactions and delay
    for t in range(pb.valid.shape[1]):
        keys = [(pb.interactions[0, t, p].tobytes(), float(pb.tau[0, t, p]))
                for p in np.flatnonzero(pb.valid[0, t])]  # fmt: skip
        assert len(keys) == len(set(keys))


def test_unverified_sionna_falls_back_to_one_ue_per_call(tmp_path, monkeypatch):
    assert dedupe.unsupported_reason() is None  # the pinned sionna-rt is the verified one
    assert AUTO_BATCH_GPU <= AUTO_BATCH_CPU
    monkeypatch.setattr(dedupe, "VERIFIED_SHA256", "0" * 64)
    cfg = write_config(tmp_path, OPEN_SCENE, solver__batch_ues="auto")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = Renderer(plan(cfg), "cpu")
    assert not r.tracer.exact and r.batch_ues == dedupe.FALLBACK_BATCH == 1
    (w,) = [w for w in caught if "exact batched tracing disabled" in str(w.message)]
    assert "\n" not in str(w.message)


def test_store_counts_duplicate_paths(tmp_path):
    cfg = write_config(tmp_path, OPEN_SCENE)
    r = Renderer(plan(cfg), "cpu")
    r.render(r.open_store(overwrite=True))
    attrs = zarr.open_group(str(r.plan.out), mode="r").attrs
    assert attrs["exact_batching"] is True
    assert attrs["duplicate_paths_removed"] == r.tracer.duplicates_removed
