"""Yandex.Disk photo source: a public file or folder link, or a folder on the user's own
disk (OAuth token). Folders are walked recursively, page by page (limit/offset).

Plain httpx against the documented REST API rather than the `yadisk` library: yadisk
3.4 takes its base URL from a module-level setting shared by every client, so two
sources (or a test fake next to the real service) cannot point at different hosts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from pydantic import BaseModel, SecretStr

from commands.images import IMAGE_MIME_TYPES
from commands.importers import _http
from commands.importers.base import (
    AccessDenied,
    Discovered,
    OAuthProvider,
    Opening,
    PhotoTooLarge,
    RateLimited,
    RemotePhoto,
    SkippedItem,
    SourceError,
    SourceSpec,
    SourceStats,
    SourceUnavailable,
    TokenExpired,
    verify_checksums,
    verify_image,
)
from commands.importers.links import YANDEX_LINKS, YandexDiskPath, YandexLink, YandexPublicLink
from domain.names import distinct_printable, file_name, printable

DEFAULT_API_BASE = "https://cloud-api.yandex.net"
PAGE_SIZE = 200


class YandexDiskSource:
    """Discovers the images behind a Yandex.Disk link and fetches them.

    Only files of `commands.images.FORMATS` (by the API's mime_type) are photos; every
    other file is yielded as a `SkippedItem` with its reason. `fetch` asks the download
    endpoint for an href, follows it (it redirects to a storage host) without sending
    the OAuth header there, and checks md5 and sha256 from the listing.
    """

    source = "yadisk"

    def __init__(
        self,
        link: YandexLink,
        token: str | None = None,
        *,
        api_base: str = DEFAULT_API_BASE,
        page_size: int = PAGE_SIZE,
        max_retries: int = 4,
        backoff_seconds: float = 1.0,
        requests_per_second: float = 20.0,
        max_bytes: int = 50 * 1024 * 1024,
        require_https: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if isinstance(link, YandexDiskPath) and not token:
            raise TokenExpired("sign in with Yandex to import from your own disk")
        self.link = link
        self._token = token or None
        self._api_base = api_base.rstrip("/")
        self._page_size = page_size
        self._max_retries = max_retries
        self._backoff = backoff_seconds
        self._max_bytes = max_bytes
        self._sleep = sleep
        self._bucket = _http.TokenBucket(requests_per_second, sleep=sleep)
        self._client = _http.make_client(require_https=require_https)
        self.stats = SourceStats()

    def __repr__(self) -> str:
        token = "[masked]" if self._token else None
        return f"YandexDiskSource(link={self.link!r}, token={token}, api_base={self._api_base!r})"

    def __enter__(self) -> YandexDiskSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    @property
    def _public(self) -> bool:
        return isinstance(self.link, YandexPublicLink)

    # ------------------------------------------------------------ discovery

    def discover(self) -> Iterator[Discovered]:
        """Files depth-first in the API's order (by name); folders are entered as met."""
        start = self.link.path
        stack = [start]
        first = True
        while stack:
            folder = stack.pop()
            subfolders: list[str] = []
            offset = 0
            while True:
                meta = self._resource(folder, offset)
                if first and meta.get("type") == "file":  # the link is a single file
                    yield self._classify(meta)
                    return
                first = False
                listing = meta.get("_embedded") or {}
                items = listing.get("items") or []
                for item in items:
                    if item.get("type") == "dir":
                        subfolders.append(str(item["path"]))
                    else:
                        yield self._classify(item)
                offset += len(items)
                if not items or offset >= int(listing.get("total", 0)):
                    break
            stack.extend(reversed(subfolders))

    def _classify(self, item: dict[str, Any]) -> Discovered:
        path = str(item.get("path") or "/" + str(item.get("name", "")))
        # Names are the sharer's: stored printable (no NUL, newline or RLO), the real path only fetches.
        name = file_name(str(item.get("name") or path.rsplit("/", 1)[-1]))
        ref = self._ref(distinct_printable(path))
        mime = str(item.get("mime_type") or "").lower()
        size = item.get("size")
        provenance: dict[str, Any] = {"path": printable(path), "mime_type": mime, "modified": item.get("modified")}
        if isinstance(self.link, YandexPublicLink):
            provenance |= {"public_key": self.link.key, "public_url": self.link.public_url}
        if item.get("resource_id"):
            provenance["resource_id"] = item["resource_id"]
        if mime not in IMAGE_MIME_TYPES:
            what = item.get("media_type") or mime or "unknown type"
            return SkippedItem(self.source, ref, name, f"not a photo ({what})", provenance)
        if isinstance(size, int) and size > self._max_bytes:
            return SkippedItem(self.source, ref, name, f"larger than the {self._max_bytes} byte limit", provenance,
                               PhotoTooLarge.code)
        return RemotePhoto(
            source=self.source,
            source_ref=ref,
            name=name,
            provenance=provenance,
            expected_md5=item.get("md5") or None,
            expected_sha256=item.get("sha256") or None,
            size=size if isinstance(size, int) else None,
            locator=path,
        )

    def _ref(self, path: str) -> str:
        if isinstance(self.link, YandexPublicLink):
            return f"yadisk:public:{self.link.key}:{path}"
        return f"yadisk:{path}"

    def _resource(self, path: str, offset: int) -> dict[str, Any]:
        params: dict[str, Any] = {"path": path, "limit": self._page_size, "offset": offset, "sort": "name"}
        if isinstance(self.link, YandexPublicLink):
            params["public_key"] = self.link.public_url
            return self._get("/v1/disk/public/resources", params, path)
        return self._get("/v1/disk/resources", params, path)

    # ------------------------------------------------------------ fetching

    def fetch(self, photo: RemotePhoto) -> bytes:
        """The file's bytes, checked against md5/sha256 (thread-safe)."""
        if isinstance(self.link, YandexPublicLink):
            link = self._get("/v1/disk/public/resources/download",
                             {"public_key": self.link.public_url, "path": photo.locator}, photo.locator)
        else:
            link = self._get("/v1/disk/resources/download", {"path": photo.locator}, photo.locator)
        href = link.get("href")
        if not href:
            raise SourceUnavailable(f"{photo.name}: Yandex.Disk gave no download link")
        # The href is on another host: the OAuth header stays with the API.
        data = _http.download(
            self._client, str(href), max_bytes=self._max_bytes, what=photo.name,
            sleep=self._sleep, on_retry=lambda: self.stats.add(retries=1),
        )
        verify_checksums(photo, data)
        verify_image(photo, data)
        self.stats.add(photos_fetched=1, bytes_fetched=len(data))
        return data

    # ------------------------------------------------------------ API calls

    def _get(self, endpoint: str, params: dict[str, Any], path: str) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self._token and not self._public:
            headers["Authorization"] = f"OAuth {self._token}"

        def once() -> dict[str, Any]:
            self._bucket.acquire()
            self.stats.add(requests=1)
            try:
                response = self._client.get(f"{self._api_base}{endpoint}", params=params, headers=headers)
            except httpx.TransportError as exc:
                raise _http.Busy(type(exc).__name__) from None
            if response.status_code == 200:
                return self._json(response)
            if response.status_code != 429 and response.status_code < 500:
                raise self._error(response, path)
            raise _http.Busy(f"HTTP {response.status_code}", rate_limited=response.status_code == 429)

        try:
            return _http.retrying(self._max_retries, self._backoff, sleep=self._sleep,
                                  on_retry=lambda _busy, _wait: self.stats.add(retries=1))(once)
        except _http.Busy as busy:
            if busy.rate_limited:
                raise RateLimited("Yandex.Disk kept refusing: too many requests; try again in a few minutes") from None
            raise SourceUnavailable(f"Yandex.Disk did not answer ({busy.reason}); try again later") from None

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SourceUnavailable("Yandex.Disk answered with something that is not JSON")
        return body

    def _error(self, response: httpx.Response, path: str) -> SourceError:
        try:
            body = response.json()
            kind = str(body.get("error", ""))
            detail = str(body.get("description") or body.get("message") or "")
        except (ValueError, AttributeError):
            kind, detail = "", ""
        detail = _http.redact(detail, [self._token])[:200]
        status = response.status_code
        where = f"{self.link.public_url}{'' if path == '/' else path}" if isinstance(self.link, YandexPublicLink) else path
        if status == 401:
            return TokenExpired("Yandex no longer accepts the access token (expired or revoked): sign in again")
        if status == 403:
            return AccessDenied(f"{where}: access denied by Yandex.Disk ({detail or kind})")
        if status == 404:
            if self._public:
                return AccessDenied(f"{where}: the link is broken, or the owner stopped sharing it")
            return AccessDenied(f"{where}: no such folder or file on your Yandex.Disk")
        return SourceError(f"Yandex.Disk refused the request (HTTP {status}: {detail or kind})")


class YandexDiskSettings(BaseModel):
    """Yandex.Disk's part of the settings (FACESEARCH_YADISK_…, FACESEARCH_YANDEX_…)."""

    yadisk_api_base: str = DEFAULT_API_BASE
    # Yandex OAuth (sign-in for imports from the user's own Yandex.Disk): the app of this
    # deployment, registered with the Disk read permission; its redirect URI points at
    # /api/oauth/yandex/callback. An empty scope asks for the app's registered permissions.
    yandex_oauth_base: str = "https://oauth.yandex.ru"
    yandex_client_id: str = ""
    yandex_client_secret: SecretStr = SecretStr("")
    yandex_redirect_uri: str = ""
    yandex_scope: str = "cloud_api:disk.read"


def open_yadisk(link: YandexLink, opening: Opening) -> YandexDiskSource:
    return YandexDiskSource(link, opening.token, api_base=opening.api_base or DEFAULT_API_BASE,
                            max_bytes=opening.max_bytes, require_https=opening.require_https, **opening.options)


SPEC = SourceSpec(
    name="yadisk", label="Yandex.Disk", graphql_name="YANDEX_DISK", kind="link",
    summary="Import the images of a Yandex.Disk folder or file (public links need no token).",
    target_help="A public link (disk.yandex.ru/d/…, yadi.sk/…) or disk:/path on your own disk",
    link=YANDEX_LINKS, open=open_yadisk,
    # Public links are read anonymously; the user's own disk needs their sign-in.
    needs_token=lambda link: isinstance(link, YandexDiskPath),
    provider=OAuthProvider("yandex", "Yandex"), settings=YandexDiskSettings, api_base_setting="yadisk_api_base",
)
