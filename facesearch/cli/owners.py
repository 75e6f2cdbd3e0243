"""Whose archive a CLI command acts on: an account of the web client.

The API scopes every read model by the signed-in user's id, so the CLI stores and reads by
that same id; a person names the account by its user name. The accounts are read straight
from their table (api/users.py), so this works whether or not the API is running.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from api.users import User, users
from domain.names import account_name
from facesearch.settings import Settings
from projections.db import make_engine


class OwnerError(Exception):
    """No account, or not one the command can choose by itself (the message says what to do)."""


def choose_owner(accounts: list[User], name: str | None) -> User:
    """The account named `name` (spelt any way that normalises to it, or its id), or, with no
    name, the only account there is."""
    if name is not None:
        wanted = account_name(name)
        for user in accounts:  # an unmigrated account keeps its exact older spelling
            if user.username in (wanted, name.strip()) or user.id == name.strip():
                return user
        known = ", ".join(u.username for u in accounts) or "none yet"
        raise OwnerError(f"no account is named {wanted!r} (accounts: {known})")
    if not accounts:
        raise OwnerError("no account exists yet: create the first account in the web client first, "
                         "or pass --owner with an account made by `python -m api.users add NAME`")
    if len(accounts) > 1:
        names = ", ".join(u.username for u in accounts)
        raise OwnerError(f"there are {len(accounts)} accounts ({names}): pass --owner NAME to say whose archive")
    return accounts[0]


async def read_accounts(settings: Settings) -> list[User]:
    """Every account, by name; none where the API has not created its tables yet."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_read_model_url())
    try:
        async with engine.connect() as conn:
            exists = await conn.run_sync(lambda c: sa.inspect(c).has_table(users.name))
            if not exists:
                return []
            rows = await conn.execute(sa.select(users.c.id, users.c.username, users.c.role).order_by(users.c.username))
            return [User(id=r.id, username=r.username, role=r.role) for r in rows]
    finally:
        await engine.dispose()


def resolve_owner(settings: Settings, name: str | None) -> User:
    """`choose_owner` over the accounts in the configured read-model database."""
    return choose_owner(asyncio.run(read_accounts(settings)), name)
