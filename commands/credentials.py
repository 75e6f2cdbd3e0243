"""OAuth tokens for VK and Yandex.Disk, encrypted at rest.

Tokens live in a table of their own on the event store's database, encrypted with the
`TokenCipher` the store is given (the composition root makes it from the settings'
`token_key`): the database, events, logs, exceptions and reprs never see one in clear
text. An import job keeps only the credential id in its options and asks the store for
the token when it starts or resumes. This is the one place tokens are kept.

One credential per owner and provider is active at a time: signing in again replaces the
token of the active credential (so jobs that reference it resume with the new token);
renewing it with a refresh token does the same by id; revoking wipes the token and the
refresh token and retires the id for good.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field

import sqlalchemy as sa

from commands.ddl import create_all_locked_sync
from commands.importers import providers
from commands.importers.base import SourceError, TokenExpired
from commands.importers.tokens import TokenCipher, TokenUnreadable

metadata = sa.MetaData()

credentials_table = sa.Table(
    "import_credentials",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("owner", sa.String(255), nullable=False, index=True),
    sa.Column("provider", sa.String(16), nullable=False),
    sa.Column("ciphertext", sa.Text, nullable=False),  # "" once revoked
    # The refresh token and the device id it is bound to (VK ID), as encrypted JSON.
    sa.Column("refresh_ciphertext", sa.Text, nullable=True),
    sa.Column("account", sa.String(64), nullable=True),  # the user id at the provider, if known
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("revoked_at", sa.Float, nullable=True),
)

# Sign-ins in progress: the state is stored as its SHA-256, the PKCE verifier encrypted.
pending_sign_ins = sa.Table(
    "import_oauth_pending",
    metadata,
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("provider", sa.String(16), nullable=False),
    sa.Column("verifier_ciphertext", sa.Text, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)


class CredentialError(SourceError):
    """The stored credential cannot be used; the message says what to do."""

    code = "credential_unusable"


class CredentialMissing(CredentialError):
    """No saved sign-in to use (never made, deleted, for another provider): not an expired token."""

    code = "credential_missing"


# A revoked or expired sign-in is a token the source no longer takes: a `TokenExpired` too.
class CredentialRevoked(CredentialError, TokenExpired):
    code = "credential_revoked"


class CredentialExpired(CredentialError, TokenExpired):
    code = "credential_expired"


@dataclass(frozen=True)
class CredentialInfo:
    """What may be shown about a credential: everything but the secret."""

    id: str
    owner: str
    provider: str
    account: str | None
    created_at: float
    updated_at: float
    expires_at: float | None
    revoked_at: float | None
    renewable: bool = False  # a refresh token is kept, so an expired token can be renewed

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= time.time():
            return "expired"
        return "active"


@dataclass(frozen=True)
class RefreshGrant:
    """What renewing a credential's token takes: its refresh token and, for VK ID, the
    device id the sign-in was made on."""

    credential_id: str
    provider: str
    refresh_token: str = field(repr=False)
    device_id: str | None = None


def sync_url(dsn: str) -> str:
    """An event-store DSN as a synchronous SQLAlchemy URL (psycopg 3 for PostgreSQL)."""
    if dsn.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + dsn.split("://", 1)[1]
    return dsn


def _label(provider: str) -> str:
    known = providers().get(provider)
    return known.label if known is not None else provider


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


class CredentialStore:
    """Saves, hands out and revokes OAuth tokens (thread-safe; synchronous)."""

    def __init__(self, dsn: str, cipher: TokenCipher, *, clock=time.time) -> None:
        self._cipher = cipher
        self._clock = clock
        self.engine = sa.create_engine(sync_url(dsn), pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":

            @sa.event.listens_for(self.engine, "connect")
            def _busy_timeout(dbapi_connection, _record):  # the event store writes to the same file
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

        create_all_locked_sync(self.engine, metadata)

    def __repr__(self) -> str:
        return f"CredentialStore({self.engine.dialect.name}, cipher=[masked])"

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------ credentials

    def save(
        self, owner: str, provider: str, token: str, expires_at: float | None = None, *,
        refresh_token: str | None = None, device_id: str | None = None, account: str | None = None,
    ) -> str:
        """Stores `token` encrypted as the owner's active credential for `provider` (replacing
        the token of the one active before, keeping its id) and returns the credential id.
        `refresh_token` (with the `device_id` VK ID bound it to) is kept encrypted too."""
        if provider not in providers():  # who users sign in with, from the sources' specs
            raise ValueError(f"unknown provider {provider!r}: one of {', '.join(providers())}")
        if not token:
            raise CredentialMissing(f"the {_label(provider)} token is empty")
        now = self._clock()
        values = {
            "ciphertext": self._cipher.encrypt(token),
            "refresh_ciphertext": self._seal_refresh(refresh_token, device_id),
            "account": account,
            "updated_at": now,
            "expires_at": expires_at,
        }
        with self.engine.begin() as conn:
            active = self._active_row(conn, owner, provider)
            if active is not None:
                conn.execute(credentials_table.update().where(credentials_table.c.id == active.id).values(**values))
                return active.id
            credential_id = str(uuid.uuid4())
            conn.execute(credentials_table.insert().values(
                id=credential_id, owner=owner, provider=provider, created_at=now, revoked_at=None, **values
            ))
            return credential_id

    def token_for(
        self, credential_id: str | None = None, *, owner: str | None = None, provider: str | None = None
    ) -> str:
        """The clear token of a credential, by id or as the owner's active one for a provider.

        Raises `CredentialMissing`, `CredentialRevoked` or `CredentialExpired` (all
        `SourceError`s, so an import job fails with their message)."""
        with self.engine.connect() as conn:
            if credential_id is not None:
                row = conn.execute(sa.select(credentials_table).where(credentials_table.c.id == str(credential_id))).first()
                if row is None or (owner is not None and row.owner != owner):
                    raise CredentialMissing("the saved sign-in for this import no longer exists: sign in again")
                if provider is not None and row.provider != provider:
                    raise CredentialMissing(f"the saved sign-in is for {_label(row.provider)}, not {_label(provider)}")
            else:
                if owner is None or provider is None:
                    raise ValueError("give a credential id, or an owner and a provider")
                row = self._active_row(conn, owner, provider)
                if row is None:
                    raise CredentialMissing(f"sign in with {_label(provider)} first")
        label = _label(row.provider)
        if row.revoked_at is not None:
            raise CredentialRevoked(f"the {label} sign-in used by this import was revoked: sign in with {label} again "
                                    "and start a new import")
        if row.expires_at is not None and row.expires_at <= self._clock():
            raise CredentialExpired(f"the {label} sign-in has expired: sign in with {label} again")
        try:
            return self._cipher.decrypt(row.ciphertext)
        except TokenUnreadable:
            raise CredentialError(f"the saved {label} sign-in cannot be read with this server's token_key: "
                                  f"sign in with {label} again") from None

    def refresh_grant(self, credential_id: str) -> RefreshGrant | None:
        """The refresh token of a credential that is not revoked, or None when it has none
        (or it cannot be read with this key)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(credentials_table).where(credentials_table.c.id == str(credential_id))).first()
        if row is None or row.revoked_at is not None or not row.refresh_ciphertext:
            return None
        try:
            payload = json.loads(self._cipher.decrypt(row.refresh_ciphertext))
        except (TokenUnreadable, ValueError):
            return None
        if not isinstance(payload, dict) or not payload.get("refresh_token"):
            return None
        return RefreshGrant(row.id, row.provider, str(payload["refresh_token"]), payload.get("device_id") or None)

    def renew(
        self, credential_id: str, token: str, expires_at: float | None = None, *,
        refresh_token: str | None = None, device_id: str | None = None,
    ) -> None:
        """Replaces the token (and refresh token) of a credential renewed with its refresh
        token, keeping its id. `CredentialRevoked` when it was revoked meanwhile: a revoked
        sign-in is never brought back."""
        if not token:
            raise CredentialMissing("the renewed token is empty")
        now = self._clock()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(credentials_table.c.provider, credentials_table.c.revoked_at)
                               .where(credentials_table.c.id == str(credential_id))).first()
            if row is None:
                raise CredentialMissing("the saved sign-in for this import no longer exists: sign in again")
            if row.revoked_at is not None:
                label = _label(row.provider)
                raise CredentialRevoked(f"the {label} sign-in used by this import was revoked: sign in with {label} "
                                        "again and start a new import")
            conn.execute(credentials_table.update().where(credentials_table.c.id == str(credential_id)).values(
                ciphertext=self._cipher.encrypt(token), refresh_ciphertext=self._seal_refresh(refresh_token, device_id),
                updated_at=now, expires_at=expires_at,
            ))

    def _seal_refresh(self, refresh_token: str | None, device_id: str | None) -> str | None:
        if not refresh_token:
            return None
        return self._cipher.encrypt(json.dumps({"refresh_token": refresh_token, "device_id": device_id}))

    def active(self, owner: str, provider: str) -> CredentialInfo | None:
        """The owner's credential for `provider` that is not revoked (it may have expired)."""
        with self.engine.connect() as conn:
            row = self._active_row(conn, owner, provider)
        return _info(row) if row is not None else None

    def get(self, credential_id: str) -> CredentialInfo | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(credentials_table).where(credentials_table.c.id == str(credential_id))).first()
        return _info(row) if row is not None else None

    def revoke(self, owner: str, provider: str) -> int:
        """Wipes and retires the owner's credentials for `provider`; jobs using them can no
        longer start or resume. Returns how many were revoked."""
        with self.engine.begin() as conn:
            result = conn.execute(
                credentials_table.update()
                .where(credentials_table.c.owner == owner, credentials_table.c.provider == provider,
                       credentials_table.c.revoked_at.is_(None))
                .values(ciphertext="", refresh_ciphertext=None, revoked_at=self._clock(), updated_at=self._clock())
            )
            return result.rowcount or 0

    def list(self, owner: str) -> list[CredentialInfo]:
        """The owner's credentials, newest first, without secrets."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(credentials_table).where(credentials_table.c.owner == owner)
                .order_by(credentials_table.c.created_at.desc())
            ).all()
        return [_info(row) for row in rows]

    @staticmethod
    def _active_row(conn: sa.Connection, owner: str, provider: str) -> sa.Row | None:
        return conn.execute(
            sa.select(credentials_table)
            .where(credentials_table.c.owner == owner, credentials_table.c.provider == provider,
                   credentials_table.c.revoked_at.is_(None))
            .order_by(credentials_table.c.created_at.desc())
        ).first()

    # ------------------------------------------------------------ sign-ins in progress

    def put_sign_in(self, owner: str, provider: str, state: str, verifier: str, expires_at: float) -> None:
        """Keeps a started OAuth sign-in until the provider redirects back."""
        now = self._clock()
        with self.engine.begin() as conn:
            conn.execute(pending_sign_ins.delete().where(pending_sign_ins.c.expires_at < now))
            conn.execute(pending_sign_ins.insert().values(
                state_hash=_state_hash(state), owner=owner, provider=provider,
                verifier_ciphertext=self._cipher.encrypt(verifier), expires_at=expires_at,
            ))

    def take_sign_in(self, owner: str, provider: str, state: str) -> str | None:
        """The PKCE verifier of the owner's sign-in with this state, once (it is deleted);
        None when unknown, someone else's, or expired."""
        with self.engine.begin() as conn:
            key = pending_sign_ins.c.state_hash == _state_hash(state)
            row = conn.execute(sa.select(pending_sign_ins).where(key)).first()
            if row is None:
                return None
            conn.execute(pending_sign_ins.delete().where(key))
        if row.owner != owner or row.provider != provider or row.expires_at < self._clock():
            return None
        try:
            return self._cipher.decrypt(row.verifier_ciphertext)
        except TokenUnreadable:
            return None


def _info(row: sa.Row) -> CredentialInfo:
    return CredentialInfo(
        id=row.id, owner=row.owner, provider=row.provider, account=row.account, created_at=row.created_at,
        updated_at=row.updated_at, expires_at=row.expires_at, revoked_at=row.revoked_at,
        renewable=bool(row.refresh_ciphertext) and row.revoked_at is None,
    )
