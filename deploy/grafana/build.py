"""Writes deploy/grafana/dashboards/facesearch.json from api.monitoring.SERIES, so every
Grafana panel queries exactly the expression the built-in monitoring page computes.

    python deploy/grafana/build.py          # regenerate
    python deploy/grafana/build.py --check  # exit 1 when the committed JSON is stale (a test runs this)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from api.monitoring import SERIES  # noqa: E402

OUTPUT = Path(__file__).resolve().parent / "dashboards" / "facesearch.json"
ROWS = ("throughput", "latency", "lag", "errors", "resources")
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}


def panel(series, panel_id: int, x: int, y: int) -> dict:
    legend = " ".join("{{" + label + "}}" for label in series.by) or series.title
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": series.title,
        "description": f"Series `{series.name}`: the same as /api/monitoring/series.",
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": series.unit, "custom": {"lineWidth": 1, "fillOpacity": 10}}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [{"refId": "A", "datasource": DATASOURCE, "expr": series.promql, "legendFormat": legend}],
    }


def dashboard() -> dict:
    panels, panel_id, y = [], 1, 0
    for row in ROWS:
        panels.append({"id": panel_id, "type": "row", "title": row.capitalize(), "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        panel_id, y = panel_id + 1, y + 1
        for index, series in enumerate(s for s in SERIES if s.group == row):
            panels.append(panel(series, panel_id, 12 * (index % 2), y + 8 * (index // 2)))
            panel_id += 1
        y = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    return {
        "uid": "facesearch-overview",
        "title": "Face search: overview",
        "tags": ["facesearch"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "panels": panels,
        "templating": {"list": []},
        "annotations": {"list": []},
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    if "--check" in sys.argv:
        stale = not OUTPUT.exists() or OUTPUT.read_text() != render()
        print(f"{OUTPUT} is {'stale: run python deploy/grafana/build.py' if stale else 'up to date'}")
        sys.exit(1 if stale else 0)
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}")
