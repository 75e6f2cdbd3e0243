"""The one image intake: which formats are photos, their header check, the pixel limit, and
the one decoder. Uploads, imports, search examples and the workers all come through here, so
a file is accepted, refused and decoded the same way at every entry.

The pixel count is read from the header first, so a 30,000 × 30,000 "decompression bomb"
is refused without allocating it; then a full decode catches truncated files. Every entry
(upload, search example, import, worker) calls `read_header` with the same limit, the
setting `max_image_pixels`.

A header can also lie within the limit: 9.6 KB claiming 7,500 × 7,900 pixels would still
be given 180 MB and seconds of decoding. Entropy coding puts a floor under the bytes an
honest file needs (a Huffman JPEG spends at least one bit per 8 × 8 block; deflate packs at
most 1,032 bytes into one), so a file far below that floor is refused from its header too.

The decoder is Pillow (with pillow-heif for HEIC): OpenCV decodes JPEG about 1 ms a
megapixel faster here, which the models' tens of milliseconds a photo hide, but it cannot
read HEIC, and Pillow already reads every header.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError
from pillow_heif import register_heif_opener

register_heif_opener()  # HEIC/HEIF photos from phones: Image.open reads them as format "HEIF"

# The brands of an ISO-BMFF `ftyp` box that are HEVC-coded HEIF (AVIF is not among them).
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}


@dataclass(frozen=True)
class ImageFormat:
    """A format the system takes as a photo."""

    name: str  # Pillow's name for it (`Image.format`)
    label: str  # as users know it, in texts
    mime_types: tuple[str, ...]  # the first is the one the original is served with
    suffixes: tuple[str, ...]  # file names that say "a photo"
    starts: Callable[[bytes], bool]  # its magic bytes


# The one list of formats: every other list, sniffer and text derives from it.
FORMATS = (
    ImageFormat("JPEG", "JPG", ("image/jpeg", "image/pjpeg"), (".jpg", ".jpeg", ".jpe"),
                lambda data: data[:3] == b"\xff\xd8\xff"),
    ImageFormat("PNG", "PNG", ("image/png",), (".png",), lambda data: data[:8] == b"\x89PNG\r\n\x1a\n"),
    ImageFormat("WEBP", "WebP", ("image/webp",), (".webp",), lambda data: data[:4] == b"RIFF" and data[8:12] == b"WEBP"),
    ImageFormat("HEIF", "HEIC", ("image/heic", "image/heif"), (".heic", ".heif"),
                lambda data: data[4:8] == b"ftyp" and data[8:12] in _HEIC_BRANDS),
)
ACCEPTED_FORMATS = {f.name: f.mime_types[0] for f in FORMATS}
MIME_TYPES_IN_ORDER = tuple(mime for f in FORMATS for mime in f.mime_types)  # as a file picker lists them
SUFFIXES_IN_ORDER = tuple(suffix for f in FORMATS for suffix in f.suffixes)
IMAGE_MIME_TYPES = frozenset(MIME_TYPES_IN_ORDER)
PHOTO_SUFFIXES = frozenset(SUFFIXES_IN_ORDER)
FORMATS_IN_WORDS = ", ".join(f.label for f in FORMATS[:-1]) + " or " + FORMATS[-1].label  # "JPG, PNG, WebP or HEIC"


def sniff_image(data: bytes) -> str | None:
    """The format of `data` by its magic bytes, as a lower-case name ("jpeg", "png", "webp",
    "heif"), or None. Enough to tell a photo from other files; `read_header` decides."""
    return next((f.name.lower() for f in FORMATS if f.starts(data)), None)


# Decoded pixels one process holds at once, in images at the pixel limit (see PixelBudget).
DECODED_IMAGES_AT_THE_LIMIT = 2

# Half the entropy coders' floors (see above): honest files are far above either.
JPEG_MAX_PIXELS_PER_BYTE = 1024  # Huffman: >= 1 bit per 64 pixels, i.e. <= 512 pixels a byte
DEFLATE_MAX_RATIO = 2064  # zlib: <= 1,032 raw bytes a compressed byte
EXIF_ORIENTATION = 0x0112
TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}  # quarter turns: width and height swap


class ImageRejected(Exception):
    """The bytes are not an image this system takes; the message says why, in English, for
    logs. `code` is stable and `params` are plain numbers and names, for clients (which word
    them in the user's language) and events."""

    def __init__(self, message: str, code: str = "CORRUPT_IMAGE", params: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.params = params or {}


def megapixels(pixels: int) -> float:
    return round(pixels / 1_000_000, 1)


def too_many_pixels(pixels: int | None, max_pixels: int) -> ImageRejected:
    """The one rejection for an image over the pixel limit, quoting our limit (never Pillow's)."""
    params: dict = {"limit_megapixels": megapixels(max_pixels)}
    if pixels:
        params["megapixels"] = megapixels(pixels)
    return ImageRejected(f"image too large: {params.get('megapixels', 'over')} megapixels "
                         f"(limit {params['limit_megapixels']})", "TOO_MANY_PIXELS", params)


def _bomb_pixels(error: Exception) -> int | None:
    """The pixel count Pillow's decompression-bomb check saw, from its message (None if unsaid)."""
    found = re.search(r"\((\d+) pixels\)", str(error))
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class ImageHeader:
    """What the header says. `width` and `height` are as displayed: after the EXIF
    orientation (the frame face boxes are in), not the stored pixels' frame."""

    format: str
    width: int
    height: int
    orientation: int = 1

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    mime_type: str


def read_header(data: bytes, max_pixels: int) -> ImageHeader:
    """The header of `data`, read without decoding a pixel; `ImageRejected` when it is not
    an accepted format, has more than `max_pixels` pixels, or claims more than its bytes can hold."""
    if not data:
        raise ImageRejected("empty file", "EMPTY_FILE")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:  # lazy: reads the header only
                image_format = image.format or ""
                width, height = image.size
                mode = image.mode
                orientation = _orientation(image)
    except UnidentifiedImageError:
        raise ImageRejected("not an image (unrecognised format)", "NOT_AN_IMAGE") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise too_many_pixels(_bomb_pixels(error), max_pixels) from None
    except Exception as error:  # a header Pillow cannot parse
        raise ImageRejected(f"unreadable image header: {error}") from None

    if image_format not in ACCEPTED_FORMATS:
        raise ImageRejected(f"unsupported image format {image_format or 'unknown'}; use {FORMATS_IN_WORDS}", "UNSUPPORTED_FORMAT",
                            {"format": image_format or "unknown"})
    if width < 1 or height < 1:
        raise ImageRejected("image has no pixels")
    if width * height > max_pixels:
        raise too_many_pixels(width * height, max_pixels)
    if len(data) < _least_bytes(image_format, width, height, mode):
        raise ImageRejected(
            f"the header claims {width} × {height} pixels, more than {len(data):,} bytes can hold (truncated or forged)",
            "IMPLAUSIBLE_HEADER",
            {"width": width, "height": height},
        )
    if orientation in TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    return ImageHeader(image_format, width, height, orientation)


def _orientation(image: Image.Image) -> int:
    # Pillow's PNG getexif() decodes every pixel to look for an eXIf chunk after the data
    # (180 MB for a bomb by content): only an eXIf before the pixels counts here.
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    try:
        value = int(image.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block: Pillow's exif_transpose ignores it too
        return 1
    return value if 1 <= value <= 8 else 1


def _least_bytes(image_format: str, width: int, height: int, mode: str) -> int:
    """Fewer bytes than this cannot encode the image honestly (0: no floor for the format)."""
    if image_format == "JPEG":
        return width * height // JPEG_MAX_PIXELS_PER_BYTE
    if image_format == "PNG":
        # Grey and palette images may carry 1, 2 or 4 bits a pixel; colour at least 8 a channel.
        bits = {"RGB": 24, "RGBA": 32, "LA": 16}.get(mode, 1)
        return height * (1 + (width * bits + 7) // 8) // DEFLATE_MAX_RATIO
    return 0  # WebP's and HEIF's arithmetic coders can spend less than a bit per block


class PixelBudget:
    """Pixels of decoded images held at once, across threads: `acquire` waits until enough
    were given back (one image alone always goes through, whatever its size). A bomb by
    content (an honest 190 KB PNG that decodes to 180 MB) then costs its decode once, not
    once per request, import or batch member that carries one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._changed = threading.Condition()

    @classmethod
    def for_limit(cls, max_pixels: int) -> PixelBudget:
        return cls(DECODED_IMAGES_AT_THE_LIMIT * max_pixels)

    def acquire(self, pixels: int) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self.held == 0 or self.held + pixels <= self.limit)
            self.held += pixels

    def release(self, pixels: int) -> None:
        with self._changed:
            self.held -= pixels
            self._changed.notify_all()

    @contextlib.contextmanager
    def holding(self, pixels: int) -> Iterator[None]:
        self.acquire(pixels)
        try:
            yield
        finally:
            self.release(pixels)


def inspect_image(data: bytes, max_pixels: int, budget: PixelBudget | None = None) -> ImageInfo:
    """The header check, then a full decode (which catches truncated pixel data), within
    `budget` when one is given."""
    header = read_header(data, max_pixels)
    with budget.holding(header.pixels) if budget else contextlib.nullcontext():
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
        except Exception as error:  # truncated or corrupt pixel data
            raise ImageRejected(f"corrupt or truncated image data: {error}") from None
    return ImageInfo(width=header.width, height=header.height, mime_type=ACCEPTED_FORMATS[header.format])


# The EXIF orientations as Pillow transposes (those of ImageOps.exif_transpose).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
# 16- and 32-bit grey (PNG): convert("RGB") would clip them at 255 instead of scaling.
_WIDE_GREY = {"I", "I;16", "I;16L", "I;16B", "I;16N"}
_STRIP_ROWS = 256


def decode_rgb(data: bytes, max_pixels: int) -> np.ndarray:
    """The one decode of a photo: `read_header`'s checks, then its pixels as RGB uint8
    (height × width × 3), turned by the header's EXIF orientation, so the array is in the frame
    of the header's width and height and of every face box. Alpha is dropped, 16-bit grey
    scaled to 8 bits. `ImageRejected` when the checks or the decode fail."""
    header = read_header(data, max_pixels)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return _array(_rgb(_upright(image, header.orientation)))
    except Exception as error:  # truncated or corrupt pixel data
        raise ImageRejected(f"corrupt or truncated image data: {error}") from None


def _array(image: Image.Image) -> np.ndarray:
    """The pixels of an RGB image, copied a strip at a time: np.asarray(image) would hold two
    more copies of them at once (tobytes' chunks and their join), and be read-only."""
    width, height = image.size
    pixels = np.empty((height, width, 3), np.uint8)
    for top in range(0, height, _STRIP_ROWS):
        strip = image.crop((0, top, width, min(height, top + _STRIP_ROWS)))
        pixels[top:top + strip.height] = np.frombuffer(strip.tobytes(), np.uint8).reshape(strip.height, width, 3)
    return pixels


def _upright(image: Image.Image, orientation: int) -> Image.Image:
    return image.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else image


def _rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in _WIDE_GREY:
        grey = (np.clip(np.asarray(image), 0, 65535).astype(np.uint32) >> 8).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    return image.convert("RGB")
