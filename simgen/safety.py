"""Data safety: which paths simgen may write or delete, and one writer per output.

The rule, in one place: simgen deletes only what is provably its own, namely

* a simgen store: a folder whose ``zarr.json`` is a Zarr group carrying simgen's root
  attributes (``schema_version``, ``layout``, ``conditions``, ``config_hash``), or an
  environment pool's (``schema_version``, ``pool: true``, ``environments``, ``config_hash``);
* a zipped simgen store (``publish --zip``): a zip file whose ``zarr.json`` carries them;
* a DeepMIMO folder written by ``simgen export-deepmimo`` (its ``params.json`` names the
  simgen store it came from);
* an empty folder;
* a folder holding a marker file that only simgen/loc writes there (e.g. ``suite_run.json``
  of a ``loc suite`` run), when the caller names that marker.

Whatever the path, an output is refused when it is the current directory or one of its
ancestors, when it is or contains an input (the scene YAML, the source store, ...) or lies inside
one, or when a parent of it is a file. Every refusal is an :class:`UnsafePathError` (one line
from the CLI). A second process writing the same output is refused by :func:`output_lock`.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import StoreError, UnsafePathError

SIMGEN_ROOT_ATTRS = ("schema_version", "layout", "conditions", "config_hash")
# an environment pool's root (simgen.pool_render): its environments are simgen stores inside it
SIMGEN_POOL_ATTRS = ("schema_version", "pool", "environments", "config_hash")


def _has_simgen_attrs(meta: dict) -> bool:
    attrs = meta.get("attributes") or {}
    return meta.get("node_type") == "group" and (
        all(k in attrs for k in SIMGEN_ROOT_ATTRS)
        or (attrs.get("pool") is True and all(k in attrs for k in SIMGEN_POOL_ATTRS))
    )


def is_simgen_store(path: str | Path) -> bool:
    """True for a folder or zip file whose root ``zarr.json`` holds simgen's root attributes."""
    path = Path(path)
    try:
        if path.is_dir():
            meta = json.loads((path / "zarr.json").read_text())
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                meta = json.loads(zf.read("zarr.json"))
        else:
            return False
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
    return isinstance(meta, dict) and _has_simgen_attrs(meta)


def is_simgen_export(path: str | Path) -> bool:
    """True for a DeepMIMO scenario folder written by ``simgen export-deepmimo``."""
    try:
        params = json.loads((Path(path) / "params.json").read_text())
        return bool(params["rt_params"]["raw_params"]["simgen_store"])
    except (OSError, KeyError, TypeError, ValueError):
        return False


def is_ours(path: str | Path, marker: str | None = None) -> bool:
    """Whether simgen may delete ``path`` (see the module docstring); False if it is absent."""
    path = Path(path)
    if path.is_symlink():
        return False
    if path.is_dir() and (not any(path.iterdir()) or (marker and (path / marker).is_file())):
        return True
    return is_simgen_store(path) or is_simgen_export(path)


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def check_output(path: str | Path, inputs: Iterable[str | Path | None] = ()) -> Path:
    """Refuse an output path that is unsafe to write or replace; return it resolved.

    Refused (UnsafePathError): the current directory or an ancestor of it, a path equal to,
    containing or inside one of ``inputs`` (None entries are ignored), a path with a file as
    one of its parents, and an empty path.
    """
    if str(path).strip() == "":
        raise UnsafePathError("the output path is empty; give a store name such as out.zarr")
    out = Path(path).expanduser().resolve()
    cwd = Path.cwd().resolve()
    if out == cwd or out in cwd.parents:
        raise UnsafePathError(
            f"{path}: refusing to write to the current directory or one of its parents; "
            "give a new path such as out.zarr"
        )
    for item in inputs:
        if item is None or str(item) in ("", "empty"):
            continue
        src = Path(item).expanduser().resolve()
        if _overlaps(out, src):
            raise UnsafePathError(
                f"{path}: the output must not be, contain or lie inside the input {item}"
            )
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UnsafePathError(f"{path}: {parent} is a file, not a folder")
            break
    return out


def check_replaceable(
    path: str | Path, inputs: Iterable[str | Path | None] = (), marker: str | None = None
) -> Path:
    """:func:`check_output`, and UnsafePathError if ``path`` exists but is not ours."""
    out = check_output(path, inputs)
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not is_ours(path, marker):
        raise UnsafePathError(
            f"{path} exists and is not a simgen store, simgen export or empty folder; "
            "refusing to delete it (move it away or choose another output)"
        )
    return out


def remove_if_ours(
    path: str | Path, inputs: Iterable[str | Path | None] = (), marker: str | None = None
) -> None:
    """Delete ``path`` if it is provably simgen's own (see the module docstring).

    Does nothing if it does not exist; UnsafePathError if it is not ours or is unsafe by
    :func:`check_output`'s rule. ``marker``: a file name that also marks a folder as ours.
    """
    check_replaceable(path, inputs, marker)
    path = Path(path)
    if not path.exists():
        return
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def lock_path(path: str | Path) -> Path:
    """The lock file of output ``path``: ``NAME.lock`` beside it (outside the store)."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


@contextmanager
def output_lock(path: str | Path, inputs: Iterable[str | Path | None] = ()) -> Iterator[Path]:
    """Hold an exclusive lock on output ``path`` (checked with :func:`check_output` first).

    A second writer gets StoreError at once instead of waiting. The lock is an OS file lock
    (``filelock``), released by the OS if the process dies.
    """
    from filelock import FileLock, Timeout

    out = check_output(path, inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path(out), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise StoreError(
            f"{path} is being written by another simgen process (lock {lock_path(path)}); "
            "wait for it to finish or choose another output"
        ) from None
    try:
        yield out
    finally:
        lock.release()
