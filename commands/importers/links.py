"""Parse and validate import links before any request is made.

`parse_with` does what every link source shares: only https links to a host some source
owns are accepted (a link without a scheme is read as https); everything else, including
file://, http://, IP literals, user:password@ and odd ports, is refused with `BadLink` and
a reason a user can act on. The owning source's `LinkSyntax` then parses the path. The VK
and Yandex.Disk syntaxes are here; their specs (vk.py, yadisk.py) point at them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from commands.importers.base import BadLink, LinkSyntax

VK_HOSTS = frozenset({"vk.com", "m.vk.com", "www.vk.com", "vk.ru", "m.vk.ru", "www.vk.ru"})
YANDEX_HOSTS = frozenset(
    {
        "disk.yandex.ru",
        "disk.yandex.com",
        "disk.yandex.by",
        "disk.yandex.kz",
        "disk.yandex.com.tr",
        "disk.yandex.uz",
        "disk.360.yandex.ru",
        "disk.360.yandex.com",
        "yadi.sk",
    }
)
MAX_LINK_LENGTH = 2048

# VK's special album suffixes in album links: album123_0 (profile), _00 (wall), _000 (saved).
VK_SYSTEM_ALBUMS = {"0": "profile", "00": "wall", "000": "saved"}
_VK_ALBUM = re.compile(r"^album(-?\d{1,20})_(\d{1,20})$")
_VK_ALBUMS = re.compile(r"^albums(-?\d{1,20})$")
_VK_NUMERIC_OWNER = re.compile(r"^(id|club|public|event)(\d{1,20})$")
_VK_SCREEN_NAME = re.compile(r"^[A-Za-z0-9_.]{2,64}$")
_YANDEX_KEY = re.compile(r"^[A-Za-z0-9_\-]{4,128}$")


@dataclass(frozen=True)
class VkAlbumLink:
    """One album: `album_id` is a number as text, or "profile" / "wall" / "saved"."""

    owner_id: int
    album_id: str
    url: str


@dataclass(frozen=True)
class VkOwnerLink:
    """Every album of a user (owner_id > 0) or a community (owner_id < 0)."""

    owner_id: int
    url: str


@dataclass(frozen=True)
class VkScreenNameLink:
    """Every album of the user or community behind a screen name (resolved by the source)."""

    screen_name: str
    url: str


@dataclass(frozen=True)
class YandexPublicLink:
    """A public Yandex.Disk file or folder: `key` is the link's own id, `public_url` what the
    API takes as public_key, `path` a subfolder inside it ("/" for the link itself)."""

    key: str
    public_url: str
    path: str = "/"


@dataclass(frozen=True)
class YandexDiskPath:
    """A path on the signed-in user's own disk ("disk:/Photos/2019")."""

    path: str


VkLink = VkAlbumLink | VkOwnerLink | VkScreenNameLink
YandexLink = YandexPublicLink | YandexDiskPath
ImportLink = VkLink | YandexLink


def parse_with(text: str, syntaxes: Sequence[tuple[str, LinkSyntax]]) -> tuple[LinkSyntax, object]:
    """The (label, syntax) pair's syntax that owns the link, and the link as it parsed it;
    `BadLink` saying why it is refused. Makes no request."""
    known = " or ".join(label for label, _ in syntaxes) or "a known source"
    raw = (text or "").strip()
    if not raw:
        raise BadLink("the link is empty")
    if len(raw) > MAX_LINK_LENGTH:
        raise BadLink("the link is too long")
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in raw):
        raise BadLink("the link contains spaces or control characters")
    for _, syntax in syntaxes:
        if syntax.parse_prefixed is not None and raw.lower().startswith(syntax.prefixes):
            return syntax, syntax.parse_prefixed(raw)

    if "://" not in raw:
        if prefix := re.match(r"^([A-Za-z][A-Za-z0-9+\-]*):", raw):  # mailto:, javascript:, ...
            raise BadLink(f"unsupported link type {prefix.group(1)!r}: paste a {known} link")
        raw = "https://" + raw  # "vk.com/album-1_2" as pasted without a scheme
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise BadLink("the link is malformed") from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        raise BadLink("file links are not allowed: use a local folder import instead")
    if scheme == "http":
        raise BadLink("only https links are accepted")
    if scheme != "https":
        raise BadLink(f"unsupported link type {scheme!r}: paste a {known} link")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise BadLink("links with a user name or password are not accepted")
    host = (parts.hostname or "").lower()
    if not host:
        raise BadLink("the link has no host")
    if _is_ip_literal(host):
        raise BadLink(f"links to IP addresses are not accepted: paste a {known} link")
    if port not in (None, 443):
        raise BadLink("links with a custom port are not accepted")

    segments = [unquote(s) for s in parts.path.split("/") if s]
    for _, syntax in syntaxes:
        if host in syntax.hosts:
            return syntax, syntax.parse(host, segments, parts.query)
    raise BadLink(f"{host} is not {known}: paste a {known} link")


def _is_ip_literal(host: str) -> bool:
    candidate = host.strip("[]")
    try:
        ipaddress.ip_address(candidate)
        return True
    except ValueError:
        pass
    # Integer, octal or hex forms that some resolvers still turn into addresses.
    return bool(re.fullmatch(r"(0x[0-9a-f]+|\d+)(\.(0x[0-9a-f]+|\d+)){0,3}", candidate))


def _canonical_vk(path: str) -> str:
    return f"https://vk.com/{path}"


def parse_vk(host: str, segments: list[str], query: str) -> VkLink:
    """A vk.com link's path as a `VkLink` (`BadLink` if it is not an album, list or page)."""
    if len(segments) != 1:
        raise BadLink("this VK link is not an album, an album list or a page: expected vk.com/album-1_2, "
                      "vk.com/albums-1 or vk.com/<name>")
    segment = segments[0]
    if match := _VK_ALBUM.match(segment):
        owner, album = int(match.group(1)), match.group(2)
        if owner == 0:
            raise BadLink("the VK album link has no owner")
        album_id = VK_SYSTEM_ALBUMS.get(album, album)
        if album_id == album and int(album) <= 0:
            raise BadLink("the VK album link is malformed")
        return VkAlbumLink(owner_id=owner, album_id=str(album_id), url=_canonical_vk(segment))
    if match := _VK_ALBUMS.match(segment):
        owner = int(match.group(1))
        if owner == 0:
            raise BadLink("the VK albums link has no owner")
        return VkOwnerLink(owner_id=owner, url=_canonical_vk(segment))
    if match := _VK_NUMERIC_OWNER.match(segment):
        kind, number = match.group(1), int(match.group(2))
        if number == 0:
            raise BadLink("the VK link is malformed")
        return VkOwnerLink(owner_id=number if kind == "id" else -number, url=_canonical_vk(segment))
    if _VK_SCREEN_NAME.match(segment) and not segment.startswith(("album", "photo", "wall", "video")):
        return VkScreenNameLink(screen_name=segment.lower(), url=_canonical_vk(segment))
    raise BadLink("this VK link is not an album, an album list or a page: expected vk.com/album-1_2, "
                  "vk.com/albums-1 or vk.com/<name>")


def parse_yandex(host: str, segments: list[str], query: str) -> YandexLink:
    """A Yandex.Disk link's path as a `YandexLink` (`BadLink` if it is not a public share or a
    folder of the web client)."""
    if segments[:2] == ["client", "disk"]:  # the web client's address of a folder on your own disk
        return parse_disk_path("disk:/" + "/".join(segments[2:]))
    if len(segments) < 2 or segments[0] not in ("d", "i"):
        raise BadLink("this Yandex.Disk link is not a public file or folder link: expected "
                      "https://disk.yandex.ru/d/… or https://yadi.sk/i/…")
    kind, key, rest = segments[0], segments[1], segments[2:]
    if not _YANDEX_KEY.match(key):
        raise BadLink("the Yandex.Disk link is malformed")
    if any(part in (".", "..") for part in rest):
        raise BadLink("the Yandex.Disk link is malformed")
    # The API takes the public URL itself as public_key; the key alone identifies the share.
    public_url = f"https://{host}/{kind}/{key}"
    path = "/" + "/".join(rest) if rest else "/"
    return YandexPublicLink(key=key, public_url=public_url, path=path)


def parse_disk_path(raw: str) -> YandexDiskPath:
    """"disk:/Photos/2019" as a path on the user's own disk."""
    path = raw[len("disk:"):]
    if not path.startswith("/"):
        raise BadLink("a path on your own Yandex.Disk starts with disk:/")
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise BadLink("the Yandex.Disk path must not contain . or ..")
    return YandexDiskPath(path="disk:/" + "/".join(parts))


VK_LINKS = LinkSyntax(hosts=VK_HOSTS, parse=parse_vk)
YANDEX_LINKS = LinkSyntax(hosts=YANDEX_HOSTS, parse=parse_yandex, prefixes=("disk:",), parse_prefixed=parse_disk_path)
