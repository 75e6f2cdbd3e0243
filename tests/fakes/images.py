"""Small, distinct, real images for fakes: each index gets its own colour and text."""

from __future__ import annotations

import colorsys
import io
from functools import lru_cache

from PIL import Image, ImageDraw


@lru_cache(maxsize=8192)
def make_image(index: int, fmt: str = "JPEG", size: tuple[int, int] = (48, 36), label: str = "") -> bytes:
    """A `size` image in `fmt` (JPEG, PNG, WEBP) whose colour and text encode `index`."""
    hue = (index * 0.6180339887) % 1.0  # golden-ratio steps keep neighbours far apart
    r, g, b = (int(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.65, 0.9))
    image = Image.new("RGB", size, (r, g, b))
    draw = ImageDraw.Draw(image)
    draw.text((2, 2), f"{index}{label}", fill=(255 - r, 255 - g, 255 - b))
    out = io.BytesIO()
    image.save(out, format=fmt, quality=85) if fmt == "JPEG" else image.save(out, format=fmt)
    return out.getvalue()
