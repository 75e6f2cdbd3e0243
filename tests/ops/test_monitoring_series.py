"""The monitoring page's series from this process's own samples: six hours of samples
answer in under a second, with the same numbers a rate over the samples gives."""

from __future__ import annotations

import math
import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.monitoring import SERIES, LocalSeries, make_router
from facesearch.infra import metrics
from facesearch.settings import Settings

P = metrics.PREFIX
INTERVAL = 2.0
SIX_HOURS = 6 * 3600
LE = [str(b) for b in metrics.LATENCY_BUCKETS] + ["+Inf"]


def histogram(snapshot: dict, name: str, labels: dict[str, str], count: float, mean: float) -> None:
    for k, le in enumerate(LE):  # cumulative: a share of the observations at or below each bound
        share = 1.0 if le == "+Inf" else min(1.0, (k + 1) / len(LE) * 1.5)
        snapshot.setdefault(f"{name}_bucket", {})[tuple(sorted({**labels, "le": le}.items()))] = math.floor(count * share)
    key = tuple(sorted(labels.items()))
    snapshot.setdefault(f"{name}_count", {})[key] = count
    snapshot.setdefault(f"{name}_sum", {})[key] = count * mean


def busy_snapshot(i: int) -> dict:
    """What a busy embedded process exposes after i samples: every series the page draws,
    40 API routes, 8 stages (about 1,100 samples)."""
    s: dict = {}
    for stage in metrics.STAGES:
        histogram(s, f"{P}_stage_seconds", {"stage": stage}, 3.0 * i, 0.05)
        histogram(s, f"{P}_batch_size", {"stage": stage}, 1.0 * i, 8.0)
    histogram(s, f"{P}_search_seconds", {}, i / 10, 0.2)
    for route in range(40):
        for status in ("200", "404"):
            histogram(s, f"{P}_http_request_seconds", {"method": "GET", "route": f"/r{route}", "status": status}, i / 5, 0.01)
    for outcome in ("faces", "no_faces", "rejected"):
        s.setdefault(f"{P}_photos_processed_total", {})[(("outcome", outcome),)] = 2.0 * i
    s[f"{P}_faces_processed_total"] = {(): 5.0 * i}
    s[f"{P}_relay_lag_events"] = {(): float(i % 7)}
    for role in ("api", "relay", "projections", "worker", "embedded"):
        s.setdefault(f"{P}_process_cpu_seconds_total", {})[(("role", role),)] = 0.5 * i
        s.setdefault(f"{P}_process_resident_memory_bytes", {})[(("role", role),)] = 3e8
    for projection in ("photos", "faces", "imports", "vectors"):
        s.setdefault(f"{P}_projection_lag_events", {})[(("projection", projection),)] = float(i % 3)
        s.setdefault(f"{P}_projection_events_total", {})[(("outcome", "applied"), ("projection", projection))] = 4.0 * i
        for partition in range(4):
            s.setdefault(f"{P}_consumer_lag", {})[
                (("group", f"g.{projection}"), ("partition", str(partition)), ("topic", "facesearch.events.photos"))] = 1.0
    return s


@pytest.fixture(scope="module")
def six_hours() -> tuple[LocalSeries, float]:
    local = LocalSeries(INTERVAL, SIX_HOURS)
    end = time.time()
    count = int(SIX_HOURS / INTERVAL)
    for i in range(count):
        local.record(end - (count - i) * INTERVAL, busy_snapshot(i))
    return local, end


def test_six_hours_of_samples_answer_in_under_a_second(six_hours):
    local, end = six_hours
    assert len(local.times) == SIX_HOURS / INTERVAL
    app = FastAPI()
    app.include_router(make_router(Settings(prometheus_url=""), local))
    client = TestClient(app)
    for since in (-900, -SIX_HOURS):
        started = time.perf_counter()
        answer = client.get("/api/monitoring/series", params={"since": since})
        elapsed = time.perf_counter() - started
        assert answer.status_code == 200, answer.text
        body = answer.json()
        print(f"since={since}: {elapsed * 1000:.0f} ms")
        assert elapsed < 1.0, f"the series took {elapsed:.2f} s for since={since}"
        assert {s["name"] for s in body["series"]} == {s.name for s in SERIES}
        drawn = {s["name"]: s["data"] for s in body["series"]}
        for name in ("photos_per_second", "stage_latency_p95", "search_latency_p95", "http_latency_p95", "relay_lag",
                     "batch_size_mean", "consumer_lag"):
            assert drawn[name] and all(len(line["points"]) > 100 for line in drawn[name]), name


def test_series_values_follow_the_samples(six_hours):
    local, end = six_hours
    by_name = {s.name: s for s in SERIES}
    [faces] = local.query(by_name["faces_per_second"], end - 600, end, 60)
    assert all(v == pytest.approx(5.0 / INTERVAL) for _, v in faces["points"])  # 5 faces a sample
    photos = local.query(by_name["photos_per_second"], end - 600, end, 60)
    assert {line["labels"]["outcome"] for line in photos} == {"faces", "no_faces", "rejected"}
    [mean] = [line for line in local.query(by_name["batch_size_mean"], end - 600, end, 60) if line["labels"]["stage"] == "detect"]
    assert all(v == pytest.approx(8.0) for _, v in mean["points"])
    steps = [b[0] - a[0] for a, b in zip(faces["points"], faces["points"][1:])]
    assert all(s >= 60 - 1e-6 for s in steps)
