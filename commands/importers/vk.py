"""VK photo source: one album, every album of a user, or every album of a community.

Plain httpx against the documented API rather than the `vk-api` library: vk-api 11.10
hard-codes https://api.vk.ru/method/ (no configurable base URL for tests or proxies)
and depends on requests. Calls are POSTs with the token in the form body, so it never
sits in a URL, a log line or an exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from loguru import logger
from pydantic import BaseModel

from commands.importers import _http
from commands.importers.base import (
    AccessDenied,
    BadLink,
    Discovered,
    OAuthProvider,
    Opening,
    OwnerDeleted,
    QuotaExhausted,
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
from commands.importers.links import VK_LINKS, VkAlbumLink, VkLink, VkOwnerLink, VkScreenNameLink
from domain.names import file_name

DEFAULT_API_BASE = "https://api.vk.com/method"
API_VERSION = "5.199"
PAGE_SIZE = 1000  # photos.get's maximum count

# photos.getAlbums(need_system=1) lists system albums with negative ids; photos.get wants names.
SYSTEM_ALBUM_NAMES = {-6: "profile", -7: "wall", -15: "saved"}
# Size letters from smallest to largest (https://dev.vk.com/reference/objects/photo-sizes);
# the rank decides when old photos report width = height = 0.
SIZE_RANK = {t: i for i, t in enumerate("smopqrxyzw")} | {"base": 20, "orig": 20}

_RETRY_CODES = {6: "too many requests per second", 9: "flood control", 10: "internal server error"}
_ACCESS_CODES = {15, 30, 200, 201, 203}


class VkSource:
    """Discovers the photos behind a VK link and fetches their largest size.

    API calls are limited to `requests_per_second` (VK allows 3); errors 6 and 9 back off
    exponentially from `backoff_seconds` and retry up to `max_retries` times; error 29
    stops with `QuotaExhausted`. The token is used only in request bodies.

    Error 5 (the token expired or was revoked) calls `renew_token(stale_token)` once for
    that request, when given: a new token retries the request, None (no refresh token, or
    the refresh was refused) stops with `TokenExpired`.
    """

    source = "vk"

    def __init__(
        self,
        link: VkLink,
        token: str,
        *,
        api_base: str = DEFAULT_API_BASE,
        api_version: str = API_VERSION,
        requests_per_second: float = 3.0,
        max_retries: int = 5,
        backoff_seconds: float = 1.0,
        max_bytes: int = 50 * 1024 * 1024,
        require_https: bool = True,
        renew_token: Callable[[str], str | None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not token:
            raise TokenExpired("sign in with VK to import photos")
        self.link = link
        self._token = token
        self._renew_token = renew_token
        self._old_tokens: list[str] = []  # scrubbed from VK's error text too
        self._api_base = api_base.rstrip("/")
        self._api_version = api_version
        self._max_retries = max_retries
        self._backoff = backoff_seconds
        self._max_bytes = max_bytes
        self._sleep = sleep
        # 10 % under the limit: VK counts arrivals, and network jitter bunches them together.
        self._bucket = _http.TokenBucket(requests_per_second / 1.1, sleep=sleep)
        self._client = _http.make_client(require_https=require_https)
        self.stats = SourceStats()

    def __repr__(self) -> str:
        return f"VkSource(link={self.link!r}, token=[masked], api_base={self._api_base!r})"

    def __enter__(self) -> VkSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------ discovery

    def discover(self) -> Iterator[Discovered]:
        """Photos album by album, page by page (count=1000), largest size of each.

        A single-album link raises `AccessDenied` when the album is closed; for a
        user's or community's album list a closed album is yielded as one `SkippedItem`
        and the others are imported."""
        link = self.link
        if isinstance(link, VkAlbumLink):
            album = self._album_info(link.owner_id, link.album_id)
            yield from self._album_photos(link.owner_id, album)
            return
        owner_id = link.owner_id if isinstance(link, VkOwnerLink) else self._resolve(link)
        for album in self._albums(owner_id):
            if album.get("size") == 0:
                continue
            try:
                yield from self._album_photos(owner_id, album)
            except AccessDenied as exc:
                ref = f"vk:album{owner_id}_{album['id']}"
                yield SkippedItem(self.source, ref, file_name(str(album.get("title", ""))), exc.message,
                                  {"owner_id": owner_id, "album_id": album["id"]}, exc.code)

    def _resolve(self, link: VkScreenNameLink) -> int:
        found = self._call("utils.resolveScreenName", screen_name=link.screen_name)
        if not found:  # VK answers an empty list for names nobody holds
            raise BadLink(f"there is no VK page or community called {link.screen_name!r}")
        kind, object_id = found.get("type"), int(found.get("object_id", 0))
        if kind == "user":
            return object_id
        if kind in ("group", "page", "event"):
            return -object_id
        raise BadLink(f"vk.com/{link.screen_name} is a {kind}, not a page or community with photo albums")

    def _albums(self, owner_id: int) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self._call("photos.getAlbums", owner_id=owner_id, need_system=1, offset=offset, count=100)
            items = page.get("items", [])
            yield from items
            offset += len(items)
            if not items or offset >= int(page.get("count", 0)):
                return

    def _album_info(self, owner_id: int, album_id: str) -> dict[str, Any]:
        if album_id in SYSTEM_ALBUM_NAMES.values():
            wanted = next(k for k, v in SYSTEM_ALBUM_NAMES.items() if v == album_id)
            for album in self._albums(owner_id):
                if album.get("id") == wanted:
                    return album
            return {"id": wanted, "title": album_id}
        page = self._call("photos.getAlbums", owner_id=owner_id, album_ids=album_id)
        items = page.get("items", [])
        if not items:
            raise AccessDenied(f"VK album {owner_id}_{album_id} does not exist or is not shared with you")
        return items[0]

    def _album_photos(self, owner_id: int, album: dict[str, Any]) -> Iterator[RemotePhoto]:
        album_id = int(album["id"])
        api_album = SYSTEM_ALBUM_NAMES.get(album_id, album_id)
        title = str(album.get("title", ""))
        offset = 0
        while True:
            page = self._call(
                "photos.get", owner_id=owner_id, album_id=api_album, offset=offset, count=PAGE_SIZE,
                photo_sizes=1, rev=0,
            )
            items = page.get("items", [])
            for item in items:
                photo = self._to_photo(owner_id, album_id, title, item)
                if photo is not None:
                    yield photo
            offset += len(items)
            if not items or offset >= int(page.get("count", 0)):
                return

    def _to_photo(self, owner_id: int, album_id: int, title: str, item: dict[str, Any]) -> RemotePhoto | None:
        best = largest_size(item)
        if best is None:
            return None
        photo_owner = int(item.get("owner_id", owner_id))
        photo_id = int(item["id"])
        ref = f"photo{photo_owner}_{photo_id}"
        return RemotePhoto(
            source=self.source,
            source_ref=f"vk:{ref}",
            name=f"{ref}.jpg",
            provenance={
                "owner_id": photo_owner,
                "album_id": album_id,
                "album_title": title,
                "photo_id": photo_id,
                "date": item.get("date"),
                "page_url": f"https://vk.com/{ref}",
                "size_type": best.get("type"),
                "width": best.get("width"),
                "height": best.get("height"),
            },
            locator=str(best["url"]),
        )

    # ------------------------------------------------------------ fetching

    def fetch(self, photo: RemotePhoto) -> bytes:
        """The bytes of the photo's largest size (thread-safe)."""
        data = _http.download(
            self._client, photo.locator, max_bytes=self._max_bytes, what=photo.name,
            sleep=self._sleep, on_retry=lambda: self.stats.add(retries=1),
        )
        verify_checksums(photo, data)
        verify_image(photo, data)
        self.stats.add(photos_fetched=1, bytes_fetched=len(data))
        return data

    # ------------------------------------------------------------ API calls

    def _call(self, method: str, **params: Any) -> Any:
        form = {k: str(v) for k, v in params.items()} | {"v": self._api_version, "access_token": self._token}
        renewed = False

        def once() -> Any:
            nonlocal renewed
            self._bucket.acquire()
            self.stats.add(requests=1)
            try:
                response = self._client.post(f"{self._api_base}/{method}", data=form)
            except httpx.TransportError as exc:
                raise _http.Busy(type(exc).__name__) from None
            if response.status_code >= 500:
                raise _http.Busy(f"HTTP {response.status_code}")
            body = self._json(response, method)
            if "error" not in body:
                return body.get("response")
            code = int(body["error"].get("error_code", 0))
            if code == 5 and not renewed and self._renew():
                renewed = True  # once per call, and not counted as a retry
                form["access_token"] = self._token
                return once()
            if code not in _RETRY_CODES:
                raise self._error(code, self._scrub(str(body["error"].get("error_msg", ""))), params)
            raise _http.Busy(_RETRY_CODES[code], rate_limited=code != 10)

        def on_retry(busy: _http.Busy, wait: float) -> None:
            self.stats.add(retries=1)
            logger.info("vk {} answered {}; retrying in {:.2f}s", method, busy.reason, wait)

        try:
            return _http.retrying(self._max_retries, self._backoff, sleep=self._sleep, on_retry=on_retry)(once)
        except _http.Busy as busy:
            if busy.rate_limited:
                raise RateLimited(f"VK kept answering '{busy.reason}' after {self._max_retries + 1} attempts; "
                                  "try again in a few minutes") from None
            raise SourceUnavailable(f"VK did not answer {method} ({busy.reason}); try again later") from None

    def _json(self, response: httpx.Response, method: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SourceUnavailable(f"VK answered {method} with something that is not JSON (HTTP {response.status_code})")
        return body

    def _renew(self) -> bool:
        """Asks for a fresh token after error 5; True when one replaced the stale token."""
        if self._renew_token is None:
            return False
        fresh = self._renew_token(self._token)
        if not fresh or fresh == self._token:
            return False
        self._old_tokens.append(self._token)
        self._token = fresh
        logger.info("vk token renewed after error 5; retrying")
        return True

    def _scrub(self, text: str) -> str:
        return _http.redact(text, [self._token, *self._old_tokens])

    def _error(self, code: int, message: str, params: dict[str, Any]) -> SourceError:
        owner = params.get("owner_id")
        album = params.get("album_id")
        where = f"album {owner}_{album}" if album is not None else (f"owner {owner}" if owner is not None else "VK")
        if code == 5:
            return TokenExpired("VK no longer accepts the access token (expired or revoked): sign in with VK again")
        if code in _ACCESS_CODES:
            return AccessDenied(f"VK {where}: access denied, the photos are private or not shared with you "
                                f"(VK error {code}: {message})")
        if code == 18:
            return OwnerDeleted(f"VK {where}: the page or community was deleted or banned")
        if code == 29:
            return QuotaExhausted("VK's daily request limit for this token is spent: the import stopped; "
                                  "resume it tomorrow")
        if code in (100, 113):
            return BadLink(f"VK {where}: no such page, community or album (VK error {code}: {message})")
        return SourceError(f"VK error {code}: {message}")


def largest_size(item: dict[str, Any]) -> dict[str, Any] | None:
    """The biggest entry of a photo's sizes[] (plus orig_photo when present): by pixel
    area, ties and zero-sized legacy entries ordered by the size letter (w > z > y > x …)."""
    candidates = [s for s in item.get("sizes") or [] if s.get("url")]
    orig = item.get("orig_photo")
    if isinstance(orig, dict) and orig.get("url"):
        candidates.append(orig | {"type": orig.get("type") or "orig"})
    if not candidates:
        return None
    return max(
        candidates,
        key=lambda s: (int(s.get("width") or 0) * int(s.get("height") or 0), SIZE_RANK.get(str(s.get("type")), -1)),
    )


class VkSettings(BaseModel):
    """VK's part of the settings (FACESEARCH_VK_…). Tests point the bases at local fakes."""

    vk_api_base: str = DEFAULT_API_BASE
    vk_id_base: str = "https://id.vk.com"
    # The VK ID app of this deployment; its redirect URI points at /api/oauth/vk/callback.
    vk_client_id: str = ""
    vk_redirect_uri: str = ""
    vk_requests_per_second: float = 3.0  # VK allows 3 API calls a second per token


def open_vk(link: VkLink, opening: Opening) -> VkSource:
    return VkSource(link, opening.token or "", api_base=opening.api_base or DEFAULT_API_BASE,
                    max_bytes=opening.max_bytes, require_https=opening.require_https, renew_token=opening.renew,
                    **opening.options)


SPEC = SourceSpec(
    name="vk", label="VK", graphql_name="VK", kind="link",
    summary="Import the photos behind a VK link (needs a VK access token with the photos scope).",
    target_help="A VK album, album list or page: vk.com/album-1_2, vk.com/albums-1, vk.com/name",
    link=VK_LINKS, open=open_vk, provider=OAuthProvider("vk", "VK"),
    settings=VkSettings, api_base_setting="vk_api_base",
    options=lambda s: {"requests_per_second": s.vk_requests_per_second},
)
