"""The strict building blocks of every simgen config: integral counts (``1e5`` accepted),
finite reals, [x, y, z] / [min, max] tuples in metres, the frozen, extra-forbidding base
model, and the YAML loader that refuses a repeated key. One place, imported by
:mod:`simgen.config`, :mod:`simgen.world.blocks` and :mod:`simgen.pool`."""

from __future__ import annotations

import re
from typing import Annotated

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from .errors import ConfigError


def as_int(v: object) -> object:
    """Accept integral floats such as ``1e5`` for counts."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _finite(v: float) -> float:
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError("must be a finite number")
    return v


Count = Annotated[int, BeforeValidator(as_int), Field(gt=0)]
Real = Annotated[float, AfterValidator(_finite)]
Vec3 = Annotated[tuple[Real, Real, Real], Field(description="[x, y, z] in metres")]
Range = Annotated[tuple[Real, Real], Field(description="[min, max] in metres")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


PositiveReal = Annotated[Real, Field(gt=0)]


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``3.5e9`` (YAML 1.2 style) as a float and refuses a key
    repeated in one mapping (plain YAML would silently keep the last value)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable key: SafeLoader reports it
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first given at line {first + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def read_yaml_mapping(text: str, source: str) -> dict:
    """The top-level mapping of a YAML text read with :class:`StrictLoader`; ConfigError
    ('<source>: invalid YAML at line L, column C: <problem>', or not a mapping) otherwise."""
    try:
        data = yaml.load(text, Loader=StrictLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level")
    return data
