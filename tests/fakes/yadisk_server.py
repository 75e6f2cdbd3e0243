"""A fake Yandex.Disk REST API over real HTTP, following the documented formats:

- GET /v1/disk/public/resources?public_key=&path=&limit=&offset=   (no auth)
- GET /v1/disk/public/resources/download?public_key=&path=         -> {"href", "method", "templated"}
- GET /v1/disk/resources?path=&limit=&offset=                       (Authorization: OAuth <token>)
- GET /v1/disk/resources/download?path=                             -> {"href", ...}
- the href (a "downloader" path) answers 302 to a "storage" path that serves the bytes.

Folders list `_embedded.items` with name, path, type, mime_type, media_type, md5,
sha256, size; errors are {"message", "description", "error"} with 401/403/404.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.fakes.images import make_image
from tests.fakes.server import CountingApp, ServerThread

GOOD_TOKEN = "y0_AgAAAA-good-oauth-token-0123456789abcdefghij"
EXPIRED_TOKEN = "y0_AgAAAA-expired-oauth-token-0123456789abcdefg"

MIME = {
    ".jpg": ("image/jpeg", "image"), ".jpeg": ("image/jpeg", "image"), ".png": ("image/png", "image"),
    ".webp": ("image/webp", "image"), ".heic": ("image/heic", "image"), ".gif": ("image/gif", "image"),
    ".txt": ("text/plain", "text"), ".pdf": ("application/pdf", "document"), ".mp4": ("video/mp4", "video"),
    ".zip": ("application/zip", "compressed"),
}

# A tree is {name: bytes | tree}: bytes are a file, a dict is a folder.
Tree = dict[str, Any]


def _error(status: int, error: str, description: str, message: str) -> JSONResponse:
    return JSONResponse({"message": message, "description": description, "error": error}, status_code=status)


def _not_found() -> JSONResponse:
    return _error(404, "DiskNotFoundError", "Resource not found.", "Не удалось найти запрошенный ресурс.")


class FakeYandexDisk:
    def __init__(self) -> None:
        # public_key -> folder tree, or the bytes of a file shared on its own (named in public_names)
        self.public: dict[str, Tree | bytes] = {}
        self.public_names: dict[str, str] = {}
        self.own: Tree = {}
        self.valid_tokens = {GOOD_TOKEN}
        self.expired_tokens = {EXPIRED_TOKEN}
        # Files whose listed md5 is deliberately wrong (the checksum-mismatch scenario).
        self.wrong_md5: set[str] = set()
        self.api_calls: list[tuple[str, dict[str, str]]] = []
        self.downloads = 0
        self.auth_headers_at_storage = 0
        self._lock = threading.Lock()
        self.app = CountingApp(Starlette(routes=[
            Route("/v1/disk/public/resources", self._public_resources),
            Route("/v1/disk/public/resources/download", self._public_download),
            Route("/v1/disk/resources", self._own_resources),
            Route("/v1/disk/resources/download", self._own_download),
            Route("/downloader/{ticket}", self._downloader),
            Route("/storage/{ticket}", self._storage),
        ]))

    @property
    def requests(self) -> int:
        """Every HTTP request received, any path."""
        return self.app.count

    def reset_counters(self) -> None:
        with self._lock:
            self.api_calls.clear()
            self.downloads = 0
            self.auth_headers_at_storage = 0
            self.app.count = 0

    # ------------------------------------------------------------ scenarios

    @staticmethod
    def photo_tree(folders: int, per_folder: int, *, start: int = 0, extras: bool = True) -> Tree:
        """Folders of JPEG/PNG photos, nested two deep, with a few non-image files."""
        tree: Tree = {}
        index = start
        for f in range(folders):
            folder: Tree = {}
            for p in range(per_folder):
                ext = ".png" if index % 4 == 3 else ".jpg"
                folder[f"IMG_{index:05d}{ext}"] = make_image(index, "PNG" if ext == ".png" else "JPEG")
                index += 1
            if extras:
                folder["notes.txt"] = b"not a photo\n"
            tree[f"folder {f + 1:02d}"] = folder
        return tree

    # ------------------------------------------------------------ tree access

    @staticmethod
    def _find(tree: Tree, path: str) -> Tree | bytes | None:
        node: Any = tree
        for part in [p for p in path.split("/") if p]:
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    @staticmethod
    def _public_key(raw: str) -> str:
        # The API takes the key itself or the public URL (…/d/<key>).
        raw = raw.rstrip("/")
        return raw.rsplit("/", 1)[-1] if "://" in raw else raw

    def _file_meta(self, name: str, path: str, data: bytes, identity: str) -> dict[str, Any]:
        ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
        mime, media = MIME.get(ext, ("application/octet-stream", "unknown"))
        md5 = hashlib.md5(data).hexdigest()
        if identity in self.wrong_md5:
            md5 = hashlib.md5(data + b"tampered").hexdigest()
        return {
            "name": name, "path": path, "type": "file", "mime_type": mime, "media_type": media,
            "md5": md5, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
            "created": "2021-05-01T10:00:00+00:00", "modified": "2021-05-01T10:00:00+00:00",
            "resource_id": "4000000:" + hashlib.sha1(identity.encode()).hexdigest(),
            "antivirus_status": "clean",
        }

    def _resource(self, request: Request, tree: Tree, path: str, prefix: str, scope: str,
                  extra: dict[str, Any]) -> JSONResponse:
        node = self._find(tree, path)
        if node is None:
            return _not_found()
        display = prefix + "/" + "/".join(p for p in path.split("/") if p)
        name = path.rstrip("/").rsplit("/", 1)[-1] or "disk"
        if isinstance(node, bytes):
            return JSONResponse(self._file_meta(name, display, node, f"{scope}:{display}") | extra)
        limit = int(request.query_params.get("limit", 20))
        offset = int(request.query_params.get("offset", 0))
        names = sorted(node)
        items = []
        for child in names[offset:offset + limit]:
            child_path = display.rstrip("/") + "/" + child
            value = node[child]
            if isinstance(value, dict):
                items.append({"name": child, "path": child_path, "type": "dir",
                              "created": "2021-05-01T10:00:00+00:00", "modified": "2021-05-01T10:00:00+00:00",
                              "resource_id": "4000000:" + hashlib.sha1(f"{scope}:{child_path}".encode()).hexdigest()}
                             | extra)
            else:
                items.append(self._file_meta(child, child_path, value, f"{scope}:{child_path}") | extra)
        body = {
            "name": name, "path": display, "type": "dir",
            "_embedded": {"items": items, "limit": limit, "offset": offset, "total": len(names),
                          "path": display, "sort": request.query_params.get("sort", "")} | extra,
        } | extra
        return JSONResponse(body)

    def _href(self, request: Request, scope: str, key: str, path: str) -> JSONResponse:
        ticket = base64.urlsafe_b64encode(json.dumps([scope, key, path]).encode()).decode()
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"href": f"{base}/downloader/{ticket}", "method": "GET", "templated": False})

    # ------------------------------------------------------------ auth

    def _auth(self, request: Request) -> JSONResponse | None:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("OAuth ").strip() if header.startswith("OAuth ") else ""
        if not token or token in self.expired_tokens or token not in self.valid_tokens:
            return _error(401, "UnauthorizedError", "Unauthorized", "Не авторизован.")
        return None

    # ------------------------------------------------------------ endpoints

    def _log(self, request: Request) -> None:
        with self._lock:
            self.api_calls.append((request.url.path, dict(request.query_params)))

    async def _public_resources(self, request: Request) -> Response:
        self._log(request)
        key = self._public_key(request.query_params.get("public_key", ""))
        tree = self.public.get(key)
        if tree is None:
            return _not_found()
        path = request.query_params.get("path", "/")
        extra = {"public_key": key, "public_url": f"https://disk.yandex.ru/d/{key}"}
        if isinstance(tree, bytes):  # a link to one file: its path inside the share is "/"
            if path.strip("/"):
                return _not_found()
            name = self.public_names.get(key, "file")
            return JSONResponse(self._file_meta(name, "/", tree, f"public:{key}:/") | extra)
        return self._resource(request, tree, path, "", f"public:{key}", extra)

    async def _public_download(self, request: Request) -> Response:
        self._log(request)
        key = self._public_key(request.query_params.get("public_key", ""))
        path = request.query_params.get("path", "/")
        tree = self.public.get(key)
        if tree is None or not isinstance(self._find(tree, path), bytes):
            return _not_found()
        return self._href(request, "public", key, path)

    async def _own_resources(self, request: Request) -> Response:
        self._log(request)
        if denied := self._auth(request):
            return denied
        path = request.query_params.get("path", "disk:/").removeprefix("disk:")
        return self._resource(request, self.own, path, "disk:", "own", {})

    async def _own_download(self, request: Request) -> Response:
        self._log(request)
        if denied := self._auth(request):
            return denied
        path = request.query_params.get("path", "").removeprefix("disk:")
        if not isinstance(self._find(self.own, path), bytes):
            return _not_found()
        return self._href(request, "own", "", path)

    async def _downloader(self, request: Request) -> Response:
        # Like downloader.disk.yandex.ru: a redirect to the storage host holding the bytes.
        return RedirectResponse(f"/storage/{request.path_params['ticket']}", status_code=302)

    async def _storage(self, request: Request) -> Response:
        if "authorization" in request.headers:
            with self._lock:
                self.auth_headers_at_storage += 1
        try:
            scope, key, path = json.loads(base64.urlsafe_b64decode(request.path_params["ticket"]))
        except ValueError:
            return Response(status_code=404)
        tree = self.public.get(key) if scope == "public" else self.own
        node = self._find(tree or {}, path)
        if not isinstance(node, bytes):
            return Response(status_code=404)
        with self._lock:
            self.downloads += 1
        return Response(node, media_type="application/octet-stream")


@contextmanager
def running(fake: FakeYandexDisk | None = None) -> Iterator[tuple[FakeYandexDisk, str]]:
    """Serve `fake` (a new one if None); yields it and its API base URL."""
    fake = fake or FakeYandexDisk()
    with ServerThread(fake.app) as server:
        yield fake, server.base_url
