"""What a store was rendered with, beyond the config: scene files, package versions, backend.

The config hash (:meth:`SceneConfig.content_hash`) covers the YAML only. A resumed render must
also see the same scene geometry (the XML and its mesh files for a path scene; for Sionna's
built-in scenes the sionna-rt version covers them), the same versions of simgen, sionna-rt,
mitsuba and drjit, and the same kind of backend (LLVM on CPU or CUDA), or old and new shards
would silently mix. :func:`check_resume` refuses otherwise, unless forced.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .errors import StoreError

PACKAGES = ("simgen", "sionna-rt", "mitsuba", "drjit")
ATTR = "provenance"  # root attribute holding the scene-files hash and the backend kind
VERSIONS_ATTR = "versions"  # root attribute holding package versions (written by render)


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    """The SHA-256 (hex) of one file's bytes, read in ``block``-byte chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def scene_files_sha256(scene_path: str, builtin: bool) -> str | None:
    """SHA-256 over the scene XML and every file it references (``filename`` values, e.g.
    meshes), names included; None for 'empty' and built-in scenes."""
    if builtin or scene_path == "empty":
        return None
    xml = Path(scene_path)
    h = hashlib.sha256()
    h.update(xml.read_bytes())
    try:
        refs = sorted(
            {
                e.get("value", "")
                for e in ET.parse(xml).iter()
                if e.get("name") == "filename" and e.get("value")
            }
        )
    except ET.ParseError:
        refs = []  # Mitsuba reports a malformed XML when it loads the scene
    for ref in refs:
        f = (xml.parent / ref).resolve()
        h.update(ref.encode() + b"\0")
        h.update(f.read_bytes() if f.is_file() else b"<missing>")
    return h.hexdigest()


def versions(packages: tuple[str, ...] = (*PACKAGES, "zarr", "numpy")) -> dict[str, str]:
    """Installed version of each distribution in ``packages`` ("unknown" when not installed);
    the ``versions`` root attribute of every store simgen writes."""
    out = {}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def fingerprint(scene: str, scene_path: str, backend: str) -> dict:
    """The provenance of a render now: scene files hash, package versions, backend kind
    (stored as the ``provenance`` root attribute, versions apart in ``versions``).

    scene: the config's ``scene`` value; scene_path: its resolved XML path (or 'empty');
    backend: the Mitsuba variant in use."""
    from .config import builtin_scenes

    return {
        "scene_files_sha256": scene_files_sha256(scene_path, scene in builtin_scenes()),
        "versions": versions(PACKAGES),
        "backend": "cuda" if "cuda" in backend else "llvm",
    }


def differences(attrs: dict, now: dict) -> list[str]:
    """Human-readable differences between a store's root ``attrs`` and the current
    :func:`fingerprint`."""
    out = []
    old_v = attrs.get(VERSIONS_ATTR) or {}
    for pkg, v in now["versions"].items():
        if old_v.get(pkg) != v:
            out.append(f"{pkg} {old_v.get(pkg)} -> {v}")
    stored = attrs.get(ATTR)
    if not stored:
        return out + ["the store records no scene-file hash or backend (older simgen)"]
    if stored.get("scene_files_sha256") != now["scene_files_sha256"]:
        out.append("the scene XML or mesh files changed")
    if stored.get("backend") != now["backend"]:
        out.append(f"backend {stored.get('backend')} -> {now['backend']}")
    return out


def check_resume(path: str | Path, attrs: dict, now: dict, force: bool) -> list[str]:
    """Refuse (StoreError) to resume a store whose root ``attrs`` record other scene files,
    versions or backend than ``now``, unless ``force``.

    Returns the differences that were overridden (empty when none)."""
    diff = differences(attrs, now)
    if diff and not force:
        raise StoreError(
            f"{path} was rendered with different inputs ({'; '.join(diff)}); use --overwrite "
            "to render it again, or --force-resume to mix them knowingly"
        )
    return diff
