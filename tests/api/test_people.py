"""People through GraphQL: a clustering run, the people query, every correction, and that
one user can neither see nor change another's people or faces."""

from __future__ import annotations

from itertools import count

import pytest

from projections.tables import faces
from tests.api.conftest import face_row, new_user

PERSON_FIELDS = "id name size representativeFaceId edited faceIds"
PEOPLE = f"{{ people {{ {PERSON_FIELDS} }} }}"
PERSON = f"query($id: ID!) {{ person(id: $id) {{ {PERSON_FIELDS} }} }}"
CLUSTER = "mutation { clusterPeople { algorithm faces people unassigned } }"
NAME = "mutation($id: ID!, $name: String!) { namePerson(id: $id, name: $name) }"
MERGE = "mutation($id: ID!, $other: ID!) { mergePeople(id: $id, otherId: $other) }"
MOVE = "mutation($face: ID!, $person: ID) { moveFace(faceId: $face, personId: $person) }"
REJECT = "mutation($face: ID!, $person: ID!) { rejectFace(faceId: $face, personId: $person) }"
SPLIT = "mutation($id: ID!, $faces: [ID!]!) { splitPerson(id: $id, faceIds: $faces) }"


class Owner:
    """A user of their own with three clustered identities (ann in 6 photos, ben 5, cat 4)."""

    def __init__(self, api, users, username: str, seed: int) -> None:
        self.api = api
        self.token, self.id = new_user(api, users.ann, username)
        self.faces = api.add_identities(self.id, {"ann": 6, "ben": 5, "cat": 4}, seed=seed)
        self.run = api.data(self.token, CLUSTER)["clusterPeople"]
        api.caught_up()

    def people(self) -> dict[str, dict]:
        return {p["id"]: p for p in self.api.data(self.token, PEOPLE)["people"]}

    def person_of(self, identity: str) -> dict:
        faces = set(self.faces[identity])
        [person] = [p for p in self.people().values() if faces & set(p["faceIds"])]
        return person

    def change(self, query: str, **variables):
        data = self.api.data(self.token, query, **variables)
        self.api.caught_up()
        return next(iter(data.values()))


def error_code(body: dict) -> str:
    assert body.get("data") is None or not any(body["data"].values()), body
    return body["errors"][0]["extensions"]["code"]


OWNERS = count(1)


@pytest.fixture
def owner(api, users):
    """A user of the test's own, so each test starts from its own first run."""
    n = next(OWNERS)
    return Owner(api, users, f"people-owner-{n}", seed=n)


def test_clustering_makes_one_person_per_identity(api, users, owner):
    assert owner.run["faces"] == 15 and owner.run["people"] == 3 and owner.run["unassigned"] == 0
    people = owner.people()
    assert sorted(set(p["faceIds"]) for p in people.values()) == sorted(set(f) for f in owner.faces.values())
    listed = api.data(owner.token, PEOPLE)["people"]
    assert [p["size"] for p in listed] == [6, 5, 4]  # largest first
    for person in listed:
        assert person["name"] == "" and person["edited"] is False
        assert person["representativeFaceId"] in person["faceIds"] and len(person["faceIds"]) == person["size"]
    one = listed[0]
    assert api.data(owner.token, PERSON, id=one["id"])["person"] == one
    # A second run with no change keeps the same people (ids stay stable).
    api.data(owner.token, CLUSTER)
    api.caught_up()
    assert owner.people() == people


def test_name_person(api, users, owner):
    ann = owner.person_of("ann")
    assert owner.change(NAME, id=ann["id"], name="  Анна Иванова ") is True
    named = owner.people()[ann["id"]]
    assert named["name"] == "Анна Иванова" and named["edited"] is True
    assert error_code(api.gql(owner.token, NAME, id=ann["id"], name="   ")) == "BAD_CORRECTION"
    assert error_code(api.gql(owner.token, NAME, id="no-such-person", name="X")) == "NOT_FOUND"
    # A named person keeps its name and faces through another run.
    api.data(owner.token, CLUSTER)
    api.caught_up()
    assert owner.people()[ann["id"]] == named


def test_merge_people(api, users, owner):
    ben, cat = owner.person_of("ben"), owner.person_of("cat")
    owner.change(NAME, id=cat["id"], name="Cat")
    assert owner.change(MERGE, id=ben["id"], other=cat["id"]) is True
    people = owner.people()
    assert cat["id"] not in people
    merged = people[ben["id"]]
    assert set(merged["faceIds"]) == set(owner.faces["ben"]) | set(owner.faces["cat"]) and merged["size"] == 9
    assert merged["name"] == "Cat" and merged["edited"] is True  # the kept person had no name: it takes the other's
    assert error_code(api.gql(owner.token, MERGE, id=ben["id"], other=ben["id"])) == "BAD_CORRECTION"
    assert error_code(api.gql(owner.token, MERGE, id=ben["id"], other=cat["id"])) == "NOT_FOUND"


def test_move_face_to_a_person_and_to_a_new_one(api, users, owner):
    ann, ben = owner.person_of("ann"), owner.person_of("ben")
    face = owner.faces["ann"][0]
    assert owner.change(MOVE, face=face, person=ben["id"]) == ben["id"]
    people = owner.people()
    assert face in people[ben["id"]]["faceIds"] and people[ben["id"]]["size"] == 6
    assert face not in people[ann["id"]]["faceIds"] and people[ann["id"]]["size"] == 5
    new = owner.change(MOVE, face=face, person=None)
    people = owner.people()
    assert new not in (ann["id"], ben["id"])
    assert people[new]["faceIds"] == [face] and people[new]["representativeFaceId"] == face and people[new]["edited"]
    assert face not in people[ben["id"]]["faceIds"]
    # Two faces of one photo never share a person: a second face of a photo of cat's may not join cat.
    photo = owner.faces["cat"][0].rsplit(":", 1)[0]

    async def second_face() -> None:
        async with api.system.runner.writer.transaction() as conn:
            await conn.execute(faces.insert(), [face_row(photo, owner.id, 1, (200, 10, 300, 110))])

    api.run(second_face)
    cat = owner.person_of("cat")["id"]
    assert error_code(api.gql(owner.token, MOVE, face=f"{photo}:1", person=cat)) == "SAME_PHOTO"


def test_not_this_person(api, users, owner):
    ann = owner.person_of("ann")
    face = ann["representativeFaceId"]
    assert owner.change(REJECT, face=face, person=ann["id"]) is True
    after = owner.people()[ann["id"]]
    assert face not in after["faceIds"] and after["size"] == 5 and after["representativeFaceId"] != face
    assert after["edited"] is True
    # It never goes back: not by hand, not by a run.
    assert error_code(api.gql(owner.token, MOVE, face=face, person=ann["id"])) == "BAD_CORRECTION"
    api.data(owner.token, CLUSTER)
    api.caught_up()
    assert face not in owner.people()[ann["id"]]["faceIds"]
    assert error_code(api.gql(owner.token, REJECT, face=face, person=ann["id"])) == "BAD_CORRECTION"


def test_split_person(api, users, owner):
    ann = owner.person_of("ann")
    leaving = owner.faces["ann"][:2]
    new = owner.change(SPLIT, id=ann["id"], faces=leaving)
    people = owner.people()
    assert sorted(people[new]["faceIds"]) == sorted(leaving) and people[new]["edited"]
    assert sorted(people[ann["id"]]["faceIds"]) == sorted(owner.faces["ann"][2:])
    everything = people[ann["id"]]["faceIds"]
    assert error_code(api.gql(owner.token, SPLIT, id=ann["id"], faces=everything)) == "BAD_CORRECTION"
    assert error_code(api.gql(owner.token, SPLIT, id=ann["id"], faces=[owner.faces["ben"][0]])) == "BAD_CORRECTION"


def test_another_user_can_neither_see_nor_change_ones_people(api, users):
    first = Owner(api, users, "people-first", seed=1)
    second = Owner(api, users, "people-second", seed=2)
    before = first.people()
    ann = first.person_of("ann")
    other_ann = second.person_of("ann")

    assert not set(before) & set(second.people())  # each sees only their own
    assert api.data(second.token, PERSON, id=ann["id"])["person"] is None
    assert error_code(api.gql(second.token, NAME, id=ann["id"], name="Mine")) == "NOT_FOUND"
    assert error_code(api.gql(second.token, MERGE, id=other_ann["id"], other=ann["id"])) == "NOT_FOUND"
    assert error_code(api.gql(second.token, MERGE, id=ann["id"], other=other_ann["id"])) == "NOT_FOUND"
    # Another's face may enter neither one's own person nor a new one.
    face = first.faces["ann"][0]
    assert error_code(api.gql(second.token, MOVE, face=face, person=other_ann["id"])) == "NOT_FOUND"
    assert error_code(api.gql(second.token, MOVE, face=face, person=None)) == "NOT_FOUND"
    assert error_code(api.gql(second.token, REJECT, face=face, person=ann["id"])) == "NOT_FOUND"
    assert error_code(api.gql(second.token, SPLIT, id=ann["id"], faces=[face])) == "NOT_FOUND"
    api.caught_up()
    assert first.people() == before
    assert all(face not in p["faceIds"] for p in second.people().values())


def test_people_need_a_signed_in_user(api):
    r = api.client.post("/graphql", json={"query": PEOPLE})
    assert r.status_code == 401
