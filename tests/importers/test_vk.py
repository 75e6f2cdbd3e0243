from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from loguru import logger

from commands.importers import Opening, open_source, parse_link
from commands.importers.base import (
    AccessDenied,
    BadLink,
    OwnerDeleted,
    QuotaExhausted,
    RemotePhoto,
    SkippedItem,
    TokenExpired,
)
from commands.importers.vk import VkSource, largest_size
from tests.fakes.vk_server import EXPIRED_TOKEN, GOOD_TOKEN, FakeVk


def source(base: str, link: str, token: str = GOOD_TOKEN, **kwargs) -> VkSource:
    return VkSource(parse_link(link), token, api_base=base, require_https=False, **kwargs)


def community(fake: FakeVk) -> None:
    fake.add_community(123, "club_photos", [1200, 800, 500])


def test_community_with_three_albums_discovers_every_photo_and_fetches_the_largest(vk):
    fake, base = vk
    community(fake)
    with source(base, "https://vk.com/club_photos") as vk_source:
        found = list(vk_source.discover())
        assert all(isinstance(p, RemotePhoto) for p in found)
        refs = {p.source_ref for p in found}
        assert len(found) == len(refs) == 2500
        assert {p.provenance["album_id"] for p in found} == {1001, 1002, 1003}
        for photo in found:
            expected = FakeVk.expected_largest(photo.provenance["photo_id"])
            assert photo.provenance["size_type"] == expected
            assert photo.locator.endswith(f"_{expected}.jpg")
            assert photo.provenance["owner_id"] == -123
            assert photo.source_ref == f"vk:photo-123_{photo.provenance['photo_id']}"
            assert "token" not in str(photo.provenance)

        with ThreadPoolExecutor(8) as pool:
            blobs = list(pool.map(vk_source.fetch, found))
    assert all(b[:3] == b"\xff\xd8\xff" for b in blobs)
    assert len({hashlib.sha256(b).hexdigest() for b in blobs}) == 2500
    # Pagination: 1200 + 800 + 500 photos at count=1000 are 2 + 1 + 1 pages.
    pages = [params for _, method, params in fake.api_calls if method == "photos.get"]
    assert len(pages) == 4 and all(p["count"] == "1000" for p in pages)
    assert {p["offset"] for p in pages} == {"0", "1000"}
    # Polite: never more than 3 API calls in any one-second window.
    stamps = [t for t, _, _ in fake.api_calls]
    assert all(sum(1 for u in stamps if s <= u < s + 1.0) <= 3 for s in stamps)
    assert fake.tokens_seen_in_urls == 0


def test_albums_link_and_single_album_link(vk):
    fake, base = vk
    community(fake)
    with source(base, "https://m.vk.com/albums-123") as vk_source:
        assert len(list(vk_source.discover())) == 2500
    with source(base, "https://vk.ru/album-123_1003") as vk_source:
        photos = list(vk_source.discover())
    assert len(photos) == 500
    assert {p.provenance["album_title"] for p in photos} == {"Альбом 3"}


def test_private_album_raises_a_clear_error_and_yields_nothing(vk):
    fake, base = vk
    fake.add_owner(-77)
    fake.add_album(-77, 5, "Закрытый", 10, private=True)
    received = []
    with source(base, "https://vk.com/album-77_5") as vk_source, pytest.raises(AccessDenied) as caught:
        for item in vk_source.discover():
            received.append(item)
    assert received == []
    assert "access denied" in caught.value.message and "private" in caught.value.message
    assert caught.value.code == "access_denied"


def test_private_album_inside_a_community_is_skipped_and_the_rest_imported(vk):
    fake, base = vk
    fake.add_owner(-77)
    fake.add_album(-77, 1, "Открытый", 30)
    fake.add_album(-77, 2, "Закрытый", 10, private=True)
    with source(base, "https://vk.com/albums-77") as vk_source:
        found = list(vk_source.discover())
    photos = [f for f in found if isinstance(f, RemotePhoto)]
    skipped = [f for f in found if isinstance(f, SkippedItem)]
    assert len(photos) == 30
    assert len(skipped) == 1 and "access denied" in skipped[0].reason


def test_private_profile_and_deleted_owner(vk):
    fake, base = vk
    fake.add_owner(501, private=True)
    fake.add_owner(502, deleted=True)
    with source(base, "https://vk.com/id501") as vk_source, pytest.raises(AccessDenied):
        list(vk_source.discover())
    with source(base, "https://vk.com/albums502") as vk_source, pytest.raises(OwnerDeleted, match="deleted or banned"):
        list(vk_source.discover())


def test_unknown_screen_name_is_a_bad_link(vk):
    _, base = vk
    with source(base, "https://vk.com/nobody_here") as vk_source, pytest.raises(BadLink, match="nobody_here"):
        list(vk_source.discover())


@pytest.mark.parametrize("code", [6, 9])
def test_rate_limit_answers_slow_the_source_down_without_losing_photos(vk, code):
    fake, base = vk
    community(fake)
    if code == 6:
        fake.error6_every = 3
    else:
        fake.error9_every = 3
    backoff = 0.2
    started = time.monotonic()
    with source(base, "https://vk.com/club_photos", backoff_seconds=backoff) as vk_source:
        found = list(vk_source.discover())
        retries = vk_source.stats.retries
    elapsed = time.monotonic() - started
    assert len({p.source_ref for p in found}) == 2500
    assert fake.errors_sent.get(code, 0) >= 2
    assert retries == fake.errors_sent[code]
    assert elapsed >= retries * backoff


def test_quota_exhausted_stops_the_import(vk):
    fake, base = vk
    community(fake)
    fake.quota_after = 2
    with source(base, "https://vk.com/club_photos") as vk_source, pytest.raises(QuotaExhausted) as caught:
        list(vk_source.discover())
    assert "daily" in caught.value.message
    assert fake.errors_sent == {29: 1}  # no retrying into a spent quota


def test_expired_token_raises_token_expired_and_never_shows_the_token(vk):
    fake, base = vk
    community(fake)
    logged: list[str] = []
    sink = logger.add(lambda message: logged.append(str(message)), level="DEBUG")
    fake.scripted_errors = [6]  # make the source log a retry too
    try:
        vk_source = source(base, "https://vk.com/club_photos", token=EXPIRED_TOKEN, backoff_seconds=0.01)
        with vk_source, pytest.raises(TokenExpired) as caught:
            list(vk_source.discover())
    finally:
        logger.remove(sink)
    error = caught.value
    assert "sign in with VK again" in error.message
    for text in (str(error), repr(error), repr(error.args), repr(vk_source), "".join(logged)):
        assert EXPIRED_TOKEN not in text
        assert "expired-token" not in text
    assert logged, "the retry should have been logged"
    assert fake.tokens_seen_in_urls == 0


def test_open_source_dispatches_vk_links(vk):
    fake, base = vk
    community(fake)
    opening = Opening(token=GOOD_TOKEN, api_base=base, require_https=False)
    with open_source("vk.com/album-123_1002", opening) as vk_source:
        assert isinstance(vk_source, VkSource)
        assert len(list(vk_source.discover())) == 800


def test_largest_size_by_area_then_by_letter():
    item = {"sizes": [
        {"type": "x", "width": 604, "height": 453, "url": "u-x"},
        {"type": "w", "width": 2560, "height": 1920, "url": "u-w"},
        {"type": "z", "width": 1280, "height": 960, "url": "u-z"},
    ]}
    assert largest_size(item)["type"] == "w"
    legacy = {"sizes": [{"type": t, "width": 0, "height": 0, "url": t} for t in "zsyxm"]}
    assert largest_size(legacy)["type"] == "z"
    with_orig = item | {"orig_photo": {"type": "base", "width": 4000, "height": 3000, "url": "u-orig"}}
    assert largest_size(with_orig)["url"] == "u-orig"
    assert largest_size({"sizes": []}) is None
