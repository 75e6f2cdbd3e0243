"""A fake Yandex OAuth (oauth.yandex.ru) over real HTTP, following the documented formats
(https://yandex.ru/dev/id/doc/en/codes/code-url):

- GET /authorize?response_type=code&client_id=&redirect_uri=&state=[&code_challenge=
  &code_challenge_method=S256][&scope=] — the consent page; here the user always agrees, so
  it answers 302 to `redirect_uri?code=<code>&state=<state>` (or `?error=…&state=` for an
  unknown client or a bad request).
- POST /token (application/x-www-form-urlencoded) grant_type=authorization_code&code=
  [&code_verifier=], the app's id and secret in `Authorization: Basic` or as client_id /
  client_secret fields — `{"token_type": "bearer", "access_token", "expires_in",
  "refresh_token", "scope"}`, or HTTP 400 `{"error", "error_description"}` (invalid_grant,
  invalid_client, unsupported_grant_type). Codes are single-use.

The token it issues is `issue_token` (the fake Yandex.Disk's good token by default), so a
sign-in here opens the fake disk; set it to the disk's expired token for that scenario.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.fakes.server import CountingApp, ServerThread
from tests.fakes.yadisk_server import GOOD_TOKEN

CLIENT_ID = "0123456789abcdef0123456789abcdef"
CLIENT_SECRET = "fedcba9876543210fedcba9876543210"


@dataclass
class IssuedCode:
    client_id: str
    redirect_uri: str
    challenge: str | None


def _error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


class FakeYandexOAuth:
    def __init__(self) -> None:
        self.clients = {CLIENT_ID: CLIENT_SECRET}
        self.issue_token = GOOD_TOKEN
        self.expires_in = 31_536_000  # a year, as Yandex's tokens usually live
        self.codes: dict[str, IssuedCode] = {}
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []  # the forms, secrets left out
        self._lock = threading.Lock()
        self.app = CountingApp(Starlette(routes=[
            Route("/authorize", self._authorize, methods=["GET"]),
            Route("/token", self._token, methods=["POST"]),
        ]))

    @property
    def requests(self) -> int:
        return self.app.count

    async def _authorize(self, request: Request) -> Response:
        query = dict(request.query_params)
        with self._lock:
            self.authorize_requests.append(query)
        redirect_uri = query.get("redirect_uri", "")
        state = query.get("state", "")
        if query.get("client_id") not in self.clients or not redirect_uri:
            return _error("invalid_client", "Client not found", 400)
        if query.get("response_type") != "code":
            return RedirectResponse(f"{redirect_uri}?{urlencode({'error': 'unsupported_response_type', 'state': state})}",
                                    status_code=302)
        challenge = query.get("code_challenge")
        if challenge and query.get("code_challenge_method", "plain") != "S256":
            return RedirectResponse(f"{redirect_uri}?{urlencode({'error': 'invalid_request', 'state': state})}",
                                    status_code=302)
        code = f"{secrets.randbelow(10**16):016d}"  # Yandex's codes are 16 digits
        with self._lock:
            self.codes[code] = IssuedCode(query["client_id"], redirect_uri, challenge)
        return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}", status_code=302)

    def _client(self, request: Request, form: dict[str, str]) -> tuple[str, str]:
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            return client_id, secret
        return form.get("client_id", ""), form.get("client_secret", "")

    async def _token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        with self._lock:
            self.token_requests.append({k: v for k, v in form.items() if k not in ("client_secret", "code_verifier")})
        if form.get("grant_type") != "authorization_code":
            return _error("unsupported_grant_type", "grant_type is not supported")
        client_id, secret = self._client(request, form)
        if self.clients.get(client_id) != secret:
            return _error("invalid_client", "Wrong client secret", 401)
        with self._lock:
            issued = self.codes.pop(form.get("code", ""), None)
        if issued is None or issued.client_id != client_id:
            return _error("invalid_grant", "Code has expired")
        if issued.challenge is not None:
            verifier = form.get("code_verifier", "")
            computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if computed != issued.challenge:
                return _error("invalid_grant", "Code verifier is not valid")
        return JSONResponse({
            "token_type": "bearer", "access_token": self.issue_token, "expires_in": self.expires_in,
            "refresh_token": "1:refresh-" + secrets.token_urlsafe(24), "scope": "cloud_api:disk.read",
        })


@contextmanager
def running(fake: FakeYandexOAuth | None = None) -> Iterator[tuple[FakeYandexOAuth, str]]:
    """Serve `fake` (a new one if None); yields it and its base URL (the yandex_oauth_base)."""
    fake = fake or FakeYandexOAuth()
    with ServerThread(fake.app) as server:
        yield fake, server.base_url
