"""Every metric a Grafana panel or an alert rule queries is one the system exports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from facesearch.infra import metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"

# Series Prometheus makes itself, and GPU gauges that exist only where NVML finds a GPU.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
CONDITIONAL = set(metrics.GPU_METRIC_NAMES)

FUNCTIONS_AND_KEYWORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "inf", "nan", "le",
}


def metric_names(promql: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions (followed by
    a parenthesis), keywords, label names inside braces or grouping clauses, or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', promql)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\boffset\s+\w+", "", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        name = match.group(0)
        following = text[match.end():].lstrip()
        if following.startswith("(") or name.lower() in FUNCTIONS_AND_KEYWORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", name):
            continue
        names.add(name)
    return names


def test_metric_name_extraction():
    assert metric_names('histogram_quantile(0.9, sum by (le, stage) (rate(a_bucket{stage="x"}[1m])))') == {"a_bucket"}
    assert metric_names("sum(rate(b_total[5m])) / clamp_min(sum(rate(c_total[5m])), 0.1) > 0.05") == {"b_total", "c_total"}
    assert metric_names('up{job=~"f.*"} == 0 and d offset 5m') == {"up", "d"}


def queried_expressions() -> list[tuple[str, str]]:
    found = []
    for path in DASHBOARDS:
        def walk(node):
            if isinstance(node, dict):
                if "expr" in node and isinstance(node["expr"], str):
                    found.append((f"{path.name}: {node.get('refId', '')}", node["expr"]))
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(json.loads(path.read_text()))
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            found.append((f"alerts.yml: {rule.get('alert') or rule.get('record')}", rule["expr"]))
    return found


def exported_names(exposition: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                    "summary": ("_sum", "_count", "_created")}.get(family.type, ())
        names.update(family.name + s for s in suffixes)
        names.update(sample.name for sample in family.samples)
    return names


def test_dashboards_are_generated_from_the_shared_series():
    result = subprocess.run([sys.executable, str(ROOT / "deploy" / "grafana" / "build.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_queried_metric_is_exported(running_system):
    assert DASHBOARDS, "no dashboards under deploy/grafana/dashboards"
    exported = exported_names(running_system.metrics())
    expressions = queried_expressions()
    assert len(expressions) >= 20
    missing = {}
    for where, expr in expressions:
        for name in metric_names(expr) - exported - SYNTHETIC - CONDITIONAL:
            missing.setdefault(name, []).append(where)
    assert not missing, f"queried but not exported: {missing}"
    # The GPU gauges the dashboards may query are defined here, created when NVML finds a GPU.
    for name in CONDITIONAL:
        assert name.startswith(metrics.PREFIX)
