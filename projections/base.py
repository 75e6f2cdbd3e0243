"""What a projection is: a name, the event families it follows, its tables, and one
`apply` per event, run inside the transaction that also moves its checkpoint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.envelope import EventEnvelope

Handler = Callable[[AsyncConnection, EventEnvelope], Awaitable[None]]


@dataclass
class Projection:
    name: str
    families: tuple[str, ...]
    tables: tuple[sa.Table, ...]
    handlers: dict[str, Handler] = field(default_factory=dict)

    def on(self, event_type: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.handlers[event_type] = handler
            return handler

        return register

    async def apply(self, conn: AsyncConnection, envelope: EventEnvelope) -> None:
        handler = self.handlers.get(envelope.event_type)
        if handler is not None:
            await handler(conn, envelope)
