"""``simgen validate``: check a store against the dataset contract of :mod:`simgen.schema`.

Every problem becomes one line (a *finding*); an empty list means the store is clean. Checks:

- layout: root attributes, schema version, one group per condition, ``shard_done`` complete;
- contract: every variable present with the dims, dtype, fill value, chunking and units of
  :mod:`simgen.schema`, no arrays outside the contract, consolidated metadata up to date;
- values, shard by shard (memory stays bounded by one shard): CSI finite, ToA / rx power NaN
  exactly for ``NO_PATH`` links, link state in the enum and consistent with ``num_paths``,
  ToA >= LoS distance / c (float32 tolerance), LoS distance = |UE - TRP|, UE and TRP positions
  inside the scene bounds (``scene_bbox_m``) and UEs inside the configured regions, path arrays
  consistent with ``num_paths``, labels and geometry identical in every condition;
- missing regions: shards not marked done, and any array of a written shard that holds only
  fill values where the labels say it cannot (a deleted chunk reads as the fill value);
- unreadable chunks (truncated, corrupt): every chunk of every array is read; a chunk that does
  not decode is a finding naming the array and samples, never a traceback;
- NaN / Inf in every variable (``ue_velocity`` and ``time`` included; NaN only where the contract
  allows it), ``ue_velocity`` speed and ``time`` = snapshot x dt_s against the config;
- physics, on up to ``PHYSICS_SAMPLES`` samples per shard when paths are stored and complete
  (``num_paths <= max_paths``): CSI and CIR recomputed from ``path_a`` / ``path_tau``, rx_power
  from ``path_a`` (:func:`simgen.channel.path_gain_db`), ToA = first stored delay; on every link,
  a path without interactions (line of sight) has the LoS delay;
- receiver block (:mod:`simgen.receiver`), when a group has it: ``noise_power_dbm`` = k T B F
  with B = K x Δf of the ``subcarrier`` coordinate and NF, T from its attributes, and on every
  link ``snr_db`` = trp_tx_power + 10 log10(mean |csi|^2) - noise_power_dbm (0.01 dB); a store
  made before the block passes, with a note that the receiver defaults apply;
- checksums: when a ``MANIFEST.sha256`` (written by ``simgen publish``) lies beside the store,
  every file it lists is hashed and compared, and store files it does not list are reported.

Where: ``common`` (findings, tallies, the checker's state and chunk reads), ``contract``
(layout, metadata, per-array contract, TRP coordinates), ``values`` (per-shard labels, NaN /
Inf, geometry, missing chunks, shared labels), ``physics`` (recomputed CSI / CIR / power / ToA,
motion, receiver block), ``manifest`` (checksums). ``_Checker`` below runs them in order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import zarr
import zarr.storage

from ...errors import StoreError
from ...schema import SCHEMA_VERSION
from ...store import Layout, open_root
from .common import REQUIRED_ROOT_ATTRS, Findings
from .contract import ContractChecks, known_arrays
from .manifest import (
    MANIFEST,
    _find_manifest,
    read_manifest,
    sha256_file,
    verify_manifest,
    write_manifest,
)
from .physics import PhysicsChecks
from .values import ValueChecks

__all__ = [
    "MANIFEST",
    "Findings",
    "check",
    "known_arrays",
    "read_manifest",
    "sha256_file",
    "summary",
    "validate",
    "verify_manifest",
    "write_manifest",
]


def validate(path: str | Path, manifest: str | Path | None = None) -> list[str]:
    """Findings for the store at ``path`` (directory or zipped), one line each; [] if clean."""
    return check(path, manifest).lines


def check(
    path: str | Path,
    manifest: str | Path | None = None,
    progress: Callable[[int], Callable[[int], None]] | None = None,
) -> Findings:
    """Like :func:`validate` but also returns what was checked. ``progress(total)``, if given,
    is called once with the number of shard reads (finished shards x condition groups) and
    returns ``advance(n)``, called as each shard of each group is checked."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: no such store")
    out = Findings()
    man = Path(manifest) if manifest is not None else _find_manifest(path)
    if man is not None:
        out.manifest = man
        if not man.is_file():
            raise StoreError(f"{man}: no such manifest")
        for line in verify_manifest(man, out, store=path):
            out.add(line)
    try:
        root = open_root(path)
        attrs = dict(root.attrs)
    except Exception as exc:  # noqa: BLE001 - zarr raises many kinds on corrupt metadata
        out.add(f"store: not a readable Zarr v3 group ({type(exc).__name__})")
        return out
    if attrs.get("pool") is True:  # an environment pool: each environment is a store
        from ..pool import check_pool

        check_pool(path, attrs, out, progress)
        return out
    missing = [k for k in REQUIRED_ROOT_ATTRS if k not in attrs]
    if missing:
        out.add(f"root attrs: missing {', '.join(missing)}")
    if attrs.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        out.add(f"root attrs: schema_version {attrs['schema_version']!r} is not {SCHEMA_VERSION!r}")
    try:
        layout = Layout(**attrs["layout"])
    except Exception:  # noqa: BLE001
        out.add("root attrs: layout is missing or malformed; cannot check arrays")
        return out
    try:
        _Checker(root, attrs, layout, out, progress).run()
    finally:
        if isinstance(root.store, zarr.storage.ZipStore):
            root.store.close()
    return out


class _Checker(ContractChecks, ValueChecks, PhysicsChecks):
    """Every check of one store, in order; the state and reads are ``common.CheckerBase``'s."""

    def run(self) -> None:
        self.check_shards()
        self.check_consolidated()
        groups = set(self.root.group_keys())
        for cond in self.conditions:
            if cond not in groups:
                self.add(f"{cond}: condition group is missing")
        for extra in sorted(groups - set(self.conditions)):
            self.add(f"{extra}: group is not listed in the conditions attribute")
        present = [c for c in self.conditions if c in groups]
        self.advance = self.start_progress(len(present) * int(self.done.sum()))
        for cond in present:
            ok = self.check_contract(cond)
            self.check_static(cond)
            self.check_values(cond, ok)
            if cond == present[0]:
                self.check_motion(cond, ok)
        self.check_shared(present)


def summary(path: str | Path, result: Findings) -> str:
    """One line for a clean store."""
    root = open_root(Path(path))
    if root.attrs.get("pool") is True:
        from ..pool import pool_summary_line

        return pool_summary_line(Path(path), dict(root.attrs), result)
    lay = Layout(**root.attrs["layout"])
    conds = list(root.attrs.get("conditions", []))
    if isinstance(root.store, zarr.storage.ZipStore):
        root.store.close()
    text = (
        f"ok: {path}: {len(conds)} condition{'s' if len(conds) != 1 else ''} "
        f"({', '.join(conds)}), {lay.sample} samples x {lay.trp} TRPs, "
        f"{len(lay.shards)}/{len(lay.shards)} shards, {result.arrays_checked} arrays and "
        f"{result.values_checked:,} values checked"
    )
    if result.manifest is not None:
        text += f", {result.files_verified} files match {result.manifest.name}"
    else:
        text += ", no manifest"
    return text
