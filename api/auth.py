"""Signing in, and the gate every request passes.

A session token travels in an HttpOnly, SameSite=Lax cookie (the web client; Lax so that
VK ID's redirect back carries it, while no cross-site POST does) or as
`Authorization: Bearer <token>` (scripts, Prometheus). `AuthGate` answers 401 to any
request without a valid one, except the health check, the sign-in endpoints and the
client's static files (the sign-in page itself).
"""

from __future__ import annotations

import hmac
import json
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import UserError as CodedError
from api.throttle import LoginThrottle
from api.users import SESSION_SECONDS, User, UserError, UserStore
from domain.names import account_name

SESSION_COOKIE = "fs_session"
PUBLIC_PATHS = frozenset({"/health", "/api/auth/login", "/api/auth/setup", "/api/auth/status"})
# Everything under these prefixes is the API; other paths are the client's files.
PROTECTED_PREFIXES = ("/api/", "/graphql", "/metrics", "/docs", "/redoc", "/openapi.json")


def token_of(conn: HTTPConnection) -> str:
    header = conn.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return conn.cookies.get(SESSION_COOKIE, "")


def is_protected(path: str) -> bool:
    if path in PUBLIC_PATHS:
        return False
    return path.startswith(PROTECTED_PREFIXES) or path in {"/graphql", "/metrics"}


# Who reads /metrics with the `metrics_token` setting: no account, and nothing else it may do.
METRICS_READER = User(id="", username="metrics", role="metrics")


class AuthGate:
    """ASGI middleware: puts the signed-in `User` in `scope["state"]["user"]`, or answers 401.
    A bearer equal to `metrics_token` (when set) is `METRICS_READER`, on /metrics only."""

    def __init__(self, app: ASGIApp, users: UserStore | None = None, metrics_token: str = "") -> None:
        self.app = app
        self.users = users
        self.metrics_token = metrics_token

    def _metrics_reader(self, scope: Scope, token: str) -> bool:
        return bool(self.metrics_token) and scope["path"] == "/metrics" and hmac.compare_digest(
            token.encode(), self.metrics_token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        store: UserStore | None = self.users or getattr(conn.app.state, "users", None)
        token = token_of(conn)
        if self._metrics_reader(scope, token):
            user: User | None = METRICS_READER
        else:
            user = await store.user_for_token(token) if store is not None else None
        scope.setdefault("state", {})["user"] = user
        if user is None and is_protected(scope["path"]):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4401, "reason": "sign in first"})
                return
            body = json.dumps({"detail": "sign in first"}).encode()
            await send({
                "type": "http.response.start", "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                            (b"content-length", str(len(body)).encode())],
            })
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def current_user(request: Request) -> User:
    user = getattr(request.state, "user", None)
    if user is None:  # the gate lets only public paths through without one
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in first")
    return user


def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an administrator may do this")
    return user


def metrics_reader(user: Annotated[User, Depends(current_user)]) -> User:
    """An administrator, or Prometheus with the metrics token."""
    if not (user.is_admin or user is METRICS_READER):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an administrator may read the metrics")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(admin_user)]


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class NewUser(Credentials):
    role: str = "user"


class UserOut(BaseModel):
    id: str
    username: str
    role: str


class SignedIn(BaseModel):
    user: UserOut
    token: str = Field(description="The session token; the cookie carries the same one")


class AuthStatus(BaseModel):
    setup_required: bool = Field(description="No account exists yet: the first one becomes the administrator")
    user: UserOut | None


def _out(user: User) -> UserOut:
    return UserOut(id=user.id, username=user.username, role=user.role)


def _store(request: Request) -> UserStore:
    return request.app.state.users


def _set_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=int(SESSION_SECONDS), httponly=True, samesite="lax",
        secure=request.url.scheme == "https", path="/",
    )


router = APIRouter(prefix="/api", tags=["auth"])


@router.get("/auth/status", response_model=AuthStatus)
async def auth_status(request: Request) -> AuthStatus:
    """Whether someone is signed in, and whether the first account still has to be made."""
    user = getattr(request.state, "user", None)
    return AuthStatus(setup_required=await _store(request).count() == 0, user=_out(user) if user else None)


@router.post("/auth/login", response_model=SignedIn, responses={
    429: {"description": "Too many attempts for this account or from this address: wait Retry-After seconds"}})
async def login(body: Credentials, request: Request, response: Response) -> SignedIn | JSONResponse:
    store = _store(request)
    throttle: LoginThrottle = request.app.state.login_throttle
    account, address = account_name(body.username), request.client.host if request.client else ""
    # Counted before the password is hashed: refused guesses cost no Argon2 work.
    wait = throttle.attempt(account, address)
    if wait:
        return JSONResponse(
            {"detail": f"too many sign-in attempts: try again in {wait} s", "code": "TOO_MANY_ATTEMPTS",
             "params": {"seconds": wait}, "retry_after": wait},
            status_code=status.HTTP_429_TOO_MANY_REQUESTS, headers={"Retry-After": str(wait)})
    user = await store.authenticate(body.username, body.password)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    throttle.succeeded(account, address)
    token = await store.open_session(user)
    _set_cookie(request, response, token)
    return SignedIn(user=_out(user), token=token)


@router.post("/auth/setup", response_model=SignedIn, status_code=201)
async def setup(body: Credentials, request: Request, response: Response) -> SignedIn:
    """Creates the first account, an administrator; refused once any account exists."""
    store = _store(request)
    if await store.count() > 0:
        raise HTTPException(status.HTTP_409_CONFLICT, "this server already has accounts: sign in instead")
    try:
        user = await store.create(body.username, body.password, "admin")
    except UserError as error:
        raise CodedError(status.HTTP_422_UNPROCESSABLE_CONTENT, "BAD_ACCOUNT", str(error)) from None
    token = await store.open_session(user)
    _set_cookie(request, response, token)
    return SignedIn(user=_out(user), token=token)


@router.post("/auth/logout", status_code=204)
async def logout(request: Request, user: CurrentUser) -> Response:
    await _store(request).close_session(token_of(request))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/auth/me", response_model=UserOut)
async def me(user: CurrentUser) -> UserOut:
    return _out(user)


@router.get("/users", response_model=list[UserOut])
async def list_users(request: Request, admin: AdminUser) -> list[UserOut]:
    return [_out(u) for u in await _store(request).list()]


@router.post("/users", response_model=UserOut, status_code=201)
async def create_user(body: NewUser, request: Request, admin: AdminUser) -> UserOut:
    try:
        return _out(await _store(request).create(body.username, body.password, body.role))
    except UserError as error:
        raise CodedError(status.HTTP_422_UNPROCESSABLE_CONTENT, "BAD_ACCOUNT", str(error)) from None
