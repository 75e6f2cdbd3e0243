"""The monitoring page names every series and label value for people, in Russian and
English, and writes times in the user's language and clock (24 h in Russian)."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime

import pytest

from api.monitoring import SERIES
from facesearch.infra import metrics
from facesearch.settings import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "tests" / "browser" / "monitoring_labels.mjs"
AFTERNOON = datetime(2026, 3, 4, 15, 7, 9).timestamp() * 1000  # local time: what the browser shows


def labels(request: dict) -> dict:
    node = shutil.which("node")
    if node is None or not (PROJECT_ROOT / "frontend" / "node_modules" / "svelte").is_dir():
        pytest.skip("node or frontend/node_modules missing (scripts/install.sh installs them)")
    done = subprocess.run([node, str(SCRIPT), json.dumps(request)], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_every_series_and_label_value_reads_as_words():
    lines = [["photos_per_second", {"outcome": "no_faces"}, False], ["projection_lag", {"projection": "photos"}, True],
             ["http_requests_per_second", {"status": "200"}, False]]
    lines += [["stage_latency_p50", {"stage": stage}, False] for stage in metrics.STAGES]
    keys = [f"series.{s.name}" for s in SERIES] + [f"label.stage.{stage}" for stage in metrics.STAGES]
    got = labels({"series": [s.name for s in SERIES], "lines": lines, "times": [], "keys": keys})
    for lang in ("ru", "en"):
        assert got[lang]["missing"] == [], f"{lang}: no words for {got[lang]['missing']}"
        names = got[lang]["names"]
        assert not [n for n, text in names.items() if text == n], f"{lang}: series shown by metric name"
    assert not set(got["ru"]["lines"][3:]) & set(metrics.STAGES), got["ru"]["lines"][3:]
    assert got["ru"]["lines"][:3] == ["без лиц", "Проекция: фото", "HTTP 200"]
    assert got["en"]["lines"][:3] == ["no faces", "Projection: photos", "HTTP 200"]
    assert got["ru"]["names"]["search_latency_p95"] == "Поиск, p95"


def test_times_in_the_users_language_and_clock():
    got = labels({"series": [], "lines": [], "times": [[AFTERNOON, "en-US"], [AFTERNOON, "ru-RU"], [AFTERNOON, "de-DE"]]})
    assert got["ru"]["times"] == ["15:07"] * 3  # Russian: 24 h whatever the browser
    assert got["en"]["times"][0] == "03:07 PM"  # an American browser's clock
    assert got["en"]["times"][2] == "15:07"  # English for a browser in another language: 24 h
