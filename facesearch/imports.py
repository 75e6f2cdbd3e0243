"""Starting, resuming and cancelling import jobs from the CLI and the API (the edge that
knows settings), and the VK ID and Yandex sign-ins that give remote imports their token.

A remote import (VK, Yandex.Disk) goes: parse the link (`BadLink` before any event or
request) → find the token (given, or from the `CredentialStore`; a public Yandex.Disk
link needs none) → record `ImportRequested` with only the credential id in its options →
`run_import`. Resuming asks the store for the token again, so a revoked or expired
sign-in ends the job with a message instead of a retry loop. A VK token that expired
(VK error 5, or its recorded lifetime is over) is renewed once with the stored refresh
token, and the renewed token is stored; without one the job stops with a message.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.utils import get_topic
from loguru import logger

from commands.app import FaceSearchApp
from commands.credentials import CredentialError, CredentialExpired, CredentialMissing, CredentialStore
from commands.importers import Credentials, SourceConfig, open_local_source, open_source, yandex_oauth
from commands.importers.base import BadLink, PhotoSource, SourceError
from commands.importers.links import ImportLink, VkAlbumLink, VkOwnerLink, VkScreenNameLink, YandexDiskPath, parse_link
from commands.importers.tokens import TokenCipher, TokenKeyMissing
from commands.importers.vk_oauth import VkAuthError, exchange_code, refresh_access_token, start_authorization
from commands.importing import ImportResult, Progress, run_import
from domain.import_job import ImportJob, ImportNotOpen, ImportRequested
from facesearch.settings import Settings

# Import sources backed by a remote service, and the credential provider each signs in with.
REMOTE_SOURCES = {"vk": "vk", "yadisk": "yandex"}
SOURCE_LABELS = {"vk": "VK", "yadisk": "Yandex.Disk", "local": "a local folder"}


class ImportConfigError(RuntimeError):
    """The server's settings do not allow this (an operator fixes it, not the user)."""


class ImportNotFound(KeyError):
    def __str__(self) -> str:
        return f"there is no import {self.args[0]}"


@dataclass(frozen=True)
class PreparedImport:
    """A recorded job and its opened source, ready for `run_import` (here or in a thread)."""

    import_id: UUID
    source: PhotoSource


@dataclass(frozen=True)
class ImportSummary:
    import_id: UUID
    owner: str
    source: str
    target: str
    status: str
    counts: dict[str, int]


def _run(app: FaceSearchApp, import_id: UUID, source: PhotoSource, settings: Settings,
         progress: Progress | None) -> ImportResult:
    """`run_import`, answering with the job's status when it was cancelled or ended elsewhere
    mid-photo (the runner then meets a closed job: `ImportNotOpen`)."""
    try:
        return run_import(app, import_id, source, concurrency=settings.import_concurrency, progress=progress)
    except ImportNotOpen:
        source.close()
        job = app.repository.get(import_id)
        logger.info("import {} stopped: it is {}", import_id, job.status)
        return ImportResult(job.id, job.status, job.counts())


# ---------------------------------------------------------------- local folders


def local_source(settings: Settings, folder: str, operator: bool) -> PhotoSource:
    """The operator's own CLI may import any folder it names; others only under allowed roots."""
    roots = list(settings.allowed_import_roots)
    if operator and not roots:
        roots = [Path(folder)]
    return open_local_source(folder, roots, max_bytes=settings.max_upload_bytes)


def import_local(
    app: FaceSearchApp, settings: Settings, folder: str, *, owner: str, operator: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    target = str(Path(folder).resolve())
    source = local_source(settings, folder, operator)  # refuses bad paths before any event
    import_id = app.request_import(owner=owner, source="local", target=target, options={"operator": operator})
    return _run(app, import_id, source, settings, progress)


# ---------------------------------------------------------------- VK and Yandex.Disk


def source_of(link: ImportLink) -> str:
    """"vk" or "yadisk" for a parsed link."""
    return "vk" if isinstance(link, (VkAlbumLink, VkOwnerLink, VkScreenNameLink)) else "yadisk"


def _needs_token(link: ImportLink) -> bool:
    # Public Yandex.Disk links are read anonymously; VK always wants a token.
    return source_of(link) == "vk" or isinstance(link, YandexDiskPath)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _checked_base(settings: Settings, name: str) -> tuple[str, bool]:
    """The configured base URL and whether it may be plain http (a loopback base, allowed by
    `import_allow_loopback_http`); anything else must be https."""
    base = str(getattr(settings, name))
    parts = urlsplit(base)
    if parts.scheme == "https":
        return base, False
    if parts.scheme == "http" and settings.import_allow_loopback_http and _is_loopback(parts.hostname or ""):
        return base, True
    raise ImportConfigError(f"{name} must be an https address (plain http only for a loopback address "
                            "with import_allow_loopback_http)")


def source_config(settings: Settings, source: str) -> SourceConfig:
    """Where the `source` ("vk" or "yadisk") talks to, and how politely, from the settings."""
    if source == "vk":
        base, relaxed = _checked_base(settings, "vk_api_base")
        extra: dict[str, object] = {"requests_per_second": settings.vk_requests_per_second,
                                    "backoff_seconds": settings.import_backoff_seconds}
        return SourceConfig(vk_api_base=base, max_bytes=settings.max_upload_bytes, require_https=not relaxed,
                            extra=extra)
    base, relaxed = _checked_base(settings, "yadisk_api_base")
    return SourceConfig(yadisk_api_base=base, max_bytes=settings.max_upload_bytes, require_https=not relaxed,
                        extra={"backoff_seconds": settings.import_backoff_seconds})


def credential_store(settings: Settings, given: CredentialStore | None = None) -> CredentialStore:
    """The given store, or one on the settings' event-store database, encrypting with the
    settings' `token_key` (`ImportConfigError` without one)."""
    if given is not None:
        return given
    try:
        cipher = TokenCipher(settings.token_key.get_secret_value())
    except TokenKeyMissing as error:
        raise ImportConfigError(str(error)) from None
    return CredentialStore(settings.resolved_event_store_dsn(), cipher)


# One renewal at a time: VK ID rotates refresh tokens, so two at once would spoil one.
_RENEW_LOCK = threading.Lock()


def renew_vk_credential(settings: Settings, store: CredentialStore, credential_id: str,
                        stale: str | None = None) -> str | None:
    """A usable VK token for the credential after its token expired: the one now stored
    when it differs from `stale` (renewed meanwhile), else one got with the stored refresh
    token (saved, with the new refresh token, under the same id). None when there is no
    refresh token, VK sign-in is not configured, or VK ID refuses."""
    with _RENEW_LOCK:
        try:
            current = store.token_for(credential_id, provider="vk")
        except CredentialExpired:
            current = None
        except CredentialError:
            return None  # revoked or gone: never renewed
        if current is not None and current != stale:
            return current
        grant = store.refresh_grant(credential_id)
        if grant is None:
            return None
        try:
            client_id, _, id_base = _vk_app(settings)
            token = refresh_access_token(client_id=client_id, refresh_token=grant.refresh_token,
                                         device_id=grant.device_id or "", id_base=id_base)
            store.renew(credential_id, token.access_token, _expiry(token.expires_at),
                        refresh_token=token.refresh_token or grant.refresh_token, device_id=grant.device_id)
        except (SourceError, ImportConfigError) as error:
            reason = str(error).replace(grant.refresh_token, "[masked]")
            logger.warning("VK sign-in {} could not be renewed: {}", credential_id, reason)
            return None
        logger.info("VK sign-in {} renewed with its refresh token", credential_id)
        return token.access_token


def _credential_token(settings: Settings, store: CredentialStore, credential_id: str, *,
                      owner: str | None = None, provider: str) -> str:
    """The credential's token; an expired VK one is renewed first when it can be
    (`CredentialError` with the store's message otherwise)."""
    try:
        return store.token_for(credential_id, owner=owner, provider=provider)
    except CredentialExpired:
        if provider == "vk" and (renewed := renew_vk_credential(settings, store, credential_id)):
            return renewed
        raise


class _SignInGuard:
    """A remote source that stops with the store's message once its sign-in is revoked or
    expires mid-run: `check` (which raises) runs at the start and then every `every` items
    or `seconds`."""

    def __init__(self, inner: PhotoSource, check: Callable[[], object], *,
                 every: int = 100, seconds: float = 10.0) -> None:
        self.inner = inner
        self.source = inner.source
        self._check_sign_in = check
        self._every = every
        self._seconds = seconds

    def __repr__(self) -> str:
        return f"_SignInGuard({self.inner!r})"

    def discover(self):
        self._check()
        since, checked = 0, time.monotonic()
        for item in self.inner.discover():
            since += 1
            if since >= self._every or time.monotonic() - checked >= self._seconds:
                self._check()
                since, checked = 0, time.monotonic()
            yield item

    def _check(self) -> None:
        self._check_sign_in()  # raises CredentialRevoked / CredentialExpired

    def fetch(self, photo):
        return self.inner.fetch(photo)

    def close(self) -> None:
        self.inner.close()


def _open_remote(
    settings: Settings, link: str, source: str, token: str | None,
    store: CredentialStore | None = None, credential_id: str | None = None,
) -> PhotoSource:
    saved = store is not None and credential_id is not None
    if source == "vk":
        renew = (lambda stale: renew_vk_credential(settings, store, credential_id, stale)) if saved else None
        credentials = Credentials(vk_token=token, vk_renew=renew)
    else:
        credentials = Credentials(yandex_token=token)
    opened = open_source(link, credentials, source_config(settings, source))  # makes no request yet
    if saved:
        provider = REMOTE_SOURCES[source]
        return _SignInGuard(opened, lambda: _credential_token(settings, store, credential_id, provider=provider))
    return opened


def prepare_import(
    app: FaceSearchApp, settings: Settings, *, owner: str, link: str, token: str | None = None,
    credential_id: str | None = None, source: str | None = None, credentials: CredentialStore | None = None,
) -> PreparedImport:
    """Checks a VK or Yandex.Disk link, finds its token and records `ImportRequested`.

    Nothing is recorded and no request is made when the link is refused (`BadLink`), is
    not of `source` (when given), or needs a token that is missing, revoked or expired
    (`CredentialError`). A `token` given here is saved encrypted in the credential store
    first (so the job can resume); the job's options hold only the credential id."""
    parsed = parse_link(link)
    found = source_of(parsed)
    if source is not None and source != found:
        raise BadLink(f"this is a {SOURCE_LABELS[found]} link, not {SOURCE_LABELS.get(source, source)}")
    source_config(settings, found)  # a misconfigured base refuses before the token is saved
    options: dict[str, Any] = {}
    secret: str | None = None
    store: CredentialStore | None = None
    if _needs_token(parsed) or credential_id is not None:
        provider = REMOTE_SOURCES[found]
        store = credential_store(settings, credentials)
        if token:
            credential_id = store.save(owner, provider, token)
        elif credential_id is None:
            active = store.active(owner, provider)
            if active is None:
                raise CredentialMissing(f"sign in with {SOURCE_LABELS[found]} first")
            credential_id = active.id
        secret = _credential_token(settings, store, credential_id, owner=owner, provider=provider)
        options["credential_id"] = credential_id
    photo_source = _open_remote(settings, link, found, secret, store, options.get("credential_id"))
    import_id = app.request_import(owner=owner, source=found, target=link.strip(), options=options)
    return PreparedImport(import_id, photo_source)


def start_import(
    app: FaceSearchApp, settings: Settings, *, owner: str, link: str, token: str | None = None,
    credential_id: str | None = None, source: str | None = None, credentials: CredentialStore | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Records and runs an import of a VK or Yandex.Disk link (see `prepare_import`)."""
    prepared = prepare_import(app, settings, owner=owner, link=link, token=token, credential_id=credential_id,
                              source=source, credentials=credentials)
    return run_prepared(app, settings, prepared, progress)


def run_prepared(app: FaceSearchApp, settings: Settings, prepared: PreparedImport,
                 progress: Progress | None = None) -> ImportResult:
    """Runs a job `prepare_import` recorded (blocking: the API calls it in a thread)."""
    return _run(app, prepared.import_id, prepared.source, settings, progress)


# ---------------------------------------------------------------- resume, cancel, list


def _get_job(app: FaceSearchApp, import_id: UUID) -> ImportJob:
    try:
        return app.get_import(import_id)
    except AggregateNotFoundError:
        raise ImportNotFound(str(import_id)) from None


def _fail(app: FaceSearchApp, job: ImportJob, reason: str) -> ImportResult:
    if job.is_open:
        job.fail(reason)
        app.save_import(job)
    return ImportResult(job.id, job.status, job.counts(), reason)


def resume_import(
    app: FaceSearchApp, settings: Settings, import_id: UUID, progress: Progress | None = None, *,
    credentials: CredentialStore | None = None,
) -> ImportResult:
    """Runs an unfinished job on: what it settled is neither downloaded nor recorded again.

    A remote job takes its token from the credential store; when that sign-in was revoked
    or has expired the job fails with a message saying so."""
    job = _get_job(app, import_id)
    if not job.is_open:
        return ImportResult(job.id, job.status, job.counts())
    if job.source == "local":
        source = local_source(settings, job.target, bool(job.options.get("operator")))
        return _run(app, import_id, source, settings, progress)
    if job.source not in REMOTE_SOURCES:
        raise SourceError(f"import {import_id} comes from {job.source!r}, which cannot be resumed")
    credential_id = job.options.get("credential_id")
    token, store = None, None
    if credential_id:
        store = credential_store(settings, credentials)
        try:
            token = _credential_token(settings, store, credential_id, owner=job.owner,
                                      provider=REMOTE_SOURCES[job.source])
        except CredentialError as error:
            logger.warning("import {} cannot resume: {}", import_id, error)
            return _fail(app, job, str(error))
    try:
        source = _open_remote(settings, job.target, job.source, token, store, credential_id)
    except SourceError as error:  # TokenExpired for a job recorded without a credential
        return _fail(app, job, str(error))
    return _run(app, import_id, source, settings, progress)


def resume_open_imports(app: FaceSearchApp, settings: Settings, *,
                        credentials: CredentialStore | None = None) -> list[ImportResult]:
    results = []
    for import_id in app.open_import_ids():
        try:
            results.append(resume_import(app, settings, import_id, credentials=credentials))
            logger.info("resumed import {}: {} {}", import_id, results[-1].status, results[-1].counts)
        except (SourceError, ImportConfigError) as error:
            # A configuration problem (no token_key, a bad base URL) leaves the job open for later.
            logger.warning("import {} not resumed: {}", import_id, error)
    return results


def cancel_import(app: FaceSearchApp, import_id: UUID) -> ImportResult:
    """Records `ImportCancelled` (nothing when the job already ended); a run in progress
    anywhere stops at its next photo."""
    job = _get_job(app, import_id)
    if job.is_open:
        job.cancel()
        app.save_import(job)
    return ImportResult(job.id, job.status, job.counts())


def list_imports(app: FaceSearchApp, owner: str | None = None) -> list[ImportSummary]:
    """Every import job in the event store (of `owner`, when given), oldest first."""
    summaries = []
    topic = get_topic(ImportRequested)
    for notification in app.recorder.select_notifications(start=None, limit=1_000_000, topics=[topic]):
        job = app.get_import(notification.originator_id)
        if owner is None or job.owner == owner:
            summaries.append(ImportSummary(job.id, job.owner, job.source, job.target, job.status, job.counts()))
    return summaries


# ---------------------------------------------------------------- VK ID sign-in


def _vk_app(settings: Settings) -> tuple[str, str, str]:
    if not settings.vk_client_id or not settings.vk_redirect_uri:
        raise ImportConfigError("VK sign-in is not configured on this server "
                                "(FACESEARCH_VK_CLIENT_ID, FACESEARCH_VK_REDIRECT_URI)")
    id_base, _ = _checked_base(settings, "vk_id_base")
    return settings.vk_client_id, settings.vk_redirect_uri, id_base


def begin_vk_sign_in(owner: str, *, settings: Settings, credentials: CredentialStore | None = None) -> str:
    """Starts a VK ID sign-in (authorization code + PKCE) and returns the URL to send the
    user to; the state and verifier stay on the server until VK ID redirects back."""
    client_id, redirect_uri, id_base = _vk_app(settings)
    store = credential_store(settings, credentials)
    request = start_authorization(client_id=client_id, redirect_uri=redirect_uri, id_base=id_base)
    store.put_sign_in(owner, "vk", request.state, request.code_verifier, time.time() + settings.oauth_state_seconds)
    return request.url


def complete_vk_sign_in(
    owner: str, code: str, state: str, device_id: str, *, settings: Settings,
    credentials: CredentialStore | None = None,
) -> str:
    """Trades VK ID's code for a token, saves it encrypted and returns the credential id.
    `VkAuthError` when the sign-in was not started here by `owner`, took too long, or VK ID refuses."""
    client_id, redirect_uri, id_base = _vk_app(settings)
    store = credential_store(settings, credentials)
    verifier = store.take_sign_in(owner, "vk", state)
    if verifier is None:
        raise VkAuthError("the VK sign-in took too long or was not started here: start signing in again")
    token = exchange_code(
        client_id=client_id, redirect_uri=redirect_uri, code=code, device_id=device_id,
        expected_state=state, returned_state=state, code_verifier=verifier, id_base=id_base,
    )
    return store.save(owner, "vk", token.access_token, _expiry(token.expires_at), refresh_token=token.refresh_token,
                      device_id=device_id or None, account=str(token.user_id or "") or None)


def _expiry(expires_at: float | None) -> float | None:
    # No expires_in (or 0) means a token without an expiry, not one that expired on arrival.
    return expires_at if expires_at is not None and expires_at > time.time() + 1 else None


def sign_in_configured(settings: Settings, provider: str) -> bool:
    """Whether this server can sign users in with `provider` ("vk" or "yandex"): the app is
    registered in the settings and there is a token_key to keep the token with."""
    if not settings.token_key.get_secret_value():
        return False
    try:
        _vk_app(settings) if provider == "vk" else _yandex_app(settings)
    except ImportConfigError:
        return False
    return True


# ---------------------------------------------------------------- Yandex sign-in


def _yandex_app(settings: Settings) -> tuple[str, str, str, str]:
    if not settings.yandex_client_id or not settings.yandex_redirect_uri:
        raise ImportConfigError("Yandex sign-in is not configured on this server "
                                "(FACESEARCH_YANDEX_CLIENT_ID, FACESEARCH_YANDEX_CLIENT_SECRET, "
                                "FACESEARCH_YANDEX_REDIRECT_URI)")
    oauth_base, _ = _checked_base(settings, "yandex_oauth_base")
    return (settings.yandex_client_id, settings.yandex_client_secret.get_secret_value(),
            settings.yandex_redirect_uri, oauth_base)


def begin_yandex_sign_in(owner: str, *, settings: Settings, credentials: CredentialStore | None = None) -> str:
    """Starts a Yandex sign-in (authorization code + PKCE) for imports from the user's own
    Yandex.Disk and returns the URL to send the user to."""
    client_id, _, redirect_uri, oauth_base = _yandex_app(settings)
    store = credential_store(settings, credentials)
    request = yandex_oauth.start_authorization(client_id=client_id, redirect_uri=redirect_uri,
                                               scope=settings.yandex_scope, oauth_base=oauth_base)
    store.put_sign_in(owner, "yandex", request.state, request.code_verifier,
                      time.time() + settings.oauth_state_seconds)
    return request.url


def complete_yandex_sign_in(
    owner: str, code: str, state: str, *, settings: Settings, credentials: CredentialStore | None = None,
) -> str:
    """Trades Yandex's confirmation code for a token, saves it encrypted and returns the
    credential id. `YandexAuthError` when the sign-in was not started here by `owner`, took
    too long, or Yandex refuses."""
    client_id, client_secret, _, oauth_base = _yandex_app(settings)
    store = credential_store(settings, credentials)
    verifier = store.take_sign_in(owner, "yandex", state)
    if verifier is None:
        raise yandex_oauth.YandexAuthError("the Yandex sign-in took too long or was not started here: "
                                           "start signing in again")
    token = yandex_oauth.exchange_code(
        client_id=client_id, client_secret=client_secret, code=code, expected_state=state, returned_state=state,
        code_verifier=verifier, oauth_base=oauth_base,
    )
    return store.save(owner, "yandex", token.access_token, _expiry(token.expires_at),
                      refresh_token=token.refresh_token)


__all__ = [
    "ImportConfigError", "ImportNotFound", "ImportSummary", "PreparedImport", "begin_vk_sign_in",
    "begin_yandex_sign_in", "cancel_import", "complete_vk_sign_in", "complete_yandex_sign_in", "credential_store",
    "import_local", "list_imports", "local_source", "prepare_import", "renew_vk_credential", "resume_import",
    "resume_open_imports", "run_prepared", "sign_in_configured", "source_config", "source_of", "start_import",
]
