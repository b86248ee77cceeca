"""Street surveys as governed layers: ODK Central and KoboToolbox exports (CSV or GeoJSON), with photos.

One export gives one point layer named after the source: each submission's answers at the place of
its geopoint question, in the twin's CRS, with its submission time (``submitted_at``, UTC). The
export formats, as the tools write them:

- **ODK Central** CSV (also ODK Briefcase): ``SubmissionDate`` first, answers with groups joined by
  ``-``, a geopoint question ``q`` as ``q-Latitude``, ``q-Longitude``, ``q-Altitude``, ``q-Accuracy``,
  then ``KEY``, ``SubmitterID``, ``SubmitterName`` and Central's review columns.
- **KoboToolbox** CSV (``;`` or ``,``): answers (groups joined by ``/``, or the separator chosen, when
  exported with groups; question labels or names as headers),
  a geopoint ``q`` as ``q`` (``"lat lon alt precision"``) plus ``_q_latitude``, ``_q_longitude``,
  ``_q_altitude``, ``_q_precision``, then ``_id``, ``_uuid``, ``_submission_time``, ``_submitted_by``…
- **GeoJSON** (KoboToolbox's GeoJSON export, or any FeatureCollection of points whose properties are
  the answers).

Who answered never enters the twin: the submitter, device, phone, SIM and account columns are
dropped before anything is written, with the servers' bookkeeping columns (ids, review states,
attachment URLs); the quality record lists every dropped column and why. Photo answers name
attachment files: each is checked and copied without any metadata (:mod:`civictwin.fieldwork.photos`)
into ``<store>.media/<source>/`` under its content hash, and the column holds that file name.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry import Point

from civictwin.config import SourceConfig
from civictwin.errors import SourceError, UploadError
from civictwin.fieldwork.observations import GeoPoint, check_coordinate, clean_text, optional_metres
from civictwin.fieldwork.photos import photo_folder, sanitise_photo, store_photo
from civictwin.geometry import WGS84, GeometryReport, prepare_geometries
from civictwin.sources.archives import safe_extract
from civictwin.sources.base import BuildContext, IngestedLayer, IngestResult
from civictwin.sources.vector import completeness

_PERSONAL = "personal data: who or which device submitted"
_BOOKKEEPING = "the collection server's bookkeeping"
ODK_DROPPED: Mapping[str, str] = {
    **dict.fromkeys(("SubmitterID", "SubmitterName", "DeviceID"), _PERSONAL),
    **dict.fromkeys(
        ("KEY", "__id", "AttachmentsPresent", "AttachmentsExpected", "Status", "ReviewState", "Edits", "FormVersion",
         "meta-instanceID", "meta-instanceName", "meta-deprecatedID", "meta-audit", "isValidated"),
        _BOOKKEEPING,
    ),
}  # fmt: skip
"""ODK Central's own columns (case as Central writes them), besides ``SubmissionDate``."""
KOBO_DROPPED: Mapping[str, str] = {
    "_submitted_by": _PERSONAL,
    **dict.fromkeys(
        ("_id", "_uuid", "_validation_status", "_notes", "_status", "__version__", "_version_", "_tags",
         "_index", "_xform_id_string", "_attachments", "_geolocation", "meta/instanceID", "meta/instanceName",
         "meta/deprecatedID", "meta/rootUuid", "formhub/uuid"),
        _BOOKKEEPING,
    ),
}  # fmt: skip
"""KoboToolbox's own columns, besides ``_submission_time``."""
METADATA_QUESTIONS = frozenset(
    {"deviceid", "subscriberid", "simserial", "phonenumber", "username", "email", "audit"}
)
"""XLSForm metadata questions about the device or the person (their default names, any case, in any group)."""
SUBMISSION_TIME = ("SubmissionDate", "_submission_time")
INSTANCE_IDS = ("KEY", "meta-instanceID", "_uuid", "meta/instanceID", "__id")
"""Columns holding a submission's instance id (ODK, Kobo, ODK's GeoJSON), first found wins."""

_ODK_PARTS = {"Latitude": "lat", "Longitude": "lon", "Altitude": "altitude", "Accuracy": "accuracy"}
_KOBO_PART = re.compile(
    r"^(?P<prefix>(?:.*[/.:\-])?)_(?P<name>[^/]+?)_(?P<part>latitude|longitude|altitude|precision)$"
)
"""Kobo's split geopoint column, after an optional group path (``/`` by default; ``.``, ``:`` or ``-`` when chosen)."""
_KOBO_PARTS = {"latitude": "lat", "longitude": "lon", "altitude": "altitude", "precision": "accuracy"}


@dataclass
class SurveyExport:
    """A survey export read and checked: answers (text), places, times, and the columns dropped."""

    path: Path
    flavour: str
    answers: pd.DataFrame
    places: list[GeoPoint | None]
    submitted_at: pd.Series
    row_labels: list[str]
    repeated: np.ndarray
    """True for a submission sent again (its instance id seen in an earlier row): left out."""
    dropped: dict[str, str] = field(default_factory=dict)


def ingest(source: SourceConfig, ctx: BuildContext) -> IngestResult:
    """Read the export (a CSV, a GeoJSON, or ODK Central's zip with its media), write one point layer."""
    path = ctx.path_of(source)
    if path.suffix.lower() != ".zip":
        media = ctx.config.resolve(source.media) if source.media else path.parent / "media"
        return _ingest_export(source, ctx, path, path, media)
    with tempfile.TemporaryDirectory(prefix="civictwin-survey-") as unpacked:
        folder = Path(unpacked)
        export = _export_in(safe_extract(path, folder, keep=(".csv", ".geojson", "media/")), folder, path)
        media = ctx.config.resolve(source.media) if source.media else folder / "media"
        try:
            return _ingest_export(source, ctx, path, export, media)
        except SourceError as exc:
            inside = exc.path is not None and Path(exc.path).is_relative_to(folder)
            if not inside:
                raise
            member = Path(exc.path or "").relative_to(folder).as_posix()
            raise SourceError(exc.message, path=f"{path}:{member}", field=exc.field) from None


def _dropped_notes(dropped: Mapping[str, str]) -> list[str]:
    """One quality note per reason, naming the columns dropped for it."""
    by_reason: dict[str, list[str]] = {}
    for column, why in dropped.items():
        by_reason.setdefault(why, []).append(column)
    return [f"dropped before storing ({why}): {', '.join(columns)}" for why, columns in by_reason.items()]


def _export_in(files: list[Path], folder: Path, archive: Path) -> Path:
    """The form's main table among an archive's top-level files (ODK adds ``<form>-<repeat>.csv``)."""
    tables = [f for f in files if f.parent == folder]
    mains = [t for t in tables if all(o.stem.startswith(t.stem) for o in tables)]
    if len(mains) != 1:
        found = ", ".join(sorted(t.name for t in tables)) or "none"
        raise SourceError(
            f"expected one survey table at the top of the archive, found: {found}", path=archive
        )
    return mains[0]


def _ingest_export(
    source: SourceConfig, ctx: BuildContext, path: Path, file: Path, media: Path
) -> IngestResult:
    """Read one export file, copy its photos without metadata, write the layer (``path``: what was configured)."""
    export = read_export(file, geopoint=source.geopoint)
    photos = _photo_columns(export, source.photos or [], file)
    target = photo_folder(ctx.config.store_path, source.name)
    rows, geometries, report = _kept_rows(export, ctx.crs, ctx.area)
    photo_counts = {"copied": 0, "missing": 0}
    for column in photos:  # only the photos of stored submissions are copied
        export.answers[column] = _copy_photos(export, column, rows, media, target, photo_counts, file)
    frame = _frame(export, rows, geometries, ctx.crs)
    stored = ctx.store.write_table(source.name, frame)
    ctx.report(f"{source.name}: {stored} survey answers, {photo_counts['copied']} photos")
    no_place = sum(place is None for place in export.places)
    repeats = int(export.repeated.sum())
    notes = _dropped_notes(export.dropped)
    if no_place:
        notes.append(f"{no_place} submission(s) without a place (geopoint left empty) not stored")
    if repeats:
        notes.append(f"{repeats} submission(s) exported twice (same instance id) stored once")
    if photo_counts["missing"]:
        notes.append(f"{photo_counts['missing']} photo(s) named in the export are not among its attachments")
    quality = {
        **report.as_dict(),
        "format": export.flavour,
        "without_place": no_place,
        "duplicates": repeats,
        "completeness": completeness(pd.DataFrame(frame.drop(columns="geometry"))),
        "dropped_columns": dict(export.dropped),
        "photos": {**photo_counts, "columns": photos, "metadata": "stripped (re-encoded from pixels)"},
    }
    layer = IngestedLayer(
        table=source.name, rows=stored, title=source.display_title, quality=quality, notes=notes
    )
    return IngestResult(
        source=source,
        path=path,
        layers=[layer],
        lineage={"format": export.flavour, **({"photos_dir": str(target)} if photos else {})},
    )


def read_export(path: Path, *, geopoint: str | None) -> SurveyExport:
    """An ODK Central / KoboToolbox CSV export or a GeoJSON export, by its file name's suffix."""
    if not path.is_file():
        raise SourceError("file not found", path=path)
    if path.suffix.lower() in (".geojson", ".json"):
        return _read_geojson(path)
    if path.suffix.lower() != ".csv":
        raise SourceError("expected a survey export as .csv or .geojson", path=path)
    frame = _read_csv(path)
    if "SubmissionDate" in frame.columns or any(str(c).endswith("-Latitude") for c in frame.columns):
        return _read_table(frame, path, flavour="odk", geopoint=geopoint)
    if "_submission_time" in frame.columns or any(_KOBO_PART.match(str(c)) for c in frame.columns):
        return _read_table(frame, path, flavour="kobo", geopoint=geopoint)
    raise SourceError(
        "not an ODK Central or KoboToolbox export: missing column SubmissionDate (ODK) or _submission_time (Kobo)",
        path=path,
    )


def _read_csv(path: Path) -> pd.DataFrame:
    """The CSV as text, with the delimiter KoboToolbox or ODK used (``;``, ``,`` or tab)."""
    try:
        with path.open(encoding="utf-8-sig") as handle:
            header = handle.readline()
        delimiter = max((",", ";", "\t"), key=header.count)
        return pd.read_csv(path, sep=delimiter, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SourceError(f"not a readable CSV file: {str(exc).splitlines()[0]}", path=path) from None


def _read_table(frame: pd.DataFrame, path: Path, *, flavour: str, geopoint: str | None) -> SurveyExport:
    columns = [str(c) for c in frame.columns]
    parts = _geopoints(columns, flavour)
    name = _chosen_geopoint(parts, geopoint, path)
    labels = [f"row {i + 2}" for i in range(len(frame))]
    places = [_place(frame, parts[name], i, labels[i], path) for i in range(len(frame))]
    time_column = SUBMISSION_TIME[0] if flavour == "odk" else SUBMISSION_TIME[1]
    if time_column not in frame.columns:
        raise SourceError(f"missing column {time_column} (the submission time)", path=path)
    submitted = _times(frame[time_column], labels, time_column, path)
    used = {*parts[name].values(), time_column, *([name] if flavour == "kobo" and name in columns else [])}
    dropped = _dropped(columns, ODK_DROPPED if flavour == "odk" else KOBO_DROPPED)
    answers = frame[[c for c in columns if c not in used and c not in dropped]]
    repeated = _repeated(frame, columns)
    return SurveyExport(path, flavour, answers.copy(), places, submitted, labels, repeated, dropped)


def _repeated(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Rows whose instance id an earlier row already had (a submission exported twice)."""
    column = next((c for c in INSTANCE_IDS if c in columns), None)
    if column is None:
        return np.zeros(len(frame), dtype=bool)
    ids = frame[column].astype(str).str.strip()
    return np.asarray((ids.duplicated() & (ids != "")).to_numpy(), dtype=bool)


def _geopoints(columns: list[str], flavour: str) -> dict[str, dict[str, str]]:
    """Each geopoint question's columns by part (``lat``, ``lon``, ``altitude``, ``accuracy``)."""
    found: dict[str, dict[str, str]] = {}
    for column in columns:
        if flavour == "odk":
            stem, _, suffix = column.rpartition("-")
            if stem and suffix in _ODK_PARTS:
                found.setdefault(stem, {})[_ODK_PARTS[suffix]] = column
        elif match := _KOBO_PART.match(column):
            name = f"{match['prefix']}{match['name']}"
            found.setdefault(name, {})[_KOBO_PARTS[match["part"]]] = column
    return {name: part for name, part in found.items() if {"lat", "lon"} <= part.keys()}


def _chosen_geopoint(parts: Mapping[str, Mapping[str, str]], wanted: str | None, path: Path) -> str:
    if wanted is not None:
        names = [n for n in parts if wanted in (n, re.split(r"[-/.:]", n)[-1])]
        if len(names) != 1:
            found = ", ".join(parts) or "none"
            raise SourceError(f"no single geopoint question '{wanted}' (geopoints found: {found})", path=path)
        return names[0]
    if len(parts) == 1:
        return next(iter(parts))
    if not parts:
        raise SourceError(
            "no geopoint columns (ODK '<question>-Latitude'/'-Longitude', Kobo '_<question>_latitude'/'_longitude')",
            path=path,
        )
    raise SourceError(f"several geopoint questions ({', '.join(parts)}); name one in `geopoint`", path=path)


def _place(
    frame: pd.DataFrame, parts: Mapping[str, str], row: int, label: str, path: Path
) -> GeoPoint | None:
    values = {part: str(frame.at[row, column]).strip() for part, column in parts.items()}
    if not values["lat"] and not values["lon"]:
        return None
    try:
        return GeoPoint(
            lat=check_coordinate(values["lat"], axis="latitude", label=""),
            lon=check_coordinate(values["lon"], axis="longitude", label=""),
            altitude_m=optional_metres(values.get("altitude"), what="an altitude", label=""),
            accuracy_m=optional_metres(values.get("accuracy"), what="an accuracy", label=""),
        )
    except UploadError as exc:
        column = next(c for p, c in parts.items() if _fails(p, values.get(p)))
        raise SourceError(f"{label}, column {column}: {exc.message}", path=path) from None


def _fails(part: str, value: str | None) -> bool:
    """Whether one geopoint part fails its check (to name the column in the error)."""
    try:
        if part in ("lat", "lon"):
            check_coordinate(value or "", axis="latitude" if part == "lat" else "longitude", label="")
        else:
            optional_metres(value, what="", label="")
    except UploadError:
        return True
    return False


def _times(values: pd.Series, labels: list[str], column: str, path: Path) -> pd.Series:
    times = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    bad = np.flatnonzero((times.isna() & (values.astype(str).str.strip() != "")).to_numpy())
    if len(bad):
        raise SourceError(
            f"{labels[bad[0]]}, column {column}: {values.iloc[bad[0]]!r} is not a time", path=path
        )
    return times.reset_index(drop=True)


def _dropped(columns: Iterable[str], own: Mapping[str, str]) -> dict[str, str]:
    """The tool's own columns and the device/person metadata questions, each with why it is dropped.

    Matched by the whole name; personal ones also by the last part of a nested name (``meta-SubmitterName``).
    KoboToolbox's ``<question>_URL`` beside a media answer links to the file on the server under the
    submitting account's name (``media_file=<username>/attachments/…``): dropped as personal.
    """
    columns = list(columns)
    dropped: dict[str, str] = {}
    for column in columns:
        if column.endswith("_URL") and column[: -len("_URL")] in columns:
            dropped[column] = _PERSONAL + " (an attachment URL naming the account)"
            continue
        last = re.split(r"[-/.:]", column)[-1]
        if column in own:
            dropped[column] = own[column]
        elif own.get(last) == _PERSONAL:  # a nested submitter or device name; a nested "Status" is an answer
            dropped[column] = _PERSONAL
        elif column.startswith("__system"):
            dropped[column] = _PERSONAL + " (ODK Central's __system: submitter, device, review)"
        elif last.lower() in METADATA_QUESTIONS:
            dropped[column] = "personal data: a device or account identifier (XLSForm metadata)"
    return dropped


def _as_text(value: Any) -> str:
    """A property value as CSV exports give it: text, empty for null (None or a missing key's NaN)."""
    return "" if value is None or value != value else str(value)


def _flat(properties: Any, prefix: str = "") -> dict[str, Any]:
    """A feature's properties with nested objects flattened (``group-question``), lists as JSON text."""
    flat: dict[str, Any] = {}
    for key, value in (properties or {}).items() if isinstance(properties, dict) else ():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat(value, f"{name}-"))
        else:
            flat[name] = json.dumps(value, ensure_ascii=False) if isinstance(value, list) else value
    return flat


def _read_geojson(path: Path) -> SurveyExport:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"not readable GeoJSON: {exc}", path=path) from None
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(features, list):
        raise SourceError("not a GeoJSON FeatureCollection (no 'features' list)", path=path)
    labels = [f"feature {i + 1}" for i in range(len(features))]
    properties = [_flat(f.get("properties")) if isinstance(f, dict) else {} for f in features]
    places = [_feature_place(f, labels[i], path) for i, f in enumerate(features)]
    frame = pd.DataFrame(properties, dtype=object).map(_as_text)
    columns = [str(c) for c in frame.columns]
    time_column = next((c for c in SUBMISSION_TIME if c in columns), None)
    if time_column is None:
        raise SourceError(
            "missing property SubmissionDate or _submission_time (the submission time)", path=path
        )
    submitted = _times(frame[time_column], labels, time_column, path)
    dropped = _dropped(columns, {**ODK_DROPPED, **KOBO_DROPPED})
    answers = frame[[c for c in columns if c != time_column and c not in dropped]].copy()
    repeated = _repeated(frame, columns)
    return SurveyExport(path, "geojson", answers, places, submitted, labels, repeated, dropped)


def _feature_place(feature: Any, label: str, path: Path) -> GeoPoint | None:
    geometry = feature.get("geometry") if isinstance(feature, dict) else None
    if geometry is None:
        return None
    coordinates = geometry.get("coordinates") if isinstance(geometry, dict) else None
    if geometry.get("type") != "Point" or not isinstance(coordinates, list) or len(coordinates) < 2:
        raise SourceError(
            f"{label}, geometry: expected a Point with [lon, lat], got {json.dumps(geometry)[:80]}", path=path
        )
    try:
        lon = check_coordinate(coordinates[0], axis="longitude", label="")
        lat = check_coordinate(coordinates[1], axis="latitude", label="")
        altitude = optional_metres(
            coordinates[2] if len(coordinates) > 2 else None, what="an altitude", label=""
        )
    except UploadError as exc:
        raise SourceError(f"{label}, geometry: {exc.message}", path=path) from None
    return GeoPoint(lat=lat, lon=lon, altitude_m=altitude)


def _photo_columns(export: SurveyExport, wanted: list[str], path: Path) -> list[str]:
    """The configured photo columns, each checked to be among the answers."""
    missing = [c for c in wanted if c not in export.answers.columns]
    if missing:
        available = ", ".join(export.answers.columns) or "(none)"
        raise SourceError(
            f"missing photo column(s) {', '.join(missing)}; answer columns: {available}", path=path
        )
    return wanted


def _copy_photos(
    export: SurveyExport,
    column: str,
    rows: np.ndarray,
    media: Path,
    target: Path,
    counts: dict[str, int],
    path: Path,
) -> pd.Series:
    """The photos of ``column`` in ``rows`` checked and stored without metadata; the column's new file names."""
    index = _media_index(media)
    names: list[str | None] = [None] * len(export.answers)
    values = export.answers[column].astype(str)
    for row in rows:
        label = f"{export.row_labels[row]}, column {column}"
        value = values.iloc[row].strip()
        if not value:
            continue
        if "/" in value or "\\" in value or value in (".", ".."):
            raise SourceError(f"{label}: {value[:60]!r} is not an attachment file name", path=path)
        found = index.get(value, [])
        if len(found) > 1:
            raise SourceError(f"{label}: '{value}' found {len(found)} times under {media}", path=path)
        if not found:
            counts["missing"] += 1
            continue
        try:
            clean = sanitise_photo(found[0].read_bytes(), label=label)
        except UploadError as exc:
            raise SourceError(exc.message, path=path, field=label) from None
        names[row] = store_photo(clean, target).name
        counts["copied"] += 1
    return pd.Series(names, index=export.answers.index, dtype=object)


def _media_index(media: Path) -> dict[str, list[Path]]:
    """Attachment files under ``media`` by file name (Kobo nests them in one folder per submission)."""
    index: dict[str, list[Path]] = {}
    if media.is_dir():
        for file in sorted(media.rglob("*")):
            if file.is_file():
                index.setdefault(file.name, []).append(file)
    return index


def _kept_rows(export: SurveyExport, crs: str, area: Any) -> tuple[np.ndarray, Any, GeometryReport]:
    """The rows stored (a place inside the area, not a repeat) and their points in ``crs``."""
    located = np.array([place is not None for place in export.places], dtype=bool) & ~export.repeated
    points = np.array([Point(p.lon, p.lat) if p is not None else None for p in export.places], dtype=object)
    kept, geometries, report = prepare_geometries(
        points[located], source_crs=WGS84, target_crs=crs, area=area
    )
    return np.flatnonzero(located)[kept], geometries, report


def _frame(export: SurveyExport, rows: np.ndarray, geometries: Any, crs: str) -> gpd.GeoDataFrame:
    """The stored rows' answers as typed columns, with their times, heights, accuracies and points."""
    answers = export.answers.iloc[rows].reset_index(drop=True)
    columns: dict[str, Any] = {"submitted_at": export.submitted_at.iloc[rows].reset_index(drop=True)}
    for column in answers.columns:
        columns[_column_name(column, columns)] = _typed(answers[column], export, column, rows)
    places = [export.places[i] for i in rows]
    columns["altitude_m"] = [p.altitude_m if p else None for p in places]
    columns["accuracy_m"] = [p.accuracy_m if p else None for p in places]
    return gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries(geometries, crs=crs), crs=crs)


def _column_name(column: str, taken: Mapping[str, Any]) -> str:
    """A plain column name: groups' ``-`` and ``/`` (and other punctuation) become ``_``; unique."""
    name = re.sub(r"\W+", "_", column).strip("_") or "answer"
    if name[0].isdigit():
        name = f"q_{name}"
    candidate, n = name, 1
    while candidate in taken or candidate in ("altitude_m", "accuracy_m", "geometry"):
        n += 1
        candidate = f"{name}_{n}"
    return candidate


def _typed(values: pd.Series, export: SurveyExport, column: str, rows: np.ndarray) -> pd.Series:
    """Numbers where every non-empty answer is one; otherwise clean text (markup kept as typed, never rendered)."""
    if values.dtype == object and values.map(lambda v: v is None).all():
        return values
    text = values.astype(object).where(values.notna(), "").astype(str)
    present = text.str.strip() != ""
    numbers = pd.to_numeric(text.where(present), errors="coerce")
    if present.any() and numbers[present].notna().all():
        return numbers
    cleaned: list[str | None] = []
    for row, value in zip(rows, text, strict=True):
        label = f"{export.row_labels[row]}, column {column}"
        try:
            cleaned.append(clean_text(value, label=label) or None)
        except UploadError as exc:
            raise SourceError(exc.message, path=export.path, field=label) from None
    return pd.Series(cleaned, index=values.index, dtype=object)
