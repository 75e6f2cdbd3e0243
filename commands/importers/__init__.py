"""Photo sources for import jobs, and `SOURCES`, the one list of them.

Each source declares a `SourceSpec` in its own module (name, label, link syntax, factory,
OAuth provider, settings); the CLI's `import` commands, the API's import validation, the
GraphQL enums, the credential providers and the settings all enumerate `SOURCES`. A new
importer is its module plus one entry in `_DECLARED`.

`open_source` is the one entry point the import handler needs for a link: it validates
the link (before any request) and returns the matching `PhotoSource`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from commands.importers import local, upload, vk, yadisk
from commands.importers.base import (
    AccessDenied,
    BadLink,
    ChecksumMismatch,
    Discovered,
    OAuthProvider,
    Opening,
    OwnerDeleted,
    PhotoSource,
    PhotoTooLarge,
    QuotaExhausted,
    RateLimited,
    RemotePhoto,
    SkippedItem,
    SourceError,
    SourceSpec,
    SourceUnavailable,
    TokenExpired,
    UnsupportedImage,
)
from commands.importers.links import parse_with
from commands.importers.local import LocalFolderSource
from commands.importers.vk import VkSource
from commands.importers.yadisk import YandexDiskSource

_DECLARED = (vk.SPEC, yadisk.SPEC, local.SPEC, upload.SPEC)

# By name, in the order the CLI and the enums show them.
SOURCES: dict[str, SourceSpec] = {spec.name: spec for spec in _DECLARED}


def register(spec: SourceSpec) -> None:
    """Adds a source declared elsewhere (a plugin, a test); only the CLI, API and schema
    built after this see it."""
    if spec.name in SOURCES and SOURCES[spec.name] is not spec:
        raise ValueError(f"a source named {spec.name!r} is declared already")
    SOURCES[spec.name] = spec


def providers() -> dict[str, OAuthProvider]:
    """The sign-in providers of the sources, by name ("vk", "yandex")."""
    return {spec.provider.name: spec.provider for spec in SOURCES.values() if spec.provider is not None}


def find_link(text: str) -> tuple[SourceSpec, object]:
    """The source whose link this is and the link as it parsed it; `BadLink` (before any
    request) if no source takes it."""
    specs = [spec for spec in SOURCES.values() if spec.link is not None]
    syntax, parsed = parse_with(text, [(spec.label, spec.link) for spec in specs if spec.link is not None])
    return next(spec for spec in specs if spec.link is syntax), parsed


def parse_link(text: str) -> object:
    """The parsed link of any link source, or `BadLink` saying why it is refused."""
    return find_link(text)[1]


def open_source(link: str, opening: Opening | None = None) -> PhotoSource:
    """The source for a link of any link source; `BadLink` (before any request) if refused."""
    spec, parsed = find_link(link)
    if spec.open is None:
        raise BadLink(f"{spec.label} links cannot be imported here")
    return spec.open(parsed, opening or Opening())


def open_local_source(folder: str | Path, allowed_roots: Iterable[str | Path], *, max_bytes: int = 50 * 1024 * 1024
                      ) -> LocalFolderSource:
    """The source for a local folder, which must lie under one of `allowed_roots`."""
    return LocalFolderSource(folder, allowed_roots, max_bytes=max_bytes)


__all__ = [
    "SOURCES", "AccessDenied", "BadLink", "ChecksumMismatch", "Discovered", "LocalFolderSource", "OAuthProvider",
    "Opening", "OwnerDeleted", "PhotoSource", "PhotoTooLarge", "QuotaExhausted", "RateLimited", "RemotePhoto",
    "SkippedItem", "SourceError", "SourceSpec", "SourceUnavailable", "TokenExpired", "UnsupportedImage", "VkSource",
    "YandexDiskSource", "find_link", "open_local_source", "open_source", "parse_link", "providers", "register",
]
