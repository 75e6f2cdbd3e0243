"""Monitoring endpoints: `/metrics` for Prometheus and `/api/monitoring/series` for the
built-in monitoring page, plus the middleware that times every API request.

The series the page draws are the SERIES below, and the Grafana dashboards in
deploy/grafana/dashboards are generated from the same list (deploy/grafana/build.py),
so the page and Grafana compute the same PromQL over the same metric families:

- with `prometheus_url` set (production) the endpoint asks Prometheus, the data source
  Grafana uses, with the very same expressions;
- without it (the embedded profile) it evaluates those expressions itself over samples
  of this process's metrics (or all processes sharing PROMETHEUS_MULTIPROC_DIR), taken
  every `metrics_sample_seconds`.

Mount it with `install_monitoring(app, settings)` in `create_app`.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query, Response
from loguru import logger
from prometheus_client import CollectorRegistry
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

from facesearch import metrics
from facesearch.settings import Settings

Kind = Literal["rate", "quantile", "mean", "gauge"]
WINDOW = "1m"
WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Series:
    """One line chart: a PromQL expression of a restricted shape that both Prometheus and
    `LocalSeries` can evaluate.

    rate:     sum by (by) (rate(<metric>[1m]))
    quantile: histogram_quantile(q, sum by (le, by) (rate(<metric>_bucket[1m])))
    mean:     sum by (by) (rate(<metric>_sum[1m])) / sum by (by) (rate(<metric>_count[1m]))
    gauge:    <agg> by (by) (<metric>)
    """

    name: str
    title: str
    group: str  # the dashboard row: throughput | latency | lag | errors | resources
    unit: str  # a Grafana unit id: ops, s, short, bytes, percentunit
    kind: Kind
    metric: str  # the sample name as exposed: ..._total for counters, the histogram's base name
    by: tuple[str, ...] = ()
    q: float = 0.0
    agg: str = "sum"
    matchers: dict[str, str] = field(default_factory=dict)

    @property
    def promql(self) -> str:
        by = f" by ({', '.join(self.by)})" if self.by else ""
        sel = "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(self.matchers.items())) + "}" if self.matchers else ""
        if self.kind == "rate":
            return f"sum{by} (rate({self.metric}{sel}[{WINDOW}]))"
        if self.kind == "quantile":
            le_by = ", ".join(("le", *self.by))
            return f"histogram_quantile({self.q}, sum by ({le_by}) (rate({self.metric}_bucket{sel}[{WINDOW}])))"
        if self.kind == "mean":
            return f"sum{by} (rate({self.metric}_sum{sel}[{WINDOW}])) / sum{by} (rate({self.metric}_count{sel}[{WINDOW}]))"
        return f"{self.agg}{by} ({self.metric}{sel})"


P = metrics.PREFIX
SERIES: tuple[Series, ...] = (
    Series("photos_per_second", "Photos processed / s", "throughput", "ops", "rate", f"{P}_photos_processed_total", ("outcome",)),
    Series("faces_per_second", "Faces processed / s", "throughput", "ops", "rate", f"{P}_faces_processed_total"),
    Series("imports_per_second", "Photos imported / s", "throughput", "ops", "rate", f"{P}_photos_imported_total", ("source",)),
    Series("events_published_per_second", "Events published by the relay / s", "throughput", "ops", "rate",
           f"{P}_relay_published_events_total"),
    Series("projection_events_per_second", "Events applied by projections / s", "throughput", "ops", "rate",
           f"{P}_projection_events_total", ("projection",), matchers={"outcome": "applied"}),
    Series("stage_latency_p50", "Stage latency p50", "latency", "s", "quantile", f"{P}_stage_seconds", ("stage",), q=0.5),
    Series("stage_latency_p95", "Stage latency p95", "latency", "s", "quantile", f"{P}_stage_seconds", ("stage",), q=0.95),
    Series("batch_size_mean", "Mean batch size", "latency", "short", "mean", f"{P}_batch_size", ("stage",)),
    Series("search_latency_p95", "Search latency p95", "latency", "s", "quantile", f"{P}_search_seconds", q=0.95),
    Series("http_latency_p95", "API latency p95 by route", "latency", "s", "quantile", f"{P}_http_request_seconds", ("route",), q=0.95),
    Series("http_requests_per_second", "API requests / s by status", "latency", "reqps", "rate",
           f"{P}_http_request_seconds_count", ("status",)),
    Series("relay_lag", "Relay lag (events not yet published)", "lag", "short", "gauge", f"{P}_relay_lag_events", agg="max"),
    Series("projection_lag", "Projection lag (events not yet applied)", "lag", "short", "gauge",
           f"{P}_projection_lag_events", ("projection",), agg="max"),
    Series("consumer_lag", "Consumer lag by group", "lag", "short", "gauge", f"{P}_consumer_lag", ("group",)),
    Series("errors_per_second", "Errors / s by kind", "errors", "ops", "rate", f"{P}_errors_total", ("kind",)),
    Series("cpu_cores", "CPU (cores) by role", "resources", "short", "rate", f"{P}_process_cpu_seconds_total", ("role",)),
    Series("memory_bytes", "Resident memory by role", "resources", "bytes", "gauge",
           f"{P}_process_resident_memory_bytes", ("role",)),
    Series("gpu_utilization", "GPU utilisation", "resources", "percentunit", "gauge", f"{P}_gpu_utilization_ratio", ("gpu",), agg="max"),
    Series("gpu_memory_bytes", "GPU memory used", "resources", "bytes", "gauge", f"{P}_gpu_memory_used_bytes", ("gpu",), agg="max"),
)
SERIES_BY_NAME = {s.name: s for s in SERIES}

# --- local evaluation ----------------------------------------------------------------------

LabelKey = tuple[tuple[str, str], ...]
Snapshot = dict[str, dict[LabelKey, float]]  # sample name -> labels -> value


def _registry() -> Any:
    if metrics.multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return DEFAULT_REGISTRY


def take_snapshot(registry: Any = None) -> Snapshot:
    snapshot: Snapshot = {}
    for family in (registry or _registry()).collect():
        if not family.name.startswith(metrics.PREFIX):
            continue
        for sample in family.samples:
            snapshot.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return snapshot


def _group(labels: LabelKey, by: Iterable[str]) -> LabelKey:
    as_dict = dict(labels)
    return tuple((k, as_dict.get(k, "")) for k in by)


def _matches(labels: LabelKey, matchers: dict[str, str]) -> bool:
    as_dict = dict(labels)
    return all(as_dict.get(k) == v for k, v in matchers.items())


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus's histogram_quantile over (upper bound, cumulative count) pairs."""
    buckets = sorted(buckets)
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return math.nan
    total = buckets[-1][1]
    if total <= 0:
        return math.nan
    rank = q * total
    index = bisect.bisect_left([count for _, count in buckets], rank)
    if index == len(buckets) - 1:
        return buckets[-2][0]
    if index == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    lower, lower_count = (0.0, 0.0) if index == 0 else buckets[index - 1]
    upper, upper_count = buckets[index]
    if upper_count == lower_count:
        return upper
    return lower + (upper - lower) * (rank - lower_count) / (upper_count - lower_count)


class LocalSeries:
    """Keeps snapshots of this process's metrics and evaluates SERIES over them."""

    def __init__(self, interval: float = 2.0, history: float = 6 * 3600) -> None:
        self.interval = interval
        self.snapshots: deque[tuple[float, Snapshot]] = deque(maxlen=max(int(history / interval), 10))
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def sample(self, now: float | None = None) -> None:
        snapshot = take_snapshot()
        with self._lock:
            self.snapshots.append((time.time() if now is None else now, snapshot))

    def start(self) -> None:
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self.interval):
                try:
                    self.sample()
                except Exception as error:  # a bad scrape must not end the sampler
                    logger.warning("monitoring sample failed: {}", error)

        self.sample()
        self._thread = threading.Thread(target=loop, name="monitoring-series", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _rates(self, sample_name: str, index: int, snaps: list[tuple[float, Snapshot]], matchers: dict[str, str]
               ) -> dict[LabelKey, float]:
        """Per-series increase over the window ending at snaps[index], divided by the window."""
        t, now_snap = snaps[index]
        out: dict[LabelKey, float] = {}
        for labels, value in now_snap.get(sample_name, {}).items():
            if not _matches(labels, matchers):
                continue
            earlier = None
            for t0, snap in snaps[: index + 1]:  # the oldest sample inside the window that has the series
                if t0 >= t - WINDOW_SECONDS - 1e-9 and labels in snap.get(sample_name, {}):
                    earlier = snap[sample_name][labels]
                    break
            if earlier is None:
                continue
            increase = value - earlier if value >= earlier else value  # a counter reset
            out[labels] = increase / WINDOW_SECONDS
        return out

    def evaluate(self, series: Series, index: int, snaps: list[tuple[float, Snapshot]]) -> dict[LabelKey, float]:
        _, snap = snaps[index]
        grouped: dict[LabelKey, float] = {}
        if series.kind == "gauge":
            for labels, value in snap.get(series.metric, {}).items():
                if _matches(labels, series.matchers):
                    key = _group(labels, series.by)
                    grouped[key] = max(grouped.get(key, -math.inf), value) if series.agg == "max" else grouped.get(key, 0.0) + value
            return grouped
        if series.kind == "rate":
            for labels, rate in self._rates(series.metric, index, snaps, series.matchers).items():
                key = _group(labels, series.by)
                grouped[key] = grouped.get(key, 0.0) + rate
            return grouped
        if series.kind == "mean":
            sums: dict[LabelKey, float] = {}
            counts: dict[LabelKey, float] = {}
            for labels, rate in self._rates(f"{series.metric}_sum", index, snaps, series.matchers).items():
                sums[_group(labels, series.by)] = sums.get(_group(labels, series.by), 0.0) + rate
            for labels, rate in self._rates(f"{series.metric}_count", index, snaps, series.matchers).items():
                counts[_group(labels, series.by)] = counts.get(_group(labels, series.by), 0.0) + rate
            return {k: sums.get(k, 0.0) / c for k, c in counts.items() if c > 0}
        buckets: dict[LabelKey, dict[float, float]] = {}
        for labels, rate in self._rates(f"{series.metric}_bucket", index, snaps, series.matchers).items():
            le = float(dict(labels)["le"])
            per_le = buckets.setdefault(_group(labels, series.by), {})
            per_le[le] = per_le.get(le, 0.0) + rate
        for key, per_le in buckets.items():
            value = histogram_quantile(series.q, list(per_le.items()))
            if not math.isnan(value):
                grouped[key] = value
        return grouped

    def query(self, series: Series, since: float, until: float, step: float) -> list[dict[str, Any]]:
        with self._lock:
            snaps = list(self.snapshots)
        result: dict[LabelKey, list[list[float]]] = {}
        last_t = -math.inf
        for index, (t, _) in enumerate(snaps):
            if t < since or t > until or t - last_t < step - 1e-9:
                continue
            last_t = t
            for key, value in self.evaluate(series, index, snaps).items():
                result.setdefault(key, []).append([round(t, 3), value])
        return [{"labels": dict(key), "points": points} for key, points in sorted(result.items())]


async def prometheus_query(url: str, series: Series, since: float, until: float, step: float) -> list[dict[str, Any]]:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        response = await client.get(
            "/api/v1/query_range", params={"query": series.promql, "start": since, "end": until, "step": step}
        )
    response.raise_for_status()
    body = response.json()
    return [
        {"labels": item["metric"], "points": [[float(t), float(v)] for t, v in item["values"] if v not in ("NaN", "+Inf", "-Inf")]}
        for item in body["data"]["result"]
    ]


# --- HTTP request metrics ------------------------------------------------------------------


class RequestMetricsMiddleware:
    """Times every HTTP request into facesearch_http_request_seconds{method, route, status}.
    The route is the matched template (/photos/{photo_id}), never the raw path, so label
    values stay few; an unmatched path counts as "<unmatched>"."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_and_record(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        except Exception:
            metrics.error("http")
            raise
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            metrics.HTTP_REQUEST_SECONDS.labels(scope.get("method", ""), template, str(status["code"])).observe(
                time.perf_counter() - started
            )
            if status["code"] >= 500:
                metrics.error("http")


# --- routes --------------------------------------------------------------------------------


def _parse_time(value: str | None, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        from datetime import datetime

        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError as error:
            raise HTTPException(422, f"not a time: {value!r} (epoch seconds or ISO 8601)") from error
    return time.time() + number if number < 0 else number  # -3600 means "an hour ago"


def make_router(settings: Settings, local: LocalSeries) -> APIRouter:
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)

    @router.get("/api/monitoring/series")
    async def monitoring_series(
        since: str | None = Query(None, description="epoch seconds, ISO 8601, or negative seconds from now"),
        until: str | None = Query(None),
        step: float = Query(0.0, ge=0.0, description="seconds between points; 0 picks about 300 points"),
        names: str | None = Query(None, description="comma-separated series names; all by default"),
    ) -> dict[str, Any]:
        """The monitoring page's charts: every SERIES over [since, until], with the PromQL
        each one is (the same expression its Grafana panel queries)."""
        now = time.time()
        end = _parse_time(until, now)
        start = _parse_time(since, end - 3600)
        if start >= end:
            raise HTTPException(422, "since must be before until")
        step = step or max((end - start) / 300, settings.metrics_sample_seconds)
        wanted = [SERIES_BY_NAME[n] for n in (names.split(",") if names else SERIES_BY_NAME) if n in SERIES_BY_NAME]
        out = []
        for series in wanted:
            if settings.prometheus_url:
                data = await prometheus_query(settings.prometheus_url, series, start, end, step)
            else:
                data = local.query(series, start, end, step)
            out.append({"name": series.name, "title": series.title, "group": series.group, "unit": series.unit,
                        "promql": series.promql, "data": data})
        return {"source": "prometheus" if settings.prometheus_url else "local", "since": start, "until": end,
                "step": step, "window_seconds": WINDOW_SECONDS, "series": out}

    return router


def install_monitoring(app: FastAPI, settings: Settings) -> LocalSeries:
    """Adds the request-timing middleware, /metrics and /api/monitoring/series to `app`,
    and starts sampling for the local series (unless Prometheus answers them)."""
    local = LocalSeries(settings.metrics_sample_seconds, settings.monitoring_history_seconds)
    app.add_middleware(RequestMetricsMiddleware)
    app.include_router(make_router(settings, local))
    app.state.monitoring = local
    if not settings.prometheus_url:
        local.start()
    return local
