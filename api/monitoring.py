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

That local evaluation is our own (`rate`, `histogram_quantile` and four expression shapes):
no Python library evaluates PromQL without a Prometheus server to send it to, and the
embedded profile has none. tests/ops/test_prometheus.py holds it to Prometheus's answers.

Mount it with `install_monitoring(app, settings)` in `create_app`.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Response
from loguru import logger

from api.auth import metrics_reader
from facesearch.infra import metrics
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


def take_snapshot(registry: Any = None) -> Snapshot:
    snapshot: Snapshot = {}
    for family in (registry or metrics.collecting_registry()).collect():
        if not family.name.startswith(metrics.PREFIX):
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):  # creation times: no series reads them
                continue
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


@dataclass
class _Window:
    """The samples one query reads, as dense matrices: `now[p]` is the row at the p-th point
    and `start[p]` the oldest row of its rate window (NaN where a series did not exist)."""

    times: list[float]
    width: int  # the columns known when the window was taken (later ones are not in it)
    now: np.ndarray
    start: np.ndarray
    rows: list[np.ndarray]
    point_index: list[int]
    start_index: list[int]


class LocalSeries:
    """Keeps samples of this process's metrics and evaluates SERIES over them.

    Samples are stored by column (one float per known series per sample, the columns
    numbered as series appear), so six hours at a two-second interval is a few dozen MB
    and a query reads only the rows of the points it draws."""

    def __init__(self, interval: float = 2.0, history: float = 6 * 3600) -> None:
        self.interval = interval
        capacity = max(int(history / interval), 10)
        self.times: deque[float] = deque(maxlen=capacity)
        self.rows: deque[np.ndarray] = deque(maxlen=capacity)
        self.columns: dict[tuple[str, LabelKey], int] = {}
        self.names: dict[str, list[tuple[LabelKey, int]]] = {}  # sample name -> its columns
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def record(self, t: float, snapshot: Snapshot) -> None:
        """Adds one sample taken at `t` (epoch seconds, after the previous one)."""
        with self._lock:
            cells: list[tuple[int, float]] = []
            for name, per_labels in snapshot.items():
                for labels, value in per_labels.items():
                    column = self.columns.get((name, labels))
                    if column is None:
                        column = self.columns[(name, labels)] = len(self.columns)
                        self.names.setdefault(name, []).append((labels, column))
                    cells.append((column, value))
            row = np.full(len(self.columns), np.nan)
            if cells:
                index, values = zip(*cells)
                row[list(index)] = values
            self.times.append(t)
            self.rows.append(row)

    def sample(self, now: float | None = None) -> None:
        self.record(time.time() if now is None else now, take_snapshot())

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

    def _window(self, since: float, until: float, step: float) -> _Window | None:
        with self._lock:
            times, rows, width = list(self.times), list(self.rows), len(self.columns)
        points: list[int] = []
        last_t = -math.inf
        for index in range(bisect.bisect_left(times, since), bisect.bisect_right(times, until)):
            if times[index] - last_t >= step - 1e-9:
                points.append(index)
                last_t = times[index]
        if not points:
            return None
        starts = [bisect.bisect_left(times, times[i] - WINDOW_SECONDS - 1e-9) for i in points]

        def dense(indices: list[int]) -> np.ndarray:
            out = np.full((len(indices), width), np.nan)
            for p, i in enumerate(indices):
                out[p, : len(rows[i])] = rows[i]
            return out

        return _Window(times, width, dense(points), dense(starts), rows, points, starts)

    def _columns(self, window: _Window, sample_name: str, matchers: dict[str, str]) -> list[tuple[LabelKey, int]]:
        return [(labels, c) for labels, c in list(self.names.get(sample_name, []))
                if c < window.width and _matches(labels, matchers)]

    @staticmethod
    def _rates(window: _Window, columns: list[int]) -> np.ndarray:
        """Per column and point: the increase over the window ending at the point (from the
        oldest sample inside the window that has the series), divided by the window."""
        now, earlier = window.now[:, columns], window.start[:, columns].copy()
        for p, k in zip(*np.nonzero(~np.isnan(now) & np.isnan(earlier))):  # a series born inside the window
            column = columns[k]
            for i in range(window.start_index[p] + 1, window.point_index[p] + 1):
                row = window.rows[i]
                if column < len(row) and not math.isnan(row[column]):
                    earlier[p, k] = row[column]
                    break
        increase = np.where(now >= earlier, now - earlier, now)  # a smaller value is a counter reset
        return np.where(np.isnan(earlier), np.nan, increase) / WINDOW_SECONDS

    @staticmethod
    def _by_group(labelled: list[tuple[LabelKey, int]], by: Iterable[str]) -> dict[LabelKey, list[int]]:
        groups: dict[LabelKey, list[int]] = {}
        for k, (labels, _) in enumerate(labelled):
            groups.setdefault(_group(labels, by), []).append(k)
        return groups

    @staticmethod
    def _sum(values: np.ndarray, members: list[int]) -> tuple[np.ndarray, np.ndarray]:
        part = values[:, members]
        present = ~np.isnan(part)
        return np.where(present, part, 0.0).sum(axis=1), present.any(axis=1)

    def evaluate(self, series: Series, window: _Window) -> dict[LabelKey, np.ndarray]:
        """Per group of `series.by`, its value at each point of the window (NaN: no value)."""
        nan = np.full(len(window.point_index), np.nan)
        out: dict[LabelKey, np.ndarray] = {}
        if series.kind in ("gauge", "rate"):
            labelled = self._columns(window, series.metric, series.matchers)
            columns = [c for _, c in labelled]
            values = window.now[:, columns] if series.kind == "gauge" else self._rates(window, columns)
            for key, members in self._by_group(labelled, series.by).items():
                if series.kind == "gauge" and series.agg == "max":
                    part = values[:, members]
                    present = ~np.isnan(part)
                    out[key] = np.where(present.any(axis=1), np.where(present, part, -np.inf).max(axis=1), nan)
                else:
                    total, present = self._sum(values, members)
                    out[key] = np.where(present, total, nan)
            return out
        if series.kind == "mean":
            sums_l = self._columns(window, f"{series.metric}_sum", series.matchers)
            counts_l = self._columns(window, f"{series.metric}_count", series.matchers)
            sums = self._rates(window, [c for _, c in sums_l])
            counts = self._rates(window, [c for _, c in counts_l])
            sum_groups = self._by_group(sums_l, series.by)
            for key, members in self._by_group(counts_l, series.by).items():
                count, present = self._sum(counts, members)
                total = self._sum(sums, sum_groups[key])[0] if key in sum_groups else np.zeros_like(count)
                with np.errstate(divide="ignore", invalid="ignore"):
                    out[key] = np.where(present & (count > 0), total / count, nan)
            return out
        labelled = self._columns(window, f"{series.metric}_bucket", series.matchers)
        rates = self._rates(window, [c for _, c in labelled])
        per_group: dict[LabelKey, dict[float, list[int]]] = {}
        for k, (labels, _) in enumerate(labelled):
            per_group.setdefault(_group(labels, series.by), {}).setdefault(float(dict(labels)["le"]), []).append(k)
        for key, per_le in per_group.items():
            summed = {le: self._sum(rates, members) for le, members in per_le.items()}
            values = nan.copy()
            for p in range(len(values)):
                buckets = [(le, float(total[p])) for le, (total, present) in summed.items() if present[p]]
                values[p] = histogram_quantile(series.q, buckets)
            out[key] = values
        return out

    def query_many(self, wanted: Iterable[Series], since: float, until: float, step: float) -> dict[str, list[dict[str, Any]]]:
        """Series name -> its lines over [since, until], a point at most every `step` seconds."""
        wanted = list(wanted)
        window = self._window(since, until, step)
        if window is None:
            return {series.name: [] for series in wanted}
        stamps = [round(window.times[i], 3) for i in window.point_index]
        out: dict[str, list[dict[str, Any]]] = {}
        for series in wanted:
            lines = []
            for key, values in sorted(self.evaluate(series, window).items()):
                points = [[t, float(v)] for t, v in zip(stamps, values.tolist()) if not math.isnan(v)]
                if points:
                    lines.append({"labels": dict(key), "points": points})
            out[series.name] = lines
        return out

    def query(self, series: Series, since: float, until: float, step: float) -> list[dict[str, Any]]:
        return self.query_many([series], since, until, step)[series.name]


async def prometheus_query(url: str, series: Series, since: float, until: float, step: float,
                           client: Any = None) -> list[dict[str, Any]]:
    import httpx

    if client is None:
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as own:
            return await prometheus_query(url, series, since, until, step, own)
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

    # Administrators only (or Prometheus with the metrics_token): the numbers describe every user's work.
    @router.get("/metrics", include_in_schema=False, dependencies=[Depends(metrics_reader)])
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
        if settings.prometheus_url:
            import httpx

            async with httpx.AsyncClient(base_url=settings.prometheus_url, timeout=10.0) as client:
                answers = await asyncio.gather(
                    *(prometheus_query(settings.prometheus_url, s, start, end, step, client) for s in wanted)
                )
            data = {s.name: answer for s, answer in zip(wanted, answers)}
        else:  # numpy over the samples, off the event loop
            data = await asyncio.to_thread(local.query_many, wanted, start, end, step)
        out = [{"name": s.name, "title": s.title, "group": s.group, "unit": s.unit, "promql": s.promql, "data": data[s.name]}
               for s in wanted]
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
