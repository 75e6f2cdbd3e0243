"""Loguru set-up: readable text in development, JSON lines in production.

Context ids (`photo_id`, `import_id`, `event_id`) bound to a line with `logger.bind(...)`
get fields of their own (`log_no_faces` is one such line).

Secrets never reach a sink: every message and every context value passes through
`mask_secrets`, which replaces the configured secret values (tokens, keys, passwords)
and anything that looks like a credential (`access_token=…`, `Bearer …`, `password=…`,
`user:password@` in URLs) with a masked stand-in.
"""

from __future__ import annotations

import contextlib
import re
import sys
from typing import TYPE_CHECKING, Any

from loguru import logger
from pydantic import SecretStr

from facesearch.settings import Settings

if TYPE_CHECKING:
    from loguru import Record  # defined in loguru's stubs only

CONTEXT_IDS = ("photo_id", "import_id", "event_id")
MASK = "[masked]"

_CREDENTIAL_PATTERNS = (
    # key=value and "key": "value" for the usual secret names
    re.compile(
        r"""(?P<key>(?:access_token|refresh_token|token|secret|password|passwd|api_key|apikey|client_secret)"""
        r"""["']?\s*[=:]\s*["']?)(?P<secret>[^\s"'&,;}]+)""",
        re.IGNORECASE,
    ),
    re.compile(r"(?P<key>(?:Bearer|OAuth)\s+)(?P<secret>[A-Za-z0-9._~+/=-]{8,})", re.IGNORECASE),
    re.compile(r"(?P<key>[a-z][a-z0-9+.-]*://[^/\s:@]+:)(?P<secret>[^@\s/]+)(?=@)", re.IGNORECASE),
)

_known_secrets: set[str] = set()


def register_secret(value: str | SecretStr | None) -> None:
    """Adds a value that must never appear in a log line (ignored when short or empty)."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    for part in (value or "").split(","):  # token_key holds several keys, comma-separated
        if len(part.strip()) >= 6:
            _known_secrets.add(part.strip())


def mask_secrets(text: str) -> str:
    for secret in sorted(_known_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern in _CREDENTIAL_PATTERNS:
        text = pattern.sub(lambda m: m.group("key") + MASK, text)
    return text


def _mask_value(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {k: (MASK if _is_secret_name(k) else _mask_value(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_mask_value(v) for v in value)
    return value


def _is_secret_name(name: object) -> bool:
    return isinstance(name, str) and bool(re.search(r"token|secret|password|passwd|api_?key", name, re.IGNORECASE))


def _patch(record: Record) -> None:
    record["message"] = mask_secrets(record["message"])
    extra = record["extra"]
    for key, value in list(extra.items()):
        extra[key] = MASK if _is_secret_name(key) else _mask_value(value)
    # The text format shows the ids that are set, so fill a ready-made suffix.
    ids = " ".join(f"{key}={extra[key]}" for key in CONTEXT_IDS if extra.get(key) is not None)
    extra["_ids"] = f" [{ids}]" if ids else ""
    if record["exception"] is not None:
        # Tracebacks carry the exception's message; mask it in place.
        exc = record["exception"].value
        if exc is not None and exc.args:
            with contextlib.suppress(Exception):
                exc.args = tuple(mask_secrets(a) if isinstance(a, str) else a for a in exc.args)


TEXT_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "<cyan>{name}</cyan>:<cyan>{line}</cyan> - <level>{message}</level>{extra[_ids]}"
)


def _json_sink(stream: Any):
    """One JSON object a line, flat enough for log shippers: time, level, message, logger,
    the context ids at the top level, other bound values under `extra`. Our own rather than
    loguru's `serialize=True`, which nests everything under `record` beside the formatted
    text (the ids two levels down, where log shippers' field rules do not look)."""
    import json

    def write(message: Any) -> None:
        record = message.record
        extra = {k: v for k, v in record["extra"].items() if not k.startswith("_")}
        line: dict[str, Any] = {
            "time": record["time"].isoformat(),
            "level": record["level"].name,
            "message": record["message"],
            "logger": record["name"],
            "function": record["function"],
            "line": record["line"],
            "process": record["process"].id,
        }
        for key in CONTEXT_IDS:
            if key in extra:
                line[key] = extra.pop(key)
        if extra:
            line["extra"] = extra
        if record["exception"] is not None:
            exc = record["exception"]
            line["exception"] = mask_secrets(f"{exc.type.__name__ if exc.type else ''}: {exc.value}")
        stream.write(json.dumps(line, default=str, ensure_ascii=False) + "\n")
        stream.flush()

    return write


def configure_logging(settings: Settings, level: str = "INFO", *, sink: Any = None) -> None:
    """Text on the embedded profile, JSON lines on production; secrets from the settings
    are registered for masking. `sink` (a stream) replaces stderr, for tests."""
    for name, value in settings:
        if isinstance(value, SecretStr):
            register_secret(value)
        elif isinstance(value, str) and _is_secret_name(name):
            register_secret(value)
    stream = sink or sys.stderr
    logger.remove()
    logger.configure(patcher=_patch, extra={"_ids": ""})
    if settings.embedded:
        logger.add(stream, level=level, format=TEXT_FORMAT, colorize=stream is sys.stderr and sys.stderr.isatty(),
                   backtrace=False, diagnose=False)
    else:
        logger.add(_json_sink(stream), level=level, format="{message}", backtrace=False, diagnose=False)


def log_no_faces(photo_id: str, *, model: str | None = None, **details: Any) -> None:
    """The one line written for every photo in which the detector found no face."""
    logger.bind(photo_id=str(photo_id), model=model, **details).info("no faces found in photo {}", photo_id)
