"""Loguru set-up: readable text in development, JSON lines in production."""

from __future__ import annotations

import sys

from loguru import logger

from facesearch.settings import Settings


def configure_logging(settings: Settings, level: str = "INFO") -> None:
    logger.remove()
    logger.add(sys.stderr, level=level, serialize=not settings.embedded, backtrace=False, diagnose=False)
