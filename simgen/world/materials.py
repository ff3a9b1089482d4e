"""ITU radio materials for a carrier frequency: none outside its validity range.

The validity ranges are Sionna RT's own (``sionna.rt.radio_materials.itu.ITU_MATERIALS_PROPERTIES``,
ITU-R P.2040), read from the installed sionna-rt's source with :mod:`ast` rather than imported:
importing ``sionna.rt`` sets a Mitsuba variant, which must wait for
:func:`simgen.backend.select_backend` (a scene is built while the config loads, before the
render picks its backend). tests/test_world_materials.py compares this reading with the
imported table.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
from pathlib import Path

from ..errors import WorldError

# Preference order (the first whose ITU range covers the carrier is taken).
BUILDING_MATERIALS = ("concrete", "brick", "marble", "glass")
GROUND_MATERIALS = ("medium_dry_ground", "concrete")  # the grounds are 1-10 GHz only
# Slab thickness (m) Sionna uses for transmission through a surface of the material.
BUILDING_THICKNESS_M = 0.2
GROUND_THICKNESS_M = 0.5
_ITU_SOURCE = "sionna/rt/radio_materials/itu.py"


def _itu_source() -> Path:
    try:
        path = Path(importlib.metadata.distribution("sionna-rt").locate_file(_ITU_SOURCE))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        spec = importlib.util.find_spec("sionna")  # does not import sionna.rt
        roots = list(spec.submodule_search_locations or []) if spec else []
        path = Path(roots[0]).parent / _ITU_SOURCE if roots else None
    if path is None or not path.is_file():
        raise WorldError("sionna-rt's ITU material table (radio_materials/itu.py) is missing")
    return path


@functools.cache
def itu_ranges() -> dict[str, list[tuple[float, float]]]:
    """Sionna's ITU materials and their validity ranges in GHz, e.g. concrete: [(1, 100), ...]."""
    tree = ast.parse(_itu_source().read_text(encoding="utf-8"))
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and getattr(node.targets[0], "id", None) == "ITU_MATERIALS_PROPERTIES"
        ):
            table = ast.literal_eval(node.value)
            return {
                name: sorted((float(lo), float(hi)) for lo, hi in props)
                for name, props in table.items()
            }
    raise WorldError("ITU_MATERIALS_PROPERTIES not found in sionna-rt's itu.py")


def covers(name: str, frequency_hz: float) -> bool:
    """Whether ITU material ``name`` is valid at ``frequency_hz``."""
    f = frequency_hz / 1e9
    return any(lo <= f <= hi for lo, hi in itu_ranges().get(name, []))


def _pick(role: str, prefs: tuple[str, ...], override: str | None, frequency_hz: float) -> str:
    table = itu_ranges()
    ghz = f"{frequency_hz / 1e9:g} GHz"
    if override is not None:
        if override not in table:
            raise WorldError(
                f"materials.{role}: unknown ITU material {override!r}; Sionna has "
                f"{', '.join(sorted(table))}"
            )
        if not covers(override, frequency_hz):
            ranges = ", ".join(f"{lo:g}-{hi:g}" for lo, hi in table[override])
            raise WorldError(f"materials.{role}: {override} is valid for {ranges} GHz, not {ghz}")
        return override
    for name in prefs:
        if covers(name, frequency_hz):
            return name
    raise WorldError(
        f"no ITU {role} material covers {ghz} (tried {', '.join(prefs)}; "
        f"see sionna.rt.radio_materials.itu)"
    )


def choose_materials(
    frequency_hz: float, building: str | None = None, ground: str | None = None
) -> dict[str, str]:
    """``{"building": name, "ground": name}`` valid at ``frequency_hz``: the overrides if given
    (checked), else the first of :data:`BUILDING_MATERIALS` / :data:`GROUND_MATERIALS` that
    covers it. WorldError naming the frequency when none does."""
    return {
        "building": _pick("building", BUILDING_MATERIALS, building, frequency_hz),
        "ground": _pick("ground", GROUND_MATERIALS, ground, frequency_hz),
    }
