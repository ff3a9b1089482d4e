"""``simgen info`` and ``simgen validate`` of an environment pool (:mod:`simgen.pool_render`):
the pool's root lists its environments; each environment is a complete single-scene store in
the folder ``<pool>/<name>``, summarised and checked by the single-store code."""

from __future__ import annotations

from pathlib import Path

import zarr
import zarr.storage

from ..errors import StoreError
from ..schema import LinkState
from ..store import Layout, open_root

ENV_KEYS = ("name", "kind", "source", "split", "config_hash")


def pool_root_attrs(path: str | Path) -> dict | None:
    """The root attributes of a pool store; None for anything else (a single store, a missing
    or unreadable path: the single-store code reports those)."""
    try:
        root = open_root(path)
        attrs = dict(root.attrs)
    except Exception:  # noqa: BLE001 - zarr raises many kinds on corrupt metadata
        return None
    if isinstance(root.store, zarr.storage.ZipStore):
        root.store.close()
    return attrs if attrs.get("pool") is True else None


def environments(attrs: dict) -> list[dict]:
    """The pool's environment entries (name, kind, source, split, config_hash), in order."""
    envs = attrs.get("environments")
    if not isinstance(envs, list):
        return []
    return [e for e in envs if isinstance(e, dict) and isinstance(e.get("name"), str)]


def env_dir(path: str | Path, name: str) -> Path:
    """The folder of environment ``name`` of the pool at ``path`` (a directory pool only)."""
    path = Path(path)
    if not path.is_dir():
        raise StoreError(f"{path}: a zipped pool is read whole; unzip it to read environments")
    return path / name


def env_stats(path: Path) -> dict:
    """Sizes, completeness and the link-state mix (first condition) of one environment."""
    root = open_root(path)
    attrs = dict(root.attrs)
    lay = Layout(**attrs["layout"])
    conds = list(attrs["conditions"])
    state = root[conds[0]]["link_state"][:]
    return {
        "samples": lay.sample,
        "trps": lay.trp,
        "shards_done": int(root["shard_done"][:].sum()),
        "shards": len(lay.shards),
        "conditions": conds,
        "mix": {s.name: int((state == s).sum()) for s in LinkState},
        "attrs": attrs,
    }


def summarize_pool(path: str | Path, attrs: dict) -> str:
    """``simgen info`` of a pool: the split, then one row per environment (kind, split, sizes,
    shards done, link-state mix in % of its links in the first condition)."""
    envs = environments(attrs)
    split = attrs.get("split", {})
    unseen = [e["name"] for e in envs if e.get("split") == "unseen"]
    how = (
        "named in the config"
        if split.get("explicit")
        else f"seed {split.get('seed')}, unseen_fraction {split.get('unseen_fraction')}"
    )
    lines = [
        f"pool       {path}  ({attrs.get('pool_name')}: {len(envs)} environments, "
        f"{len(envs) - len(unseen)} seen / {len(unseen)} unseen)",
        f"split      {how}; unseen: {', '.join(unseen) or 'none'}",
    ]
    head = f"{'environment':<24s}{'kind':<12s}{'split':<8s}{'samples x TRPs':>16s}{'shards':>10s}"
    head += "  " + " ".join(f"{s.name + ' %':>9s}" for s in LinkState)
    rows, done_envs, first = [head], 0, None
    for e in envs:
        name = e["name"]
        try:
            st = env_stats(env_dir(path, name))
        except Exception:  # noqa: BLE001 - not rendered yet, or unreadable
            rows.append(
                f"{name:<24s}{e.get('kind', '?'):<12s}{e.get('split', '?'):<8s}  (not rendered)"
            )
            continue
        first = first or st
        done_envs += st["shards_done"] == st["shards"]
        total = max(sum(st["mix"].values()), 1)
        size = f"{st['samples']} x {st['trps']}"
        shards = f"{st['shards_done']}/{st['shards']}"
        rows.append(
            f"{name:<24s}{e.get('kind', '?'):<12s}{e.get('split', '?'):<8s}{size:>16s}{shards:>10s}"
            "  " + " ".join(f"{100 * st['mix'][s.name] / total:>9.1f}" for s in LinkState)
        )
    lines.append(
        f"complete   {done_envs}/{len(envs)} environments"
        + ("" if done_envs == len(envs) else "  (incomplete: re-run render to finish)")
    )
    if first is not None:
        a = first["attrs"]
        lines.append(
            f"radio      carrier {a['carrier_frequency_hz'] / 1e9:g} GHz, "
            f"{a['num_subcarriers']} subcarriers x {a['subcarrier_spacing_hz'] / 1e3:g} kHz; "
            f"conditions {', '.join(first['conditions'])} (link states: the first)"
        )
    lines += rows
    lines += [f"  {e['name']}: {e.get('source', '')}" for e in envs]
    example = Path(path) / (envs[0]["name"] if envs else "<env>")
    lines.append(f"one environment in detail: simgen info {example}")
    return "\n".join(lines)


def check_pool(path: Path, attrs: dict, out, progress=None) -> None:
    """Findings of a pool (added to ``out``, a ``validate.Findings``): the root's environment
    list and split, then every environment's own check (its findings prefixed with its name)."""
    from .validate import check  # noqa: PLC0415 - validate imports this module

    envs = environments(attrs)
    if not envs:
        out.add("root attrs: environments is missing or empty")
        return
    for e in envs:
        missing = [k for k in ENV_KEYS if k not in e]
        if missing:
            out.add(f"root attrs: environment {e['name']}: missing {', '.join(missing)}")
        if e.get("split") not in ("seen", "unseen"):
            out.add(
                f"root attrs: environment {e['name']}: split {e.get('split')!r} is not seen/unseen"
            )
    split = attrs.get("split")
    if not isinstance(split, dict):
        out.add("root attrs: split is missing")
    else:
        for side in ("seen", "unseen"):
            listed = [e["name"] for e in envs if e.get("split") == side]
            if sorted(split.get(side, [])) != sorted(listed):
                out.add(f"root attrs: split.{side} does not match the environments' split")
        if not split.get("seen"):
            out.add("root attrs: split leaves no seen environment")
    if not path.is_dir():
        out.add("store: a zipped pool cannot be checked per environment (unzip it)")
        return
    _check_consolidated(path, attrs, out)
    # sub-folders holding a zarr.json (listed from disk: a corrupt one is the environment's
    # own finding, not a traceback here)
    groups = {p.name for p in path.iterdir() if (p / "zarr.json").is_file()}
    names = [e["name"] for e in envs]
    for extra in sorted(groups - set(names)):
        out.add(f"{extra}: group is not listed in the environments attribute")
    for e in envs:
        name = e["name"]
        if name not in groups:
            out.add(f"{name}: environment group is missing")
            continue
        sub = check(path / name, manifest=None, progress=progress)
        out.lines += [f"{name}/{line}" for line in sub.lines]
        out.notes += [f"{name}: {line}" for line in sub.notes]
        out.arrays_checked += sub.arrays_checked
        out.values_checked += sub.values_checked
        try:
            got = open_root(path / name).attrs.get("config_hash")
        except Exception:  # noqa: BLE001 - reported by the environment's own check
            continue
        if got != e.get("config_hash"):
            out.add(f"{name}: config_hash differs from the pool's environment list")


def _check_consolidated(path: Path, attrs: dict, out) -> None:
    """The pool root's consolidated metadata (what xarray reads) matches every node's own."""
    store = zarr.storage.LocalStore(path, read_only=True)
    try:
        meta = zarr.open_group(store=store, mode="r", use_consolidated=None).metadata
    except Exception:  # noqa: BLE001 - unreadable root: reported by the caller
        return
    cons = meta.consolidated_metadata
    if cons is None:
        if attrs.get("complete") is True:
            out.add(
                "consolidated metadata: missing at the pool root (readers fall back to listing)"
            )
        return
    for full, m in cons.flattened_metadata.items():
        if getattr(m, "node_type", None) != "array":
            continue
        try:
            actual = zarr.open_array(store=store, path=full, mode="r").metadata
        except Exception:  # noqa: BLE001 - missing or unreadable
            out.add(f"consolidated metadata: lists {full}, which does not exist (pool root)")
            continue
        if m.to_dict() != actual.to_dict():
            out.add(f"consolidated metadata: stale entry for {full} (pool root)")


def pool_summary_line(path: Path, attrs: dict, result) -> str:
    """One line for a clean pool."""
    envs = environments(attrs)
    samples = 0
    for e in envs:
        try:
            samples += Layout(**open_root(path / e["name"]).attrs["layout"]).sample
        except Exception:  # noqa: BLE001
            pass
    text = (
        f"ok: {path}: pool of {len(envs)} environments "
        f"({sum(e.get('split') == 'unseen' for e in envs)} unseen), {samples} samples, "
        f"{result.arrays_checked} arrays and {result.values_checked:,} values checked"
    )
    if result.manifest is not None:
        text += f", {result.files_verified} files match {result.manifest.name}"
    else:
        text += ", no manifest"
    return text


def pool_link_mix(path: Path, attrs: dict) -> list[dict]:
    """Per environment: name, kind, split, samples, trps, the link-state counts."""
    rows = []
    for e in environments(attrs):
        st = env_stats(env_dir(path, e["name"]))
        rows.append({**{k: e.get(k) for k in ENV_KEYS}, **st})
    return rows


__all__ = [
    "check_pool",
    "env_dir",
    "env_stats",
    "environments",
    "pool_link_mix",
    "pool_root_attrs",
    "pool_summary_line",
    "summarize_pool",
]
