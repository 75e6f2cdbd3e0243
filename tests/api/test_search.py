"""Search by example through the API, up to the models: bad examples are refused before any
analysis, and a search needs an example of one's own. (The real search, with the models and
Milvus, runs in tests/browser.)"""

from __future__ import annotations

from tests.api.conftest import MAX_UPLOAD, auth
from tests.conftest import truncated_jpeg

SEARCH = "query($id: String!) { searchByExample(input: {exampleId: $id, threshold: 85}) { photos { photoId } } }"


def example(api, token, name: str, data: bytes, mime: str):
    return api.client.post("/api/search/examples", files={"file": (name, data, mime)}, headers=auth(token))


def test_bad_examples_are_refused(api, users):
    assert example(api, users.ann, "notes.txt", b"hello there", "text/plain").status_code == 415
    assert example(api, users.ann, "big.jpg", b"\xff\xd8\xff" + b"\x00" * MAX_UPLOAD, "image/jpeg").status_code == 413
    r = example(api, users.ann, "broken.jpg", truncated_jpeg(), "image/jpeg")
    assert r.status_code == 422 and "corrupt" in r.json()["detail"]


def test_search_needs_an_example_of_ones_own(api, users):
    body = api.gql(users.ann, SEARCH, id="no-such-example")
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    stored = api.client.app.state.examples.put(users.ann_id, b"bytes")
    body = api.gql(users.bob, SEARCH, id=stored)
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


def test_search_is_a_query_and_the_old_mutation_still_answers_deprecated(api, users):
    """searchByExample only reads, so it is a query; the mutation of the same name stays for
    clients written before, marked deprecated, and runs the same resolver."""
    stored = api.client.app.state.examples.put(users.ann_id, b"not an image")
    as_query = api.gql(users.ann, SEARCH, id=stored)
    as_mutation = api.gql(users.ann, SEARCH.replace("query(", "mutation(", 1), id=stored)
    assert as_query["errors"][0]["extensions"]["code"] == "BAD_EXAMPLE"
    assert as_mutation["errors"][0]["extensions"] == as_query["errors"][0]["extensions"]
    fields = api.gql(users.ann, '{ __type(name: "Mutation") { fields(includeDeprecated: true) { name isDeprecated } } }')
    deprecated = {f["name"]: f["isDeprecated"] for f in fields["data"]["__type"]["fields"]}
    assert deprecated["searchByExample"] is True
    assert not any(v for k, v in deprecated.items() if k != "searchByExample")
