"""The twin's configuration (``twin.toml``): what area, which sources, who stewards them, how to model.

Validation happens here, once, so every later stage can trust its inputs. Errors name the file, the
key and what was expected.
"""

from __future__ import annotations

import math
import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from civictwin.config_consult import ConsultationConfig, ProposalsSection, check_unique_consultations
from civictwin.config_live import LiveSection, RuleConfig, WebhookConfig, check_unique
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
    MOBILITY = "mobility"
    OGCAPI_FEATURES = "ogcapi_features"
    WFS = "wfs"
    SENSORTHINGS = "sensorthings"
    SURVEY = "survey"
    DRONE = "drone"


REMOTE_KINDS = frozenset({SourceKind.OGCAPI_FEATURES, SourceKind.WFS, SourceKind.SENSORTHINGS})
"""Source kinds read from a data platform's API (``url``) instead of a file (``path``)."""
_REMOTE_OPTIONS = ("url", "collection", "typename", "page_size", "token_env", "username_env", "password_env")
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_LAYERS = {SourceKind.VECTOR, SourceKind.OGCAPI_FEATURES, SourceKind.WFS}
"""Kinds giving a plain feature layer that zones and conflation rules may name."""


DATABASE_URL_SCHEMES = ("postgresql://", "postgres://")
"""How a ``store`` value naming a PostGIS database begins (a libpq connection URI)."""


def is_database_url(value: str) -> bool:
    """Whether a ``store`` value names a PostGIS database rather than a DuckDB file."""
    return value.startswith(DATABASE_URL_SCHEMES)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TwinSection(_Strict):
    """Identity of the twin and where its store lives."""

    name: Annotated[str, Field(min_length=1, max_length=120)]
    description: str = ""
    crs: str | None = Field(
        default=None, description="Metric CRS for storage; default: the UTM zone of the area's centre."
    )
    store: str | None = Field(
        default=None,
        description="Store: a DuckDB file (default: <twin dir>/<name>.duckdb) or a postgresql:// URL (PostGIS)",
    )

    @field_validator("store")
    @classmethod
    def _store_holds_no_password(cls, value: str | None) -> str | None:
        """A PostGIS URL names the database, never its password (which would end up in files)."""
        if value is None or not is_database_url(value):
            return value
        from urllib.parse import parse_qs, urlsplit

        if urlsplit(value).password is not None or "password" in parse_qs(urlsplit(value).query):
            raise ValueError(
                "the URL holds a password: give it in PGPASSWORD, ~/.pgpass or a service file, "
                "never in twin.toml"
            )
        return value

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


class DataFileConfig(_Strict):
    """A data file an engine reads directly (a weather year, a building typology), with its licence."""

    path: str = Field(min_length=1)
    licence: str = Field(min_length=1)
    publisher: str = Field(min_length=1)
    note: str = Field(default="", description="Why this file, e.g. which country's typology stands in")


class EnergySection(_Strict):
    """Inputs of the NetZero buildings engine (docs/methods-energy.md)."""

    weather: DataFileConfig | None = Field(default=None, description="EPW file of a typical year")
    typology: DataFileConfig | None = Field(default=None, description="TABULA typology CSV of one country")
    fallback_year: Annotated[int, Field(ge=1000, le=2100)] | None = Field(
        default=None, description="Construction year of buildings without one; default: median of the known"
    )
    heating_system: Literal["district_heating", "heat_pump", "gas_boiler", "oil_boiler", "electric"] = (
        "district_heating"
    )
    emission_factors: dict[
        Literal["electricity", "district_heating", "gas", "oil"], Annotated[float, Field(ge=0, le=2)]
    ] = Field(default_factory=dict, description="kg CO2 per kWh of final energy, per carrier")
    emission_factors_source: str = ""
    sample_assumed_ranges: bool = Field(
        default=True,
        description="Seeds draw the uncertain parameters whose ranges are assumptions (false: central values)",
    )

    @model_validator(mode="after")
    def _factors_have_source(self) -> EnergySection:
        if self.emission_factors and not self.emission_factors_source.strip():
            raise ValueError("emission_factors need emission_factors_source (where the values come from)")
        return self


_DECLARES_CRS_ONLY = frozenset({SourceKind.CITYJSON, SourceKind.CITYGML, SourceKind.DEM, SourceKind.MOBILITY})


_MOBILITY_OPTIONS = ("zoning", "zoning_id", "presence", "k_anonymity")
_SURVEY_OPTIONS = ("geopoint", "photos", "media")


class SourceConfig(_Strict):
    """One input dataset with its governance metadata."""

    name: Annotated[str, Field(pattern=_NAME_PATTERN)]
    kind: SourceKind
    path: str = Field(default="", description="The source's file (every kind but the remote ones)")
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
    cell_size_m: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="Grid of cell-centre points: the side of each square cell (m)"
    )
    h3_column: str | None = Field(default=None, description="Grid keyed by H3 cell ids in this column")
    zoning: str | None = Field(default=None, description="Mobility: the provider's zoning file (polygons)")
    zoning_id: str | None = Field(default=None, description="Mobility: the zone id column of the zoning file")
    presence: str | None = Field(
        default=None, description="Mobility: presence counts CSV (zone, hour, count)"
    )
    k_anonymity: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Mobility: cells under k are suppressed before storing (default 10)"
    )
    # street surveys (kind survey: ODK Central / KoboToolbox exports; docs/configuration.md)
    geopoint: str | None = Field(
        default=None,
        description="Survey: the geopoint question giving each answer's place (default: the only one)",
    )
    photos: list[str] | None = Field(
        default=None, description="Survey: answer columns naming photo attachments (copied without metadata)"
    )
    media: str | None = Field(
        default=None, description="Survey: folder holding the attachments (default: media/ beside the export)"
    )
    # a data platform's API (kinds ogcapi_features, wfs, sensorthings; docs/configuration.md)
    url: str | None = Field(default=None, description="Remote: the service's base URL (no credentials in it)")
    collection: str | None = Field(default=None, description="ogcapi_features: the collection id")
    typename: str | None = Field(default=None, description="wfs: the feature type name")
    page_size: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        default=None, description="Remote: features asked for per request (default 1000)"
    )
    token_env: str | None = Field(
        default=None, pattern=_ENV_NAME, description="Remote: environment variable holding a bearer token"
    )
    username_env: str | None = Field(
        default=None, pattern=_ENV_NAME, description="Remote: environment variable holding the user name"
    )
    password_env: str | None = Field(
        default=None, pattern=_ENV_NAME, description="Remote: environment variable holding the password"
    )
    # GDPR: personal data in this source (docs/configuration.md, "Personal data")
    personal: list[str] = Field(default_factory=list, description="Columns holding personal data")
    not_personal: list[str] = Field(
        default_factory=list, description="Columns recognised as personal that the steward says are not"
    )
    personal_locations: bool = Field(
        default=False, description="Geometries are exact home locations of people (never public)"
    )
    legal_basis: str | None = Field(default=None, description="GDPR Art. 6 legal basis for the personal data")
    retention_days: Annotated[int, Field(gt=0)] | None = Field(
        default=None, description="How long the personal data may be kept (days)"
    )

    @model_validator(mode="after")
    def _personal_data_declared(self) -> SourceConfig:
        both = sorted(set(self.personal) & set(self.not_personal))
        if both:
            raise ValueError(f"column(s) {', '.join(both)} listed in both `personal` and `not_personal`")
        if (self.personal or self.personal_locations) and not (self.legal_basis and self.retention_days):
            raise ValueError("personal data needs its `legal_basis` and `retention_days`")
        return self

    @model_validator(mode="after")
    def _options_fit_kind(self) -> SourceConfig:
        grid_only = sorted(k for k in ("cell_size_m", "h3_column") if getattr(self, k) is not None)
        if grid_only and self.kind != SourceKind.GRID:
            raise ValueError(f"option(s) {', '.join(grid_only)} apply only to kind 'grid'")
        mobility_only = sorted(k for k in _MOBILITY_OPTIONS if getattr(self, k) is not None)
        if mobility_only and self.kind != SourceKind.MOBILITY:
            raise ValueError(f"option(s) {', '.join(mobility_only)} apply only to kind 'mobility'")
        if self.kind == SourceKind.MOBILITY and self.zoning is None:
            raise ValueError("kind 'mobility' needs `zoning`: the provider's zone polygons")
        survey_only = sorted(k for k in _SURVEY_OPTIONS if getattr(self, k) is not None)
        if survey_only and self.kind != SourceKind.SURVEY:
            raise ValueError(f"option(s) {', '.join(survey_only)} apply only to kind 'survey'")
        self._remote_options_fit()
        if self.h3_column is not None and (self.cell_size_m is not None or self.wkt is not None or self.x):
            raise ValueError("`h3_column` gives the cells; do not combine it with cell_size_m, wkt or x/y")
        vector_like = {SourceKind.GRID, SourceKind.VECTOR}
        tabular = {"layer", "columns", "crs", "x", "y", "wkt"}
        if self.kind in _DECLARES_CRS_ONLY:
            tabular = tabular - {"crs"}  # 3D city models and DEMs may need a CRS their file does not declare
        if self.kind in REMOTE_KINDS:
            tabular = tabular - {"columns"}  # remote layers may keep only some attributes
        if self.kind not in vector_like:
            misplaced = sorted(k for k in tabular if getattr(self, k) is not None)
            if misplaced:
                raise ValueError(f"option(s) {', '.join(misplaced)} do not apply to kind '{self.kind}'")
        if (self.x is None) != (self.y is None):
            raise ValueError("give both `x` and `y` columns, or neither")
        if self.wkt is not None and self.x is not None:
            raise ValueError("give either `wkt` or `x`/`y`, not both")
        return self

    def _remote_options_fit(self) -> None:
        """Remote kinds need ``url`` (and their collection or type name); file kinds need ``path``."""
        if self.kind not in REMOTE_KINDS:
            misplaced = sorted(k for k in _REMOTE_OPTIONS if getattr(self, k) is not None)
            if misplaced:
                raise ValueError(
                    f"option(s) {', '.join(misplaced)} apply only to kinds {_kinds(set(REMOTE_KINDS))}"
                )
            if not self.path:
                raise ValueError(f"kind '{self.kind}' needs `path`")
            return
        if self.path:
            raise ValueError(f"kind '{self.kind}' is read from `url`, not `path`")
        if self.url is None or not re.match(r"^https?://[^/?#\s@]+(/[^#\s]*)?$", self.url):
            raise ValueError(f"kind '{self.kind}' needs `url`: an absolute http(s) URL without credentials")
        needed = {SourceKind.OGCAPI_FEATURES: "collection", SourceKind.WFS: "typename"}.get(self.kind)
        for key in ("collection", "typename"):
            if (key == needed) != (getattr(self, key) is not None):
                raise ValueError(
                    f"kind '{self.kind}' " + ("needs" if key == needed else "takes no") + f" `{key}`"
                )
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("give both username_env and password_env, or neither")
        if self.token_env is not None and self.username_env is not None:
            raise ValueError("give token_env or username_env/password_env, not both")

    @property
    def display_title(self) -> str:
        """A human title: the configured one or the source name."""
        return self.title or self.name.replace("_", " ").capitalize()


class ServerSection(_Strict):
    """How ``civictwin serve`` sits in a city's network: public URL, trusted hosts, proxies, TLS, headers."""

    public_url: str | None = Field(
        default=None, description="Base URL clients use (https://twin.example.org/); links are built from it"
    )
    trusted_hosts: list[str] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "::1"],
        description='Host header values accepted ("*" for any); the public URL\'s host is always trusted',
    )
    forwarded_allow_ips: list[str] = Field(
        default_factory=list,
        description="Reverse proxies (IPs or networks) whose X-Forwarded-* headers count",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Browser origins allowed to call the API"
    )
    frame_ancestors: list[str] = Field(
        default_factory=lambda: ["'self'"], description="CSP frame-ancestors: who may embed the pages"
    )
    tls_certificate: str | None = Field(default=None, description="PEM certificate (chain) for native HTTPS")
    tls_private_key: str | None = Field(default=None, description="PEM private key of the certificate")
    hsts_max_age_s: Annotated[int, Field(ge=0)] = 31_536_000
    shutdown_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    metrics_public: bool = False
    shared_limits: Literal["host", "database"] = Field(
        default="host",
        description='Where rate limits are counted: "host" (the workers of one server) or "database" (every '
        "replica on one PostGIS twin, with the same CIVICTWIN_SERVER_KEY)",
    )
    tokens: Literal["file", "database"] = Field(
        default="file",
        description='Where API tokens are kept: "file" (<store>.tokens.json) or "database" (the schema '
        "civictwin_tokens of a PostGIS twin's database, shared by replicas on several hosts)",
    )

    @field_validator("public_url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", value):
            raise ValueError(f"expected an absolute http(s) URL without query, got {value!r}")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSection:
        if (self.tls_certificate is None) != (self.tls_private_key is None):
            raise ValueError("give both tls_certificate and tls_private_key, or neither")
        return self


class AuditSection(_Strict):
    """Rotation, retention and privacy of the audit and security logs."""

    max_megabytes: Annotated[float, Field(gt=0)] = 100.0
    """Rotate a log once it reaches this size (MiB)."""
    rotate_after_hours: Annotated[float, Field(gt=0)] = 24.0
    """Rotate a log once its first record is this old (hours)."""
    retention_days: Annotated[float, Field(gt=0)] = 180.0
    """Delete rotated logs older than this (days)."""
    client_addresses: Literal["truncated", "hashed", "full"] = "truncated"
    """Client IPs are personal data: truncated to /24 (IPv4) or /48 (IPv6), a keyed hash, or full."""


class SensorFormat(StrEnum):
    """The observation formats ``civictwin sensors import`` reads."""

    CSV = "csv"
    SENSORTHINGS = "sensorthings"
    UBA = "uba"
    HELSINKI_COUNTS = "helsinki_counts"


class ObservedPropertyConfig(_Strict):
    """What a CSV property key measures: its name, UCUM unit and plausible range."""

    name: str = Field(min_length=1)
    unit: str = Field(min_length=1, description="UCUM code, e.g. 'ug/m3', 'Cel', '{vehicle}/h'")
    symbol: str | None = Field(default=None, description="Unit symbol for people; default: the UCUM code")
    unit_name: str | None = None
    definition: str = ""
    min: float | None = Field(default=None, description="Smallest plausible value; below is rejected")
    max: float | None = Field(default=None, description="Largest plausible value; above is rejected")


class ThingConfig(_Strict):
    """A station of a CSV source: its name and WGS84 position."""

    name: str = Field(min_length=1)
    lon: Annotated[float, Field(ge=-180, le=180)]
    lat: Annotated[float, Field(ge=-90, le=90)]
    description: str = ""


class CsvConfig(_Strict):
    """How a CSV file of observations is laid out (``[sensors.csv]``)."""

    layout: Literal["long", "wide"] = "long"
    time: str = Field(min_length=1, description="Column with the phenomenon time")
    time_format: str = Field(default="ISO8601", description="strptime pattern, or ISO8601")
    timezone: str | None = Field(default=None, description="IANA zone of times written without an offset")
    ambiguous: Literal["reject", "earlier", "later", "infer"] = "reject"
    time_is: Literal["start", "end"] = "start"
    interval_s: Annotated[int, Field(gt=0)] | None = None
    missing: list[str] = Field(default_factory=lambda: ["-999", ""])
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    decimal: Literal[".", ","] = "."
    encoding: str = "utf-8"
    thing: str | None = Field(default=None, description="Column naming the station (optional with one)")
    property: str | None = Field(default=None, description="long: column naming the observed property")
    value: str | None = Field(default=None, description="long: column with the result")
    columns: dict[str, str] | None = Field(default=None, description="wide: value column -> property key")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as 'Europe/Berlin')"
            ) from None
        return value

    @model_validator(mode="after")
    def _layout_complete(self) -> CsvConfig:
        if self.layout == "long" and (self.property is None or self.value is None or self.columns):
            raise ValueError("layout 'long' needs `property` and `value` columns (and no `columns`)")
        if self.layout == "wide" and (not self.columns or self.property or self.value):
            raise ValueError("layout 'wide' needs `columns` = { value column = property key } only")
        if self.time_is == "end" and self.interval_s is None:
            raise ValueError("time_is = 'end' needs interval_s (the length of each observation's interval)")
        return self


class SensorSourceConfig(_Strict):
    """One ``[[sensors]]`` entry: observations to import, with their governance (as for sources)."""

    name: Annotated[str, Field(pattern=_NAME_PATTERN)]
    format: SensorFormat
    path: str | None = Field(default=None, description="File or directory to import")
    url: str | None = Field(default=None, description="sensorthings: the server's service root URL")
    token_env: str | None = Field(
        default=None, pattern=_ENV_NAME, description="url: environment variable holding a bearer token"
    )
    username_env: str | None = Field(
        default=None, pattern=_ENV_NAME, description="url: environment variable holding the user name"
    )
    password_env: str | None = Field(
        default=None, pattern=_ENV_NAME, description="url: environment variable holding the password"
    )
    title: str | None = None
    licence: str = Field(min_length=1)
    publisher: str = Field(min_length=1)
    steward: str = Field(min_length=1)
    access: AccessLevel = AccessLevel.PUBLIC
    description: str = ""
    clip: bool = Field(default=True, description="Import only stations inside the twin's area")
    csv: CsvConfig | None = None
    properties: dict[str, ObservedPropertyConfig] = Field(default_factory=dict)
    things: dict[str, ThingConfig] = Field(default_factory=dict)
    stations: list[str] | None = Field(default=None, description="uba: station codes to import")
    components: list[str] | None = Field(default=None, description="uba: pollutant codes to import")
    series: list[str] | None = Field(default=None, description="uba: series codes (1SMW, 1TMW...)")
    classes: list[str] | None = Field(default=None, description="helsinki_counts: vehicle classes")
    centre: tuple[float, float] | None = Field(default=None, description="helsinki_counts: [lon, lat]")
    max_distance_m: Annotated[float, Field(gt=0, le=500)] = 50.0

    @model_validator(mode="after")
    def _options_fit_format(self) -> SensorSourceConfig:
        allowed = {
            SensorFormat.CSV: {"csv", "properties", "things"},
            SensorFormat.SENSORTHINGS: set(),
            SensorFormat.UBA: {"stations", "components", "series"},
            SensorFormat.HELSINKI_COUNTS: {"classes", "centre", "max_distance_m"},
        }[self.format]
        optional = {"csv", "properties", "things", "stations", "components", "series", "classes", "centre",
                    "max_distance_m"}  # fmt: skip
        misplaced = sorted(k for k in optional - allowed if k in self.model_fields_set)
        if misplaced:
            raise ValueError(f"option(s) {', '.join(misplaced)} do not apply to format '{self.format}'")
        if (self.path is None) == (self.url is None) or (
            self.url and self.format != SensorFormat.SENSORTHINGS
        ):
            raise ValueError("give `path` (or, for format 'sensorthings', `url` instead)")
        credentials = [
            k for k in ("token_env", "username_env", "password_env") if getattr(self, k) is not None
        ]
        if credentials and self.url is None:
            raise ValueError(f"option(s) {', '.join(credentials)} apply only with `url`")
        if (self.username_env is None) != (self.password_env is None) or (
            self.token_env and self.username_env
        ):
            raise ValueError("give token_env, or username_env and password_env, or none")
        if self.format == SensorFormat.CSV and (self.csv is None or not self.properties):
            raise ValueError(
                "format 'csv' needs a [sensors.csv] mapping and [sensors.properties.<key>] units"
            )
        if self.format == SensorFormat.HELSINKI_COUNTS and self.centre is None:
            raise ValueError("format 'helsinki_counts' needs centre = [lon, lat] (inbound is towards it)")
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


class ComputeSection(_Strict):
    """``[compute]``: where ``civictwin compare`` and ``simulate`` run their seeds by default."""

    cluster: str | None = Field(
        default=None,
        pattern=r"^(local|(tcp|tls)://\S+)$",
        description="A Dask scheduler (tcp://host:8786) or 'local' for a Dask LocalCluster; "
        "unset: the local process pool. --cluster overrides it.",
    )
    connect_timeout_s: Annotated[float, Field(gt=0, le=600)] = Field(
        default=10.0, description="Seconds to wait for the Dask scheduler to answer"
    )


class BuildSection(_Strict):
    """``[build]``: how much memory and disk a build may use (docs/configuration.md, region-sized twins)."""

    memory_mb: Annotated[int, Field(ge=64, le=1_048_576)] = Field(
        default=4096,
        description="Memory budget of a build (MB): DuckDB's working memory is capped at shares of it and "
        "spills to disk beyond; the road network is built in spatial partitions sized to fit it",
    )
    spill_mb: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="Most disk (MB) the build's working memory may spill to; unset: DuckDB's default "
        "(90% of the free space where it spills)",
    )
    temp_dir: str | None = Field(
        default=None, description="Folder for spilled working memory; default: the system's temporary folder"
    )


class ReadinessSection(_Strict):
    """Use-case readiness (docs/readiness.md): the city's own use-case templates."""

    templates: str | None = Field(
        default=None,
        description="Folder of the city's own use-case templates (*.toml), beside the built-in ones",
    )


class SociodemographicsSection(_Strict):
    """``[sociodemographics]``: a grid or statistical-area layer's numeric columns on the zones, and the
    equity view's grouping of zones (docs/methods-sociodemographics.md)."""

    source: str = Field(description="Grid or vector source (statistical areas) with numeric columns")
    weighting: Literal["area", "residents"] = Field(
        default="residents",
        description="'residents': dasymetric, through the residents of the twin's buildings; 'area': by area",
    )
    intensive: list[str] = Field(
        default_factory=list,
        description="Columns that are averages or rates (median income, car share): weight-averaged; "
        "every other numeric column is a count and is split by weight",
    )
    equity_by: list[str] = Field(
        default_factory=list,
        description="Columns whose classes the equity view breaks KPI changes down by (counts per resident)",
    )
    classes: Annotated[int, Field(ge=2, le=10)] = Field(
        default=5, description="Classes per column (5: quintiles)"
    )
    car_availability: str | None = Field(
        default=None,
        description="Intensive column: share (0-1) of residents with a car available, for the mode choice",
    )

    @model_validator(mode="after")
    def _named_columns_known(self) -> SociodemographicsSection:
        if self.car_availability is not None and self.car_availability not in self.intensive:
            raise ValueError(
                f"car_availability '{self.car_availability}' must be listed in `intensive` (a share)"
            )
        return self


MODAL_SPLIT_MODES = ("car", "pt", "bike", "walk")
"""The modes the traffic engine's mode choice knows (``engines/traffic/modechoice.MODES``)."""
SHARE_SUM_TOLERANCE = 0.02
"""How far the configured shares may add up from 1: four shares published in whole per cent, each
rounded by up to half a point, can add up to 98–102 %."""


class ModalSplitSection(_Strict):
    """``[modal_split]``: the observed modal split of the twin's residents' trips (e.g. a travel survey),
    to which ``civictwin calibrate run`` calibrates the mode choice's constants
    (docs/methods-calibration.md, section 6)."""

    shares: dict[str, float] = Field(
        description="Share (0-1) of the residents' trips per mode: car, pt, bike, walk; every mode the "
        "twin's mode choice can produce, and only those"
    )
    source: str = Field(
        min_length=1, description="Where the shares come from: survey, year, population and area, table"
    )

    @field_validator("shares")
    @classmethod
    def _shares_valid(cls, shares: dict[str, float]) -> dict[str, float]:
        for mode, share in shares.items():
            if mode not in MODAL_SPLIT_MODES:
                raise ValueError(
                    f"unknown mode '{mode}' (the mode choice's modes: {', '.join(MODAL_SPLIT_MODES)})"
                )
            if not math.isfinite(share) or share < 0:
                raise ValueError(f"share of '{mode}' is {share}: a share is a number from 0 to 1")
            if share == 0:
                raise ValueError(
                    f"share of '{mode}' is 0: a logit gives every mode it can produce a positive share; "
                    "leave out only a mode the twin cannot produce"
                )
        total = sum(shares.values())
        if abs(total - 1.0) > SHARE_SUM_TOLERANCE:
            raise ValueError(f"the shares sum to {total:.3g}, not 1 (± {SHARE_SUM_TOLERANCE:g})")
        return shares


class TwinConfig(_Strict):
    """The whole ``twin.toml``."""

    twin: TwinSection
    area: AreaSection
    zones: ZonesSection = ZonesSection()
    population: PopulationSection = PopulationSection()
    buildings: BuildingsSection = BuildingsSection()
    server: ServerSection = ServerSection()
    audit: AuditSection = AuditSection()
    energy: EnergySection = EnergySection()
    sources: Annotated[list[SourceConfig], Field(min_length=1)]
    sensors: list[SensorSourceConfig] = Field(default_factory=list)
    live: LiveSection | None = None
    rules: list[RuleConfig] = Field(default_factory=list)
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    conflation: list[ConflationRule] = Field(default_factory=list)
    terrain: TerrainSection = TerrainSection()
    compute: ComputeSection = ComputeSection()
    build: BuildSection = BuildSection()
    readiness: ReadinessSection = ReadinessSection()
    sociodemographics: SociodemographicsSection | None = None
    modal_split: ModalSplitSection | None = None
    consultations: list[ConsultationConfig] = Field(default_factory=list)
    proposals: ProposalsSection = ProposalsSection()
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _references_resolve(self) -> TwinConfig:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate source name(s): {', '.join(dupes)}")
        if sum(s.kind == SourceKind.OSM for s in self.sources) > 1:
            raise ValueError("at most one source of kind 'osm' per twin")
        sensor_names = [s.name for s in self.sensors]
        clashes = sorted({n for n in sensor_names if sensor_names.count(n) > 1 or n in names})
        if clashes:
            raise ValueError(f"sensors name(s) used twice or by a source: {', '.join(clashes)}")
        kinds = {s.name: s.kind for s in self.sources}
        for label, ref, allowed in (
            ("area.source", self.area.source, {SourceKind.VECTOR, SourceKind.GRID}),
            ("zones.source", self.zones.source, _LAYERS),
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

    @model_validator(mode="after")
    def _live_names_unique(self) -> TwinConfig:
        check_unique(self.rules, self.webhooks)
        check_unique_consultations(self.consultations)
        return self

    @model_validator(mode="after")
    def _sociodemographics_source_known(self) -> TwinConfig:
        section = self.sociodemographics
        kinds = {s.name: s.kind for s in self.sources}
        allowed = {SourceKind.GRID, *_LAYERS}
        if section is not None and kinds.get(section.source) not in allowed:
            raise ValueError(f"sociodemographics.source names '{section.source}', which is not a source of "
                             f"kind {_kinds(allowed)}")  # fmt: skip
        return self

    def _city_references_resolve(self, kinds: dict[str, SourceKind]) -> None:
        city_models = {SourceKind.CITYJSON, SourceKind.CITYGML}
        for n, rule in enumerate(self.conflation):
            allowed = city_models | _LAYERS if rule.layer == "buildings" else _LAYERS
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
        """Where the twin's embedded store lives; with a PostGIS ``store``, the default file name the
        files kept beside the twin (tokens, logs, observations) are named after."""
        store = self.twin.store
        if store is not None and is_database_url(store):
            store = None
        return self.resolve(store or f"{slug(self.twin.name)}.duckdb")

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
        if (
            isinstance(item, int)
            and parts
            and parts[-1] in ("sources", "sensors", "rules", "webhooks", "consultations")
        ):
            name = _source_name(data, item, parts[-1])
            parts[-1] = f"{parts[-1]}[{item}]" + (f" ({name})" if name else "")
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


def _source_name(data: dict[str, Any], index: int, section: str = "sources") -> str | None:
    sources = data.get(section)
    if isinstance(sources, list) and 0 <= index < len(sources) and isinstance(sources[index], dict):
        name = sources[index].get("name", sources[index].get("comparison"))
        return name if isinstance(name, str) else None
    return None
