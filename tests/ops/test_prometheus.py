"""Prometheus scrapes a running system while it processes photos; its HTTP API then shows
throughput and per-stage latency quantiles, and the monitoring endpoint agrees with it."""

from __future__ import annotations

import math
import time

import httpx
import pytest

from api.monitoring import SERIES_BY_NAME


def values(result: list[dict]) -> dict[str, float]:
    return {",".join(f"{k}={v}" for k, v in sorted(r["metric"].items())): float(r["value"][1]) for r in result}


def over_the_run(promql: str) -> str:
    """The highest value of a series over the last 5 minutes (the whole run; Prometheus started
    before the system): at the query's instant the photos may all be done, and a rate over the
    last minute then 0 (a loaded CI machine finished projecting more than a minute before)."""
    return f"max_over_time(({promql})[5m:1s])"


def settle(prometheus, system, seconds: float = 4.0) -> float:
    """Waits until Prometheus has scraped the final counts; returns a time to query at."""
    time.sleep(seconds)
    return time.time()


def test_prometheus_sees_throughput_and_stage_quantiles(live_prometheus, running_system):
    at = settle(live_prometheus, running_system)
    up = values(live_prometheus.query("up", at))
    assert up and all(v == 1 for v in up.values()), f"scrape target down: {up}"

    projected = values(live_prometheus.query(over_the_run(SERIES_BY_NAME["projection_events_per_second"].promql), at))
    # The run stores photos directly (no import job, no people): these three apply its events;
    # the others' series exist at 0.
    fed = {f"projection={name}" for name in ("photos", "faces", "vectors")}
    assert all(projected.get(key, 0) > 0 for key in fed), f"no projection throughput: {projected}"

    p50 = values(live_prometheus.query(over_the_run(SERIES_BY_NAME["stage_latency_p50"].promql), at))
    p95 = values(live_prometheus.query(over_the_run(SERIES_BY_NAME["stage_latency_p95"].promql), at))
    print("stage p50:", p50, "\nstage p95:", p95)
    assert "stage=project" in p50, f"no project-stage quantile: {p50}"
    for stage, value in p50.items():
        assert 0 < value < 30 and not math.isnan(value), (stage, value)
        assert p95[stage] >= value, (stage, value, p95[stage])

    photos = values(live_prometheus.query(over_the_run(SERIES_BY_NAME["photos_per_second"].promql), at))
    print("photos/s:", photos)
    assert photos and sum(photos.values()) > 0, f"no photo throughput: {photos}"
    for stage in ("decode", "detect", "embed"):
        assert f"stage={stage}" in p50, f"no {stage}-stage quantile: {p50}"


def test_monitoring_page_matches_prometheus(live_prometheus, running_system):
    """The page's series (computed in-process) and Prometheus (what Grafana shows) give the
    same numbers for the same period and the same PromQL."""
    time.sleep(2.0)
    body = running_system.get("/api/monitoring/series", since=-120, step=1).json()
    assert body["source"] == "local"
    checked = 0
    for series in body["series"]:
        assert series["promql"] == SERIES_BY_NAME[series["name"]].promql
        for line in series["data"]:
            if not line["points"] or series["name"] in {"cpu_cores", "memory_bytes"}:
                continue  # resources move between samples: not comparable to the digit
            t, local = line["points"][-1]
            remote = values(live_prometheus.query(series["promql"], t))
            key = ",".join(f"{k}={v}" for k, v in sorted(line["labels"].items()))
            if key not in remote:
                continue  # Prometheus had not scraped that series yet at t
            theirs = remote[key]
            if math.isnan(theirs):
                continue  # no increase between Prometheus's scrapes yet (a request just before t)
            # rate() extrapolates to the window's edges and scrapes at other instants than
            # the page samples: at a few events a second that is worth up to ~0.1/s either way.
            assert theirs == pytest.approx(local, rel=0.35, abs=0.1), (series["name"], key, local, theirs)
            checked += 1
    assert checked >= 5, f"only {checked} series compared"


def test_series_endpoint_asks_prometheus_when_configured(live_prometheus):
    """In production the endpoint answers with Prometheus's own numbers for the same PromQL."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from api.monitoring import LocalSeries, make_router
    from facesearch.settings import Settings

    app = FastAPI()
    app.include_router(make_router(Settings(prometheus_url=live_prometheus.url), LocalSeries()))
    now = time.time()
    body = TestClient(app).get(
        "/api/monitoring/series", params={"since": now - 60, "until": now, "step": 5, "names": "stage_latency_p50"}
    ).json()
    assert body["source"] == "prometheus"
    direct = httpx.get(
        f"{live_prometheus.url}/api/v1/query_range",
        params={"query": SERIES_BY_NAME["stage_latency_p50"].promql, "start": now - 60, "end": now, "step": 5},
    ).json()["data"]["result"]
    ours = {tuple(sorted(d["labels"].items())): d["points"] for d in body["series"][0]["data"]}
    theirs = {tuple(sorted(r["metric"].items())): [[float(t), float(v)] for t, v in r["values"] if v != "NaN"] for r in direct}
    assert ours == theirs and ours
