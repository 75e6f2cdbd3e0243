"""How GraphQL errors are logged: a person's mistake is not the server's.

Errors our resolvers raise on purpose (a `GraphQLError` with a code: NOT_FOUND,
IMPORT_REFUSED, BAD_CORRECTION, ...) and errors in the query itself (parsing, validation)
are expected: one INFO line, no traceback. Anything else escaped a resolver: an ERROR
with its traceback, as Strawberry logs it.
"""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from loguru import logger


def is_expected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is None or isinstance(original, GraphQLError)


class Schema(strawberry.Schema):
    """`strawberry.Schema` that logs expected errors without a traceback."""

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        unexpected = []
        for error in errors:
            if is_expected(error):
                code = (error.extensions or {}).get("code", "BAD_REQUEST")
                path = ".".join(map(str, error.path or ())) or "-"
                logger.info("graphql {code} at {path}: {message}", code=code, path=path, message=error.message)
            else:
                unexpected.append(error)
        if unexpected:
            super().process_errors(unexpected, execution_context)
