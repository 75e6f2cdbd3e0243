"""Errors as clients read them: a stable `code` and its `params`, beside an English `detail`.

The client words each code in the user's language with human units (MB, megapixels), so
`params` hold plain numbers and names, never a sentence; `detail` stays for logs, scripts and
older clients. An `HTTPException` raised without a code gets one from its status.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

# The code of an answer whose raiser gave none, by its status.
STATUS_CODES = {
    400: "BAD_REQUEST", 401: "SIGN_IN_REQUIRED", 403: "FORBIDDEN", 404: "NOT_FOUND", 409: "CONFLICT",
    413: "FILE_TOO_LARGE", 415: "NOT_AN_IMAGE", 422: "BAD_REQUEST", 429: "TOO_MANY_REQUESTS", 503: "UNAVAILABLE",
}


class UserError(HTTPException):
    """A request a user can get wrong, answered with `status_code`, `code` and `params`."""

    def __init__(self, status_code: int, code: str, message: str, params: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code, message, headers=headers)
        self.code = code
        self.params = params or {}


def megabytes(size: int) -> float:
    """Bytes as MiB, the unit the client shows (50 MiB limit → 50)."""
    return round(size / 2**20, 1)


def body(code: str, message: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"detail": message, "code": code, "params": params or {}}


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Every HTTP error as `{detail, code, params}`."""
    code = getattr(exc, "code", None) or STATUS_CODES.get(exc.status_code, "ERROR")
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return JSONResponse(body(code, detail, getattr(exc, "params", None)), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))
