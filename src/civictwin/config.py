"""The twin's configuration (``twin.toml``): what area, which sources, who stewards them, how to model.

Validation happens here, once, so every later stage can trust its inputs. Errors name the file, the
key and what was expected.
"""

from __future__ import annotations

import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from civictwin.errors import ConfigError

CONFIG_FILENAME = "twin.toml"
_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"


class AccessLevel(StrEnum):
    """Who may read a dataset once published."""

    PUBLIC = "public"
    INTERNAL = "internal"
    RESTRICTED = "restricted"


class SourceKind(StrEnum):
    """The kinds of source civictwin can read."""

    OSM = "osm"
    GTFS = "gtfs"
    GRID = "grid"
    VECTOR = "vector"
    CITYJSON = "cityjson"
    CITYGML = "citygml"
    DEM = "dem"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TwinSection(_Strict):
    """Identity of the twin and where its store lives."""

    name: Annotated[str, Field(min_length=1, max_length=120)]
    description: str = ""
    crs: str | None = Field(
        default=None, description="Metric CRS for storage; default: the UTM zone of the area's centre."
    )
    store: str | None = Field(default=None, description="Store file; default: <twin dir>/<name>.duckdb")

    @field_validator("crs")
    @classmethod
    def _crs_is_metric(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            crs = CRS.from_user_input(value)
        except CRSError as exc:
            raise ValueError(f"unknown CRS {value!r}") from exc
        if not crs.is_projected or crs.axis_info[0].unit_name not in ("metre", "meter"):
            raise ValueError(f"{value!r} is not a projected CRS in metres")
        return value


class AreaSection(_Strict):
    """The area of interest: a WGS84 bbox, a polygon file, or a named polygon inside a source."""

    bbox: tuple[float, float, float, float] | None = Field(
        default=None, description="[min_lon, min_lat, max_lon, max_lat] in WGS84"
    )
    polygon: str | None = Field(default=None, description="Path to a file holding the area polygon(s)")
    source: str | None = Field(default=None, description="Name of a vector source holding the polygon")
    where: dict[str, str | int] | None = Field(
        default=None, description="Attribute filter picking the polygon inside `source`"
    )

    @model_validator(mode="after")
    def _exactly_one_way(self) -> AreaSection:
        given = [k for k in ("bbox", "polygon", "source") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of bbox, polygon or source")
        if self.source is not None and not self.where:
            raise ValueError('`source` needs `where`, e.g. where = { name = "Kallio" }')
        if self.bbox is not None:
            min_lon, min_lat, max_lon, max_lat = self.bbox
            if not (-180 <= min_lon < max_lon <= 180 and -90 <= min_lat < max_lat <= 90):
                raise ValueError("bbox must be [min_lon, min_lat, max_lon, max_lat] with min < max in WGS84")
        return self


class ZonesSection(_Strict):
    """How analysis zones are made: H3 cells, or the user's own polygons."""

    kind: Literal["h3", "polygons"] = "h3"
    resolution: Annotated[int, Field(ge=5, le=12)] = 9
    source: str | None = Field(default=None, description="Vector source with zone polygons (kind=polygons)")
    id_column: str | None = None

    @model_validator(mode="after")
    def _polygons_need_source(self) -> ZonesSection:
        if self.kind == "polygons" and not self.source:
            raise ValueError("zones of kind 'polygons' need `source` naming a vector source")
        return self


class PopulationSection(_Strict):
    """Parameters of the dasymetric population estimate used when no population grid is given."""

    persons_per_m2: Annotated[float, Field(gt=0, le=0.2)] = 0.025
    """Residents per m² of residential floor area (0.025 = 40 m² per person)."""
    mixed_use_residential_share: Annotated[float, Field(ge=0, le=1)] = 0.5
    """Share of an untyped building's floor area assumed residential where no OSM land use says otherwise."""
    grid_source: str | None = Field(
        default=None, description="Grid source holding observed population; disables the estimate"
    )
    grid_column: str = "population"


class BuildingsSection(_Strict):
    """Defaults used where OSM gives no height for a building."""

    storey_height_m: Annotated[float, Field(gt=1, le=10)] = 3.0
    default_levels: dict[str, Annotated[int, Field(ge=1, le=200)]] = Field(default_factory=dict)
    """Override the per-type default number of storeys, e.g. { house = 2, apartments = 5 }."""


_DECLARES_CRS_ONLY = frozenset({SourceKind.CITYJSON, SourceKind.CITYGML, SourceKind.DEM})


class SourceConfig(_Strict):
    """One input dataset with its governance metadata."""

    name: Annotated[str, Field(pattern=_NAME_PATTERN)]
    kind: SourceKind
    path: str
    title: str | None = None
    licence: str = Field(min_length=1)
    publisher: str = Field(min_length=1)
    steward: str = Field(min_length=1, description="Person or department responsible for the data")
    access: AccessLevel = AccessLevel.PUBLIC
    description: str = ""
    # reader options; which apply depends on kind (checked below)
    layer: str | None = None
    columns: list[str] | None = None
    crs: str | None = Field(default=None, description="CRS of a file that does not declare one")
    x: str | None = Field(default=None, description="CSV column with longitude/easting")
    y: str | None = Field(default=None, description="CSV column with latitude/northing")
    wkt: str | None = Field(default=None, description="CSV column with WKT geometry")
    clip: bool = True

    @model_validator(mode="after")
    def _options_fit_kind(self) -> SourceConfig:
        vector_like = {SourceKind.GRID, SourceKind.VECTOR}
        tabular = {"layer", "columns", "crs", "x", "y", "wkt"}
        if self.kind in _DECLARES_CRS_ONLY:
            tabular = tabular - {"crs"}  # 3D city models and DEMs may need a CRS their file does not declare
        if self.kind not in vector_like:
            misplaced = sorted(k for k in tabular if getattr(self, k) is not None)
            if misplaced:
                raise ValueError(f"option(s) {', '.join(misplaced)} do not apply to kind '{self.kind}'")
        if (self.x is None) != (self.y is None):
            raise ValueError("give both `x` and `y` columns, or neither")
        if self.wkt is not None and self.x is not None:
            raise ValueError("give either `wkt` or `x`/`y`, not both")
        return self

    @property
    def display_title(self) -> str:
        """A human title: the configured one or the source name."""
        return self.title or self.name.replace("_", " ").capitalize()


BUILDING_ATTRIBUTES = ("geometry", "height_m", "levels", "use", "year_built", "population_est", "name")
"""Twin building attributes a conflation rule may take from the city layer or from OSM."""
STREET_ATTRIBUTES = ("name", "maxspeed_kmh", "lanes", "oneway", "capacity_vph")
"""Network attributes a city road layer may set (per direction, for lanes and capacity see the docs)."""


class ConflationRule(_Strict):
    """How a city layer and OSM are merged into one object per real building or street."""

    layer: Literal["buildings", "streets"]
    source: str = Field(description="The city's layer: a cityjson/citygml source or a vector source")
    prefer: dict[str, Literal["city", "osm"]] = Field(default_factory=dict)
    """Which side wins per twin attribute where both have a value (the other fills gaps)."""
    columns: dict[str, str] = Field(default_factory=dict)
    """The city layer's column for each twin attribute (default: the attribute's own name)."""
    keep_unmatched_osm: bool = True
    keep_unmatched_city: bool | None = None
    """Default: true for buildings, false for streets (city-only streets are listed, not added)."""
    min_overlap: Annotated[float, Field(gt=0, le=1)] = 0.5
    """Buildings: shared area ÷ the smaller footprint needed for a match."""
    max_distance_m: Annotated[float, Field(gt=0, le=100)] = 10.0
    """Streets: farthest a city line may lie from an edge's points to match it (m)."""
    max_angle_deg: Annotated[float, Field(gt=0, le=90)] = 30.0
    """Streets: largest angle between an edge and the city line it matches."""
    name_column: str | None = None
    """Streets: the city's street-name column; edges whose OSM name differs are never matched."""
    conflict_tolerance: Annotated[float, Field(ge=0, le=1)] = 0.1
    """Numbers differing by more than this share of the larger one count as conflicting."""

    @model_validator(mode="after")
    def _attributes_known(self) -> ConflationRule:
        allowed = BUILDING_ATTRIBUTES if self.layer == "buildings" else STREET_ATTRIBUTES
        for key in (*self.prefer, *self.columns):
            if key not in allowed:
                raise ValueError(
                    f"'{key}' is not a {self.layer} attribute (choose from {', '.join(allowed)})"
                )
        if self.layer == "streets" and self.keep_unmatched_city:
            raise ValueError("streets only in the city layer cannot be added to the network (no topology); "
                             "set keep_unmatched_city = false")  # fmt: skip
        return self


class TerrainSection(_Strict):
    """The DEM that gives buildings and network nodes their heights, and walking/cycling speeds on slopes."""

    source: str | None = Field(default=None, description="A `dem` source; default: the only one")
    walk_speed_kmh: Annotated[float, Field(gt=0, le=10)] = 4.8
    """Walking speed on the flat (the mode choice's default), scaled by Tobler's hiking function."""
    bike_speed_kmh: Annotated[float, Field(gt=0, le=40)] = 15.0
    """Cycling speed on the flat (the mode choice's default), scaled by Valhalla's grade factors."""


class TwinConfig(_Strict):
    """The whole ``twin.toml``."""

    twin: TwinSection
    area: AreaSection
    zones: ZonesSection = ZonesSection()
    population: PopulationSection = PopulationSection()
    buildings: BuildingsSection = BuildingsSection()
    sources: Annotated[list[SourceConfig], Field(min_length=1)]
    conflation: list[ConflationRule] = Field(default_factory=list)
    terrain: TerrainSection = TerrainSection()
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _references_resolve(self) -> TwinConfig:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate source name(s): {', '.join(dupes)}")
        if sum(s.kind == SourceKind.OSM for s in self.sources) > 1:
            raise ValueError("at most one source of kind 'osm' per twin")
        kinds = {s.name: s.kind for s in self.sources}
        for label, ref, allowed in (
            ("area.source", self.area.source, {SourceKind.VECTOR, SourceKind.GRID}),
            ("zones.source", self.zones.source, {SourceKind.VECTOR}),
            ("population.grid_source", self.population.grid_source, {SourceKind.GRID}),
        ):
            if ref is None:
                continue
            if ref not in kinds:
                raise ValueError(f"{label} names '{ref}', which is not a source")
            if kinds[ref] not in allowed:
                raise ValueError(f"{label} names '{ref}' of kind '{kinds[ref]}'; expected {_kinds(allowed)}")
        self._city_references_resolve(kinds)
        return self

    def _city_references_resolve(self, kinds: dict[str, SourceKind]) -> None:
        city_models = {SourceKind.CITYJSON, SourceKind.CITYGML}
        for n, rule in enumerate(self.conflation):
            allowed = city_models | {SourceKind.VECTOR} if rule.layer == "buildings" else {SourceKind.VECTOR}
            if rule.source not in kinds:
                raise ValueError(f"conflation[{n}].source names '{rule.source}', which is not a source")
            if kinds[rule.source] not in allowed:
                raise ValueError(f"conflation[{n}].source names '{rule.source}' of kind '{kinds[rule.source]}'; "
                                 f"expected {_kinds(allowed)}")  # fmt: skip
        if sum(rule.layer == "buildings" for rule in self.conflation) > 1:
            raise ValueError("at most one conflation rule of layer 'buildings' (one city building layer)")
        dems = [name for name, kind in kinds.items() if kind == SourceKind.DEM]
        if self.terrain.source is not None and kinds.get(self.terrain.source) != SourceKind.DEM:
            raise ValueError(
                f"terrain.source names '{self.terrain.source}', which is not a source of kind 'dem'"
            )
        if self.terrain.source is None and len(dems) > 1:
            raise ValueError(f"several dem sources ({', '.join(dems)}); name one in terrain.source")

    @property
    def dem_source(self) -> str | None:
        """The DEM source giving the twin its terrain (None when there is none)."""
        if self.terrain.source is not None:
            return self.terrain.source
        return next((s.name for s in self.sources if s.kind == SourceKind.DEM), None)

    def resolve(self, relative: str) -> Path:
        """A path from the config, resolved against the directory holding ``twin.toml``."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else (self.base_dir / path)

    @property
    def store_path(self) -> Path:
        """Where the twin's embedded store lives."""
        return self.resolve(self.twin.store or f"{slug(self.twin.name)}.duckdb")

    def source(self, name: str) -> SourceConfig:
        """The source called ``name``."""
        for src in self.sources:
            if src.name == name:
                return src
        raise ConfigError(f"no source named '{name}'", field="sources")


def _kinds(kinds: set[SourceKind]) -> str:
    return " or ".join(sorted(f"'{k}'" for k in kinds))


def slug(name: str) -> str:
    """A file-system-safe lower-case version of a twin name."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "twin"


def parse_config(data: dict[str, Any], *, base_dir: Path, origin: str = CONFIG_FILENAME) -> TwinConfig:
    """Validate already-parsed TOML data; errors name ``origin``, the key and what was expected."""
    try:
        return TwinConfig.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, data), path=origin) from None


def load_config(path: Path) -> TwinConfig:
    """Read and validate a ``twin.toml`` file (or the one inside a directory)."""
    if path.is_dir() or path.suffix != ".toml":
        path = path / CONFIG_FILENAME
    if not path.is_file():
        raise ConfigError("configuration file not found (run `civictwin init` to write one)", path=path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", path=path) from None
    return parse_config(data, base_dir=path.parent.resolve(), origin=str(path))


def _describe(exc: ValidationError, data: dict[str, Any]) -> str:
    """The first validation error as ``key: problem``, with source names instead of list indexes."""
    err = exc.errors()[0]
    parts: list[str] = []
    for item in err["loc"]:
        if isinstance(item, int) and parts and parts[-1] == "sources":
            name = _source_name(data, item)
            parts[-1] = f"sources[{item}]" + (f" ({name})" if name else "")
        else:
            parts.append(_printable(str(item)))
    key = ".".join(parts)
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif err["type"] == "missing":
        message = "required key is missing"
    elif err["type"] == "enum" and "expected" in err.get("ctx", {}):
        message = f"expected {err['ctx']['expected']}, got {err['input']!r}"
    message = _printable(message.removeprefix("Value error, "))
    return f"{key}: {message}" if key else message


def _printable(text: str) -> str:
    """Text safe for a one-line message: control characters escaped as in a Python literal."""
    return text if text.isprintable() else repr(text)[1:-1]


def _source_name(data: dict[str, Any], index: int) -> str | None:
    sources = data.get("sources")
    if isinstance(sources, list) and 0 <= index < len(sources) and isinstance(sources[index], dict):
        name = sources[index].get("name")
        return name if isinstance(name, str) else None
    return None
