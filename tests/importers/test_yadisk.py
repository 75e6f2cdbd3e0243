from __future__ import annotations

import hashlib

import pytest

from commands.importers import Opening, open_source, parse_link
from commands.importers.base import AccessDenied, ChecksumMismatch, RemotePhoto, SkippedItem, TokenExpired
from commands.importers.yadisk import YandexDiskSource
from tests.fakes.images import make_image
from tests.fakes.yadisk_server import EXPIRED_TOKEN, GOOD_TOKEN

NESTED = {
    "cover.jpg": make_image(1),
    "contract.pdf": b"%PDF-1.4 not a photo",
    "trip": {
        "beach.png": make_image(2, "PNG"),
        "readme.txt": b"hello",
        "day 2": {
            "sunset.webp": make_image(3, "WEBP"),
            "clip.mp4": b"\x00\x00\x00\x18ftypmp42",
            "empty": {},
        },
    },
    "zz.jpeg": make_image(4),
}


def source(base: str, link: str, token: str | None = None, **kwargs) -> YandexDiskSource:
    return YandexDiskSource(parse_link(link), token, api_base=base, require_https=False, **kwargs)


def test_public_folder_with_subfolders_yields_exactly_the_images_and_counts_skipped(yadisk):
    fake, base = yadisk
    fake.public["NestedKey1"] = NESTED
    with source(base, "https://disk.yandex.ru/d/NestedKey1", page_size=2) as disk:
        found = list(disk.discover())
        photos = [f for f in found if isinstance(f, RemotePhoto)]
        skipped = [f for f in found if isinstance(f, SkippedItem)]
        assert sorted(p.provenance["path"] for p in photos) == [
            "/cover.jpg", "/trip/beach.png", "/trip/day 2/sunset.webp", "/zz.jpeg"]
        assert {s.name: s.reason for s in skipped} == {
            "contract.pdf": "not a photo (document)",
            "readme.txt": "not a photo (text)",
            "clip.mp4": "not a photo (video)",
        }
        assert all(p.source_ref == f"yadisk:public:NestedKey1:{p.provenance['path']}" for p in photos)
        assert all(p.expected_md5 and p.expected_sha256 and p.size for p in photos)
        for photo in photos:
            data = disk.fetch(photo)
            assert hashlib.md5(data).hexdigest() == photo.expected_md5
    # limit/offset pagination happened (2 items a page).
    offsets = {int(params["offset"]) for path, params in fake.api_calls if path == "/v1/disk/public/resources"}
    assert {0, 2} <= offsets
    assert fake.downloads == 4


def test_many_photos_across_pages(yadisk):
    fake, base = yadisk
    fake.public["BigKey01"] = fake.photo_tree(folders=3, per_folder=50)
    with source(base, "https://yadi.sk/d/BigKey01", page_size=20) as disk:
        found = list(disk.discover())
    assert sum(isinstance(f, RemotePhoto) for f in found) == 150
    assert sum(isinstance(f, SkippedItem) for f in found) == 3
    assert len({f.source_ref for f in found}) == 153


def test_subfolder_link_and_single_file_link(yadisk):
    fake, base = yadisk
    fake.public["NestedKey1"] = NESTED
    fake.public["OneFile01"] = make_image(9)
    fake.public_names["OneFile01"] = "IMG_0009.JPG"
    with source(base, "https://disk.yandex.com/d/NestedKey1/trip") as disk:
        names = sorted(f.name for f in disk.discover() if isinstance(f, RemotePhoto))
    assert names == ["beach.png", "sunset.webp"]
    with source(base, "yadi.sk/i/OneFile01") as disk:
        (photo,) = list(disk.discover())
        assert photo.name == "IMG_0009.JPG" and photo.source_ref == "yadisk:public:OneFile01:/"
        assert disk.fetch(photo) == make_image(9)


def test_checksum_mismatch_raises(yadisk):
    fake, base = yadisk
    fake.public["NestedKey1"] = NESTED
    fake.wrong_md5.add("public:NestedKey1:/trip/beach.png")
    with source(base, "https://disk.yandex.ru/d/NestedKey1") as disk:
        photos = {p.name: p for p in disk.discover() if isinstance(p, RemotePhoto)}
        assert disk.fetch(photos["cover.jpg"]) == make_image(1)
        with pytest.raises(ChecksumMismatch, match="md5") as caught:
            disk.fetch(photos["beach.png"])
    assert caught.value.source_ref == photos["beach.png"].source_ref


def test_broken_public_link_is_access_denied(yadisk):
    _, base = yadisk
    with source(base, "https://disk.yandex.ru/d/GoneKey99") as disk, pytest.raises(AccessDenied, match="stopped sharing"):
        list(disk.discover())


def test_own_disk_with_token_and_the_token_stays_with_the_api(yadisk):
    fake, base = yadisk
    fake.own = {"Photos": {"2019": {"a.jpg": make_image(11), "b.txt": b"x"}, "c.png": make_image(12, "PNG")}}
    with open_source("disk:/Photos", Opening(token=GOOD_TOKEN, api_base=base, require_https=False)) as disk:
        found = list(disk.discover())
        photos = [f for f in found if isinstance(f, RemotePhoto)]
        assert sorted(p.source_ref for p in photos) == ["yadisk:disk:/Photos/2019/a.jpg", "yadisk:disk:/Photos/c.png"]
        assert [disk.fetch(p) for p in sorted(photos, key=lambda p: p.name)] == [make_image(11), make_image(12, "PNG")]
        assert GOOD_TOKEN not in repr(disk) and GOOD_TOKEN not in str(found)
    assert fake.auth_headers_at_storage == 0


def test_expired_yandex_token(yadisk):
    fake, base = yadisk
    fake.own = {"Photos": {"a.jpg": make_image(1)}}
    with source(base, "disk:/Photos", token=EXPIRED_TOKEN) as disk, pytest.raises(TokenExpired) as caught:
        list(disk.discover())
    assert "sign in again" in caught.value.message
    assert EXPIRED_TOKEN not in str(caught.value) and EXPIRED_TOKEN not in repr(caught.value)
    with pytest.raises(TokenExpired):
        source(base, "disk:/Photos", token=None)
