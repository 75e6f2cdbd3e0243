"""Signing in with VK ID and Yandex for imports, and the user's saved sign-ins.

- GET  /api/oauth/status                → per provider: is sign-in configured, is the user signed in
- GET  /api/oauth/vk/start              → redirect to VK ID (authorization code + PKCE)
- GET  /api/oauth/vk/callback           ← VK ID sends the browser back; the token is saved
                                          encrypted and the browser returns to the Imports screen
- GET  /api/oauth/yandex/start          → redirect to Yandex OAuth (authorization code + PKCE)
- GET  /api/oauth/yandex/callback       ← Yandex sends the browser back; the same
- GET  /api/credentials                 → the user's saved sign-ins, without secrets
- POST /api/credentials/{provider}/revoke → forget a sign-in; jobs using it can no longer run

Every token lives in the one `CredentialStore` (the import jobs' store, `api.imports`).
`FACESEARCH_VK_REDIRECT_URI` and `FACESEARCH_YANDEX_REDIRECT_URI` must point at the
callbacks of this server. The start and callback routes are browser navigations: the
session cookie (SameSite=Lax) comes along. The handlers are synchronous (the credential
store and the token exchange are), so FastAPI runs them in its thread pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import RedirectResponse
from loguru import logger
from pydantic import BaseModel

from api.auth import CurrentUser
from commands.credentials import CredentialStore
from commands.importers import SOURCES, providers
from commands.importers.base import SourceError
from facesearch.services.imports import (
    ImportConfigError,
    begin_vk_sign_in,
    begin_yandex_sign_in,
    complete_vk_sign_in,
    complete_yandex_sign_in,
    credential_store,
    sign_in_configured,
)
from facesearch.settings import Settings, get_settings

# Where the browser lands after signing in (the client's Imports screen).
AFTER_SIGN_IN = "/#/imports"


def _provider_name(name: str) -> str:
    """A provider's name, also accepted as the name of a source that signs in with it
    ("yadisk" for "yandex")."""
    spec = SOURCES.get(name)
    return spec.provider.name if spec is not None and spec.provider is not None else name


def current_owner(user: CurrentUser) -> str:
    """Whose sign-ins these are: the signed-in user's id (replace via dependency_overrides)."""
    return user.id


def oauth_settings(request: Request) -> Settings:
    system = getattr(request.app.state, "system", None)
    return system.settings if system is not None else get_settings()


def oauth_credentials(request: Request, settings: Annotated[Settings, Depends(oauth_settings)]) -> CredentialStore:
    """The app's credential store: `app.state.credentials` when set, else the import jobs'
    one (the same store their imports read), made on first use."""
    state = request.app.state
    store = getattr(state, "credentials", None)
    if store is None:
        jobs = getattr(state, "imports", None)
        try:
            store = jobs.credentials() if jobs is not None else credential_store(settings)
        except ImportConfigError as error:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from None
        state.credentials = store
    return store


Owner = Annotated[str, Depends(current_owner)]
OAuthSettings = Annotated[Settings, Depends(oauth_settings)]
Store = Annotated[CredentialStore, Depends(oauth_credentials)]

router = APIRouter(tags=["imports"])


class CredentialOut(BaseModel):
    id: str
    provider: str
    account: str | None
    status: str  # "active", "expired" or "revoked"
    created_at: float
    expires_at: float | None


class Revoked(BaseModel):
    revoked: int


class ProviderStatus(BaseModel):
    configured: bool  # this server can sign users in with the provider
    connected: bool  # the user has a sign-in that is usable (or renewable)


# Keyed by provider ("vk", "yandex": every source's provider), so a new one needs no field here.
OAuthStatus = dict[str, ProviderStatus]


@router.get("/api/oauth/status", response_model=OAuthStatus)
def oauth_status(owner: Owner, settings: OAuthSettings, request: Request) -> OAuthStatus:
    """Per provider: whether sign-in with it is available here, and whether the user is signed in."""
    answers = {}
    for provider in providers():
        configured = sign_in_configured(settings, provider)
        connected = False
        if configured:
            info = oauth_credentials(request, settings).active(owner, provider)
            connected = info is not None and (info.status == "active" or info.renewable)
        answers[provider] = ProviderStatus(configured=configured, connected=connected)
    return answers


@router.get("/api/oauth/vk/start", response_class=RedirectResponse, status_code=status.HTTP_302_FOUND)
def vk_start(owner: Owner, settings: OAuthSettings, store: Store) -> RedirectResponse:
    """Starts VK ID sign-in: redirects the browser to VK ID."""
    try:
        url = begin_vk_sign_in(owner, settings=settings, credentials=store)
    except ImportConfigError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from None
    return RedirectResponse(url, status_code=status.HTTP_302_FOUND)


@router.get("/api/oauth/vk/callback", response_class=RedirectResponse, status_code=status.HTTP_303_SEE_OTHER)
def vk_callback(
    owner: Owner, settings: OAuthSettings, store: Store,
    code: str = Query(""), state: str = Query(""), device_id: str = Query(""), error: str = Query(""),
) -> RedirectResponse:
    """Where VK ID sends the browser back: saves the token (encrypted) and returns to Imports."""
    return _back_to_imports(
        "vk", "VK", owner, code, state, error,
        lambda: complete_vk_sign_in(owner, code, state, device_id, settings=settings, credentials=store),
    )


@router.get("/api/oauth/yandex/start", response_class=RedirectResponse, status_code=status.HTTP_302_FOUND)
def yandex_start(owner: Owner, settings: OAuthSettings, store: Store) -> RedirectResponse:
    """Starts Yandex sign-in (for imports from the user's own Yandex.Disk): redirects to Yandex OAuth."""
    try:
        url = begin_yandex_sign_in(owner, settings=settings, credentials=store)
    except ImportConfigError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from None
    return RedirectResponse(url, status_code=status.HTTP_302_FOUND)


@router.get("/api/oauth/yandex/callback", response_class=RedirectResponse, status_code=status.HTTP_303_SEE_OTHER)
def yandex_callback(
    owner: Owner, settings: OAuthSettings, store: Store,
    code: str = Query(""), state: str = Query(""), error: str = Query(""),
) -> RedirectResponse:
    """Where Yandex OAuth sends the browser back: saves the token (encrypted) and returns to Imports."""
    return _back_to_imports(
        "yandex", "Yandex", owner, code, state, error,
        lambda: complete_yandex_sign_in(owner, code, state, settings=settings, credentials=store),
    )


def _back_to_imports(
    provider: str, label: str, owner: str, code: str, state: str, error: str, complete: Callable[[], str],
) -> RedirectResponse:
    """Finishes a provider's sign-in and sends the browser to Imports with the outcome."""
    if error or not code or not state:
        reason = f"{label} sign-in was cancelled or refused" + (f" ({error[:60]})" if error else "")
        outcome = {provider: "failed", "reason": reason}
    else:
        try:
            outcome = {provider: "connected", "credential": complete()}
        except (SourceError, ImportConfigError) as failure:
            logger.info("{} sign-in for {} failed: {}", label, owner, failure)
            outcome = {provider: "failed", "reason": str(failure)[:200]}
    return RedirectResponse(f"{AFTER_SIGN_IN}?{urlencode(outcome)}", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/api/credentials", response_model=list[CredentialOut])
def list_credentials(owner: Owner, store: Store) -> list[CredentialOut]:
    """The user's saved sign-ins (never the tokens)."""
    return [
        CredentialOut(id=c.id, provider=c.provider, account=c.account, status=c.status, created_at=c.created_at,
                      expires_at=c.expires_at)
        for c in store.list(owner)
    ]


@router.post("/api/credentials/{provider}/revoke", response_model=Revoked)
def revoke_credential(provider: str, owner: Owner, store: Store) -> Revoked:
    """Forgets the user's sign-in with `provider` ("vk" or "yandex"); imports using it stop
    being resumable and fail with a message saying so."""
    provider = _provider_name(provider)
    if provider not in providers():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no such provider {provider!r}")
    return Revoked(revoked=store.revoke(owner, provider))
