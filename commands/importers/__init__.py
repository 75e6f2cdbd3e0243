"""Photo sources for import jobs: VK, Yandex.Disk and local folders.

`open_source` is the one entry point the import handler needs: it validates the link
(before any request) and returns the matching `PhotoSource`. A new importer is one
module plus one entry in `_FACTORIES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from commands.importers.base import (
    AccessDenied,
    BadLink,
    ChecksumMismatch,
    Discovered,
    OwnerDeleted,
    PhotoSource,
    PhotoTooLarge,
    QuotaExhausted,
    RateLimited,
    RemotePhoto,
    SkippedItem,
    SourceError,
    SourceUnavailable,
    TokenExpired,
    UnsupportedImage,
)
from commands.importers.links import (
    ImportLink,
    VkAlbumLink,
    VkOwnerLink,
    VkScreenNameLink,
    YandexDiskPath,
    YandexPublicLink,
    parse_link,
)
from commands.importers.local import LocalFolderSource
from commands.importers.vk import VkSource
from commands.importers.yadisk import YandexDiskSource


@dataclass(frozen=True)
class SourceConfig:
    """Where the sources talk to and what they may touch; tests point the bases at fakes."""

    vk_api_base: str = "https://api.vk.com/method"
    yadisk_api_base: str = "https://cloud-api.yandex.net"
    allowed_roots: tuple[Path, ...] = ()
    max_bytes: int = 50 * 1024 * 1024
    # Only tests against local fakes turn this off.
    require_https: bool = True
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Credentials:
    vk_token: str | None = field(default=None, repr=False)
    yandex_token: str | None = field(default=None, repr=False)
    # Called with the stale VK token when VK answers error 5; a fresh token, or None.
    vk_renew: Callable[[str], str | None] | None = field(default=None, repr=False)


def _vk(link: ImportLink, creds: Credentials, config: SourceConfig) -> PhotoSource:
    return VkSource(link, creds.vk_token or "", api_base=config.vk_api_base, max_bytes=config.max_bytes,
                    require_https=config.require_https, renew_token=creds.vk_renew,
                    **config.extra)  # type: ignore[arg-type]


def _yadisk(link: ImportLink, creds: Credentials, config: SourceConfig) -> PhotoSource:
    return YandexDiskSource(link, creds.yandex_token, api_base=config.yadisk_api_base,  # type: ignore[arg-type]
                            max_bytes=config.max_bytes, require_https=config.require_https, **config.extra)


_FACTORIES: dict[type, Callable[[ImportLink, Credentials, SourceConfig], PhotoSource]] = {
    VkAlbumLink: _vk,
    VkOwnerLink: _vk,
    VkScreenNameLink: _vk,
    YandexPublicLink: _yadisk,
    YandexDiskPath: _yadisk,
}


def open_source(link: str, credentials: Credentials = Credentials(), config: SourceConfig = SourceConfig()) -> PhotoSource:
    """The source for a VK or Yandex.Disk link; `BadLink` (before any request) if refused."""
    parsed = parse_link(link)
    return _FACTORIES[type(parsed)](parsed, credentials, config)


def open_local_source(folder: str | Path, allowed_roots: Iterable[str | Path], *, max_bytes: int = 50 * 1024 * 1024
                      ) -> LocalFolderSource:
    """The source for a local folder, which must lie under one of `allowed_roots`."""
    return LocalFolderSource(folder, allowed_roots, max_bytes=max_bytes)


__all__ = [
    "AccessDenied", "BadLink", "ChecksumMismatch", "Credentials", "Discovered", "LocalFolderSource",
    "OwnerDeleted", "PhotoSource", "PhotoTooLarge", "QuotaExhausted", "RateLimited", "RemotePhoto",
    "SkippedItem", "SourceConfig", "SourceError", "SourceUnavailable", "TokenExpired", "UnsupportedImage",
    "VkSource", "YandexDiskSource", "open_local_source", "open_source", "parse_link",
]
