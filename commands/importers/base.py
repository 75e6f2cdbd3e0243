"""What every photo source shares: the photo it discovers, the item it skips, the
protocol it follows, the errors a user can cause, and the checks on fetched bytes.

A source turns one link (or folder) into a lazy stream of `RemotePhoto` and
`SkippedItem`, and fetches the bytes of a `RemotePhoto` on demand. Sources are
synchronous; `fetch` is thread-safe so a caller may fetch from a thread pool.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel

from commands.images import FORMATS_IN_WORDS, sniff_image


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
    """Something found at the source that will not be imported, and why (for counting).
    `code` is stable: `not_a_photo`, `photo_too_large`, `unreadable`, `not_a_regular_file`,
    `outside_allowed_folders`, or a `SourceError`'s code (`heic_unsupported` only in events
    recorded before HEIC was a dependency)."""

    source: str
    source_ref: str
    name: str
    reason: str
    provenance: dict[str, Any] = field(default_factory=dict)
    code: str = "not_a_photo"


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
    translations; `params` are the plain values a translation quotes; the message is English
    and never contains a token."""

    code = "source_error"

    def __init__(self, message: str, *, source_ref: str | None = None, params: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source_ref = source_ref
        self.params = params or {}


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
    """The bytes are not an image of `commands.images.FORMATS`."""

    code = "unsupported_image"


class PhotoTooLarge(SourceError):
    """The file is bigger than the import limit."""

    code = "photo_too_large"


# ---------------------------------------------------------------- checks on bytes

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
            f"{photo.name}: not a {FORMATS_IN_WORDS} image", source_ref=photo.source_ref
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


# ---------------------------------------------------------------- the source spec


@dataclass(frozen=True)
class OAuthProvider:
    """Who a source's users sign in with: `name` is the credential store's provider."""

    name: str
    label: str


@dataclass(frozen=True)
class LinkSyntax:
    """The links a remote source owns: https links to `hosts`, and texts starting with one
    of `prefixes` ("disk:/…"). `parse(host, path segments, query)` for a link, or
    `parse_prefixed(text)` for a prefixed text, returns the parsed link or raises `BadLink`."""

    hosts: frozenset[str]
    parse: Callable[[str, list[str], str], Any]
    prefixes: tuple[str, ...] = ()
    parse_prefixed: Callable[[str], Any] | None = None


@dataclass(frozen=True)
class Opening:
    """What a remote source is opened with: the user's token (and how to renew it), where
    its API is, and keyword arguments for the source (from its settings, or from tests)."""

    token: str | None = field(default=None, repr=False)
    # Called with the stale token when the service says it expired; a fresh token, or None.
    renew: Callable[[str], str | None] | None = field(default=None, repr=False)
    api_base: str | None = None  # None: the source's own default
    max_bytes: int = 50 * 1024 * 1024
    require_https: bool = True  # only tests against local fakes turn this off
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceSpec:
    """Everything the CLI, the API, GraphQL and the settings need to know about one photo
    source; each source declares its own, and `commands.importers.SOURCES` lists them.

    `kind` says how a job of it starts: from a link (`link`, `open`), from a folder on the
    server, or from the browser (uploads: never started nor resumed here)."""

    name: str  # ImportJob.source, `facesearch import <name>`, the API's `source`
    label: str  # in messages: "this is a VK link"
    graphql_name: str  # the value's name in the GraphQL enums (the client reads it)
    kind: Literal["link", "folder", "upload"]
    summary: str = ""  # the CLI command's help
    target_help: str = ""  # the CLI argument's help: what to paste
    link: LinkSyntax | None = None
    open: Callable[[Any, Opening], PhotoSource] | None = None
    # Whether a parsed link needs the user's token (a public share may not).
    needs_token: Callable[[Any], bool] = lambda link: True
    provider: OAuthProvider | None = None
    # The source's own settings (FACESEARCH_<FIELD> each), merged into `Settings`.
    settings: type[BaseModel] | None = None
    api_base_setting: str | None = None  # the setting that holds its API's base URL
    # Keyword arguments for `open` taken from the source's settings (rates and the like).
    options: Callable[[Any], dict[str, Any]] = lambda settings: {}

    @property
    def startable(self) -> bool:
        """Whether a job of it can be started (and retried) from the CLI and the API."""
        return self.kind != "upload"
