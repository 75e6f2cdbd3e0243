"""People on synthetic faces: runs, corrections that last, incremental attachment, the
one-person-per-photo rule, and the read model rebuilt identically from the log."""

from __future__ import annotations

import numpy as np
import pytest

from commands.clustering import ALGORITHMS, ClusteringError
from commands.people import (
    FaceSet,
    merge_people,
    move_face,
    name_person,
    peek_people,
    plan_clustering,
    record_attachments,
    record_clustering,
    reject_face,
    split_person,
)
from domain.people import SamePhotoConflict, photo_of
from projections.people import faces_of_person, list_people, people_projection
from projections.replay import table_checksums
from tests.people.conftest import THRESHOLD, Faces, project

OWNER, MODEL = "ann", "facenet512"


def groups(system) -> dict[str, set[str]]:
    people = peek_people(system.app, OWNER, MODEL)
    return {p.id: set(p.faces) for p in people.persons.values()}


def person_with(system, face_id: str) -> str:
    return peek_people(system.app, OWNER, MODEL).person_of[face_id]


def run(system, faces: Faces, algorithm: str = "hdbscan", **params):
    return record_clustering(system.app, OWNER, MODEL, faces.face_set(), THRESHOLD, algorithm, params or None)


def test_a_run_finds_each_identity(system, faces):
    faces.people(6, 8)
    run(system, faces)
    found = sorted(map(sorted, groups(system).values()))
    assert found == sorted(sorted(faces.of(f"id{i}")) for i in range(6))


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_algorithm_separates_clear_identities(name, faces):
    faces.people(5, 6)
    params = {"k": 5} if name == "kmeans" else {}
    plan = plan_clustering(None, faces.face_set(), THRESHOLD, name, params)
    assert sorted(map(sorted, plan.people.values())) == sorted(sorted(faces.of(f"id{i}")) for i in range(5))
    assert plan.parameters["threshold"] == pytest.approx(THRESHOLD)


def test_unknown_options_are_refused(faces):
    faces.people(2, 3)
    with pytest.raises(ClusteringError):
        plan_clustering(None, faces.face_set(), THRESHOLD, "hdbscan", {"nonsense": 1})


async def test_named_and_merged_person_survives_a_full_rerun_unchanged(system, faces):
    faces.people(4, 6)
    run(system, faces)
    ann, other = person_with(system, sorted(faces.of("id0"))[0]), person_with(system, sorted(faces.of("id1"))[0])
    name_person(system.app, OWNER, MODEL, ann, "Ann")
    merge_people(system.app, OWNER, MODEL, ann, other)  # the owner says id0 and id1 are one person
    before = peek_people(system.app, OWNER, MODEL).persons[ann]
    assert set(before.faces) == faces.of("id0") | faces.of("id1")

    for algorithm in ("hdbscan", "agglomerative", "dbscan"):
        run(system, faces, algorithm)
        after = peek_people(system.app, OWNER, MODEL)
        assert after.persons[ann].faces == before.faces and after.persons[ann].name == "Ann"
        assert other not in after.persons
        # The rest is re-clustered as before: id2 and id3 are still people of their own.
        assert sorted(map(sorted, (set(p.faces) for p in after.persons.values() if p.id != ann))) == sorted(
            sorted(faces.of(f"id{i}")) for i in (2, 3)
        )

    await project(system)
    [row] = [r for r in await list_people(system.engine, OWNER, MODEL) if r["id"] == ann]
    assert row["name"] == "Ann" and row["size"] == 12 and row["edited"]
    assert set(await faces_of_person(system.engine, ann)) == set(before.faces)


async def test_a_face_moved_by_hand_stays_where_it_was_put(system, faces):
    faces.people(3, 6)
    run(system, faces)
    stray = sorted(faces.of("id2"))[0]
    target = person_with(system, sorted(faces.of("id0"))[0])
    move_face(system.app, OWNER, MODEL, stray, target)  # the owner knows better than the embedding
    alone = sorted(faces.of("id1"))[0]
    own = move_face(system.app, OWNER, MODEL, alone, None)  # into a person of its own
    for _ in range(2):
        run(system, faces)
        assert person_with(system, stray) == target
        assert groups(system)[own] == {alone}
    assert stray not in groups(system)[person_with(system, sorted(faces.of("id2"))[1])]


async def test_not_this_person_is_never_undone(system, faces):
    faces.people(2, 6)
    run(system, faces)
    face = sorted(faces.of("id0"))[0]
    person = person_with(system, face)
    reject_face(system.app, OWNER, MODEL, face, person)
    run(system, faces)
    assert face not in groups(system)[person]
    with pytest.raises(Exception, match="not this person"):
        move_face(system.app, OWNER, MODEL, face, person)
    # A new face of the same photo-less kind still joins; the rejected one never does.
    record_attachments(system.app, OWNER, MODEL, faces.face_set(), faces.neighbours, THRESHOLD)
    assert face not in groups(system)[person]


async def test_split_people_stay_split(system, faces):
    faces.people(1, 8)
    run(system, faces)
    person = person_with(system, faces.ids[0])
    new = split_person(system.app, OWNER, MODEL, person, faces.ids[:3])
    run(system, faces)
    assert groups(system)[new] == set(faces.ids[:3]) and groups(system)[person] == set(faces.ids[3:8])


async def test_a_new_photo_of_a_named_person_joins_without_a_rerun(system, faces):
    faces.people(3, 6)
    run(system, faces)
    ann = person_with(system, sorted(faces.of("id0"))[0])
    name_person(system.app, OWNER, MODEL, ann, "Ann")
    runs_before = peek_people(system.app, OWNER, MODEL).runs

    new = faces.face("id0")  # arrives after the run
    stranger = faces.face("someone new")
    attached = record_attachments(system.app, OWNER, MODEL, faces.face_set(), faces.neighbours, THRESHOLD)
    assert attached == {ann: [new]}
    people = peek_people(system.app, OWNER, MODEL)
    assert people.runs == runs_before and new in people.persons[ann].faces
    assert stranger not in people.person_of and stranger in people.seen
    # Attaching again changes nothing (everything new was considered).
    assert record_attachments(system.app, OWNER, MODEL, faces.face_set(), faces.neighbours, THRESHOLD) == {}

    await project(system)
    assert new in await faces_of_person(system.engine, ann)


async def test_new_faces_join_edited_people_on_a_rerun_and_make_new_people(system, faces):
    faces.people(2, 6)
    run(system, faces)
    ann = person_with(system, sorted(faces.of("id0"))[0])
    name_person(system.app, OWNER, MODEL, ann, "Ann")
    new = faces.face("id0")
    faces.people(1, 5, prefix="newcomer")
    run(system, faces)
    people = groups(system)
    assert people[ann] == faces.of("id0") and new in people[ann]
    assert faces.of("newcomer0") in people.values()


async def test_two_faces_of_one_photo_never_share_a_person(system, faces):
    faces.people(2, 6)
    # A photo with the same person twice (a mirror, a poster): the identity rule still holds.
    twice = [faces.face("id0", photo="mirror", index=0), faces.face("id0", photo="mirror", index=1)]
    faces.face("id1", photo="group", index=0)
    faces.face("id0", photo="group", index=1)
    run(system, faces)
    for members in groups(system).values():
        photos = [photo_of(f) for f in members]
        assert len(photos) == len(set(photos))
    ann = person_with(system, sorted(faces.of("id0"))[0])
    placed = [f for f in twice if f in groups(system)[ann]]
    assert len(placed) == 1
    with pytest.raises(SamePhotoConflict):
        move_face(system.app, OWNER, MODEL, next(f for f in twice if f not in placed), ann)
    # Merging two people who share a photo is refused too.
    other = person_with(system, "group:0")
    with pytest.raises(SamePhotoConflict):
        merge_people(system.app, OWNER, MODEL, ann, other)
    # New faces of one photo: at most one joins a person.
    pair = [faces.face("id1", photo="late", index=0), faces.face("id1", photo="late", index=1)]
    attached = record_attachments(system.app, OWNER, MODEL, faces.face_set(), faces.neighbours, THRESHOLD)
    assert sum(f in pair for fs in attached.values() for f in fs) == 1


def test_low_quality_faces_neither_seed_nor_join_people(faces):
    """Crowd faces (small, blurred) resemble everyone a little: they wait for the owner."""
    faces.people(1, 6)
    blurry = [faces.face("ghost", low_quality=True) for _ in range(5)]
    near = faces.face("id0", low_quality=True)
    good = faces.face("id0")
    plan = plan_clustering(None, faces.face_set(), THRESHOLD)
    assert len(plan.people) == 1
    [members] = plan.people.values()
    assert good in members and near not in members
    assert set(blurry) | {near} <= set(plan.unassigned)


def test_a_person_needs_min_faces_good_faces_to_appear(faces):
    faces.people(1, 6)
    few = [faces.face("id1") for _ in range(4)]
    plan = plan_clustering(None, faces.face_set(), THRESHOLD, min_faces=5)  # too little evidence
    assert len(plan.people) == 1 and set(few) <= set(plan.unassigned)
    assert len(plan_clustering(None, faces.face_set(), THRESHOLD, min_faces=4).people) == 2


def test_a_face_joins_afterwards_only_at_the_join_threshold(faces):
    """A leftover (an outlier photo of id0, cosine ≈ 0.64 to the others: DBSCAN's noise)
    joins at the pair threshold, and stays unassigned below a stricter join threshold (the
    bar of a search among the whole archive)."""
    faces.people(1, 6)
    centre = faces.centres["id0"]
    aside = faces.rng.standard_normal(centre.shape)
    aside -= (aside @ centre) * centre
    outlier = faces.face("id0")
    faces.vectors[-1] = (centre + 1.2 * aside / np.linalg.norm(aside)) / np.sqrt(1 + 1.2**2)
    cosine = float(faces.vectors[-1] @ faces.vectors[0])
    assert THRESHOLD < cosine < 0.9
    loose = plan_clustering(None, faces.face_set(), THRESHOLD, "dbscan")
    assert outlier in next(iter(loose.people.values()))
    strict = plan_clustering(None, faces.face_set(), THRESHOLD, "dbscan", join=0.9)
    assert outlier in strict.unassigned and len(next(iter(strict.people.values()))) == 6


async def test_people_read_model_rebuilds_identically_from_the_log(system, faces):
    faces.people(4, 5)
    run(system, faces)
    a, b, c = (person_with(system, sorted(faces.of(f"id{i}"))[0]) for i in range(3))
    name_person(system.app, OWNER, MODEL, a, "Ann")
    merge_people(system.app, OWNER, MODEL, a, b)
    split_person(system.app, OWNER, MODEL, c, sorted(faces.of("id2"))[:2])
    reject_face(system.app, OWNER, MODEL, sorted(faces.of("id3"))[0], person_with(system, sorted(faces.of("id3"))[0]))
    move_face(system.app, OWNER, MODEL, sorted(faces.of("id3"))[0], None)
    faces.face("id0")
    record_attachments(system.app, OWNER, MODEL, faces.face_set(), faces.neighbours, THRESHOLD)
    run(system, faces)

    await project(system)  # as the broker delivers them, one by one
    live = await table_checksums(system.runner, people_projection.tables)
    listed = await list_people(system.engine, OWNER, MODEL)
    counts = await system.replay(["people"])
    assert counts["people"] > 0
    assert await table_checksums(system.runner, people_projection.tables) == live
    assert await list_people(system.engine, OWNER, MODEL) == listed
    # And the read model says what the aggregate says.
    truth = {p.id: (p.name, len(p.faces), p.representative) for p in peek_people(system.app, OWNER, MODEL).persons.values()}
    assert {r["id"]: (r["name"], r["size"], r["representative_face_id"]) for r in listed} == truth


def test_scale_path_is_near_linear():
    """A quick guard on the graph path the 100k benchmark measures (2,000 faces here)."""
    import time

    rng = np.random.default_rng(1)
    centres = rng.standard_normal((200, 512))
    labels = np.repeat(np.arange(200), 10)
    vectors = centres[labels] / np.linalg.norm(centres[labels], axis=1, keepdims=True) + rng.standard_normal((2000, 512)) * 0.032
    started = time.perf_counter()
    plan = plan_clustering(None, FaceSet([f"p{i}:0" for i in range(2000)], vectors, np.zeros(2000, bool)), THRESHOLD)
    assert time.perf_counter() - started < 30
    assert len(plan.people) == 200


def test_the_people_do_not_depend_on_the_order_photos_arrived_in(faces):
    faces.people(6, 5)
    for _ in range(8):
        faces.face(f"crowd{_}", low_quality=bool(_ % 2))  # strangers seen once, some poor
    base = faces.face_set()

    def partition(order: np.ndarray) -> tuple[set[frozenset[str]], set[str]]:
        shuffled = FaceSet([base.ids[i] for i in order], base.vectors[order], base.low_quality[order])
        plan = plan_clustering(None, shuffled, THRESHOLD, join=0.6)
        return {frozenset(fs) for fs in plan.people.values()}, set(plan.unassigned)

    first = partition(np.arange(len(base.ids)))
    assert len(first[0]) == 6
    rng = np.random.default_rng(7)
    for _ in range(4):
        assert partition(rng.permutation(len(base.ids))) == first
