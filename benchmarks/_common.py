"""Shared bits of the face-analysis benchmarks: defaults from Settings, table and JSON output."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from facesearch.settings import get_settings


def default_models_dir() -> Path:
    return Path(get_settings().models_dir)


def machine() -> str:
    return f"{platform.machine()} {os.cpu_count()}-core CPU, {platform.system()}"


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    """A Markdown table (pasteable into docs/benchmarks.md)."""

    def fmt(v: object) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")


def print_json(result: dict) -> None:
    """The last line of every benchmark: one JSON object."""
    print(json.dumps(result, sort_keys=True))


def parse_options(pairs: list[str]) -> dict:
    """`key=value` model options (numbers, booleans, tuples as 1.0,2.0) for --detector-option."""
    out: dict = {}
    for item in pairs:
        key, _, value = item.partition("=")
        if "," in value:
            out[key] = tuple(float(v) for v in value.split(",") if v)
        elif value.lower() in ("true", "false"):
            out[key] = value.lower() == "true"
        else:
            try:
                out[key] = int(value)
            except ValueError:
                try:
                    out[key] = float(value)
                except ValueError:
                    out[key] = value
    return out
