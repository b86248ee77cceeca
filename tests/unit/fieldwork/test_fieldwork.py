"""The photo sanitiser and the observation checks the survey import and the survey form call."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import ExifTags, Image
from shapely.geometry import box

from civictwin.errors import UploadError
from civictwin.fieldwork.observations import GeoPoint, parse_geopoint, validate_observation
from civictwin.fieldwork.photos import metadata_left, sanitise_photo


def _phone_photo(*, orientation: int) -> bytes:
    """A 40 × 20 px JPEG with EXIF GPS, make/model, a serial number, an orientation and an XMP packet."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.Base.Model] = "Model X"
    exif[ExifTags.Base.Orientation] = orientation
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.BodySerialNumber] = "SN-0042"
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(
        {1: "N", 2: (60.0, 10.0, 11.64), 3: "E", 4: (24.0, 56.0, 18.24)}
    )
    out = io.BytesIO()
    Image.new("RGB", (40, 20), (200, 30, 30)).save(
        out, format="JPEG", exif=exif, xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/">where</x:xmpmeta>'
    )
    return out.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` × ``height`` pixels in a few dozen bytes (a decompression bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def test_a_phone_photo_loses_every_metadata_block_and_stands_upright() -> None:
    original = _phone_photo(orientation=6)  # stored sideways: turn 90° clockwise to view
    with Image.open(io.BytesIO(original)) as image:
        assert image.getexif().get_ifd(ExifTags.IFD.GPSInfo)[2] == (60.0, 10.0, 11.64)
    assert {"EXIF tags", "exif", "xmp"} <= set(metadata_left(original))
    clean = sanitise_photo(original, label="p.jpg")
    assert metadata_left(clean.data) == []
    assert b"SN-0042" not in clean.data and b"PhoneMaker" not in clean.data and b"where" not in clean.data
    with Image.open(io.BytesIO(clean.data)) as image:
        assert image.format == "JPEG" and image.size == (20, 40) and not image.getexif()
    assert (clean.width, clean.height) == (20, 40) and clean.file_name == f"{clean.sha256}.jpg"


def test_large_photos_are_shrunk_and_transparent_ones_flattened() -> None:
    out = io.BytesIO()
    Image.new("RGBA", (300, 100), (0, 0, 0, 0)).save(out, format="PNG")
    clean = sanitise_photo(out.getvalue(), label="p.png", max_side=150)
    assert (clean.width, clean.height) == (150, 50)
    with Image.open(io.BytesIO(clean.data)) as image:
        assert image.mode == "RGB" and image.getpixel((75, 25))[0] > 250  # white, not black


@pytest.mark.parametrize(
    ("data", "options", "message"),
    [
        (b"<svg onload='alert(1)'/>", {}, "p: not an image (expected a JPEG, PNG or WebP photo)"),
        (b"GIF89a" + bytes(20), {}, "p: not an image (expected a JPEG, PNG or WebP photo)"),
        (_png_header(100_000, 100_000), {}, "p: more than 60,000,000 pixels: refused as a decompression bomb"),
        (_png_header(3000, 3000), {"max_pixels": 1_000_000},
         "p: 3000 × 3000 pixels; photos may have at most 1,000,000 (a decompression bomb?)"),
        (bytes(3 * 2**20), {"max_bytes": 2**20}, "p: 3.0 MiB; photos may be at most 1 MiB"),
    ],
)  # fmt: skip
def test_unsafe_uploads_are_refused_in_one_line(data: bytes, options: dict[str, int], message: str) -> None:
    with pytest.raises(UploadError) as caught:
        sanitise_photo(data, label="p", **options)
    assert caught.value.user_message() == message


def test_a_truncated_photo_is_refused() -> None:
    data = _phone_photo(orientation=1)
    with pytest.raises(UploadError, match=r"^p: a damaged image"):
        sanitise_photo(data[: len(data) // 2], label="p")


def test_geopoints_and_observations() -> None:
    assert parse_geopoint("60.1699 24.9384 12.5 4.0", label="g") == GeoPoint(60.1699, 24.9384, 12.5, 4.0)
    assert parse_geopoint("60.1699 24.9384", label="g") == GeoPoint(60.1699, 24.9384)
    assert parse_geopoint("  ", label="g") is None
    with pytest.raises(UploadError, match=r"^g: '95' is not a latitude \(−90 to 90 degrees\)$"):
        parse_geopoint("95 24.9", label="g")
    with pytest.raises(UploadError, match=r"^g: '60.1' is not a geopoint"):
        parse_geopoint("60.1", label="g")
    area = box(24.90, 60.15, 24.97, 60.18)
    seen = validate_observation(
        category="pothole", text=" <b>deep</b>\u202e hole\x00 ", lat="60.1699", lon=24.9384,
        categories={"pothole", "bench"}, area_wgs84=area,
    )  # fmt: skip
    assert (seen.category, seen.text, seen.place) == (
        "pothole",
        "<b>deep</b> hole",
        GeoPoint(60.1699, 24.9384),
    )
    with pytest.raises(
        UploadError, match=r"^observation: category: unknown category 'ufo'; expected one of bench, pothole$"
    ):
        validate_observation(category="ufo", text="", lat=60.17, lon=24.94, categories={"pothole", "bench"})
    with pytest.raises(
        UploadError, match=r"^observation: place: \(60.3, 24.94\) lies outside the twin's area$"
    ):
        validate_observation(
            category="bench", text="", lat=60.3, lon=24.94, categories={"bench"}, area_wgs84=area
        )
    with pytest.raises(UploadError, match=r"^observation: text: 2001 characters; at most 2000 are kept$"):
        validate_observation(category="bench", text="x" * 2001, lat=60.17, lon=24.94, categories={"bench"})


def test_survey_device_and_account_columns_are_recognised_as_personal() -> None:
    """Whatever source carries them, these columns are withheld from every publishing channel."""
    from civictwin.catalog.personal import recognised_by_name

    columns = ["SubmitterName", "SubmitterID", "DeviceID", "deviceid", "_submitted_by", "username", "simserial",
               "subscriberid", "imei", "category", "device_type", "submitted_at"]  # fmt: skip
    assert sorted(recognised_by_name(columns)) == sorted(columns[:9])
    assert set(recognised_by_name(columns).values()) == {"its name looks like a device or account identifier"}
