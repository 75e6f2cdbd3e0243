"""Users and their sign-in sessions.

Users are not event-sourced: they are access control, not archive facts. They live in
their own tables on the read-model database, in a metadata of their own, so a `replay`
of the projections never touches them. Passwords are hashed with Argon2id; a session
token is 32 random bytes the client keeps, of which the server stores only the SHA-256.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.ext.asyncio import AsyncEngine

from api.passwords import weakness
from domain.names import account_name, has_unprintable
from projections.db import Writer, create_all_locked

metadata = sa.MetaData()

users = sa.Table(
    "api_users",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),  # "user" or "admin"
    sa.Column("created_at", sa.Float, nullable=False),
)

sessions = sa.Table(
    "api_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(36), nullable=False, index=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

ROLES = ("user", "admin")
SESSION_SECONDS = 30 * 24 * 3600
_hasher = PasswordHasher()  # Argon2id with the library's current (RFC 9106) parameters
# Verifying against this keeps "no such user" as slow as "wrong password".
_DUMMY_HASH = _hasher.hash("not a password of anyone")


class UserError(Exception):
    """Something about a user account a person can fix (the message says what)."""


@dataclass(frozen=True)
class User:
    id: str
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(row: sa.Row) -> User:
    return User(id=row.id, username=row.username, role=row.role)


class UserStore:
    """Accounts and sessions; password hashing runs off the event loop (it is slow on purpose)."""

    def __init__(self, engine: AsyncEngine, writer: Writer | None = None) -> None:
        self.engine = engine
        self.writer = writer or Writer(engine)

    async def create_tables(self) -> None:
        async with self.engine.begin() as conn:
            await create_all_locked(conn, metadata)
        await self._normalise_names()

    async def _normalise_names(self) -> None:
        """Accounts made before names were normalised get their one spelling, unless it is
        taken (then the older spelling stays, and only its exact form signs in)."""
        async with self.writer.transaction() as conn:
            rows = (await conn.execute(sa.select(users.c.id, users.c.username))).all()
            taken = {r.username for r in rows}
            for row in rows:
                name = account_name(row.username)
                if name != row.username and name not in taken:
                    await conn.execute(users.update().where(users.c.id == row.id).values(username=name))
                    taken.add(name)

    async def count(self) -> int:
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.select(sa.func.count()).select_from(users))).scalar_one()

    async def create(self, username: str, password: str, role: str = "user") -> User:
        username = account_name(username)
        if not 1 <= len(username) <= 64:
            raise UserError("a user name is 1 to 64 characters")
        if has_unprintable(username):
            raise UserError("a user name cannot hold control, invisible or text-direction characters")
        if reason := weakness(password, username):
            raise UserError(reason)
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}")
        password_hash = await asyncio.to_thread(_hasher.hash, password)
        user = User(id=str(uuid.uuid4()), username=username, role=role)
        try:
            async with self.writer.transaction() as conn:
                await conn.execute(users.insert().values(
                    id=user.id, username=username, password_hash=password_hash, role=role, created_at=time.time()
                ))
        except sa.exc.IntegrityError:
            raise UserError(f"the user name {username!r} is taken") from None
        return user

    async def list(self) -> list[User]:
        async with self.engine.connect() as conn:
            return [_user(r) for r in await conn.execute(sa.select(users).order_by(users.c.username))]

    async def authenticate(self, username: str, password: str) -> User | None:
        async with self.engine.connect() as conn:
            spellings = {account_name(username), username.strip()}  # the second: an unmigrated account
            found = (await conn.execute(sa.select(users).where(users.c.username.in_(spellings)))).all()
        row = min(found, key=lambda r: r.username != account_name(username), default=None)
        stored = row.password_hash if row else _DUMMY_HASH
        try:
            await asyncio.to_thread(_hasher.verify, stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if _hasher.check_needs_rehash(stored):  # parameters moved on since this hash was made
            new_hash = await asyncio.to_thread(_hasher.hash, password)
            async with self.writer.transaction() as conn:
                await conn.execute(users.update().where(users.c.id == row.id).values(password_hash=new_hash))
        return _user(row)

    async def open_session(self, user: User, seconds: float = SESSION_SECONDS) -> str:
        token = secrets.token_urlsafe(32)
        now = time.time()
        async with self.writer.transaction() as conn:
            await conn.execute(sessions.insert().values(
                token_hash=_token_hash(token), user_id=user.id, created_at=now, expires_at=now + seconds
            ))
        return token

    async def user_for_token(self, token: str) -> User | None:
        if not token:
            return None
        query = (
            sa.select(users)
            .join(sessions, sessions.c.user_id == users.c.id)
            .where((sessions.c.token_hash == _token_hash(token)) & (sessions.c.expires_at > time.time()))
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _user(row) if row else None

    async def close_session(self, token: str) -> None:
        async with self.writer.transaction() as conn:
            await conn.execute(sessions.delete().where(sessions.c.token_hash == _token_hash(token)))


def main() -> None:
    """`python -m api.users add NAME [--admin]`: create an account (asks for the password)."""
    import argparse
    import getpass

    from facesearch.settings import get_settings
    from projections.db import make_engine

    parser = argparse.ArgumentParser(prog="python -m api.users")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="create a user")
    add.add_argument("username")
    add.add_argument("--admin", action="store_true")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    sub.add_parser("list", help="list users")
    args = parser.parse_args()

    async def run() -> None:
        settings = get_settings()
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.resolved_read_model_url())
        store = UserStore(engine)
        try:
            await store.create_tables()
            if args.command == "list":
                for user in await store.list():
                    print(f"{user.username}\t{user.role}\t{user.id}")
                return
            import sys

            password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("password: ")
            user = await store.create(args.username, password, "admin" if args.admin else "user")
            print(f"created {user.username} ({user.role}), id {user.id}")
        finally:
            await engine.dispose()

    try:
        asyncio.run(run())
    except UserError as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
