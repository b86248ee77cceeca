"""Photos from the field made safe to publish: checked, re-encoded from their pixels alone, metadata gone.

A phone or camera photo carries far more than its picture: EXIF GPS (where the person stood), the
device's make, model and serial number, capture times, XMP packets, maker notes, thumbnails (which
can show the uncropped original) and ICC profiles naming the software. :func:`sanitise_photo` keeps
only the pixels: it refuses what is not a JPEG, PNG or WebP image, what is too large in bytes or in
pixels (a decompression bomb is refused before its pixels are decoded), turns the picture upright
by its EXIF orientation, shrinks it to :data:`MAX_SIDE_PX` and writes a new JPEG from the raw
pixels, so no metadata block of the original can survive. An observation's place comes from the
survey's own geopoint, never from the photo.

Plain functions, for the survey import and for any upload route (the viewer's survey form).
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from civictwin.durable import write_bytes
from civictwin.errors import UploadError

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")
"""Image formats accepted (Pillow's names); only their decoders are tried on an upload."""
MAX_PHOTO_BYTES = 25 * 1024 * 1024
"""Largest photo file accepted (25 MiB; a phone's full-resolution JPEG is a few MB)."""
MAX_PHOTO_PIXELS = 60_000_000
"""Largest picture accepted in pixels (60 Mpx, above a 48 Mpx phone sensor); more is refused
unread, well below Pillow's own decompression-bomb limit (about 89 Mpx warns, twice that fails)."""
MAX_SIDE_PX = 2048
"""Longest side of a published photo (px): enough to see a pothole, light to serve."""
JPEG_QUALITY = 85
"""JPEG quality of the published photo (Pillow's 0–95 scale)."""
MEDIA_SUFFIX = ".media"
"""A twin's photos live in ``<store file name>.media/<layer>/`` beside its store."""
PHOTO_NAME = re.compile(r"[0-9a-f]{64}\.jpg")
"""The name of a stored photo: the SHA-256 of its clean bytes."""


@dataclass(frozen=True)
class CleanPhoto:
    """A photo re-encoded without metadata: JPEG bytes, size in pixels, and its SHA-256 (its file name)."""

    data: bytes
    width: int
    height: int
    sha256: str

    @property
    def file_name(self) -> str:
        """The name it is stored under: its content hash, which says nothing of the original."""
        return f"{self.sha256}.jpg"


def sanitise_photo(
    data: bytes,
    *,
    label: str,
    max_bytes: int = MAX_PHOTO_BYTES,
    max_pixels: int = MAX_PHOTO_PIXELS,
    max_side: int = MAX_SIDE_PX,
) -> CleanPhoto:
    """Check ``data`` is a photo within the limits and return it re-encoded with no metadata at all.

    ``label`` names the photo in errors (a file name, or ``row 3, column photo``). Raises
    :class:`UploadError` in one line for anything that is not a JPEG, PNG or WebP image, a file over
    ``max_bytes``, a picture over ``max_pixels`` (checked from the header, before decoding) or a
    truncated or corrupt image.
    """
    if len(data) > max_bytes:
        raise UploadError(
            f"{len(data) / 2**20:.1f} MiB; photos may be at most {max_bytes / 2**20:.0f} MiB", path=label
        )
    with warnings.catch_warnings():
        # Pillow's notes on corrupt EXIF (dropped anyway); a decompression bomb's warning is an error
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
                _check_pixels(image, label=label, max_pixels=max_pixels)
                picture = _upright_pixels(image)
        except UnidentifiedImageError:
            raise UploadError("not an image (expected a JPEG, PNG or WebP photo)", path=label) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise UploadError(
                f"more than {max_pixels:,} pixels: refused as a decompression bomb", path=label
            ) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise UploadError(
                f"a damaged image ({str(exc).splitlines()[0] or type(exc).__name__})", path=label
            ) from None
    picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    clean = out.getvalue()
    return CleanPhoto(clean, picture.width, picture.height, hashlib.sha256(clean).hexdigest())


def _check_pixels(image: Image.Image, *, label: str, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise UploadError(
            f"{width} × {height} pixels; photos may have at most {max_pixels:,} (a decompression bomb?)",
            path=label,
        )


def _upright_pixels(image: Image.Image) -> Image.Image:
    """The picture turned by its EXIF orientation, as a new RGB image built from raw pixels only.

    ``Image.frombytes`` starts from an empty ``info``: nothing of the original's EXIF, XMP, ICC
    profile, comments or PNG text chunks can be carried into the saved copy.
    """
    upright = ImageOps.exif_transpose(image) or image
    if upright.mode not in ("RGB", "L"):
        upright = _flatten(upright)
    return Image.frombytes(upright.mode, upright.size, upright.tobytes())


def _flatten(image: Image.Image) -> Image.Image:
    """RGB on a white background (JPEG has no transparency)."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def photo_folder(store_path: Path, layer: str) -> Path:
    """Where the photos of ``layer`` are kept, beside the twin's store file ``store_path``."""
    return store_path.parent / f"{store_path.name}{MEDIA_SUFFIX}" / layer


def store_photo(photo: CleanPhoto, directory: Path) -> Path:
    """Write ``photo`` into ``directory`` under its content hash (durably; the same photo once)."""
    target = directory / photo.file_name
    if not target.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        write_bytes(target, photo.data)
    return target


def metadata_left(data: bytes) -> list[str]:
    """The metadata blocks a JPEG still carries (EXIF, XMP, ICC, comment): empty for a clean photo.

    Read back with Pillow, plus a byte search for the EXIF and XMP signatures in case a block hides
    where Pillow does not look.
    """
    found: list[str] = []
    with Image.open(io.BytesIO(data)) as image:
        if image.getexif():
            found.append("EXIF tags")
        found.extend(
            key for key in ("exif", "xmp", "icc_profile", "comment", "photoshop") if key in image.info
        )
    if b"Exif\x00\x00" in data:
        found.append("an EXIF segment")
    if b"http://ns.adobe.com/xap/1.0/" in data:
        found.append("an XMP packet")
    return found
