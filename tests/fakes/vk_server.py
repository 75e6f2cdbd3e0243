"""A fake VK API over real HTTP, following the documented formats (API 5.199):
`/method/photos.getAlbums`, `/method/photos.get`, `/method/utils.resolveScreenName`,
errors as {"error": {"error_code", "error_msg", "request_params"}}, offset/count
pagination (count at most 1000), and photo bytes from a separate download path `/dl/`.

Scenarios are set on the `FakeVk` object: owners and albums, private albums, deleted
owners, expired tokens, and injected errors (6 or 9 every k-th call, 29 after n calls).

VK ID's token endpoint `/oauth2/auth` answers `grant_type=authorization_code` (codes set in
`auth_codes`, checked against the PKCE challenge) and `grant_type=refresh_token` (refresh
tokens in `refresh_tokens`, bound to a device id): each answer issues a fresh access token
and rotates the refresh token, as VK ID does.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.images import make_image
from tests.fakes.server import CountingApp, ServerThread

GOOD_TOKEN = "vk1.a.good-token-0123456789abcdef0123456789abcdef"
EXPIRED_TOKEN = "vk1.a.expired-token-0123456789abcdef0123456789ab"
SYSTEM_NAMES = {"profile": -6, "wall": -7, "saved": -15}
# (type, width, height) of the sizes VK returns, smallest first.
SIZE_LADDER = [("s", 75, 56), ("m", 130, 97), ("x", 604, 453), ("y", 807, 605), ("z", 1280, 960), ("w", 2560, 1920)]


@dataclass
class FakeAlbum:
    id: int
    title: str
    photo_ids: list[int]
    private: bool = False


@dataclass
class FakeOwner:
    id: int
    albums: dict[int, FakeAlbum] = field(default_factory=dict)
    screen_name: str | None = None
    private: bool = False
    deleted: bool = False


class FakeVk:
    def __init__(self) -> None:
        self.owners: dict[int, FakeOwner] = {}
        self.valid_tokens = {GOOD_TOKEN}
        self.expired_tokens = {EXPIRED_TOKEN}
        # Error injection on API calls (downloads are never affected).
        self.error6_every: int | None = None
        self.error9_every: int | None = None
        self.quota_after: int | None = None
        # Error codes answered to the next calls, one each, before anything else.
        self.scripted_errors: list[int] = []
        self._next_photo_id = 456_000
        self._lock = threading.Lock()
        self.api_calls: list[tuple[float, str, dict[str, str]]] = []
        self.errors_sent: dict[int, int] = {}
        self.downloads = 0
        self.downloaded: dict[str, int] = {}  # downloads per file name ("-123_456000_w")
        self.tokens_seen_in_urls = 0
        # Photo id -> the bytes its downloads answer (any bytes: hostile ones too), or the size
        # of a JPEG-headed body streamed without Content-Length (for download caps).
        self.photo_bytes: dict[int, bytes] = {}
        self.streamed_sizes: dict[int, int] = {}
        self.app = CountingApp(Starlette(routes=[
            Route("/method/{name}", self._method, methods=["GET", "POST"]),
            Route("/dl/{name}", self._download, methods=["GET"]),
            Route("/oauth2/auth", self._oauth_token, methods=["POST"]),
        ]))
        # VK ID: authorization code -> (code_challenge, redirect_uri) it was issued for.
        self.auth_codes: dict[str, tuple[str, str]] = {}
        # VK ID: refresh token -> the device id it is bound to; used ones are removed.
        self.refresh_tokens: dict[str, str] = {}
        self.issued_tokens: list[str] = []  # every access and refresh token VK ID handed out
        self.refresh_requests = 0
        self._issued = 0

    # ------------------------------------------------------------ scenarios

    def add_owner(self, owner_id: int, *, screen_name: str | None = None, private: bool = False,
                  deleted: bool = False) -> FakeOwner:
        owner = FakeOwner(owner_id, screen_name=screen_name, private=private, deleted=deleted)
        self.owners[owner_id] = owner
        return owner

    def add_album(self, owner_id: int, album_id: int, title: str, photos: int, *, private: bool = False) -> FakeAlbum:
        ids = list(range(self._next_photo_id, self._next_photo_id + photos))
        self._next_photo_id += photos
        album = FakeAlbum(album_id, title, ids, private=private)
        self.owners[owner_id].albums[album_id] = album
        return album

    def add_community(self, group_id: int, screen_name: str, album_sizes: list[int]) -> FakeOwner:
        """A community (owner -group_id) with one album per size, ids 1001, 1002, …"""
        owner = self.add_owner(-group_id, screen_name=screen_name)
        for i, count in enumerate(album_sizes):
            self.add_album(-group_id, 1001 + i, f"Альбом {i + 1}", count)
        return owner

    def reset_counters(self) -> None:
        with self._lock:
            self.api_calls.clear()
            self.errors_sent.clear()
            self.downloads = 0
            self.downloaded.clear()
            self.app.count = 0

    @property
    def requests(self) -> int:
        """Every HTTP request received, any path."""
        return self.app.count

    # ------------------------------------------------------------ photo objects

    @staticmethod
    def sizes(owner_id: int, photo_id: int, base: str) -> list[dict[str, Any]]:
        """Sizes like VK's: some photos lack `w`, legacy ones report 0×0, order varies."""
        ladder = SIZE_LADDER if photo_id % 7 else SIZE_LADDER[:-1]
        legacy = photo_id % 5 == 0
        out = [
            {"type": t, "width": 0 if legacy else w, "height": 0 if legacy else h,
             "url": f"{base}/dl/{owner_id}_{photo_id}_{t}.jpg"}
            for t, w, h in ladder
        ]
        return out[::-1] if photo_id % 2 else out

    @staticmethod
    def expected_largest(photo_id: int) -> str:
        return "w" if photo_id % 7 else "z"

    def _photo(self, owner_id: int, album_id: int, photo_id: int, base: str) -> dict[str, Any]:
        return {
            "id": photo_id, "album_id": album_id, "owner_id": owner_id, "user_id": 100,
            "date": 1_600_000_000 + photo_id, "text": "", "has_tags": False,
            "sizes": self.sizes(owner_id, photo_id, base),
        }

    # ------------------------------------------------------------ HTTP

    async def _method(self, request: Request) -> Response:
        params: dict[str, str] = dict(request.query_params)
        if "access_token" in request.query_params:
            self.tokens_seen_in_urls += 1
        if request.method == "POST":
            # application/x-www-form-urlencoded, parsed by hand (no python-multipart needed)
            params |= dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        name = request.path_params["name"]
        with self._lock:
            public = {k: v for k, v in params.items() if k != "access_token"}
            self.api_calls.append((time.monotonic(), name, public))
            n = len(self.api_calls)
        token = params.get("access_token", "")
        if self.scripted_errors:
            code = self.scripted_errors.pop(0)
            return self._error(code, {6: "Too many requests per second", 9: "Flood control"}.get(code, "Error"),
                               name, params)
        if self.quota_after is not None and n > self.quota_after:
            return self._error(29, "Rate limit reached", name, params)
        if self.error6_every and n % self.error6_every == 0:
            return self._error(6, "Too many requests per second", name, params)
        if self.error9_every and n % self.error9_every == 0:
            return self._error(9, "Flood control", name, params)
        if not token:
            return self._error(5, "User authorization failed: no access_token passed.", name, params)
        if token in self.expired_tokens or token not in self.valid_tokens:
            return self._error(5, "User authorization failed: invalid access_token (4).", name, params)
        if params.get("v") is None:
            return self._error(8, "Invalid request: v (version) is required", name, params)
        handler = {
            "photos.get": self._photos_get,
            "photos.getAlbums": self._photos_get_albums,
            "utils.resolveScreenName": self._resolve,
        }.get(name)
        if handler is None:
            return self._error(3, "Unknown method passed", name, params)
        return handler(request, name, params)

    def _error(self, code: int, message: str, method: str, params: dict[str, str]) -> JSONResponse:
        with self._lock:
            self.errors_sent[code] = self.errors_sent.get(code, 0) + 1
        echoed = [{"key": "method", "value": method}, {"key": "oauth", "value": "1"}]
        echoed += [{"key": k, "value": v} for k, v in params.items() if k != "access_token"]
        return JSONResponse({"error": {"error_code": code, "error_msg": message, "request_params": echoed}})

    def _owner(self, name: str, params: dict[str, str]) -> FakeOwner | JSONResponse:
        try:
            owner_id = int(params.get("owner_id", "0"))
        except ValueError:
            return self._error(100, "One of the parameters specified was missing or invalid: owner_id", name, params)
        owner = self.owners.get(owner_id)
        if owner is None:
            return self._error(113 if owner_id > 0 else 100, "Invalid user id" if owner_id > 0
                               else "One of the parameters specified was missing or invalid: owner_id", name, params)
        if owner.deleted:
            return self._error(18, "User was deleted or banned", name, params)
        if owner.private:
            return self._error(30, "This profile is private", name, params)
        return owner

    def _photos_get_albums(self, request: Request, name: str, params: dict[str, str]) -> Response:
        owner = self._owner(name, params)
        if isinstance(owner, JSONResponse):
            return owner
        albums = [a for a in owner.albums.values() if a.id > 0 or params.get("need_system") == "1"]
        if params.get("album_ids"):
            wanted = {int(x) for x in params["album_ids"].split(",") if x.strip().lstrip("-").isdigit()}
            albums = [a for a in owner.albums.values() if a.id in wanted]
            if any(a.private for a in albums):
                return self._error(200, "Access denied: album is private", name, params)
        offset = int(params.get("offset", 0))
        count = int(params["count"]) if params.get("count") else len(albums)
        page = albums[offset:offset + count]
        items = [{"id": a.id, "thumb_id": a.photo_ids[0] if a.photo_ids else 0, "owner_id": owner.id,
                  "title": a.title, "description": "", "created": 1_500_000_000, "updated": 1_600_000_000,
                  "size": len(a.photo_ids)} for a in page]
        return JSONResponse({"response": {"count": len(albums), "items": items}})

    def _photos_get(self, request: Request, name: str, params: dict[str, str]) -> Response:
        owner = self._owner(name, params)
        if isinstance(owner, JSONResponse):
            return owner
        raw_album = params.get("album_id", "")
        album_id = SYSTEM_NAMES.get(raw_album) if raw_album in SYSTEM_NAMES else (
            int(raw_album) if raw_album.lstrip("-").isdigit() else None)
        album = owner.albums.get(album_id) if album_id is not None else None
        if album is None:
            return self._error(100, "One of the parameters specified was missing or invalid: album_id is invalid",
                               name, params)
        if album.private:
            return self._error(200, "Access denied: album is private", name, params)
        offset = max(0, int(params.get("offset", 0)))
        count = min(1000, max(0, int(params.get("count", 50))))
        base = str(request.base_url).rstrip("/")
        ids = album.photo_ids[offset:offset + count]
        items = [self._photo(owner.id, album.id, pid, base) for pid in ids]
        return JSONResponse({"response": {"count": len(album.photo_ids), "items": items}})

    def _resolve(self, request: Request, name: str, params: dict[str, str]) -> Response:
        wanted = params.get("screen_name", "").lower()
        for owner in self.owners.values():
            if owner.screen_name == wanted:
                kind = "group" if owner.id < 0 else "user"
                return JSONResponse({"response": {"object_id": abs(owner.id), "type": kind}})
        return JSONResponse({"response": []})  # VK's answer for an unknown name

    async def _download(self, request: Request) -> Response:
        stem = request.path_params["name"].removesuffix(".jpg")
        with self._lock:
            self.downloads += 1
            self.downloaded[stem] = self.downloaded.get(stem, 0) + 1
        try:
            owner_id, photo_id, size_type = stem.rsplit("_", 2)
            index = int(photo_id)
        except ValueError:
            return Response(status_code=404)
        if index in self.streamed_sizes:
            return StreamingResponse(_jpeg_stream(self.streamed_sizes[index]), media_type="image/jpeg")
        if index in self.photo_bytes:
            return Response(self.photo_bytes[index], media_type="image/jpeg")
        return Response(make_image(index, "JPEG", label=size_type), media_type="image/jpeg")


    def issue_refresh_token(self, device_id: str) -> str:
        """A refresh token VK ID will honour once, for `device_id`."""
        with self._lock:
            self._issued += 1
            token = f"vk2.a.refresh-{self._issued:04d}-0123456789abcdef"
            self.refresh_tokens[token] = device_id
            self.issued_tokens.append(token)
        return token

    def _token_answer(self, access_token: str, device_id: str, state: str) -> JSONResponse:
        with self._lock:
            self.issued_tokens.append(access_token)
        return JSONResponse({
            "access_token": access_token, "refresh_token": self.issue_refresh_token(device_id), "id_token": "x.y.z",
            "token_type": "Bearer", "expires_in": 3600, "user_id": 1234567, "state": state, "scope": "photos",
        })

    def _refresh(self, form: dict[str, str]) -> Response:
        with self._lock:
            self.refresh_requests += 1
            device_id = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
        if device_id is None or device_id != form.get("device_id") or not form.get("client_id"):
            return JSONResponse({"error": "invalid_grant", "error_description": "refresh token is invalid or expired"},
                                status_code=400)
        with self._lock:
            self._issued += 1
            fresh = f"vk1.a.renewed-{self._issued:04d}-0123456789abcdef0123456789"
            self.valid_tokens.add(fresh)
        return self._token_answer(fresh, device_id, form.get("state", ""))

    async def _oauth_token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        if form.get("grant_type") == "refresh_token":
            return self._refresh(form)
        issued = self.auth_codes.pop(form.get("code", ""), None)
        if form.get("grant_type") != "authorization_code" or issued is None:
            return JSONResponse({"error": "invalid_grant", "error_description": "code is invalid or expired"},
                                status_code=400)
        challenge, redirect_uri = issued
        verifier = form.get("code_verifier", "")
        computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if computed != challenge or form.get("redirect_uri") != redirect_uri:
            return JSONResponse({"error": "invalid_grant", "error_description": "code_verifier is invalid"},
                                status_code=400)
        return self._token_answer(GOOD_TOKEN, form.get("device_id", ""), form.get("state", ""))


async def _jpeg_stream(size: int, chunk: int = 256 * 1024):
    sent = 0
    while sent < size:
        part = min(chunk, size - sent)
        yield (b"\xff\xd8\xff\xe0" + bytes(part - 4)) if sent == 0 else bytes(part)
        sent += part


@contextmanager
def running(fake: FakeVk | None = None) -> Iterator[tuple[FakeVk, str]]:
    """Serve `fake` (a new one if None); yields it and its API base URL (…/method)."""
    fake = fake or FakeVk()
    with ServerThread(fake.app) as server:
        yield fake, f"{server.base_url}/method"
