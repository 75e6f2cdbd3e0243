"""The owner's newer corrections on synthetic faces: "not the same person" for a suggested
merge, hiding a person, choosing its cover face, and the review of faces in no person.
Each one must survive a full re-run of clustering, and the read model must rebuild
identically from the log."""

from __future__ import annotations

import pytest

from commands.people import (
    choose_cover,
    decline_merge,
    hide_person,
    merge_people,
    merge_suggestions,
    nearest_people,
    peek_people,
    record_clustering,
    review_faces,
    split_person,
    unassigned_candidates,
)
from domain.people import InvalidCorrection, SamePhotoConflict
from projections.people import faces_of_person, list_people, people_projection, person_row
from projections.replay import table_checksums
from tests.people.conftest import THRESHOLD, Faces, project

OWNER, MODEL = "ann", "facenet512"
FLOOR = 0.3  # below the synthetic same-identity cosine (≈ 0.75), far above strangers' (≈ 0)


def run(system, faces: Faces) -> None:
    record_clustering(system.app, OWNER, MODEL, faces.face_set(), THRESHOLD)


def people(system):
    return peek_people(system.app, OWNER, MODEL)


def person_with(system, face_id: str) -> str:
    return people(system).person_of[face_id]


def halves(system, faces: Faces, identity: str = "id0") -> tuple[str, str]:
    """Splits the person of `identity` in two, as clustering sometimes leaves one person."""
    mine = sorted(faces.of(identity))
    person = person_with(system, mine[0])
    return person, split_person(system.app, OWNER, MODEL, person, mine[:3])


def suggested(system, faces: Faces) -> set[frozenset[str]]:
    return {frozenset((s.person_id, s.other_id)) for s in merge_suggestions(people(system), faces.face_set(), FLOOR)}


async def test_a_person_split_in_two_is_suggested_for_a_merge_and_strangers_are_not(system, faces):
    faces.people(3, 6)
    run(system, faces)
    a, b = halves(system, faces)
    [only] = merge_suggestions(people(system), faces.face_set(), FLOOR)
    assert {only.person_id, only.other_id} == {a, b} and only.score > 0.6
    merge_people(system.app, OWNER, MODEL, only.person_id, only.other_id)  # the one-click merge
    assert suggested(system, faces) == set()


async def test_not_the_same_is_never_suggested_again_even_after_rerunning(system, faces):
    faces.people(3, 6)
    run(system, faces)
    a, b = halves(system, faces)
    c, d = halves(system, faces, "id1")
    assert suggested(system, faces) == {frozenset((a, b)), frozenset((c, d))}
    decline_merge(system.app, OWNER, MODEL, b, a)
    assert suggested(system, faces) == {frozenset((c, d))}
    for _ in range(2):
        run(system, faces)
        assert suggested(system, faces) == {frozenset((c, d))}
        assert {a, b} <= set(people(system).persons)  # the re-run kept both, ids and all


async def test_not_the_same_carries_over_to_the_person_a_declined_one_merges_into(system, faces):
    faces.people(3, 6)
    run(system, faces)
    a, b = halves(system, faces)
    decline_merge(system.app, OWNER, MODEL, a, b)
    other = person_with(system, sorted(faces.of("id2"))[0])
    merge_people(system.app, OWNER, MODEL, other, b)  # b's faces join other; b is gone
    assert people(system).is_declined(a, other)


async def test_people_sharing_a_photo_are_never_suggested(system, faces):
    faces.people(1, 6)
    run(system, faces)
    a, b = halves(system, faces)
    shared = "photo09999"
    faces.face("id0", photo=shared, index=0)
    faces.face("id0", photo=shared, index=1)
    review_faces(system.app, OWNER, MODEL, {f"{shared}:0": a, f"{shared}:1": b}, {})
    assert suggested(system, faces) == set()


async def test_a_hidden_person_stays_hidden_after_rerunning(system, faces):
    faces.people(3, 6)
    run(system, faces)
    hidden = person_with(system, sorted(faces.of("id0"))[0])
    hide_person(system.app, OWNER, MODEL, hidden)
    run(system, faces)
    assert people(system).persons[hidden].hidden
    assert set(people(system).persons[hidden].faces) == faces.of("id0")
    last = await project(system)
    shown = {r["id"] for r in await list_people(system.engine, OWNER, MODEL, include_hidden=False)}
    assert hidden not in shown and len(shown) == 2
    assert (await person_row(system.engine, OWNER, MODEL, hidden))["hidden"] is True
    hide_person(system.app, OWNER, MODEL, hidden, False)  # and back
    await project(system, last)
    assert len(await list_people(system.engine, OWNER, MODEL, include_hidden=False)) == 3


async def test_people_are_found_by_name(system, faces):
    faces.people(3, 6)
    run(system, faces)
    from commands.people import name_person

    name_person(system.app, OWNER, MODEL, person_with(system, sorted(faces.of("id0"))[0]), "Анна Петрова")
    name_person(system.app, OWNER, MODEL, person_with(system, sorted(faces.of("id1"))[0]), "Ben 100%")
    await project(system)
    assert [r["name"] for r in await list_people(system.engine, OWNER, MODEL, search="петро")] == ["Анна Петрова"]
    assert [r["name"] for r in await list_people(system.engine, OWNER, MODEL, search="0%")] == ["Ben 100%"]
    assert await list_people(system.engine, OWNER, MODEL, search="_") == []


async def test_a_chosen_cover_stays_after_rerunning(system, faces):
    faces.people(2, 6)
    run(system, faces)
    person = person_with(system, sorted(faces.of("id0"))[0])
    cover = next(f for f in sorted(faces.of("id0")) if f != people(system).persons[person].representative)
    choose_cover(system.app, OWNER, MODEL, person, cover)
    run(system, faces)
    assert people(system).persons[person].representative == cover
    await project(system)
    assert (await person_row(system.engine, OWNER, MODEL, person))["representative_face_id"] == cover
    with pytest.raises(InvalidCorrection):
        choose_cover(system.app, OWNER, MODEL, person, sorted(faces.of("id1"))[0])


def low_quality_faces(faces: Faces, identity: str, n: int) -> list[str]:
    """Faces of `identity` that never join on their own (low quality): the review's subject."""
    return [faces.face(identity, low_quality=True) for _ in range(n)]


async def test_review_ranks_faces_in_no_person_by_their_best_candidate(system, faces):
    faces.people(2, 6)
    ann = low_quality_faces(faces, "id0", 2)
    stranger = faces.face("nobody")
    run(system, faces)
    candidates = unassigned_candidates(people(system), faces.face_set())
    by_face = {c.face_id: c for c in candidates}
    assert set(by_face) == {*ann, stranger}
    assert {by_face[f].person_id for f in ann} == {person_with(system, sorted(faces.of("id0"))[0])}
    assert candidates[-1].face_id == stranger and by_face[stranger].score < 0.2 < min(by_face[f].score for f in ann)


async def test_accepted_faces_of_the_review_stay_after_rerunning(system, faces):
    faces.people(2, 6)
    ann = low_quality_faces(faces, "id0", 2)
    run(system, faces)
    person = person_with(system, sorted(faces.of("id0"))[0])
    review_faces(system.app, OWNER, MODEL, {f: person for f in ann}, {})
    for _ in range(2):
        run(system, faces)
        assert set(people(system).persons[person].faces) == faces.of("id0")
    assert unassigned_candidates(people(system), faces.face_set()) == []
    await project(system)
    assert set(await faces_of_person(system.engine, person)) == faces.of("id0")


async def test_declined_faces_of_the_review_never_join_that_person(system, faces):
    faces.people(2, 6)
    [face] = low_quality_faces(faces, "id0", 1)
    run(system, faces)
    person = person_with(system, sorted(faces.of("id0"))[0])
    review_faces(system.app, OWNER, MODEL, {}, {face: person})
    run(system, faces)
    assert face not in people(system).persons[person].faces
    offered = {c.face_id: c.person_id for c in unassigned_candidates(people(system), faces.face_set())}
    assert offered.get(face) != person
    with pytest.raises(InvalidCorrection, match="not this person"):
        review_faces(system.app, OWNER, MODEL, {face: person}, {})


async def test_review_refuses_two_faces_of_one_photo_for_one_person(system, faces):
    faces.people(1, 6)
    faces.face("id0", photo="photo09999", index=0, low_quality=True)
    faces.face("id0", photo="photo09999", index=1, low_quality=True)
    run(system, faces)
    person = person_with(system, sorted(faces.of("id0"))[0])
    with pytest.raises(SamePhotoConflict):
        review_faces(system.app, OWNER, MODEL, {"photo09999:0": person, "photo09999:1": person}, {})


async def test_pickers_rank_people_nearest_first(system, faces):
    faces.people(3, 6)
    run(system, faces)
    a, b = halves(system, faces)
    near = nearest_people(people(system), faces.face_set(), people(system).persons[a].faces, exclude=a)
    assert near[0][0] == b and near[0][1] > 0.6 > near[1][1]
    assert len(near) == 3  # everyone else, strangers last


async def test_read_model_with_the_new_corrections_rebuilds_identically(system, faces):
    faces.people(3, 6)
    ann = low_quality_faces(faces, "id0", 2)
    run(system, faces)
    a, b = halves(system, faces)
    decline_merge(system.app, OWNER, MODEL, a, b)
    hide_person(system.app, OWNER, MODEL, person_with(system, sorted(faces.of("id1"))[0]))
    c = person_with(system, sorted(faces.of("id2"))[0])
    choose_cover(system.app, OWNER, MODEL, c, sorted(faces.of("id2"))[-1])
    review_faces(system.app, OWNER, MODEL, {ann[0]: a}, {ann[1]: b})
    run(system, faces)

    await project(system)
    live = await table_checksums(system.runner, people_projection.tables)
    listed = await list_people(system.engine, OWNER, MODEL)
    await system.replay(["people"])
    assert await table_checksums(system.runner, people_projection.tables) == live
    assert await list_people(system.engine, OWNER, MODEL) == listed
    truth = {p.id: (len(p.faces), p.representative, p.hidden) for p in people(system).persons.values()}
    assert {r["id"]: (r["size"], r["representative_face_id"], r["hidden"]) for r in listed} == truth
