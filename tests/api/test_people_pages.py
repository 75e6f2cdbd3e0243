"""The people pages through GraphQL: merge suggestions with a remembered "not the same",
pickers nearest first, the review of faces in no person, hiding, cover faces, search by
name, a face's person; each owner sees and changes only their own."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from tests.api.conftest import MODEL
from tests.api.test_people import CLUSTER, MERGE, MOVE, OWNERS, SPLIT, Owner, error_code

PERSON_BRIEF = "id name size hidden representativeFaceId"
SUGGESTIONS = f"{{ mergeSuggestions {{ similarity person {{ {PERSON_BRIEF} }} other {{ {PERSON_BRIEF} }} }} }}"
DECLINE = "mutation($id: ID!, $other: ID!) { declineMerge(id: $id, otherId: $other) }"
NEAR_PERSON = f"query($id: ID!) {{ nearPeople(personId: $id) {{ similarity person {{ {PERSON_BRIEF} }} }} }}"
NEAR_FACE = f"query($face: ID!) {{ nearPeople(faceId: $face) {{ similarity person {{ {PERSON_BRIEF} }} }} }}"
UNASSIGNED = "{ unassignedFaces { faceId photoId cropUrl similarity person { id name } } }"
REVIEW = "mutation($accept: [FacePerson!], $decline: [FacePerson!]) { reviewFaces(accept: $accept, decline: $decline) }"
HIDE = "mutation($id: ID!, $hidden: Boolean!) { hidePerson(id: $id, hidden: $hidden) }"
COVER = "mutation($id: ID!, $face: ID!) { chooseCover(id: $id, faceId: $face) }"
SEARCH = "query($q: String!) { people(search: $q) { id name } }"
ALL = "{ people(includeHidden: true) { id hidden } }"
FACE_PERSON = "query($id: ID!) { face(id: $id) { id person { id name } } }"
PHOTOS = "query($id: ID!) { person(id: $id) { photos { faceId photoId box { x1 y1 x2 y2 } imageUrl } } }"


@pytest.fixture
def owner(api, users):
    n = next(OWNERS)
    return Owner(api, users, f"people-pages-{n}", seed=100 + n)


def pairs(owner) -> set[frozenset[str]]:
    return {frozenset((s["person"]["id"], s["other"]["id"])) for s in owner.api.data(owner.token, SUGGESTIONS)["mergeSuggestions"]}


def rerun(owner) -> None:
    owner.api.data(owner.token, CLUSTER)
    owner.api.caught_up()


def add_lookalike(api, owner, of_face: str, flags: str = "small") -> str:
    """A low-quality face (never joins on its own) of the same identity as `of_face`."""
    from projections.tables import faces
    from tests.api.conftest import face_row

    [vector] = api.system.vectors.vectors(MODEL, [of_face]).values()
    rng = np.random.default_rng(7)
    v = np.asarray(vector) + rng.standard_normal(len(vector)) * 0.025
    photo = str(uuid.uuid4())

    async def insert() -> None:
        async with api.system.runner.writer.transaction() as conn:
            await conn.execute(faces.insert(), [face_row(photo, owner.id, 0, (10, 10, 110, 110), flags=flags)])

    api.run(insert)
    api.system.vectors.upsert(MODEL, [dict(id=f"{photo}:0", photo_id=photo, owner=owner.id, source="upload", import_id="",
                                           imported_at=0, vector=(v / np.linalg.norm(v)).astype(np.float32).tolist())])
    return f"{photo}:0"


def test_a_split_person_is_suggested_merged_in_one_click_and_a_declined_pair_never_returns(api, users, owner):
    assert pairs(owner) == set()  # three clear identities: nothing to suggest
    ann, ben = owner.person_of("ann"), owner.person_of("ben")
    ann2 = owner.change(SPLIT, id=ann["id"], faces=owner.faces["ann"][:2])
    ben2 = owner.change(SPLIT, id=ben["id"], faces=owner.faces["ben"][:2])
    [first, second] = api.data(owner.token, SUGGESTIONS)["mergeSuggestions"]
    assert {frozenset((first["person"]["id"], first["other"]["id"])), frozenset((second["person"]["id"], second["other"]["id"]))} == {
        frozenset((ann["id"], ann2)), frozenset((ben["id"], ben2))}
    assert first["similarity"] >= second["similarity"] > 85
    assert first["person"]["size"] >= first["other"]["size"]  # the larger one is kept
    assert owner.change(DECLINE, id=ann2, other=ann["id"]) is True
    assert pairs(owner) == {frozenset((ben["id"], ben2))}
    rerun(owner)
    assert pairs(owner) == {frozenset((ben["id"], ben2))}  # remembered across a re-run
    owner.change(MERGE, id=ben["id"], other=ben2)
    assert pairs(owner) == set()
    assert error_code(api.gql(owner.token, DECLINE, id=ann["id"], other=ann["id"])) == "BAD_CORRECTION"


def test_pickers_list_people_nearest_first_for_a_person_and_for_a_face(api, users, owner):
    ann = owner.person_of("ann")
    ann2 = owner.change(SPLIT, id=ann["id"], faces=owner.faces["ann"][:2])
    near = api.data(owner.token, NEAR_PERSON, id=ann2)["nearPeople"]
    assert [n["person"]["id"] for n in near][0] == ann["id"] and len(near) == 3
    assert near[0]["similarity"] > 85 > near[1]["similarity"]
    by_face = api.data(owner.token, NEAR_FACE, face=owner.faces["ann"][0])["nearPeople"]
    assert by_face[0]["person"]["id"] == ann["id"]  # its own split-off person shares its photo: left out


def test_review_accepts_and_declines_faces_in_no_person_in_bulk(api, users, owner):
    ann, ben = owner.person_of("ann"), owner.person_of("ben")
    a1, a2 = (add_lookalike(api, owner, owner.faces["ann"][i]) for i in (0, 1))
    b1 = add_lookalike(api, owner, owner.faces["ben"][0])
    rerun(owner)
    review = {r["faceId"]: r for r in api.data(owner.token, UNASSIGNED)["unassignedFaces"]}
    assert set(review) == {a1, a2, b1}
    assert {review[a1]["person"]["id"], review[a2]["person"]["id"], review[b1]["person"]["id"]} == {ann["id"], ben["id"]}
    assert review[a1]["cropUrl"] == f"/api/faces/{a1}/crop" and review[a1]["similarity"] > 85
    accepted = owner.change(REVIEW, accept=[{"faceId": a1, "personId": ann["id"]}, {"faceId": a2, "personId": ann["id"]}],
                            decline=[{"faceId": b1, "personId": ben["id"]}])
    assert accepted == 2
    for _ in range(2):  # before and after a re-run
        people = owner.people()
        assert {a1, a2} <= set(people[ann["id"]]["faceIds"]) and b1 not in people[ben["id"]]["faceIds"]
        # The declined face is offered again only with a stranger, far below the same person's bar.
        [left] = api.data(owner.token, UNASSIGNED)["unassignedFaces"]
        assert left["faceId"] == b1 and left["person"]["id"] != ben["id"] and left["similarity"] < 85
        rerun(owner)
    assert error_code(api.gql(owner.token, REVIEW, accept=[{"faceId": b1, "personId": ben["id"]}])) == "BAD_CORRECTION"


def test_hide_cover_search_and_the_person_of_a_face(api, users, owner):
    ann, cat = owner.person_of("ann"), owner.person_of("cat")
    owner.change("mutation($id: ID!) { namePerson(id: $id, name: \"Анна\") }", id=ann["id"])
    assert [p["name"] for p in api.data(owner.token, SEARCH, q="анн")["people"]] == ["Анна"]
    assert owner.change(HIDE, id=cat["id"], hidden=True) is True
    assert cat["id"] not in owner.people()
    assert {p["id"]: p["hidden"] for p in api.data(owner.token, ALL)["people"]}[cat["id"]] is True
    rerun(owner)
    assert cat["id"] not in owner.people()
    owner.change(HIDE, id=cat["id"], hidden=False)
    assert cat["id"] in owner.people()

    cover = next(f for f in owner.faces["ann"] if f != ann["representativeFaceId"])
    assert owner.change(COVER, id=ann["id"], face=cover) is True
    rerun(owner)
    assert owner.people()[ann["id"]]["representativeFaceId"] == cover
    assert error_code(api.gql(owner.token, COVER, id=ann["id"], face=owner.faces["ben"][0])) == "BAD_CORRECTION"

    face = owner.faces["ann"][2]
    assert api.data(owner.token, FACE_PERSON, id=face)["face"]["person"] == {"id": ann["id"], "name": "Анна"}
    photos = api.data(owner.token, PHOTOS, id=ann["id"])["person"]["photos"]
    assert {p["faceId"] for p in photos} == set(owner.faces["ann"]) and photos[0]["box"]["x2"] == 110


def test_two_faces_of_one_photo_are_refused_with_a_code_the_client_words(api, users, owner):
    cat = owner.person_of("cat")
    photo = owner.faces["cat"][0].rsplit(":", 1)[0]
    from projections.tables import faces
    from tests.api.conftest import face_row

    async def second_face() -> None:
        async with api.system.runner.writer.transaction() as conn:
            await conn.execute(faces.insert(), [face_row(photo, owner.id, 1, (200, 10, 300, 110))])

    api.run(second_face)
    body = api.gql(owner.token, MOVE, face=f"{photo}:1", person=cat["id"])
    assert error_code(body) == "SAME_PHOTO"


def test_another_user_reaches_none_of_it(api, users):
    first = Owner(api, users, "people-pages-first", seed=201)
    second = Owner(api, users, "people-pages-second", seed=202)
    ann = first.person_of("ann")
    ann2 = first.change(SPLIT, id=ann["id"], faces=first.faces["ann"][:2])
    assert pairs(first) == {frozenset((ann["id"], ann2))}
    assert pairs(second) == set()
    assert error_code(api.gql(second.token, DECLINE, id=ann["id"], other=ann2)) == "NOT_FOUND"
    assert error_code(api.gql(second.token, HIDE, id=ann["id"], hidden=True)) == "NOT_FOUND"
    assert error_code(api.gql(second.token, COVER, id=ann["id"], face=first.faces["ann"][3])) == "NOT_FOUND"
    assert error_code(api.gql(second.token, NEAR_FACE, face=first.faces["ann"][0])) == "NOT_FOUND"
    own = second.person_of("ann")["id"]
    face = first.faces["ann"][0]
    assert error_code(api.gql(second.token, REVIEW, accept=[{"faceId": face, "personId": own}])) == "NOT_FOUND"
    near = api.data(second.token, NEAR_PERSON, id=ann["id"])["nearPeople"]  # another's person: no faces of one's own
    assert near == []
    assert api.data(second.token, PHOTOS, id=ann["id"])["person"] is None
    assert {p["id"] for p in api.data(second.token, ALL)["people"]}.isdisjoint({ann["id"], ann2})
