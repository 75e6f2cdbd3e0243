"""Cross-site request forgery: a state change made with the session cookie must come from
one of our own pages.

SameSite=Lax keeps the cookie off cross-site requests, but a page on another port of the
same host (or another subdomain) is the same *site*, so the browser still sends it. Every
POST, PUT, PATCH and DELETE (GraphQL mutations included) that carries the session cookie
must therefore name an allowed origin in `Origin` (or, when a browser sent none, in
`Referer`); a GraphQL subscription's websocket too. Requests signed with a bearer token
are exempt: a page on another origin cannot set that header without our consent (we
answer no CORS). Sign-in and first-run setup, which carry no cookie yet, are refused too
when they name a foreign origin, so a page cannot sign a visitor in as someone else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
CODE = "CSRF_ORIGIN_REFUSED"

Origin = tuple[str, str, int]  # scheme, host, port


def parse_origin(value: str) -> Origin | None:
    """(scheme, host, port) of an origin or URL; None for `null`, opaque or malformed ones."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme]


def default_origins(host: str, port: int) -> list[str]:
    """The API's own address, also spelled with the loopback names when it listens on one."""
    names = {host}
    if host in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):
        names |= {"127.0.0.1", "localhost", "[::1]"}
    return [f"http://{h if ':' not in h or h.startswith('[') else f'[{h}]'}:{port}" for h in sorted(names)]


class OriginCheck:
    """ASGI middleware: answers 403 (code CSRF_ORIGIN_REFUSED) to a cookie-authenticated
    state change whose Origin/Referer is not an allowed origin."""

    def __init__(self, app: ASGIApp, *, allowed: Iterable[str], cookie: str, trust_host: bool = True,
                 sign_in_paths: Iterable[str] = ("/api/auth/login", "/api/auth/setup")) -> None:
        self.app = app
        self.sign_in_paths = frozenset(sign_in_paths)  # act on no session: checked only when they name an origin
        self.allowed = {o for o in map(parse_origin, allowed) if o}
        self.cookie = cookie
        self.trust_host = trust_host  # also allow the origin the request itself was sent to

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS or scope["type"] == "websocket":
            reason = self.refusal(scope)
            if reason:
                await self._refuse(scope, send, reason)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> str | None:
        """Why this request is refused, or None."""
        headers = Headers(scope=scope)
        if headers.get("authorization", "").lower().startswith("bearer "):
            return None
        with_cookie = f"{self.cookie}=" in headers.get("cookie", "") and scope["path"] not in self.sign_in_paths
        claimed = headers.get("origin") or headers.get("referer")
        if claimed is None:
            # Browsers send Origin on every cross-origin POST and websocket; a cookie without
            # either comes from an old browser or a script, which should use a bearer token.
            return "the request names no Origin or Referer" if with_cookie else None
        origin = parse_origin(claimed)
        if origin is not None and (origin in self.allowed or self._is_own(origin, scope, headers)):
            return None
        return f"requests from {claimed.strip()[:100]!r} may not act for this site's signed-in users"

    def _is_own(self, origin: Origin, scope: Scope, headers: Headers) -> bool:
        if not self.trust_host or "host" not in headers:
            return False
        scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
        return parse_origin(f"{scheme}://{headers['host']}") == origin

    async def _refuse(self, scope: Scope, send: Send, reason: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4403, "reason": CODE})
            return
        body = json.dumps({"detail": f"refused: {reason}", "code": CODE}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
