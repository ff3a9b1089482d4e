"""One run per page section, stamped (benchmark-fairness rules §1.7).

A run's stamp: the commit (``git rev-parse HEAD``, ``-dirty`` with uncommitted changes to
tracked files), a hash of the protocol as resolved at its budget, a hash of the code (every
``*.py`` of the ``loc`` and ``simgen`` packages when the run started), the sha256 of each of
those files the run imported (``code_files``), the date (UTC), the machine and the wall time.
The page generator recomputes the protocol hash and the imported files' hashes and marks a
section whose protocol or code changed since its run as stale (``staleness``), naming the
changed files, instead of presenting it as current. A change to a module the run never
imported (another protocol's) leaves it current.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path

PACKAGES = ("loc", "simgen")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _roots() -> list[Path]:
    import loc
    import simgen

    return [Path(pkg.__file__).resolve().parent for pkg in (loc, simgen)]


def code_files() -> dict[str, str]:
    """{path relative to the package's parent ('loc/data.py'): sha256 of its bytes} of every
    ``*.py`` of the ``loc`` and ``simgen`` packages, in sorted order."""
    return {
        f.relative_to(root.parent).as_posix(): _sha(f.read_bytes())
        for root in _roots()
        for f in sorted(root.rglob("*.py"))
    }


def code_hash(files: dict[str, str] | None = None) -> str:
    """sha256 over the (path, file sha256) pairs of ``files`` (default ``code_files()``)."""
    files = code_files() if files is None else files
    return _sha("".join(f"{p}\0{h}\0" for p, h in sorted(files.items())).encode())


def imported_files(files: dict[str, str]) -> dict[str, str]:
    """The entries of ``files`` (a ``code_files()`` snapshot) whose module this process has
    imported (``sys.modules``)."""
    import sys

    roots = _roots()
    used = {}
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if not f:
            continue
        f = Path(f).resolve()
        for root in roots:
            if f.is_relative_to(root):
                rel = f.relative_to(root.parent).as_posix()
                if rel in files:
                    used[rel] = files[rel]
    return dict(sorted(used.items()))


def _canonical(obj):
    """JSON-able form of a resolved protocol: files by name and content hash (no absolute
    paths, so the same protocol hashes the same in every checkout)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Path):
        return {"file": obj.name, "sha256": _sha(obj.read_bytes()) if obj.is_file() else None}
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_canonical(v) for v in obj]
    return obj


def protocol_hash(proto) -> str:
    """sha256 of a protocol resolved at its budget (a ``loc.suite.protocol.Protocol`` or the
    LWLM protocol dict): every setting, the scene files' contents, not the protocol's path."""
    c = _canonical(proto)
    if isinstance(c, dict):
        c.pop("path", None)
    return _sha(json.dumps(c, sort_keys=True, default=str).encode())


def git_commit(root: Path | None = None) -> str | None:
    """HEAD of the checkout holding ``loc`` (``-dirty`` when tracked files differ from it);
    None outside a git checkout."""
    import loc

    root = root or Path(loc.__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")


def machine(device: str) -> str:
    """'Linux x86_64, 16 CPUs, cuda (NVIDIA H100 80GB HBM3)' / '..., cpu'."""
    text = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, {device}"
    if str(device).startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            text += f" ({torch.cuda.get_device_name()})"
    return text


def make_stamp(proto_hash: str, files: dict[str, str], device: str, wall_seconds: float) -> dict:
    """The stamp stored in a result JSON; ``files``: ``code_files()`` when the run started (its
    ``code_hash`` names the run's code; the files it imported are kept for ``staleness``)."""
    return {
        "commit": git_commit(),
        "protocol_hash": proto_hash,
        "code_hash": code_hash(files),
        "code_files": imported_files(files),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(device),
        "wall_seconds": wall_seconds,
    }


def staleness(stamp: dict | None, proto_hash: str | None, files: dict[str, str]) -> str | None:
    """None when the run is current (its protocol hash is today's, and so is every code file
    it imported; a stamp without ``code_files``: the whole code hash), else 'unstamped' (a
    result from before stamps), 'stale: protocol changed' or 'stale: code changed since
    <commit> (<files>)'. ``proto_hash`` None: the protocol is no longer shipped; ``files``:
    today's ``code_files()``."""
    if not stamp:
        return "unstamped"
    why = []
    if proto_hash is None or stamp.get("protocol_hash") != proto_hash:
        why.append("protocol changed")
    since = f"code changed since {(stamp.get('commit') or 'its run')[:12]}"
    if "code_files" in stamp:
        changed = [p for p, h in stamp["code_files"].items() if files.get(p) != h]
        if changed:
            more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
            why.append(f"{since} ({', '.join(changed[:3])}{more})")
    elif stamp.get("code_hash") != code_hash(files):
        why.append(since)
    return "stale: " + ", ".join(why) if why else None


def stamp_line(stamp: dict | None, status: str | None) -> str:
    """The line at the top of a page section."""
    if not stamp:
        return (
            "**Unstamped**: this result was written before runs were stamped (commit, protocol "
            "and code hashes unknown); rerun the protocol to make it current."
        )
    wall = stamp.get("wall_seconds")
    text = (
        f"Run: commit `{(stamp.get('commit') or 'unknown')[:12]}`"
        + (" (uncommitted changes)" if (stamp.get("commit") or "").endswith("-dirty") else "")
        + f", protocol `{stamp['protocol_hash'][:12]}`, code `{stamp['code_hash'][:12]}`, "
        f"{stamp['date']}, {stamp['machine']}, wall time "
        + ("–" if wall is None else f"{wall / 60:.1f} min")
        + "."
    )
    if status:
        text = f"**{status[0].upper() + status[1:]}**: these numbers are not the current " + (
            f"protocol's and code's output. {text}"
        )
    return text
