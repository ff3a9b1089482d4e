"""Exact batched tracing on sionna-rt 2.2.0: a collision-tolerant specular-chain de-duplication.

Sionna's deterministic shoot-and-bounce keeps a specular chain only if its thread holds the
minimum thread index in BOTH hash-table slots of its (chain, receiver) key ("Step 2" of
``SBDeterministicCandidateGenerator._shoot_and_bounce``). A *different* key that lands in the
same slot with a lower thread index silently removes the chain, and keys grow with the receivers
in a call, so batching receivers loses paths (``../shared/specs/sionna-dedupe.md``).

:class:`ExactGenerator` changes that one rule: a chain that lost a slot is dropped only when the
winning thread's own entry for the same depth and receiver holds the same slot of that table (a
duplicate in Sionna's sense: a chain is new only if it is new in every hash); a loss to another
receiver's or another chain's key is ignored. It also enlarges the table to
:data:`TABLE_SLOTS` per source. The rare duplicates this admits (a chain whose slots were won by
other keys while a copy of it exists) are removed after the solve by :func:`duplicate_mask`,
as are the paths stock Sionna itself sometimes returns twice (seen with one UE per call).

The subclass copies Sionna's ``_shoot_and_bounce`` with Step 2 replaced, so it is only used when
the installed sionna-rt is :data:`VERIFIED_VERSION` and ``sb_deterministic.py`` is byte-for-byte
the verified source (:data:`VERIFIED_SHA256`); otherwise :func:`path_solver` warns in one line
and returns the stock solver, and callers trace :data:`FALLBACK_BATCH` UE per call.
"""

from __future__ import annotations

import hashlib
import inspect
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import drjit as dr
import mitsuba as mi
import numpy as np
import sionna.rt as rt
from sionna.rt.path_solvers import sb_deterministic as sbd
from sionna.rt.path_solvers.sb_candidate_generator import SBCandidateGenerator

VERIFIED_VERSION = "2.2.0"
# sha256 of the source of sionna/rt/path_solvers/sb_deterministic.py in sionna-rt 2.2.0
VERIFIED_SHA256 = "d53fa5f02667e2aa647b5de2650c4d63f7d077f5a380723a62decbaede7a7ed9"
# Hash-table slots per source (Sionna: max(max_num_paths_per_src, 1e6)); 4e6 costs ~32 MB per
# TRP and makes a same-receiver, same-depth collision in both tables (the residual risk) rare.
TABLE_SLOTS = 4_000_000
# UEs per call when the fix cannot be used: one receiver per call is exact on stock Sionna.
FALLBACK_BATCH = 1
# Two paths of one link are the same path when their interactions, objects and primitives are
# equal and their delays differ by less than this (s).
DUPLICATE_TAU_S = 1e-12


def source_digest() -> str:
    """sha256 (hex) of the installed ``sb_deterministic.py`` source."""
    return hashlib.sha256(inspect.getsource(sbd).encode()).hexdigest()


def unsupported_reason() -> str | None:
    """Why the fix cannot be used with the installed sionna-rt (None when it can)."""
    if rt.__version__ != VERIFIED_VERSION:
        return f"sionna-rt {rt.__version__} is not the verified {VERIFIED_VERSION}"
    if source_digest() != VERIFIED_SHA256:
        return "sionna-rt's sb_deterministic.py differs from the verified source"
    if not hasattr(SBCandidateGenerator, "MIN_SPEC_COUNT_SIZE"):
        return "SBCandidateGenerator.MIN_SPEC_COUNT_SIZE is gone"
    return None


def path_solver(exact: bool = True) -> tuple[rt.PathSolver, bool]:
    """A deterministic ``PathSolver`` and whether it is the exact (batch-invariant) one.

    ``exact=False`` asks for the stock solver (benchmarks, tests). When the fix is asked for but
    the installed sionna-rt is not the verified one, a one-line warning is issued and the stock
    solver is returned (callers should then trace :data:`FALLBACK_BATCH` UE per call).
    """
    solver = rt.PathSolver(deterministic=True)
    if not exact:
        return solver, False
    reason = unsupported_reason()
    if reason is not None:
        warnings.warn(
            f"exact batched tracing disabled ({reason}); tracing {FALLBACK_BATCH} UE per "
            "solver call (batch_ues > 1 may lose paths)",
            RuntimeWarning,
            stacklevel=2,
        )
        return solver, False
    solver._candidate_generator = ExactGenerator()
    return solver, True


def duplicate_mask(
    valid: np.ndarray,
    tau: np.ndarray,
    interactions: np.ndarray,
    objects: np.ndarray,
    primitives: np.ndarray,
) -> np.ndarray:
    """Valid paths that repeat an earlier path of the same link.

    ``valid``, ``tau`` (s): (L, P) for L links; ``interactions``, ``objects``, ``primitives``:
    (L, P, depth). A path is a duplicate when a valid path of the same link with a smaller index
    on the P axis has the same interaction types, objects and primitives at every depth and a
    delay within :data:`DUPLICATE_TAU_S`. Returns bool (L, P), True for the later copies.
    """
    out = np.zeros(valid.shape, dtype=bool)
    link, path = np.nonzero(valid)
    if len(link) < 2:
        return out
    parts = [x[link, path].reshape(len(link), -1) for x in (interactions, objects, primitives)]
    geom = np.concatenate(parts, axis=1).astype(np.int64)
    t = tau[link, path].astype(np.float64)
    # sort by link, geometry, path index: copies of one path become adjacent, first copy first
    order = np.lexsort((path, *geom.T[::-1], link))
    link, path, geom, t = link[order], path[order], geom[order], t[order]
    dup = (link[1:] == link[:-1]) & (geom[1:] == geom[:-1]).all(1)
    dup &= np.abs(t[1:] - t[:-1]) < DUPLICATE_TAU_S
    out[link[1:][dup], path[1:][dup]] = True
    return out
    geom = np.concatenate(
        [
            x[link, path].reshape(len(link), -1).astype(np.int64)
            for x in (interactions, objects, primitives)
        ],
        axis=1,
    )
    t = tau[link, path].astype(np.float64)
    # sort by link, geometry, delay, path index; copies of one path end up adjacent
    order = np.lexsort((path, t, *geom.T[::-1], link))
    link, path, geom, t = link[order], path[order], geom[order], t[order]
    same = (link[1:] == link[:-1]) & (geom[1:] == geom[:-1]).all(1)
    same &= np.abs(t[1:] - t[:-1]) < DUPLICATE_TAU_S
    # in each run of copies keep the smallest path index; mark the rest
    run_start = np.concatenate([[True], ~same])
    first = np.maximum.accumulate(np.where(run_start, np.arange(len(link)), 0))
    keep_path = np.minimum.reduceat(path, np.flatnonzero(run_start))
    dup = path != keep_path[np.cumsum(run_start) - 1]
    del first
    out[link[dup], path[dup]] = True
    return out


class ExactGenerator(sbd.SBDeterministicCandidateGenerator):
    """Sionna's deterministic candidate generator with a collision-tolerant Step 2 and a
    :data:`TABLE_SLOTS`-slot table per source (only for the verified sionna-rt source)."""

    def _shoot_and_bounce(self, *args, **kwargs):
        # Sionna sizes the table from the class attribute of the base class (read while the
        # kernels are traced, inside this call); restore it so stock solvers are unaffected.
        old = SBCandidateGenerator.MIN_SPEC_COUNT_SIZE
        SBCandidateGenerator.MIN_SPEC_COUNT_SIZE = max(old, TABLE_SLOTS)
        try:
            return self._exact_shoot_and_bounce(*args, **kwargs)
        finally:
            SBCandidateGenerator.MIN_SPEC_COUNT_SIZE = old

    # Copied from sionna-rt 2.2.0 SBDeterministicCandidateGenerator._shoot_and_bounce
    # (Apache-2.0, (c) NVIDIA); only Step 2's `did_win` differs (marked).
    def _exact_shoot_and_bounce(
        self,
        mi_scene,
        src_positions,
        tgt_positions,
        paths,
        samples_per_src,
        max_num_paths_per_src,
        max_depth,
        paths_counter_per_source,
        specular_reflection,
        diffuse_reflection,
        refraction,
        diffraction,
        edge_diffraction,
        seed,
        src_boxes=None,
    ):
        loop_args = (
            mi_scene,
            src_positions,
            tgt_positions,
            samples_per_src,
            max_num_paths_per_src,
            max_depth,
            paths,
            paths_counter_per_source,
            specular_reflection,
            diffuse_reflection,
            refraction,
            diffraction,
            edge_diffraction,
        )
        num_sources = dr.width(src_positions)
        num_samples = samples_per_src * num_sources
        num_targets = dr.width(tgt_positions)

        # Step 1: count the paths each thread would generate (unchanged)
        self._sampler.seed(seed, num_samples)
        with dr.scoped_set_flag(dr.JitFlag.OptimizeLoops, False):
            candidate_hashes, min_thread_index_per_hash = self._shoot_and_bounce_loop(
                *loop_args, self._sampler, counting_mode=True, src_boxes=src_boxes
            )

        # Step 2: deterministic ordering. Lanes: (depth, thread, target), target fastest.
        lane = dr.arange(mi.UInt32, max_depth * num_samples * num_targets)
        expected_thread_idx = (lane // mi.UInt32(num_targets)) % mi.UInt32(num_samples)
        assert dr.width(expected_thread_idx) == dr.width(candidate_hashes)
        hash0, hash1 = sbd.extract_hashes_from_u64(candidate_hashes)
        is_non_specular = candidate_hashes == sbd.NON_SPECULAR_PATH_MARKER
        # --- changed: a chain that lost a slot is dropped only if the winning thread's own
        # entry for the same depth and receiver holds the same slot of that table (a chain
        # already kept for this receiver, as Sionna means it: new only if new in every hash);
        # Sionna drops it whenever another thread, of any key or receiver, won either slot.
        is_specular = (candidate_hashes != sbd.NO_PATH_RECORDED_MARKER) & (~is_non_specular)
        same_depth_target = lane - expected_thread_idx * mi.UInt32(num_targets)
        duplicate = dr.zeros(mi.Bool, dr.width(lane))
        for i, (table, slot) in enumerate(
            zip(min_thread_index_per_hash, (hash0, hash1), strict=True)
        ):
            winner = dr.gather(mi.UInt32, table, slot, active=is_specular)
            lost = is_specular & (winner != expected_thread_idx)
            winner_entry = dr.gather(
                mi.UInt64,
                candidate_hashes,
                same_depth_target + winner * mi.UInt32(num_targets),
                active=lost,
            )
            winner_specular = (winner_entry != sbd.NO_PATH_RECORDED_MARKER) & (
                winner_entry != sbd.NON_SPECULAR_PATH_MARKER
            )
            winner_slot = sbd.extract_hashes_from_u64(winner_entry)[i]
            duplicate |= lost & winner_specular & (winner_slot == slot)
        did_win = is_specular & (~duplicate)
        # --- end of change

        output_indicator = mi.UInt32(1) & (is_non_specular | did_win)

        src_block_size = max_depth * samples_per_src * num_targets
        src_major_to_output_i, src_i = sbd.source_major_to_output_indices(
            samples_per_src, num_samples, num_targets, max_depth
        )
        output_indicator_src_major = dr.gather(mi.UInt32, output_indicator, src_major_to_output_i)
        new_paths_count_per_src = dr.block_prefix_sum(
            output_indicator_src_major, block_size=src_block_size, exclusive=True
        )
        prev_paths_per_src = dr.gather(mi.UInt, paths_counter_per_source, src_i)
        output_indicator_src_major &= (
            prev_paths_per_src + new_paths_count_per_src < max_num_paths_per_src
        )
        output_to_src_major_i = sbd.output_to_source_major_indices(
            samples_per_src, num_samples, num_targets, max_depth
        )
        output_indicator = dr.gather(mi.UInt32, output_indicator_src_major, output_to_src_major_i)

        output_offset = dr.prefix_reduce(dr.ReduceOp.Add, output_indicator, exclusive=False)
        num_new_paths = output_offset[-1]
        output_offset = paths.paths_counter + (output_offset - 1)
        is_valid_output = (output_offset < paths.buffer_size) & (output_indicator > 0)
        output_offset = dr.select(is_valid_output, output_offset, mi.UInt32(sbd.UINT32_MAX))

        valid_output_src_major = dr.gather(
            mi.UInt32, mi.UInt32(1) & is_valid_output, src_major_to_output_i
        )
        new_paths_per_src = dr.block_sum(valid_output_src_major, block_size=src_block_size)
        dr.scatter_add(
            paths_counter_per_source, new_paths_per_src, dr.arange(mi.UInt32, num_sources)
        )
        output_offset |= (mi.UInt32(1) & is_non_specular) << 31

        # Step 3: re-compute the paths and output them (unchanged)
        thread_has_output = sbd.compute_thread_has_output(
            output_offset, num_samples, num_targets, max_depth
        )
        with dr.scoped_set_flag(dr.JitFlag.OptimizeLoops, False):
            self._sampler.seed(seed, num_samples)
            self._shoot_and_bounce_loop(
                *loop_args,
                self._sampler,
                output_offset=output_offset,
                thread_has_output=thread_has_output,
                src_boxes=src_boxes,
            )
        paths.advance_paths_counter(
            min(paths.buffer_size - paths.paths_counter, dr.opaque(mi.UInt32, num_new_paths))
        )


@contextmanager
def table_slots(n: int) -> Iterator[None]:
    """Temporarily give Sionna's stock generators ``n`` hash-table slots per source (for
    references: one UE per call with a large table)."""
    old = SBCandidateGenerator.MIN_SPEC_COUNT_SIZE
    SBCandidateGenerator.MIN_SPEC_COUNT_SIZE = int(n)
    try:
        yield
    finally:
        SBCandidateGenerator.MIN_SPEC_COUNT_SIZE = old


@dataclass
class PathSetDiff:
    """How a traced batch differs from a reference trace of the same links."""

    lost: int  # reference paths with no match (same interactions, |delta tau| < 1 ps)
    extra: int  # paths with no match in the reference
    reference_paths: int
    max_db: float  # largest |rx power difference| over links with a path in both (dB)

    @property
    def identical(self) -> bool:
        return self.lost == 0 and self.extra == 0


def compare_paths(ref, other) -> PathSetDiff:
    """Compare two :class:`~simgen.trace.PathBatch` of the same links path by path.

    Paths match when their interaction codes are equal and their delays differ by less than
    :data:`DUPLICATE_TAU_S`; each path matches at most one path of the other batch.
    """
    from .channel import path_gain_db

    lost = extra = 0
    n_ref = int(ref.valid.sum())
    for b, t in zip(*np.nonzero(ref.valid.any(-1) | other.valid.any(-1)), strict=True):
        mine = [
            (ref.tau[b, t, p], ref.interactions[b, t, p].tobytes())
            for p in np.flatnonzero(ref.valid[b, t])
        ]
        theirs = [
            (other.tau[b, t, p], other.interactions[b, t, p].tobytes())
            for p in np.flatnonzero(other.valid[b, t])
        ]
        for tau, code in mine:
            hit = next(
                (
                    i
                    for i, (u, c) in enumerate(theirs)
                    if c == code and abs(float(u) - float(tau)) < DUPLICATE_TAU_S
                ),
                None,
            )
            if hit is None:
                lost += 1
            else:
                theirs.pop(hit)
        extra += len(theirs)
    pr, po = path_gain_db(ref.a), path_gain_db(other.a)
    both = np.isfinite(pr) & np.isfinite(po)
    max_db = float(np.abs(pr - po)[both].max()) if both.any() else 0.0
    return PathSetDiff(lost, extra, n_ref, max_db)
