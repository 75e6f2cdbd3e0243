"""A search by example through the API (the REST upload, then the GraphQL mutation) is
recorded: the monitoring page's search latency series has points afterwards, and none
before."""

from __future__ import annotations

import time

import httpx

from tests.ops.conftest import PHOTOS, sample_value

SEARCH = "query($id: String!) { searchByExample(input: {exampleId: $id, threshold: 80}) { photos { photoId } } }"


def search_points(system) -> list:
    body = system.get("/api/monitoring/series", since=-300, step=1, names="search_latency_p95").json()
    [series] = body["series"]
    return [point for line in series["data"] for point in line["points"]]


def test_a_search_shows_in_the_search_latency_series(running_system):
    assert search_points(running_system) == [], "search latency points before any search"
    before = sample_value(running_system.metrics(), "facesearch_search_seconds_count")

    example = (PHOTOS / "grace_hopper_512x512.jpg").read_bytes()
    uploaded = httpx.post(f"{running_system.url}/api/search/examples", headers=running_system.headers, timeout=60,
                          files={"file": ("grace.jpg", example, "image/jpeg")})
    assert uploaded.status_code == 201, uploaded.text
    answer = httpx.post(f"{running_system.url}/graphql", headers=running_system.headers, timeout=60,
                        json={"query": SEARCH, "variables": {"id": uploaded.json()["example_id"]}}).json()
    assert "errors" not in answer, answer
    assert sample_value(running_system.metrics(), "facesearch_search_seconds_count") == before + 1

    deadline = time.monotonic() + 10  # the page's samples come every second here
    points = search_points(running_system)
    while not points and time.monotonic() < deadline:
        time.sleep(0.5)
        points = search_points(running_system)
    assert points, "no search latency point after a search"
    assert all(0 < value < 30 for _, value in points), points
