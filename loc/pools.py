"""simgen environment pools on the loc side: a pool store (``simgen render pool.yaml``) holds
one complete store per environment in the folder ``<pool>/<name>``, listed with its split
(seen / unseen) in the pool's root attributes. :class:`loc.data.CSIStore` opens one environment
(``environment=``); :func:`pool_stores` opens several, by name or by split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import zarr

from loc.errors import ConfigError, DataError

if TYPE_CHECKING:
    from loc.data import CSIStore


def pool_environments(path: str | Path) -> list[dict] | None:
    """The environments (name, kind, source, split: seen | unseen) of a simgen environment
    pool (``simgen render pool.yaml``), in order; None for a single-scene store."""
    try:
        attrs = zarr.open_group(str(path), mode="r").attrs
    except Exception:  # noqa: BLE001 - reported by list_groups / open_group
        return None
    if attrs.get("pool") is not True:
        return None
    return [dict(e) for e in attrs.get("environments", [])]


def environment_path(path: str | Path, environment: str | None) -> Path:
    """The store of ``environment`` in the pool at ``path`` (each environment is a complete
    store in the folder ``<pool>/<name>``), or ``path`` itself for a single-scene store.

    DataError when a pool is opened without an environment (the message lists them, by split)
    or with one it does not hold; ConfigError for an environment on a single-scene store."""
    envs = pool_environments(path)
    if envs is None:
        if environment is not None:
            raise ConfigError(f"{path} is a single-scene store, not a pool: drop environment=")
        return Path(path)
    names = [e["name"] for e in envs]
    if environment is None or environment not in names:
        seen = ", ".join(e["name"] for e in envs if e.get("split") != "unseen") or "none"
        unseen = ", ".join(e["name"] for e in envs if e.get("split") == "unseen") or "none"
        what = (
            "choose one with environment="
            if environment is None
            else f"has no environment {environment!r}; choose one of them"
        )
        raise DataError(
            f"{path} is an environment pool of {len(names)} environments: {what} "
            f"(seen: {seen}; unseen: {unseen}), or open several with loc.data.pool_stores"
        )
    return Path(path) / environment


def pool_stores(
    path: str | Path,
    environment: str | Sequence[str] | None = None,
    split: Literal["seen", "unseen"] | None = None,
    **kwargs,
) -> dict[str, CSIStore]:
    """One :class:`CSIStore` per chosen environment of the pool at ``path`` (name -> store, in
    the pool's order): the named ``environment`` (one or a list), or every environment of the
    pool's recorded ``split`` ("seen" / "unseen"), or all. ``kwargs`` go to each CSIStore."""
    envs = pool_environments(path)
    if envs is None:
        raise DataError(f"{path} is not an environment pool (no environments attribute)")
    if split is not None and split not in ("seen", "unseen"):
        raise ConfigError(f"unknown split {split!r} (seen | unseen)")
    names = [e["name"] for e in envs if split is None or e.get("split", "seen") == split]
    if environment is not None:
        wanted = [environment] if isinstance(environment, str) else list(environment)
        for n in wanted:
            environment_path(path, n)  # DataError listing the environments if unknown
        names = [n for n in wanted if n in names]
    if not names:
        raise DataError(f"{path}: no environment in split {split!r}")
    from loc.data import CSIStore  # noqa: PLC0415 - loc.data imports this module

    return {n: CSIStore(path, environment=n, **kwargs) for n in names}
