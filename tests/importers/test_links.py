from __future__ import annotations

import pytest

from commands.importers import Opening, open_source, parse_link
from commands.importers.base import BadLink
from commands.importers.links import (
    VkAlbumLink,
    VkOwnerLink,
    VkScreenNameLink,
    YandexDiskPath,
    YandexPublicLink,
)
from tests.fakes import vk_server, yadisk_server


@pytest.mark.parametrize(("text", "expected"), [
    ("https://vk.com/album-123_456", VkAlbumLink(-123, "456", "https://vk.com/album-123_456")),
    ("https://vk.com/album123_456", VkAlbumLink(123, "456", "https://vk.com/album123_456")),
    ("https://m.vk.com/album123_00", VkAlbumLink(123, "wall", "https://vk.com/album123_00")),
    ("https://vk.com/albums-123", VkOwnerLink(-123, "https://vk.com/albums-123")),
    ("https://vk.ru/albums123/", VkOwnerLink(123, "https://vk.com/albums123")),
    ("https://vk.com/club42", VkOwnerLink(-42, "https://vk.com/club42")),
    ("https://vk.com/id1", VkOwnerLink(1, "https://vk.com/id1")),
    ("https://VK.com/Durov", VkScreenNameLink("durov", "https://vk.com/Durov")),
    ("vk.com/album-1_2", VkAlbumLink(-1, "2", "https://vk.com/album-1_2")),
    ("https://disk.yandex.ru/d/AbC-12_x", YandexPublicLink("AbC-12_x", "https://disk.yandex.ru/d/AbC-12_x", "/")),
    ("https://disk.yandex.ru/i/AbC-12_x", YandexPublicLink("AbC-12_x", "https://disk.yandex.ru/i/AbC-12_x", "/")),
    ("https://disk.yandex.com/d/Key12345/Sub/Dir", YandexPublicLink("Key12345", "https://disk.yandex.com/d/Key12345",
                                                                     "/Sub/Dir")),
    ("https://yadi.sk/d/Key12345", YandexPublicLink("Key12345", "https://yadi.sk/d/Key12345", "/")),
    ("yadi.sk/i/Key12345", YandexPublicLink("Key12345", "https://yadi.sk/i/Key12345", "/")),
    ("disk:/Photos/2019", YandexDiskPath("disk:/Photos/2019")),
    ("disk:/", YandexDiskPath("disk:/")),
    ("https://disk.yandex.ru/client/disk/Photos/2019", YandexDiskPath("disk:/Photos/2019")),
    ("https://disk.yandex.ru/client/disk/%D0%A4%D0%BE%D1%82%D0%BE", YandexDiskPath("disk:/Фото")),
    ("https://disk.yandex.ru/client/disk", YandexDiskPath("disk:/")),
])
def test_good_links_parse(text, expected):
    assert parse_link(text) == expected


BAD_LINKS = [
    ("", "empty"),
    ("https://example.com/album-1_2", "not VK or Yandex"),
    ("https://vk.com.evil.example/album-1_2", "not VK or Yandex"),
    ("file:///etc/passwd", "file links"),
    ("http://127.0.0.1:8000/method/photos.get", "https"),
    ("https://127.0.0.1/album-1_2", "IP addresses"),
    ("https://[::1]/d/abc", "IP addresses"),
    ("https://2130706433/d/abcd", "IP addresses"),
    ("http://vk.com/album-1_2", "only https"),
    ("https://user:pass@vk.com/album-1_2", "user name or password"),
    ("https://vk.com@127.0.0.1/album-1_2", "user name or password"),
    ("https://vk.com:8443/album-1_2", "custom port"),
    ("https://vk.com/album-1_", "not an album"),
    ("https://vk.com/wall-1_2", "not an album"),
    ("https://vk.com/a/b/c", "not an album"),
    ("https://disk.yandex.ru/x/abc", "not a public file"),
    ("https://disk.yandex.ru/d/", "not a public file"),
    ("https://disk.yandex.ru/d/a%2Fb/../../x", "malformed"),
    ("disk:Photos", "starts with disk:/"),
    ("disk:/a/../../etc", "must not contain"),
    ("https://disk.yandex.ru/client/disk/a/%2E%2E/b", "must not contain"),
    ("javascript:alert(1)", "unsupported link type"),
    ("https://vk.com/album 1", "spaces"),
    ("ftp://vk.com/album-1_2", "unsupported link type"),
    ("https://" + "a" * 3000, "too long"),
    ("https://vk.com:99999/x", "malformed"),
]


@pytest.mark.parametrize(("text", "reason"), BAD_LINKS)
def test_bad_links_are_refused_with_a_reason(text, reason):
    with pytest.raises(BadLink, match=reason):
        parse_link(text)


def test_bad_links_are_refused_before_any_request(vk, yadisk):
    vk_fake, vk_base = vk
    disk_fake, disk_base = yadisk
    # Each source would talk to its fake, were a link let through.
    openings = {"vk.com": Opening(token=vk_server.GOOD_TOKEN, api_base=vk_base, require_https=False),
                "disk": Opening(token=yadisk_server.GOOD_TOKEN, api_base=disk_base, require_https=False)}
    own = [f"http://127.0.0.1:{vk_base.split(':')[2].split('/')[0]}/method/photos.get",
           f"{disk_base}/v1/disk/public/resources?public_key=x",
           disk_base.replace("http://", "https://") + "/d/abcd"]
    for text in [t for t, _ in BAD_LINKS] + own:
        with pytest.raises(BadLink):
            open_source(text, openings["vk.com" if "vk" in text else "disk"])
    assert vk_fake.requests == 0
    assert disk_fake.requests == 0
