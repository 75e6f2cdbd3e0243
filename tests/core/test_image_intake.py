"""The one image intake (commands/images.py, issue #14): every format of its one list is taken
end to end (upload, import, search example, worker), search and the worker decode the same
bytes to the same pixels, and the pixel limit is the one setting."""

from __future__ import annotations

import inspect
import io
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from api.photos import _refusal
from commands.app import FaceSearchApp
from commands.blobs import DirectoryBlobStore
from commands.images import (
    ACCEPTED_FORMATS,
    FORMATS,
    FORMATS_IN_WORDS,
    IMAGE_MIME_TYPES,
    PHOTO_SUFFIXES,
    inspect_image,
    read_header,
    sniff_image,
)
from commands.importers.base import RemotePhoto
from commands.importers.local import LocalFolderSource
from facesearch.services.search import SearchInputError, decode_example
from facesearch.settings import Settings
from gpu_workers.worker import FaceWorker

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 60_000_000
EXIF_ORIENTATION = 0x0112


def gradient(width: int = 96, height: int = 64) -> np.ndarray:
    """RGB pixels that differ along both axes, so a turn or a flip shows."""
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack([x * 255 // width, y * 255 // height, (x + y) % 256]).astype(np.uint8)


def encoded(pixels: np.ndarray, fmt: str, orientation: int = 1, **options) -> bytes:
    exif = Image.Exif()
    if orientation != 1:
        exif[EXIF_ORIENTATION] = orientation
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, exif=exif.tobytes(), **options)
    return out.getvalue()


def of_every_format() -> dict[str, bytes]:
    """One honest image in each accepted format (HEIC made by pillow-heif's encoder)."""
    return {f.name: encoded(gradient(), f.name, quality=95) for f in FORMATS}


def worker_for(tmp_path: Path, max_image_pixels: int = LIMIT) -> FaceWorker:
    app = SimpleNamespace(max_image_pixels=max_image_pixels)
    analyzer = SimpleNamespace(models_dir=tmp_path, detector_name="retinaface", embedder_name="facenet512",
                               model_name="facenet512")
    return FaceWorker(app, analyzer)  # type: ignore[arg-type]


def worker_pixels(tmp_path: Path, data: bytes, max_image_pixels: int = LIMIT) -> np.ndarray:
    worker = worker_for(tmp_path, max_image_pixels)
    try:
        return worker._decoded_within_budget(data)[0]
    finally:
        worker.close()


def sixteen_bit_grey_png() -> tuple[bytes, np.ndarray]:
    """A 16-bit greyscale PNG, and the 8-bit RGB it stands for (the high byte of each value)."""
    values = (np.arange(96 * 64).reshape(64, 96) * 10).astype(np.uint16)
    out = io.BytesIO()
    Image.fromarray(values).save(out, "PNG")
    assert Image.open(io.BytesIO(out.getvalue())).mode.startswith("I")
    return out.getvalue(), np.repeat((values >> 8).astype(np.uint8)[..., None], 3, axis=2)


def cases() -> dict[str, tuple[bytes, np.ndarray | None]]:
    """Bytes and the pixels they must decode to (None: only the shape is known, a lossy coder)."""
    upright = gradient()
    grey, grey_rgb = sixteen_bit_grey_png()
    rgba = np.dstack([upright, np.full(upright.shape[:2], 7, np.uint8)])
    return {
        "16-bit grey PNG": (grey, grey_rgb),
        "RGBA PNG": (encoded(rgba, "PNG"), upright),
        "PNG, EXIF orientation 6": (encoded(upright, "PNG", 6), np.rot90(upright, 3)),
        "WebP, EXIF orientation 8": (encoded(upright, "WEBP", 8, lossless=True), np.rot90(upright, 1)),
        "JPEG, EXIF orientation 3": (encoded(upright, "JPEG", 3, quality=95), None),
        "CMYK JPEG": (_cmyk_jpeg(upright), None),
        "HEIC, EXIF orientation 6": (encoded(upright, "HEIF", 6, quality=95), None),
    }


def _cmyk_jpeg(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).convert("CMYK").save(out, "JPEG", quality=95)
    return out.getvalue()


@pytest.mark.parametrize("case", list(cases()))
def test_search_and_the_worker_decode_the_same_bytes_to_the_same_pixels(tmp_path, case):
    data, expected = cases()[case]
    example = decode_example(data, LIMIT)
    stored = worker_pixels(tmp_path, data)
    assert example.dtype == stored.dtype == np.uint8 and example.ndim == 3 and example.shape[2] == 3
    assert np.array_equal(example, stored), f"{case}: search and worker disagree"
    if expected is not None:
        assert np.array_equal(example, expected), case
    turned = "orientation 6" in case or "orientation 8" in case
    assert example.shape[:2] == ((96, 64) if turned else (64, 96)), case
    header = read_header(data, LIMIT)  # the frame photos are recorded in, and boxes are given in
    assert (header.height, header.width) == example.shape[:2], case


def test_a_rotated_jpeg_is_turned_upright_by_both(tmp_path):
    upright = gradient()
    data = encoded(upright, "JPEG", 3, quality=95)
    example = decode_example(data, LIMIT)
    # Orientation 3 is a half turn: the decoded pixels are the upright ones, within JPEG's loss.
    assert np.abs(example.astype(int) - np.rot90(upright, 2).astype(int)).mean() < 4
    assert np.abs(example.astype(int) - upright.astype(int)).mean() > 40


@pytest.mark.parametrize("fmt", [f.name for f in FORMATS])
def test_every_format_of_the_one_list_is_taken_end_to_end(tmp_path, fmt):
    data = of_every_format()[fmt]
    kind = next(f for f in FORMATS if f.name == fmt)
    assert sniff_image(data) == fmt.lower()
    assert _refusal(data, 10 * 2**20) is None  # the upload's first gate
    # An import finds it in a folder, by its bytes and by its name.
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / f"photo{kind.suffixes[0]}").write_bytes(data)
    found = list(LocalFolderSource(folder, [folder]).discover())
    assert [type(f) for f in found] == [RemotePhoto] and found[0].provenance["format"] == fmt.lower()
    assert set(kind.mime_types) <= IMAGE_MIME_TYPES  # Yandex.Disk lists it as a photo
    # The core stores it as a photo, with its size and type.
    info = inspect_image(data, LIMIT)
    assert (info.width, info.height, info.mime_type) == (96, 64, ACCEPTED_FORMATS[fmt])
    app = FaceSearchApp(f"sqlite:///{tmp_path / 'events.sqlite'}", DirectoryBlobStore(tmp_path / "blobs"), LIMIT)
    try:
        outcome = app.store_photo(data, owner="ann", source="upload", source_ref=f"upload:photo{kind.suffixes[0]}")
        assert outcome.status == "new", outcome
        assert app.blobs.get(app.get_photo(outcome.photo_id).content_hash) == data
    finally:
        app.close()
    # Search and the worker decode it to the same pixels, close to what was encoded.
    example = decode_example(data, LIMIT)
    assert np.array_equal(example, worker_pixels(tmp_path, data))
    assert example.shape == (64, 96, 3) and np.abs(example.astype(int) - gradient().astype(int)).mean() < 6


def test_heic_is_a_real_dependency_not_an_optional_one():
    assert "HEIF" in ACCEPTED_FORMATS and pillow_heif.libheif_info()["decoders"]
    pinned = (ROOT / "constraints.txt").read_text()
    assert f"pillow-heif=={pillow_heif.__version__}" in pinned
    assert f'"pillow-heif=={pillow_heif.__version__}"' in (ROOT / "pyproject.toml").read_text()


def test_the_pixel_limit_is_the_one_setting(tmp_path):
    data = encoded(gradient(), "PNG")  # 6,144 pixels
    # No entry has a limit of its own: decode_example takes the setting, with no default.
    assert inspect.signature(decode_example).parameters["max_pixels"].default is inspect.Parameter.empty
    spelled = re.compile(r"\b" + re.escape(f"{Settings.model_fields['max_image_pixels'].default:_}") + r"\b")
    holders = [p.relative_to(ROOT).as_posix() for pkg in ("domain", "commands", "projections", "gpu_workers", "api",
                                                          "facesearch") for p in (ROOT / pkg).rglob("*.py")
               if spelled.search(p.read_text())]
    assert holders == ["facesearch/settings.py"], holders
    # Under the setting every entry refuses the same image with the same code.
    with pytest.raises(SearchInputError) as refused:
        decode_example(data, 6_000)
    assert refused.value.code == "TOO_MANY_PIXELS"
    worker = worker_for(tmp_path, 6_000)
    try:
        with pytest.raises(Exception, match="too large"):
            worker._decoded_within_budget(data)
    finally:
        worker.close()
    app = FaceSearchApp(f"sqlite:///{tmp_path / 'events.sqlite'}", DirectoryBlobStore(tmp_path / "blobs"), 6_000)
    try:
        outcome = app.store_photo(data, owner="ann", source="upload", source_ref="upload:a.png")
        assert (outcome.status, outcome.code) == ("rejected", "TOO_MANY_PIXELS")
    finally:
        app.close()
    assert decode_example(data, 6_144).shape == (64, 96, 3)  # exactly at the limit is taken


def test_texts_and_the_web_client_name_the_formats_of_the_one_list():
    labels = [f.label for f in FORMATS]
    assert FORMATS_IN_WORDS == "JPG, PNG, WebP or HEIC"
    # The web client reads the list from GraphQL and keeps no copy: no format's type, suffix
    # or label is written in its source (its messages say {formats}, filled from the list).
    from api.gql.schema import schema

    answer = schema.execute_sync("{ photoFormats { labels mimeTypes suffixes } }",
                                 context_value=SimpleNamespace(user=SimpleNamespace(id="u")))
    assert answer.errors is None and answer.data is not None, answer.errors
    assert answer.data["photoFormats"]["labels"] == labels
    assert set(answer.data["photoFormats"]["mimeTypes"]) == IMAGE_MIME_TYPES
    assert set(answer.data["photoFormats"]["suffixes"]) == PHOTO_SUFFIXES
    client = "\n".join(p.read_text() for p in sorted((ROOT / "frontend/src").rglob("*")) if p.suffix in (".js", ".svelte"))
    copies = [word for word in ("image/", "'.heic'", "'.jpg'") if word in client]
    copies += [label for label in labels if re.search(rf"\b{label}\b", client)]
    assert copies == [], copies
    i18n = (ROOT / "frontend/src/lib/i18n.js").read_text()
    assert i18n.count("{formats}") >= 8  # search.drop and three error codes, in both languages
    # Every other text that lists formats (guides, API docs) lists all of them, and no other.
    texts = [(ROOT / p).read_text() for p in ("docs/user-guide.ru.md", "docs/user-guide.en.md", "docs/api.md")]
    mentions = [line for text in texts for line in text.splitlines() if re.search(r"\bJPG\b", line)]
    assert len(mentions) >= 3
    for line in mentions:
        assert all(re.search(rf"\b{label}\b", line, re.IGNORECASE) for label in labels), line
