"""Checks that bytes are an image we can analyse, before anything is stored.

The pixel count is read from the header first, so a 30,000 × 30,000 "decompression bomb"
is refused without allocating it; then a full decode catches truncated files.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}

try:  # HEIC/HEIF photos from phones, when pillow-heif is installed.
    from pillow_heif import register_heif_opener

    register_heif_opener()
    ACCEPTED_FORMATS |= {"HEIF": "image/heif"}
except ImportError:  # pragma: no cover - optional
    pass


class ImageRejected(Exception):
    """The bytes are not an image this system takes; the message says why, for the user."""


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    mime_type: str


def inspect_image(data: bytes, max_pixels: int) -> ImageInfo:
    if not data:
        raise ImageRejected("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image_format = image.format or ""
                width, height = image.size
    except UnidentifiedImageError:
        raise ImageRejected("not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected(f"image too large (more than {max_pixels:,} pixels)") from None
    except Exception as error:  # a header Pillow cannot parse
        raise ImageRejected(f"unreadable image header: {error}") from None

    if image_format not in ACCEPTED_FORMATS:
        raise ImageRejected(f"unsupported image format {image_format or 'unknown'}; use JPG, PNG or WEBP")
    if width * height > max_pixels:
        raise ImageRejected(f"image too large: {width} × {height} pixels (limit {max_pixels:,})")
    if width < 1 or height < 1:
        raise ImageRejected("image has no pixels")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception as error:  # truncated or corrupt pixel data
        raise ImageRejected(f"corrupt or truncated image data: {error}") from None
    return ImageInfo(width=width, height=height, mime_type=ACCEPTED_FORMATS[image_format])
