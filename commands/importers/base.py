"""What every photo source shares: the photo it discovers, the item it skips, the
protocol it follows, the errors a user can cause, and the checks on fetched bytes.

A source turns one link (or folder) into a lazy stream of `RemotePhoto` and
`SkippedItem`, and fetches the bytes of a `RemotePhoto` on demand. Sources are
synchronous; `fetch` is thread-safe so a caller may fetch from a thread pool.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

SOURCES = ("vk", "yadisk", "local", "upload")


@dataclass(frozen=True)
class RemotePhoto:
    """One photo a source can fetch.

    `source_ref` is stable and unique within the source ("vk:photo-123_456",
    "yadisk:public:<key>:/a/b.jpg", "local:/abs/path"): importing the same link twice
    yields the same refs. `provenance` is JSON-safe and never holds a token.
    `locator` is how the source fetches the bytes (a URL or a path); it is for the
    source only and is not part of the photo's identity.
    """

    source: str
    source_ref: str
    name: str
    provenance: dict[str, Any]
    expected_md5: str | None = None
    expected_sha256: str | None = None
    size: int | None = None
    locator: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class SkippedItem:
    """Something found at the source that will not be imported, and why (for counting)."""

    source: str
    source_ref: str
    name: str
    reason: str
    provenance: dict[str, Any] = field(default_factory=dict)


Discovered = RemotePhoto | SkippedItem


@runtime_checkable
class PhotoSource(Protocol):
    """A place photos come from.

    `discover` paginates lazily: it makes requests only as the caller iterates.
    `fetch` returns the bytes of one discovered photo, verified against the md5/sha256
    the source announced (`ChecksumMismatch`) and sniffed as a supported image
    (`UnsupportedImage`); it may be called from several threads at once.
    """

    source: str

    def discover(self) -> Iterator[Discovered]: ...

    def fetch(self, photo: RemotePhoto) -> bytes: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- errors


class SourceError(Exception):
    """An import failure a user can understand. `code` is stable, for events and the UI's
    translations; the message is English and never contains a token."""

    code = "source_error"

    def __init__(self, message: str, *, source_ref: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source_ref = source_ref


class BadLink(SourceError):
    """The link was refused before any request was made."""

    code = "bad_link"


class AccessDenied(SourceError):
    """The owner has not shared this album, folder or path with us."""

    code = "access_denied"


class OwnerDeleted(SourceError):
    """The VK page or community was deleted or banned."""

    code = "owner_deleted"


class TokenExpired(SourceError):
    """The access token is expired, revoked or invalid: sign in again."""

    code = "token_expired"


class RateLimited(SourceError):
    """The service kept refusing for too many requests even after backing off."""

    code = "rate_limited"


class QuotaExhausted(RateLimited):
    """The daily quota of the token is spent (VK error 29): stop and retry tomorrow."""

    code = "quota_exhausted"


class SourceUnavailable(SourceError):
    """The service did not answer properly (network error, 5xx) after retries."""

    code = "source_unavailable"


class ChecksumMismatch(SourceError):
    """The bytes received differ from the checksum the source announced."""

    code = "checksum_mismatch"


class UnsupportedImage(SourceError):
    """The bytes are not a JPEG, PNG, WebP or HEIC image."""

    code = "unsupported_image"


class PhotoTooLarge(SourceError):
    """The file is bigger than the import limit."""

    code = "photo_too_large"


# ---------------------------------------------------------------- checks on bytes

_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif"}


def sniff_image(data: bytes) -> str | None:
    """The image format by magic bytes ("jpeg", "png", "webp", "heic"), or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS and data[8:12] != b"avif":
        return "heic"
    return None


def verify_checksums(photo: RemotePhoto, data: bytes) -> None:
    """Raise `ChecksumMismatch` when the bytes disagree with what the source announced."""
    checks = (("md5", photo.expected_md5, hashlib.md5), ("sha256", photo.expected_sha256, hashlib.sha256))
    for label, expected, algorithm in checks:
        if expected and algorithm(data).hexdigest().lower() != expected.lower():
            raise ChecksumMismatch(
                f"{photo.name}: the downloaded file does not match its {label} checksum; "
                "it may have changed or been corrupted in transit",
                source_ref=photo.source_ref,
            )


def verify_image(photo: RemotePhoto, data: bytes) -> str:
    """The sniffed format, or `UnsupportedImage`."""
    kind = sniff_image(data)
    if kind is None:
        raise UnsupportedImage(
            f"{photo.name}: not a JPEG, PNG, WebP or HEIC image", source_ref=photo.source_ref
        )
    return kind


@dataclass
class SourceStats:
    """Counters a source keeps for progress reports and tests (thread-safe)."""

    requests: int = 0
    retries: int = 0
    photos_fetched: int = 0
    bytes_fetched: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)
