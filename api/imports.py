"""Starting import jobs from the API: validate the request, record `ImportRequested`, and
run the job in a background thread (the event-sourced application is synchronous).

VK needs the user's VK ID sign-in first (`/api/vk/authorize` → `/api/vk/callback`); the
access token is kept encrypted with the settings' `token_key`, per user, never in events.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import RedirectResponse
from loguru import logger
from pydantic import BaseModel

from api.auth import CurrentUser
from api.users import metadata
from commands.importers import Credentials, SourceConfig, open_source
from commands.importers.base import PhotoSource, SourceError
from commands.importers.tokens import TokenCipher, TokenKeyMissing, TokenUnreadable
from commands.importers.vk_oauth import AuthorizationRequest, exchange_code, start_authorization
from commands.importing import run_import
from facesearch.imports import local_source
from facesearch.system import System

IMPORT_SOURCES = ("vk", "yadisk", "local")
AUTHORIZATION_SECONDS = 600

vk_tokens = sa.Table(
    "api_vk_tokens",
    metadata,
    sa.Column("user_id", sa.String(36), primary_key=True),
    sa.Column("ciphertext", sa.Text, nullable=False),
    sa.Column("vk_user_id", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)


class ImportRefused(Exception):
    """The import cannot start; the message tells the user why."""


class ImportJobs:
    """Runs import jobs in the background and keeps VK sign-ins in progress."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.running: dict[str, asyncio.Task[Any]] = {}
        self.pending_vk: dict[str, tuple[AuthorizationRequest, float]] = {}  # by user id

    def _open(self, owner: str, source: str, target: str, vk_token: str | None) -> PhotoSource:
        settings = self.system.settings
        if source == "local":
            return local_source(settings, target, operator=False)
        credentials = Credentials(vk_token=vk_token) if source == "vk" else Credentials()
        opened = open_source(target, credentials, SourceConfig(max_bytes=settings.max_upload_bytes))
        if opened.source != source:
            raise ImportRefused(f"this link is for {opened.source}, not {source}")
        return opened

    async def start(self, owner: str, source: str, target: str) -> str:
        """Records the job and starts it; refuses bad links and paths before any event."""
        if source not in IMPORT_SOURCES:
            raise ImportRefused(f"source must be one of {', '.join(IMPORT_SOURCES)}")
        target = target.strip()
        if not target:
            raise ImportRefused("say what to import: a link or a folder")
        vk_token = await self.vk_token(owner) if source == "vk" else None
        if source == "vk" and not vk_token:
            raise ImportRefused("sign in with VK first")
        try:
            photo_source = await asyncio.to_thread(self._open, owner, source, target, vk_token)
        except SourceError as error:
            raise ImportRefused(str(error)) from None
        app = self.system.app
        import_id = await asyncio.to_thread(app.request_import, owner=owner, source=source, target=target)
        task = asyncio.create_task(self._run(import_id, photo_source))
        self.running[str(import_id)] = task
        task.add_done_callback(lambda _: self.running.pop(str(import_id), None))
        return str(import_id)

    async def _run(self, import_id: UUID, photo_source: PhotoSource) -> None:
        try:
            result = await asyncio.to_thread(run_import, self.system.app, import_id, photo_source)
            logger.info("import {} {}: {}", import_id, result.status, result.counts)
        except Exception:
            logger.exception("import {} crashed", import_id)

    # VK ID sign-in ---------------------------------------------------------------------------

    def _vk_settings(self) -> tuple[str, str]:
        settings = self.system.settings
        # Not every deployment registers a VK ID app: without one, VK import is off.
        client_id = str(getattr(settings, "vk_client_id", "") or "")
        redirect_uri = str(getattr(settings, "vk_redirect_uri", "") or "")
        if not client_id or not redirect_uri:
            raise ImportRefused("VK sign-in is not configured on this server (FACESEARCH_VK_CLIENT_ID, FACESEARCH_VK_REDIRECT_URI)")
        return client_id, redirect_uri

    def vk_authorize(self, user_id: str) -> str:
        client_id, redirect_uri = self._vk_settings()
        request = start_authorization(client_id=client_id, redirect_uri=redirect_uri)
        self.pending_vk[user_id] = (request, time.time() + AUTHORIZATION_SECONDS)
        return request.url

    async def vk_callback(self, user_id: str, code: str, state: str, device_id: str) -> None:
        client_id, redirect_uri = self._vk_settings()
        pending, expires = self.pending_vk.pop(user_id, (None, 0.0))
        if pending is None or expires < time.time():
            raise ImportRefused("the VK sign-in took too long or was not started here: start again")
        token = await asyncio.to_thread(
            exchange_code, client_id=client_id, redirect_uri=redirect_uri, code=code, device_id=device_id,
            expected_state=pending.state, returned_state=state, code_verifier=pending.code_verifier,
        )
        try:
            ciphertext = TokenCipher.from_settings(self.system.settings).encrypt(token.access_token)
        except TokenKeyMissing as error:
            raise ImportRefused(str(error)) from None
        async with self.system.engine.begin() as conn:
            await conn.execute(vk_tokens.delete().where(vk_tokens.c.user_id == user_id))
            await conn.execute(vk_tokens.insert().values(
                user_id=user_id, ciphertext=ciphertext, vk_user_id=token.user_id, expires_at=token.expires_at
            ))

    async def vk_token(self, user_id: str) -> str | None:
        async with self.system.engine.connect() as conn:
            row = (await conn.execute(sa.select(vk_tokens).where(vk_tokens.c.user_id == user_id))).first()
        if row is None or (row.expires_at and row.expires_at < time.time()):
            return None
        try:
            return TokenCipher.from_settings(self.system.settings).decrypt(row.ciphertext)
        except (TokenKeyMissing, TokenUnreadable):
            return None


router = APIRouter(prefix="/api/vk", tags=["imports"])


class VkAuthorization(BaseModel):
    url: str


class VkStatus(BaseModel):
    configured: bool
    connected: bool


def _jobs(request: Request) -> ImportJobs:
    return request.app.state.imports


@router.get("/status", response_model=VkStatus)
async def vk_status(request: Request, user: CurrentUser) -> VkStatus:
    jobs = _jobs(request)
    try:
        jobs._vk_settings()
        configured = True
    except ImportRefused:
        configured = False
    return VkStatus(configured=configured, connected=bool(configured and await jobs.vk_token(user.id)))


@router.post("/authorize", response_model=VkAuthorization)
async def vk_authorize(request: Request, user: CurrentUser) -> VkAuthorization:
    """Starts VK ID sign-in (OAuth 2.1 with PKCE): open the returned URL in the browser."""
    try:
        return VkAuthorization(url=_jobs(request).vk_authorize(user.id))
    except ImportRefused as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from None


@router.get("/callback", response_class=RedirectResponse, status_code=303)
async def vk_callback(
    request: Request, user: CurrentUser, code: str = Query(), state: str = Query(), device_id: str = Query("")
) -> RedirectResponse:
    """Where VK ID sends the browser back; stores the token and returns to the Imports screen."""
    try:
        await _jobs(request).vk_callback(user.id, code, state, device_id)
        outcome = {"vk": "connected"}
    except (ImportRefused, SourceError) as error:
        outcome = {"vk": "failed", "reason": str(error)[:200]}
    return RedirectResponse(f"/#/imports?{urlencode(outcome)}", status_code=303)
