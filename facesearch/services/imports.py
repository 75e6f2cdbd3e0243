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
from typing import Any, cast
from urllib.parse import urlsplit
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.utils import get_topic
from loguru import logger

from commands.app import FaceSearchApp
from commands.credentials import CredentialError, CredentialExpired, CredentialMissing, CredentialStore
from commands.importers import SOURCES, find_link, open_local_source, yandex_oauth
from commands.importers.base import BadLink, Opening, PhotoSource, SourceError, SourceSpec
from commands.importers.tokens import TokenCipher, TokenKeyMissing
from commands.importers.vk import VkSettings
from commands.importers.vk_oauth import VkAuthError, exchange_code, refresh_access_token, start_authorization
from commands.importers.yadisk import YandexDiskSettings
from commands.importing import ImportResult, Progress, run_import
from domain.import_job import ImportJob, ImportNotOpen, ImportRequested
from facesearch.infra import metrics
from facesearch.settings import Settings


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
        return run_import(app, import_id, _TimedDownloads(source), concurrency=settings.import_concurrency, progress=progress)
    except ImportNotOpen:
        source.close()
        job = app.get_import(import_id)
        logger.info("import {} stopped: it is {}", import_id, job.status)
        return ImportResult(job.id, job.status, job.counts())


class _TimedDownloads:
    """A source whose fetches are timed as the pipeline's `download` stage (a failed one
    counts as a `download` error)."""

    def __init__(self, inner: PhotoSource) -> None:
        self.inner = inner
        self.source = inner.source

    def __repr__(self) -> str:
        return f"_TimedDownloads({self.inner!r})"

    def discover(self):
        return self.inner.discover()

    def fetch(self, photo):
        with metrics.observe_stage("download"):
            return self.inner.fetch(photo)

    def close(self) -> None:
        self.inner.close()


# ---------------------------------------------------------------- local folders

# The source of server folders (its jobs are started and resumed with `local_source`).
_FOLDER = next(spec for spec in SOURCES.values() if spec.kind == "folder")


def local_source(settings: Settings, folder: str, operator: bool) -> PhotoSource:
    """The operator's own CLI may import any folder it names unless roots are configured;
    others only under the allowed roots (configured, or the defaults)."""
    roots = settings.resolved_import_roots()
    if operator and not settings.allowed_import_roots:
        roots = [Path(folder)]
    return open_local_source(folder, roots, max_bytes=settings.max_upload_bytes)


def import_local(
    app: FaceSearchApp, settings: Settings, folder: str, *, owner: str, operator: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    target = str(Path(folder).resolve())
    source = local_source(settings, folder, operator)  # refuses bad paths before any event
    import_id = app.request_import(owner=owner, source=_FOLDER.name, target=target, options={"operator": operator})
    return _run(app, import_id, source, settings, progress)


# ---------------------------------------------------------------- remote sources (VK, Yandex.Disk, ...)


def needs_token(link: str) -> bool:
    """Whether importing this link takes the user's sign-in (a public share may not)."""
    spec, parsed = find_link(link)
    return spec.needs_token(parsed)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _checked_base(settings: Settings, name: str) -> tuple[str, bool]:
    """The configured base URL `name` and whether it may be plain http (a loopback base,
    allowed by `import_allow_loopback_http`); anything else must be https."""
    base = str(getattr(settings, name))  # a source's setting, by the name its spec gives
    parts = urlsplit(base)
    if parts.scheme == "https":
        return base, False
    if parts.scheme == "http" and settings.import_allow_loopback_http and _is_loopback(parts.hostname or ""):
        return base, True
    raise ImportConfigError(f"{name} must be an https address (plain http only for a loopback address "
                            "with import_allow_loopback_http)")


def source_opening(settings: Settings, spec: SourceSpec, token: str | None = None,
                   renew: Callable[[str], str | None] | None = None) -> Opening:
    """Where the source talks to, and how politely, from the settings (`ImportConfigError`
    for a base address that is not https)."""
    base, relaxed = _checked_base(settings, spec.api_base_setting) if spec.api_base_setting else (None, False)
    own = spec.settings.model_validate(settings, from_attributes=True) if spec.settings is not None else None
    return Opening(token=token, renew=renew, api_base=base, max_bytes=settings.max_upload_bytes,
                   require_https=not relaxed,
                   options={"backoff_seconds": settings.import_backoff_seconds, **spec.options(own)})


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
        renew = _RENEWERS.get(provider)
        if renew is not None and (renewed := renew(settings, store, credential_id, None)):
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


def _provider(spec: SourceSpec) -> str:
    if spec.provider is None:
        raise SourceError(f"{spec.label} has no sign-in")
    return spec.provider.name


def _open_remote(
    settings: Settings, link: str, spec: SourceSpec, token: str | None,
    store: CredentialStore | None = None, credential_id: str | None = None,
) -> PhotoSource:
    found, parsed = find_link(link)
    if found is not spec or spec.open is None:
        raise BadLink(f"this is not a {spec.label} link")
    renew: Callable[[str], str | None] | None = None
    renewer = _RENEWERS.get(spec.provider.name) if spec.provider is not None else None
    if renewer is not None and store is not None and credential_id is not None:
        def renew(stale: str) -> str | None:  # the source calls it when the service says the token expired
            return renewer(settings, store, credential_id, stale)
    opened = spec.open(parsed, source_opening(settings, spec, token, renew))  # makes no request yet
    if store is not None and credential_id is not None:
        provider = _provider(spec)
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
    found, parsed = find_link(link)
    if source is not None and source != found.name:
        wanted = SOURCES[source].label if source in SOURCES else source
        raise BadLink(f"this is a {found.label} link, not {wanted}")
    source_opening(settings, found)  # a misconfigured base refuses before the token is saved
    options: dict[str, Any] = {}
    secret: str | None = None
    store: CredentialStore | None = None
    if found.needs_token(parsed) or credential_id is not None:
        provider = _provider(found)
        store = credential_store(settings, credentials)
        if token:
            credential_id = store.save(owner, provider, token)
        elif credential_id is None:
            active = store.active(owner, provider)
            if active is None:
                raise CredentialMissing(f"sign in with {found.label} first")
            credential_id = active.id
        secret = _credential_token(settings, store, credential_id, owner=owner, provider=provider)
        options["credential_id"] = credential_id
    photo_source = _open_remote(settings, link, found, secret, store, options.get("credential_id"))
    import_id = app.request_import(owner=owner, source=found.name, target=link.strip(), options=options)
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


def _fail(app: FaceSearchApp, job: ImportJob, reason: str, code: str = "", params: dict | None = None) -> ImportResult:
    if job.is_open:
        job.fail(reason, code, params)
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
    spec = SOURCES.get(job.source)
    if spec is not None and spec.kind == "folder":
        source = local_source(settings, job.target, bool(job.options.get("operator")))
        return _run(app, import_id, source, settings, progress)
    if spec is not None and spec.kind == "upload":  # its files were in a browser that is gone: say so, keep what came
        return _fail(app, job, "the upload was interrupted before it ended", "upload_interrupted")
    if spec is None or spec.open is None:
        raise SourceError(f"import {import_id} comes from {job.source!r}, which cannot be resumed")
    credential_id = job.options.get("credential_id")
    token, store = None, None
    if credential_id:
        store = credential_store(settings, credentials)
        try:
            token = _credential_token(settings, store, credential_id, owner=job.owner,
                                      provider=_provider(spec))
        except CredentialError as error:
            logger.warning("import {} cannot resume: {}", import_id, error)
            return _fail(app, job, str(error), error.code, error.params)
    try:
        source = _open_remote(settings, job.target, spec, token, store, credential_id)
    except SourceError as error:  # TokenExpired for a job recorded without a credential
        return _fail(app, job, str(error), error.code, error.params)
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
    """Every import job in the event store (of `owner`, when given), oldest first. From the
    event store, not the imports read model: the CLI lists jobs while no `facesearch up` runs,
    and the embedded profile's read models move only while it does."""
    summaries = []
    topic = get_topic(ImportRequested)
    for notification in app.recorder.select_notifications(start=None, limit=1_000_000, topics=[topic]):
        job = app.get_import(cast(UUID, notification.originator_id))  # this app's ids are UUIDs
        if owner is None or job.owner == owner:
            summaries.append(ImportSummary(job.id, job.owner, job.source, job.target, job.status, job.counts()))
    return summaries


# ---------------------------------------------------------------- VK ID sign-in


def _vk_app(settings: Settings) -> tuple[str, str, str]:
    vk = VkSettings.model_validate(settings, from_attributes=True)
    if not vk.vk_client_id or not vk.vk_redirect_uri:
        raise ImportConfigError("VK sign-in is not configured on this server "
                                "(FACESEARCH_VK_CLIENT_ID, FACESEARCH_VK_REDIRECT_URI)")
    id_base, _ = _checked_base(settings, "vk_id_base")
    return vk.vk_client_id, vk.vk_redirect_uri, id_base


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
    verifier = store.take_sign_in(owner, "vk", state)  # the state check: only a state kept at this owner's start finds one
    if verifier is None:
        raise VkAuthError("the VK sign-in took too long or was not started here: start signing in again")
    token = exchange_code(
        client_id=client_id, redirect_uri=redirect_uri, code=code, device_id=device_id,
        state=state, code_verifier=verifier, id_base=id_base,
    )
    return store.save(owner, "vk", token.access_token, _expiry(token.expires_at), refresh_token=token.refresh_token,
                      device_id=device_id or None, account=str(token.user_id or "") or None)


def _expiry(expires_at: float | None) -> float | None:
    # No expires_in (or 0) means a token without an expiry, not one that expired on arrival.
    return expires_at if expires_at is not None and expires_at > time.time() + 1 else None


def sign_in_configured(settings: Settings, provider: str) -> bool:
    """Whether this server can sign users in with `provider` ("vk" or "yandex"): the app is
    registered in the settings and there is a token_key to keep the token with."""
    check = _SIGN_IN_APPS.get(provider)
    if check is None or not settings.token_key.get_secret_value():
        return False
    try:
        check(settings)
    except ImportConfigError:
        return False
    return True


# ---------------------------------------------------------------- Yandex sign-in


def _yandex_app(settings: Settings) -> tuple[str, str, str, str, str]:
    disk = YandexDiskSettings.model_validate(settings, from_attributes=True)
    if not disk.yandex_client_id or not disk.yandex_redirect_uri:
        raise ImportConfigError("Yandex sign-in is not configured on this server "
                                "(FACESEARCH_YANDEX_CLIENT_ID, FACESEARCH_YANDEX_CLIENT_SECRET, "
                                "FACESEARCH_YANDEX_REDIRECT_URI)")
    oauth_base, _ = _checked_base(settings, "yandex_oauth_base")
    return (disk.yandex_client_id, disk.yandex_client_secret.get_secret_value(),
            disk.yandex_redirect_uri, oauth_base, disk.yandex_scope)


def begin_yandex_sign_in(owner: str, *, settings: Settings, credentials: CredentialStore | None = None) -> str:
    """Starts a Yandex sign-in (authorization code + PKCE) for imports from the user's own
    Yandex.Disk and returns the URL to send the user to."""
    client_id, _, redirect_uri, oauth_base, scope = _yandex_app(settings)
    store = credential_store(settings, credentials)
    request = yandex_oauth.start_authorization(client_id=client_id, redirect_uri=redirect_uri,
                                               scope=scope, oauth_base=oauth_base)
    store.put_sign_in(owner, "yandex", request.state, request.code_verifier,
                      time.time() + settings.oauth_state_seconds)
    return request.url


def complete_yandex_sign_in(
    owner: str, code: str, state: str, *, settings: Settings, credentials: CredentialStore | None = None,
) -> str:
    """Trades Yandex's confirmation code for a token, saves it encrypted and returns the
    credential id. `YandexAuthError` when the sign-in was not started here by `owner`, took
    too long, or Yandex refuses."""
    client_id, client_secret, _, oauth_base, _ = _yandex_app(settings)
    store = credential_store(settings, credentials)
    verifier = store.take_sign_in(owner, "yandex", state)  # the state check: only a state kept at this owner's start finds one
    if verifier is None:
        raise yandex_oauth.YandexAuthError("the Yandex sign-in took too long or was not started here: "
                                           "start signing in again")
    token = yandex_oauth.exchange_code(
        client_id=client_id, client_secret=client_secret, code=code, code_verifier=verifier, oauth_base=oauth_base,
    )
    return store.save(owner, "yandex", token.access_token, _expiry(token.expires_at),
                      refresh_token=token.refresh_token)


# Each provider's sign-in flow is its own code (VK ID's device id, Yandex's client secret):
# what is configured, and who renews an expired token (only VK ID hands out refresh tokens
# used mid-run).
_SIGN_IN_APPS: dict[str, Callable[[Settings], object]] = {"vk": _vk_app, "yandex": _yandex_app}
_RENEWERS: dict[str, Callable[[Settings, CredentialStore, str, str | None], str | None]] = {
    "vk": renew_vk_credential,
}

__all__ = [
    "ImportConfigError", "ImportNotFound", "ImportSummary", "PreparedImport", "begin_vk_sign_in",
    "begin_yandex_sign_in", "cancel_import", "complete_vk_sign_in", "complete_yandex_sign_in", "credential_store",
    "import_local", "list_imports", "local_source", "needs_token", "prepare_import", "renew_vk_credential",
    "resume_import", "resume_open_imports", "run_prepared", "sign_in_configured", "source_opening", "start_import",
]
