"""Checksums of a release: ``MANIFEST.sha256`` (``sha256sum`` format) written by
``simgen publish`` and verified by ``simgen validate``."""

from __future__ import annotations

from pathlib import Path

from ...errors import StoreError
from ...provenance import sha256_file
from .common import Findings

MANIFEST = "MANIFEST.sha256"


def read_manifest(path: Path) -> dict[str, str]:
    """``sha256sum`` format: '<hex>  <relative path>' per line -> {relative path: hex}."""
    out = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep:
            digest, sep, name = line.partition(" *")
        if not sep or len(digest) != 64:
            raise StoreError(f"{path}: line {n} is not '<sha256>  <path>'")
        out[name] = digest.lower()
    return out


def write_manifest(folder: Path, exclude: tuple[str, ...] = (MANIFEST,)) -> Path:
    """Hash every file under ``folder`` into ``folder/MANIFEST.sha256`` (sorted, sha256sum
    format: ``cd folder && sha256sum -c MANIFEST.sha256`` verifies it)."""
    folder = Path(folder)
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).as_posix() not in exclude
    )
    lines = [f"{sha256_file(p)}  {p.relative_to(folder).as_posix()}" for p in files]
    target = folder / MANIFEST
    target.write_text("\n".join(lines) + "\n")
    return target


def _find_manifest(store: Path) -> Path | None:
    """The publish manifest beside the store, if it lists the store."""
    cand = store.resolve().parent / MANIFEST
    if not cand.is_file():
        return None
    try:
        names = read_manifest(cand)
    except StoreError:
        return cand  # a broken manifest is a finding of its own (reported by verify_manifest)
    prefix = store.resolve().name
    return cand if any(n == prefix or n.startswith(prefix + "/") for n in names) else None


def verify_manifest(
    manifest: Path, out: Findings | None = None, store: Path | None = None
) -> list[str]:
    """Hash every file listed in ``manifest`` (paths relative to its folder); findings for
    mismatches and missing files, and for files under ``store`` the manifest does not list."""
    manifest = Path(manifest)
    base = manifest.resolve().parent
    lines: list[str] = []
    try:
        entries = read_manifest(manifest)
    except StoreError as exc:
        return [f"manifest: {exc}"]
    for name, digest in entries.items():
        p = base / name
        if not p.is_file():
            lines.append(f"manifest: {name}: listed but missing")
            continue
        if sha256_file(p) != digest:
            lines.append(f"manifest: {name}: SHA-256 mismatch (file changed since publishing)")
        if out is not None:
            out.files_verified += 1
    if store is not None and Path(store).is_dir():
        for p in sorted(Path(store).resolve().rglob("*")):
            if p.is_file():
                rel = p.relative_to(base).as_posix()
                if rel not in entries:
                    lines.append(f"manifest: {rel}: file in the store is not listed")
    return lines
