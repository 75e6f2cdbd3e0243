"""Prometheus scrapes a running system while it processes photos; its HTTP API then shows
throughput and per-stage latency quantiles, and the monitoring endpoint agrees with it."""

from __future__ import annotations

import io
import math
import time
from dataclasses import replace

import httpx
import pytest
from PIL import Image

from api.monitoring import SERIES_BY_NAME
from tests.ops.conftest import PHOTOS


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
    # Every stage's series exists from the start; the stages this run used have quantiles.
    for stage in ("project", "decode", "detect", "embed"):
        assert 0 < p50.get(f"stage={stage}", math.nan) < 30, (stage, p50)
    for stage, value in p50.items():
        if not math.isnan(value):
            assert 0 < value < 30, (stage, value)
            assert p95[stage] >= value, (stage, value, p95[stage])

    photos = values(live_prometheus.query(over_the_run(SERIES_BY_NAME["photos_per_second"].promql), at))
    print("photos/s:", photos)
    assert photos and sum(photos.values()) > 0, f"no photo throughput: {photos}"


QUIET = 2  # seconds either side of a window's edge with no observation
COUNTS = "sum by (stage) (facesearch_stage_seconds_count)"


def stage_counts(prometheus, since: float, until: float) -> dict[str, dict[int, float]]:
    """Observations so far per stage, as Prometheus scraped them, at each whole second."""
    rows = prometheus.query_range(COUNTS, math.floor(since), math.ceil(until), 1)
    return {f"stage={r['metric']['stage']}": {int(float(t)): float(v) for t, v in r["values"]} for r in rows}


def wait_for_silence(prometheus, seconds: float, limit: float = 240.0) -> float:
    """Waits until no stage has observed anything for `seconds`; returns when that began."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        now = time.time()
        totals: dict[int, float] = {}
        for per_second in stage_counts(prometheus, now - seconds - 1, now).values():
            for t, v in per_second.items():
                totals[t] = totals.get(t, 0.0) + v
        if totals and min(totals) <= now - seconds and len(set(totals.values())) == 1:
            return now - seconds
        time.sleep(1.0)
    raise AssertionError(f"the system never went {seconds} s without a stage observation")


def quiet_window(counts: dict[int, float], t: float) -> bool:
    """True when the one-minute window ending at `t` holds observations and none within QUIET
    seconds of either edge: the page's samples and Prometheus's scrapes, taken at other
    instants, then hold the very same observations."""

    def flat(edge: float) -> bool:
        seen = {counts.get(s) for s in range(math.floor(edge) - QUIET, math.ceil(edge) + QUIET + 1)}
        return None not in seen and len(seen) == 1

    return flat(t - 60) and flat(t) and counts[round(t)] > counts[round(t - 60)]


def test_monitoring_page_matches_prometheus(live_prometheus, running_system):
    """The page's series (computed in-process) and Prometheus (what Grafana shows) give the
    same numbers for the same period and the same PromQL.

    A quantile over a few observations jumps when one of them falls just inside or just outside
    the window, and the page samples at other instants than Prometheus scrapes. So the test
    makes a window that holds a known burst of work and nothing near its edges: it waits until
    the run is half a minute past, uploads two photos, and compares once they are processed."""
    silent_since = wait_for_silence(live_prometheus, 32)
    burst = time.time()
    photos = {}
    for name in ("grace_hopper_512x512.jpg", "messi5.jpg"):  # new bytes, the same faces
        out = io.BytesIO()
        Image.open(PHOTOS / name).convert("RGB").save(out, "JPEG", quality=87)
        photos[f"again-{name}"] = out.getvalue()
    answer = running_system.upload(photos)
    assert answer.status_code == 201, answer.text
    assert [r["status"] for r in answer.json()["results"]] == ["new", "new"], answer.text
    wait_for_silence(live_prometheus, QUIET + 2)
    time.sleep(max(0.0, silent_since + 60 + QUIET + 1 - time.time()))  # past the last quiet window start

    body = running_system.get("/api/monitoring/series", since=burst - 5, step=1).json()
    assert body["source"] == "local"
    counts = stage_counts(live_prometheus, burst - 70, time.time())
    checked: dict[str, list[str]] = {"rate": [], "quantile": []}
    for series in body["series"]:
        spec = SERIES_BY_NAME[series["name"]]
        assert series["promql"] == spec.promql
        for line in series["data"]:
            if not line["points"] or series["name"] in {"cpu_cores", "memory_bytes"}:
                continue  # resources move between samples: not comparable to the digit
            key = ",".join(f"{k}={v}" for k, v in sorted(line["labels"].items()))
            if spec.kind == "quantile":
                quiet = [(t, v) for t, v in line["points"] if key in counts and quiet_window(counts[key], t)]
                if not quiet:
                    continue  # this stage did nothing in the burst (or its window edges are busy)
                t, local = quiet[-1]
                # Prometheus extrapolates each bucket's increase to the window's edges by up to
                # ~1/60, not all by the same factor: at a few observations that moves a quantile
                # by up to a few hundredths of q. The page's value must lie in that band.
                low = values(live_prometheus.query(replace(spec, q=spec.q / 1.05).promql, t))[key]
                high = values(live_prometheus.query(replace(spec, q=min(spec.q * 1.05, 0.999)).promql, t))[key]
                assert low - 1e-9 <= local <= high + 1e-9, (series["name"], key, t, low, local, high)
                checked["quantile"].append(f"{series['name']}:{key}")
                continue
            t, local = line["points"][-1]
            remote = values(live_prometheus.query(spec.promql, t))
            if key not in remote or math.isnan(remote[key]):
                continue  # Prometheus had not scraped that series yet at t
            # rate() extrapolates to the window's edges and scrapes at other instants than
            # the page samples: at a few events a second that is worth up to ~0.1/s either way.
            assert remote[key] == pytest.approx(local, rel=0.35, abs=0.1), (series["name"], key, local, remote[key])
            checked["rate"].append(f"{series['name']}:{key}")
    print("compared:", checked)
    assert len(checked["rate"]) >= 5, checked
    for stage in ("project", "decode", "detect", "embed"):
        assert f"stage_latency_p50:stage={stage}" in checked["quantile"], (stage, checked, counts)
        assert f"stage_latency_p95:stage={stage}" in checked["quantile"], (stage, checked, counts)


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
