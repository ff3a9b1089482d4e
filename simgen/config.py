"""Scene configuration (``scenes/*.yaml``): strict pydantic models, loader with one-line errors.

Units are in the key names (``_m``, ``_hz``, ``_deg``, ``_dbm``). Positions are metres in the
scene frame. Unknown keys and wrong types are refused; the error names the YAML key, e.g.
``scenes/x.yaml: trps[1].position: expected 3 numbers [x, y, z] in metres``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from .errors import ConfigError, WorldError
from .rain import FREQ_RANGE_GHZ as RAIN_FREQ_RANGE_GHZ
from .receiver import DEFAULT_NOISE_FIGURE_DB, DEFAULT_TEMPERATURE_K
from .strict import Count, Range, Real, Strict, Vec3, as_int, read_yaml_mapping
from .world.blocks import (  # noqa: F401 - the scene blocks are part of the config's API
    MAX_TILE_M,
    HeightDistribution,
    OSMScene,
    OSMSource,
    ProceduralScene,
    ProceduralSource,
    WorldMaterials,
    describe_scene,
)

EMPTY_SCENE = "empty"  # no geometry at all: free space, for sanity checks
# UEs per solver call for batch_ues: auto. With simgen.dedupe's fix of Sionna 2.2.0's
# specular-chain de-duplication, results do not depend on the batch (tested against one UE per
# call on etoile); the size only trades speed for memory. Measured on the default render (CPU,
# etoile, 4 TRPs, 1e5 samples, depth 3): 50 per call is the fastest within ~4 GB RSS (see
# docs/benchmarks.md). No GPU measurement supports more, so a GPU uses the same size. Without the
# fix (another sionna-rt), auto is 1 (dedupe.FALLBACK_BATCH). These are caps: auto takes the
# largest batch up to them that simgen.memory predicts to fit the memory budget.
AUTO_BATCH_CPU = 50
AUTO_BATCH_GPU = AUTO_BATCH_CPU


class ArrayConfig(Strict):
    """A Sionna ``PlanarArray``: elements in the y-z plane, spacings in wavelengths."""

    rows: Count = 1
    cols: Count = 1
    vertical_spacing: Annotated[Real, Field(gt=0)] = 0.5
    horizontal_spacing: Annotated[Real, Field(gt=0)] = 0.5
    pattern: Literal["iso", "dipole", "hw_dipole", "tr38901"] = "iso"
    polarization: Literal["V", "H", "VH", "cross"] = "V"

    @property
    def ports(self) -> int:
        """Polarization ports per element: 2 for VH / cross, else 1."""
        return 2 if self.polarization in ("VH", "cross") else 1

    @property
    def num_ant(self) -> int:
        """Antenna ports, port-major like Sionna: index = port * rows * cols + element."""
        return self.rows * self.cols * self.ports


class TRPConfig(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    position: Vec3
    look_at: Vec3 | None = None
    orientation_deg: Vec3 | None = Field(None, description="yaw, pitch, roll in degrees")
    tx_power_dbm: Real = 44.0

    @model_validator(mode="after")
    def _one_orientation(self) -> TRPConfig:
        if self.look_at is not None and self.orientation_deg is not None:
            raise ValueError("give either look_at or orientation_deg, not both")
        if self.look_at is not None and tuple(self.look_at) == tuple(self.position):
            raise ValueError("look_at equals position; give a point the TRP should face")
        return self


class PoolConfig(Strict):
    """TRPs placed at random, all traced in one call: on building roofs (VIn-Loc style,
    ``height_above_roof_m`` above the roof) or, on a scene built from a world (OSM /
    procedural), as street-level masts / lamp posts at the kerb of the streets (``height_m``
    above the ground)."""

    count: Count
    placement: Literal["rooftops", "streets"] = "rooftops"
    region: Region | None = Field(None, description="where TRPs are drawn; default: the scene")
    height_above_roof_m: Annotated[Real, Field(ge=0)] = 3.0
    height_m: Annotated[Real, Field(gt=0)] = Field(
        6.0, description="placement streets: mast height above the ground"
    )
    min_spacing_m: Annotated[Real, Field(ge=0)] = 10.0
    tx_power_dbm: Real = 44.0
    seed: int = 0


class TRPPoolConfig(Strict):
    pool: PoolConfig


class OFDMConfig(Strict):
    num_subcarriers: Count
    subcarrier_spacing_hz: Annotated[Real, Field(gt=0)] | None = None
    bandwidth_hz: Annotated[Real, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _grid(self) -> OFDMConfig:
        if (self.subcarrier_spacing_hz is None) == (self.bandwidth_hz is None):
            raise ValueError("give exactly one of subcarrier_spacing_hz or bandwidth_hz")
        return self

    @property
    def spacing_hz(self) -> float:
        if self.subcarrier_spacing_hz is not None:
            return self.subcarrier_spacing_hz
        return self.bandwidth_hz / self.num_subcarriers


class Region(Strict):
    """Axis-aligned rectangle on the ground, scene frame."""

    x: Range
    y: Range

    @model_validator(mode="after")
    def _ordered(self) -> Region:
        if self.x[0] >= self.x[1] or self.y[0] >= self.y[1]:
            raise ValueError("each range must be [min, max] with min < max")
        return self


class UERegion(Region):
    """A UE region: the rectangle, or with ``streets: true`` only the street area
    (:meth:`simgen.world.World.street_area`: streets, sidewalks, squares) inside it."""

    streets: bool = False


STREETS = "streets"  # ue.regions: streets -- the whole street area of a world scene


class SamplingConfig(Strict):
    grid_spacing_m: Annotated[Real, Field(gt=0)] | None = None
    count: Count | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> SamplingConfig:
        if (self.grid_spacing_m is None) == (self.count is None):
            raise ValueError("give exactly one of grid_spacing_m (regular grid) or count (random)")
        return self


class UEConfig(Strict):
    height_m: Annotated[Real, Field(gt=0)] = 1.5
    array: ArrayConfig = ArrayConfig()
    regions: Literal["streets"] | Annotated[list[UERegion], Field(min_length=1)] = Field(
        description="rectangles [{x, y}] (with streets: true, the street area inside one), or "
        "'streets' (the whole street area of a scene built from a world)"
    )
    sampling: SamplingConfig
    min_distance_to_trp_m: Annotated[Real, Field(ge=0)] = 0.0
    speed_mps: Annotated[Real, Field(ge=0)] = Field(
        0.0, description="UE speed; each UE walks/drives in a seeded random horizontal direction"
    )
    seed: int = 0

    @property
    def rectangles(self) -> list[UERegion]:
        """The rectangles of ``regions`` (none for ``streets``)."""
        return [] if self.regions == STREETS else list(self.regions)

    @property
    def on_streets(self) -> bool:
        """Some region samples the street area (the scene must come from a world)."""
        return self.regions == STREETS or any(r.streets for r in self.regions)


class CalibrationConfig(Strict):
    """How ``samples_per_src: auto`` is chosen (see ``simgen calibrate``)."""

    target: Annotated[Real, Field(gt=0, le=1)] = 0.99
    tolerance_db: Annotated[Real, Field(gt=0)] = 0.5
    toa_tolerance_s: Annotated[Real, Field(gt=0)] = 1e-10
    reference: Count = 10_000_000
    candidates: Annotated[list[Count], Field(min_length=1)] = [
        10_000,
        30_000,
        100_000,
        300_000,
        1_000_000,
    ]
    links: Count = 200


class SolverConfig(Strict):
    max_depth: Annotated[int, BeforeValidator(as_int), Field(ge=0, le=10)] = 3
    samples_per_src: Count | Literal["auto"] = 100_000
    calibration: CalibrationConfig = CalibrationConfig()
    max_num_paths_per_src: Count = 1_000_000
    los: bool = True
    specular_reflection: bool = True
    diffuse_reflection: bool = False
    refraction: bool = True
    diffraction: bool = False
    edge_diffraction: bool = False
    seed: int = 42
    batch_ues: Count | Literal["auto"] = Field(
        "auto",
        description="UEs per PathSolver call (results do not depend on it, see simgen/dedupe.py);"
        f" auto: the largest batch up to {AUTO_BATCH_CPU} that simgen.memory predicts to fit the"
        " memory budget (simgen render --memory-gb; default 0.8 x available)",
    )


class CategoriesConfig(Strict):
    """Regular expressions on scene object names; anything unmatched counts as a building.

    A pattern must match the WHOLE name (``re.fullmatch``), case-insensitively: ``car_.*``
    matches ``car_1`` and ``Car-3`` but not ``Palazzo_Medici_Riccardi-wall``. The defaults
    match a keyword as the whole name or as its first word (``bus``, ``bus_2``, ``Bus-metal``).
    """

    ground: str = r"(plane|ground|floor|terrain)([-_.].*)?"
    vehicle: str = r"(car|truck|bus|vehicle)([-_.].*)?"
    foliage: str = r"(tree|foliage|vegetation|bush)([-_.].*)?"

    @model_validator(mode="after")
    def _compiles(self) -> CategoriesConfig:
        for key in ("ground", "vehicle", "foliage"):
            try:
                re.compile(getattr(self, key))
            except re.error as exc:
                raise ValueError(f"{key}: invalid regular expression ({exc})") from exc
        return self


class WeatherConfig(Strict):
    rain_rates_mm_h: Annotated[list[Annotated[Real, Field(ge=0, le=200)]], Field(min_length=1)] = [
        0.0
    ]
    polarization: Literal["V", "H"] | Annotated[Real, Field(ge=0, le=90)] | None = Field(
        None,
        description="rain polarization tilt for every TRP port (V, H or degrees); default: "
        "each TRP port's own (V 90, H 0, cross +-45 deg)",
    )
    rain_cell_km: Annotated[Real, Field(gt=0)] | None = Field(
        None, description="length of each path that is in rain; None = the whole path"
    )

    @model_validator(mode="after")
    def _distinct_groups(self) -> WeatherConfig:
        from .store import condition_name  # the one place that names condition groups

        seen: dict[str, float] = {}
        for rate in self.rain_rates_mm_h:
            group = condition_name(rate)
            if group in seen:
                raise ValueError(
                    f"rain_rates_mm_h: {seen[group]!r} and {rate!r} both make the group "
                    f"'{group}'; give distinct rates"
                )
            seen[group] = rate
        return self


class LaneConfig(Strict):
    """A traffic lane: vehicles drive along ``points`` (x, y in metres) in the listed order."""

    points: Annotated[list[tuple[Real, Real]], Field(min_length=2)]
    closed: bool = Field(False, description="the last point connects back to the first")
    speed_mps: tuple[Annotated[Real, Field(ge=0)], Annotated[Real, Field(ge=0)]] = (8.0, 14.0)
    density_per_km: Annotated[Real, Field(ge=0)] = 30.0
    min_gap_m: Annotated[Real, Field(ge=0)] = 2.0
    types: dict[Literal["car", "bus", "truck"], Annotated[Real, Field(gt=0)]] = {"car": 1.0}

    @model_validator(mode="after")
    def _speeds(self) -> LaneConfig:
        if self.speed_mps[0] > self.speed_mps[1]:
            raise ValueError("speed_mps must be [min, max] with min <= max")
        return self


class StreetLanesConfig(Strict):
    """Lanes from the drivable streets of a world scene (:mod:`simgen.streets`): one lane per
    direction of each street centreline, ``lane_width_m / 2`` to the right of it (driving on
    the right), clipped to the street area clear of buildings; pieces shorter than
    ``min_length_m`` are dropped. The remaining keys are those of every lane
    (:class:`LaneConfig`)."""

    highways: list[str] | None = Field(
        None, description="OSM highway classes to drive (default: every drivable street)"
    )
    lane_width_m: Annotated[Real, Field(gt=0)] = 3.0
    min_length_m: Annotated[Real, Field(gt=0)] = 30.0
    speed_mps: tuple[Annotated[Real, Field(ge=0)], Annotated[Real, Field(ge=0)]] = (8.0, 14.0)
    density_per_km: Annotated[Real, Field(ge=0)] = 30.0
    min_gap_m: Annotated[Real, Field(ge=0)] = 2.0
    types: dict[Literal["car", "bus", "truck"], Annotated[Real, Field(gt=0)]] = {"car": 1.0}

    @model_validator(mode="after")
    def _speeds(self) -> StreetLanesConfig:
        if self.speed_mps[0] > self.speed_mps[1]:
            raise ValueError("speed_mps must be [min, max] with min <= max")
        return self


class FromStreets(Strict):
    """``traffic.lanes: {from_streets: {...}}``."""

    from_streets: StreetLanesConfig = StreetLanesConfig()


class TrafficConfig(Strict):
    """Moving vehicles. ``time_series``: snapshots every ``dt_s`` with vehicles driving along
    their lanes; ``conditions``: independent random traffic draws per snapshot."""

    mode: Literal["time_series", "conditions"] = "time_series"
    snapshots: Count = 20
    dt_s: Annotated[Real, Field(gt=0)] = 0.1
    seed: int = 0
    lanes: Literal["streets"] | FromStreets | Annotated[list[LaneConfig], Field(min_length=1)] = (
        Field(
            description="lanes [{points, ...}], or 'streets' / {from_streets: {...}}: the "
            "drivable streets of a scene built from a world"
        )
    )
    density_scale: Annotated[Real, Field(ge=0)] = Field(
        1.0, description="multiplies every lane's density_per_km (heavier / lighter traffic)"
    )
    types: dict[Literal["car", "bus", "truck"], Annotated[Real, Field(gt=0)]] | None = Field(
        None, description="replaces every lane's vehicle mix (e.g. {bus: 0.5, truck: 0.5})"
    )

    @property
    def street_lanes(self) -> StreetLanesConfig | None:
        """How lanes are made from streets (None when the lanes are listed)."""
        if self.lanes == STREETS:
            return StreetLanesConfig()
        return self.lanes.from_streets if isinstance(self.lanes, FromStreets) else None

    def lane_draw(self, lane: LaneConfig) -> tuple[float, dict[str, float]]:
        """(vehicles per km, type weights) drawn on ``lane`` after the traffic-wide knobs."""
        return lane.density_per_km * self.density_scale, dict(self.types or lane.types)


class TreeConfig(Strict):
    """A tree crown as a box of foliage (OLOS blocker): centred at ``position`` (x, y)."""

    position: tuple[Real, Real]
    crown_bottom_m: Annotated[Real, Field(ge=0)] = 3.0
    crown_top_m: Annotated[Real, Field(gt=0)] = 9.0
    crown_width_m: Annotated[Real, Field(gt=0)] = 5.0

    @model_validator(mode="after")
    def _heights(self) -> TreeConfig:
        if self.crown_bottom_m >= self.crown_top_m:
            raise ValueError("crown_bottom_m must be below crown_top_m")
        return self


class OutputConfig(Strict):
    path: str
    cir_taps: Count | None = Field(
        None, description="also store CIR taps at the system bandwidth (absolute delays)"
    )
    chunk_samples: Count = 256
    paths: bool = Field(False, description="store path-level arrays (path_*)")
    max_paths: Count = 32


class ReceiverConfig(Strict):
    """The UE receiver's thermal noise (``simgen.receiver``): N = k T B F over the system
    bandwidth B; stored per TRP as ``noise_power_dbm`` and used for ``snr_db``."""

    noise_figure_db: Real = DEFAULT_NOISE_FIGURE_DB
    temperature_k: Annotated[Real, Field(gt=0)] = DEFAULT_TEMPERATURE_K


def _scene_kind(v: object) -> str:
    """Tag of a ``scene`` value: a name / path, or the block's one key."""
    if isinstance(v, dict) and len(v) == 1:
        return next(iter(v)) if next(iter(v)) in ("osm", "procedural") else "block"
    if isinstance(v, OSMScene):
        return "osm"
    if isinstance(v, ProceduralScene):
        return "procedural"
    return "str" if isinstance(v, str) or not isinstance(v, dict) else "block"


def _no_block(v: object) -> str:
    raise ValueError("expected a scene name / XML path, {osm: {...}} or {procedural: {...}}")


SceneSpec = Annotated[
    Annotated[str, Tag("str")]
    | Annotated[OSMScene, Tag("osm")]
    | Annotated[ProceduralScene, Tag("procedural")]
    | Annotated[dict, BeforeValidator(_no_block), Tag("block")],
    Discriminator(_scene_kind),
]


class SceneConfig(Strict):
    name: str
    scene: SceneSpec = Field(
        description="Sionna built-in scene name, Mitsuba XML path, 'empty', or a block that "
        "builds one: {osm: ...} or {procedural: ...} (simgen.world)"
    )
    frequency_hz: Annotated[Real, Field(gt=0)]
    ofdm: OFDMConfig
    trp_array: ArrayConfig = ArrayConfig()
    trps: Annotated[list[TRPConfig], Field(min_length=1)] | TRPPoolConfig
    ue: UEConfig
    solver: SolverConfig = SolverConfig()
    categories: CategoriesConfig = CategoriesConfig()
    weather: WeatherConfig = WeatherConfig()
    traffic: TrafficConfig | None = None
    trees: list[TreeConfig] = []
    receiver: ReceiverConfig = ReceiverConfig()
    output: OutputConfig

    @model_validator(mode="after")
    def _unique_names(self) -> SceneConfig:
        names = [t.name for t in self.trps] if isinstance(self.trps, list) else []
        if len(set(names)) != len(names):
            raise ValueError("TRP names must be unique")
        if len(set(self.weather.rain_rates_mm_h)) != len(self.weather.rain_rates_mm_h):
            raise ValueError("weather.rain_rates_mm_h has duplicates")
        lo, hi = RAIN_FREQ_RANGE_GHZ  # ITU-R P.838-3 curve fits
        rainy = any(r > 0 for r in self.weather.rain_rates_mm_h)
        if rainy and not lo <= self.frequency_hz / 1e9 <= hi:
            raise ValueError(
                f"weather.rain_rates_mm_h: rain attenuation (ITU-R P.838-3) is defined for "
                f"{lo:g}-{hi:g} GHz, not frequency_hz {self.frequency_hz / 1e9:g} GHz"
            )
        from .channel import subcarrier_offsets  # the one place that lays out the subcarriers

        lowest = (
            self.frequency_hz
            + subcarrier_offsets(self.ofdm.num_subcarriers, self.ofdm.spacing_hz).min()
        )
        if lowest <= 0:
            raise ValueError(
                f"ofdm: the lowest subcarrier is at {lowest:.6g} Hz (<= 0): the band "
                f"({self.ofdm.num_subcarriers} x {self.ofdm.spacing_hz:g} Hz) is wider than "
                f"2 x frequency_hz ({self.frequency_hz:g} Hz); narrow it or raise the carrier"
            )
        return self

    def content_hash(self) -> str:
        """SHA-256 of everything that changes the data: not the output path, nor ``batch_ues``
        (with simgen.dedupe's fix batching gives the paths of one UE per call; tested in
        tests/test_batching.py). A default ``receiver`` block is left out, so stores made
        before it existed keep their hash and still resume."""
        d = self.model_dump(mode="json")
        d["output"].pop("path")
        d["solver"].pop("batch_ues")
        if d["receiver"] == ReceiverConfig().model_dump(mode="json"):
            d.pop("receiver")
        # keys added with world scenes (issue #30), left out at their defaults for the same
        # reason: a rectangle's ``streets: false``, a pool's ``height_m`` (streets placement)
        for r in d["ue"]["regions"] if isinstance(d["ue"]["regions"], list) else []:
            if r.get("streets") is False:
                r.pop("streets")
        pool = d["trps"].get("pool") if isinstance(d["trps"], dict) else None
        if pool is not None and pool.get("height_m") == PoolConfig.model_fields["height_m"].default:
            pool.pop("height_m")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


_SCENE_TAGS = ("str", "block", "osm", "procedural")  # SceneSpec's union tags


def _key(loc: tuple) -> str:
    out = ""
    for i, part in enumerate(loc):
        if i > 0 and loc[i - 1] == "scene" and part in _SCENE_TAGS:
            continue  # the union tag: "scene.osm.file", not "scene.osm.osm.file"
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "tagged-union") or "[" in str(part):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _message(err: dict) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "too few values" if isinstance(err["loc"][-1], int) else "required key is missing"
    return msg


def builtin_scenes() -> list[str]:
    """Names of Sionna RT's built-in scenes, found without importing ``sionna.rt``."""
    spec = importlib.util.find_spec("sionna.rt")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(list(spec.submodule_search_locations)[0]) / "scenes"
    return sorted(p.name for p in root.iterdir() if (p / f"{p.name}.xml").is_file())


def resolve_scene(
    scene: str | OSMScene | ProceduralScene, base: Path, frequency_hz: float | None = None
) -> str:
    """Absolute XML path for a built-in name or a path relative to the YAML; 'empty' stays.

    An ``osm`` / ``procedural`` block is built by :func:`simgen.world.build` (or found in its
    cache; materials depend on ``frequency_hz``, required then) and its scene.xml returned."""
    if isinstance(scene, OSMScene | ProceduralScene):
        if frequency_hz is None:
            raise ConfigError("scene: a built scene block needs the carrier frequency_hz")
        from .world import build

        return str(build(scene, frequency_hz, base))
    if scene == EMPTY_SCENE:
        return scene
    if scene in builtin_scenes():
        spec = importlib.util.find_spec("sionna.rt")
        root = Path(list(spec.submodule_search_locations)[0]) / "scenes"
        return str(root / scene / f"{scene}.xml")
    path = (base / scene).resolve()
    if path.suffix.lower() == ".xml" and path.is_file():
        return str(path)
    raise ConfigError(
        f"scene: unknown scene {scene!r}: not a Sionna built-in ({', '.join(builtin_scenes())}),"
        f" 'empty', or an existing Mitsuba .xml file"
    )


def parse_config(text: str, source: str = "<config>") -> SceneConfig:
    """Validate YAML text; raise ConfigError('<source>: <key>: <problem>') on the first problem."""
    data = read_yaml_mapping(text, source)
    try:
        # JSON mode: strict types, but YAML lists may fill tuples and ints may fill floats.
        return SceneConfig.model_validate_json(json.dumps(data, default=str))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc, msg = err["loc"], _message(err)
        if err["type"] == "missing" and isinstance(loc[-1], int):
            loc = loc[:-1]  # "position: too few values" rather than "position[2]: ..."
        where = f"{_key(loc)}: " if loc else ""  # model-wide checks name their keys
        raise ConfigError(f"{source}: {where}{msg}") from None


def load_config(path: str | Path) -> tuple[SceneConfig, str, str]:
    """Read a scene YAML. Returns (config, YAML text, resolved scene path or 'empty')."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such scene file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a UTF-8 text file (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}); give a scene YAML"
        ) from None
    cfg = parse_config(text, str(path))
    try:
        return cfg, text, resolve_scene(cfg.scene, path.parent, cfg.frequency_hz)
    except WorldError as exc:  # a scene block that cannot be built: name the key
        key = "scene.osm" if isinstance(cfg.scene, OSMScene) else "scene.procedural"
        raise ConfigError(f"{path}: {key}: {exc}") from None
