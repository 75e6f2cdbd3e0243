"""EXIF-rotated photos are measured and cropped in the frame faces are detected in, and
search examples are kept per user, small, and bounded.

Failed before: a photo stored 200 × 100 with orientation 6 (shown 100 × 200) was recorded
as 200 × 100 and its face crops were cut from the unrotated pixels (background); examples
were one 64-slot pool for all users holding the raw uploads.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from api.search import EXAMPLE_MAX_SIDE, ExampleStore, prepare_example
from commands.images import inspect_image, read_header
from tests.api.conftest import auth

RED, BLUE = (220, 30, 30), (30, 30, 220)


def rotated_jpeg(orientation: int) -> bytes:
    """Shown 100 × 200 (red top, blue bottom); stored as the camera wrote it, turned a quarter."""
    shown = Image.new("RGB", (100, 200), RED)
    shown.paste(BLUE, (0, 100, 100, 200))
    stored = shown.transpose(Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=95, exif=exif)
    return out.getvalue()


def test_the_header_reports_the_shown_size():
    for orientation in (6, 8):
        data = rotated_jpeg(orientation)
        assert Image.open(io.BytesIO(data)).size == (200, 100)
        header = read_header(data, 100_000)
        assert (header.width, header.height, header.orientation) == (100, 200, orientation)
        assert (inspect_image(data, 100_000).width, inspect_image(data, 100_000).height) == (100, 200)


def test_rotated_upload_size_and_face_crop_follow_exif(api, users):
    for orientation in (6, 8):
        r = api.upload(users.bob, (f"rotated{orientation}.jpg", rotated_jpeg(orientation), "image/jpeg"))
        assert r.status_code == 201, r.text
        photo_id = r.json()["results"][0]["photo_id"]
        api.caught_up()
        photo = api.data(users.bob, f'{{ photo(id: "{photo_id}") {{ width height }} }}')["photo"]
        assert (photo["width"], photo["height"]) == (100, 200), photo
        api.add_faces(photo_id, users.bob_id, [(30, 130, 70, 170)])  # in the blue bottom half, as shown
        crop = api.client.get(f"/api/faces/{photo_id}:0/crop?size=96", headers=auth(users.bob))
        assert crop.status_code == 200, crop.text
        centre = np.asarray(Image.open(io.BytesIO(crop.content)).convert("RGB"))[40:56, 40:56].mean(axis=(0, 1))
        assert np.abs(centre - BLUE).max() < 30, f"crop centre {centre} is not the face's blue"


def test_one_users_examples_never_evict_anothers():
    store = ExampleStore(per_user=10, bytes_per_user=1_000_000)
    ann = store.put("ann", b"a" * 100)
    for _ in range(64):
        store.put("bob", b"b" * 100)
    assert store.get("ann", ann) == b"a" * 100
    assert store.get("bob", ann) is None  # nor can bob read it
    assert len(store._users["bob"]) == 10


def test_examples_are_bounded_in_bytes_per_user():
    store = ExampleStore(per_user=10, bytes_per_user=1_000)
    first = store.put("ann", b"x" * 400)
    for _ in range(3):
        store.put("ann", b"y" * 400)
    assert store.get("ann", first) is None and store.bytes_of("ann") <= 1_000


def test_an_example_is_kept_small_and_upright():
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 255, (3000, 4000, 3), dtype=np.uint8))
    out = io.BytesIO()
    noisy.save(out, "PNG")
    upload = out.getvalue()
    kept, pixels = prepare_example(upload, 60_000_000)
    assert max(pixels.shape[:2]) == EXAMPLE_MAX_SIDE and len(kept) < len(upload) // 4
    assert Image.open(io.BytesIO(kept)).format == "JPEG"
    kept, pixels = prepare_example(rotated_jpeg(6), 60_000_000)
    assert pixels.shape[:2] == (200, 100)  # rotated once, and the kept JPEG carries no EXIF to rotate again
    assert Image.open(io.BytesIO(kept)).size == (100, 200)
