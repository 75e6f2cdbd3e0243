"""Hostile inputs made by the tests themselves (no file of them is committed)."""

from __future__ import annotations

import io
import struct
from functools import lru_cache

from PIL import Image

from tests.conftest import huge_png_header, make_image, truncated_jpeg


def forged_jpeg(width: int = 7500, height: int = 7900) -> bytes:
    """A small honest JPEG whose frame header is rewritten to claim width × height."""
    data = bytearray(make_image(3, (640, 480)))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def flat_pngs(width: int, height: int, count: int, salt: str = "") -> list[bytes]:
    """Honest, distinct PNGs that deflate to almost nothing yet decode to width × height × 3 bytes."""
    from PIL.PngImagePlugin import PngInfo

    image = Image.new("RGB", (width, height), (120, 130, 140))
    made = []
    for i in range(count):
        info = PngInfo()
        info.add_text("n", f"{salt}{i}")  # distinct bytes, so none is a duplicate of another
        out = io.BytesIO()
        image.save(out, "PNG", compress_level=6, pnginfo=info)
        made.append(out.getvalue())
    return made


def gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (32, 32)).save(out, "GIF")
    return out.getvalue()


def tiff() -> bytes:
    """Real TIFF bytes (a format we do not take)."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(out, "TIFF")
    return out.getvalue()


def junk_heic() -> bytes:
    """An ISO-BMFF `ftyp heic` box, as an iPhone's file starts, then junk."""
    return b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(range(256)) * 8


@lru_cache(maxsize=1)
def content_bomb() -> bytes:
    """A bomb by content: an honest 7,745 × 7,745 PNG (just under the default 60 M pixel limit)
    of one colour, about 190 KB that decode to 180 MB. Its header tells no lie: it is taken,
    and must cost one bounded decode, not more."""
    return flat_pngs(7745, 7745, 1, salt="content-bomb")[0]


SIXTY_MB = 60 * 1024 * 1024


def write_sixty_mb(path) -> None:
    """A 60 MB file starting like a JPEG, sparse on disk (the importer must not read it)."""
    with open(path, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0")
        f.truncate(SIXTY_MB)


def sixty_mb_chunks(chunk: int = 1024 * 1024):
    """The same 60 MB as a stream of chunks, so no test holds them all at once."""
    yield b"\xff\xd8\xff\xe0" + bytes(chunk - 4)
    for _ in range(SIXTY_MB // chunk - 1):
        yield bytes(chunk)


# Hostile file names, for upload (any string) and for a folder (those a file system allows).
HOSTILE_NAMES = {
    "nul": "nul\x00byte.jpg",
    "rlo": "holiday\u202egpj.exe",  # shows as "holidayexe.jpg"
    "newline": "two\nlines\r.jpg",
    "traversal": "../../../../etc/passwd.jpg",
    "windows-traversal": "..\\..\\boot.ini.jpg",
    "long": "л" * 120 + ".jpg",  # 244 bytes in UTF-8: as long as a Linux file name may be
    "zero-width": "a\u200bb\ufeff.jpg",
    "terminal-escapes": "\x1b]0;owned\x07\x1b[2Jclear.jpg",  # retitles and clears a terminal that prints it
    "very-long": "x" * 3000 + ".jpg",  # longer part headers (4 KB) are refused by the multipart parser
}
FOLDER_SAFE_NAMES = {k: v for k, v in HOSTILE_NAMES.items()
                     if "\x00" not in v and "/" not in v and len(v.encode()) <= 255}


# name -> (file name, bytes, the codes a clean refusal may carry)
CORPUS = {
    "forged-jpeg": ("forged.jpg", forged_jpeg(), {"IMPLAUSIBLE_HEADER"}),
    "png-bomb-under-limit": ("bomb.png", huge_png_header(7500, 7900), {"IMPLAUSIBLE_HEADER"}),
    "png-bomb-over-limit": ("bomb30k.png", huge_png_header(30_000, 30_000), {"TOO_MANY_PIXELS"}),
    "zero-bytes": ("empty.jpg", b"", {"EMPTY_FILE", "NOT_AN_IMAGE"}),
    "truncated": ("half.jpg", truncated_jpeg(), {"CORRUPT_IMAGE"}),
    "text": ("notes.jpg", b"hello, this is not a photo", {"NOT_AN_IMAGE"}),
    "html-polyglot": ("poly.jpg", b"\xff\xd8\xff\xe0<html><script>alert(1)</script></html>", {"NOT_AN_IMAGE", "CORRUPT_IMAGE"}),
    "gif-named-jpg": ("anim.jpg", gif(), {"NOT_AN_IMAGE", "UNSUPPORTED_FORMAT"}),
    "svg-named-jpg": ("vector.jpg", b'<svg xmlns="http://www.w3.org/2000/svg" width="9e9" height="9e9"/>', {"NOT_AN_IMAGE"}),
    "tiff-named": ("scan.tiff", tiff(), {"NOT_AN_IMAGE", "UNSUPPORTED_FORMAT"}),
    "heic-named-junk": ("iphone.heic", junk_heic(), {"NOT_AN_IMAGE", "CORRUPT_IMAGE"}),
}
