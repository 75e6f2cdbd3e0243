"""Commands on people: clustering runs, attaching new faces, and the owner's corrections.

The clustering itself is a pure function of the faces and the current People aggregate
(`plan_clustering`), so the benchmark runs the very code the command runs. A run:

1. Faces of edited people stay where they are. Faces never considered before join an
   edited person when close enough (the same nearest-neighbour rule as `attach`).
2. The algorithm clusters the remaining faces of good quality (low-quality faces never
   seed a person).
3. A person keeps one face per photo: the one nearest its centre; the others are set free.
4. Faces left over (noise, low quality, set free) join the person of their nearest
   neighbours when similar enough, and the rules allow it.
5. New people take the ids of the old automatic people they overlap most, so ids stay
   stable from run to run.

Entry points (`run_clustering`, `attach_new_faces`, `name_person`, ...) take the System
(or its FaceSearchApp for corrections) and are synchronous where the event store is.
"""

from __future__ import annotations

import inspect
import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from commands.clustering import DEFAULT_ALGORITHM, ClusteringError
from commands.clustering import algorithm as algorithm_named
from commands.clustering.graph import BLOCK_ROWS, normalised
from domain.people import People, new_person_id, people_id_for, photo_of
from domain.similarity import Calibration

# How many nearest faces of a person count towards joining it (their mean similarity).
JOIN_NEIGHBOURS = 3
# How many neighbours an arriving face asks Milvus for.
ATTACH_SEARCH_LIMIT = 20


@dataclass
class FaceSet:
    """The faces to cluster: ids "<photo id>:<face index>", unit vectors, low-quality flags."""

    ids: list[str]
    vectors: np.ndarray
    low_quality: np.ndarray

    def __post_init__(self) -> None:
        self.vectors = normalised(self.vectors) if len(self.ids) else np.zeros((0, 1), dtype=np.float32)
        self.low_quality = np.asarray(self.low_quality, dtype=bool)
        self.index = {face: i for i, face in enumerate(self.ids)}


@dataclass
class ClusteringPlan:
    algorithm: str
    parameters: dict[str, Any]
    people: dict[str, list[str]]  # automatic people, person id → faces
    representatives: dict[str, str]
    attached: dict[str, list[str]]  # edited person id → faces that join it
    unassigned: list[str]
    timing_s: float = 0.0
    stages_s: dict[str, float] = field(default_factory=dict)

    def labels_for(self, face_ids: Sequence[str]) -> list[str | None]:
        """Person of each face (None when unassigned), for evaluation."""
        person = {f: p for p, faces in self.people.items() for f in faces}
        person |= {f: p for p, faces in self.attached.items() for f in faces}
        return [person.get(f) for f in face_ids]


# The threshold --------------------------------------------------------------------------------


def cosine_threshold(calibration_file: Path, percent: float) -> float:
    """The raw cosine similarity at which the model's calibrated similarity reaches `percent`."""
    if not Path(calibration_file).is_file():
        raise ClusteringError(
            f"no calibration at {calibration_file}: run `facesearch models calibrate` for this model first"
        )
    data = json.loads(Path(calibration_file).read_text())
    if "cosine" in data:
        return Calibration.from_dict(data["cosine"]).raw_threshold(percent)
    distance = Calibration.from_dict(data["l2"]).raw_threshold(percent)
    return 1.0 - distance * distance / 2.0  # unit vectors: |a − b|² = 2 − 2 cos


# Planning a run (pure) ----------------------------------------------------------------------


def plan_clustering(
    people: People | None,
    faces: FaceSet,
    threshold: float,
    algorithm: str = DEFAULT_ALGORITHM,
    params: dict[str, Any] | None = None,
    attach_leftovers: bool = True,
) -> ClusteringPlan:
    """What a full run would record, given the current people (None: there are none yet)."""
    started = time.perf_counter()
    stages: dict[str, float] = {}
    people = people or People(owner="", model="")  # not recorded: a blank state to plan against
    edited = {p.id: [f for f in p.faces if f in faces.index] for p in people.edited_people()}
    fixed = {f for fs in edited.values() for f in fs}
    free = [i for i, f in enumerate(faces.ids) if f not in fixed]

    # 1. Faces never seen before may join edited people.
    attached: dict[str, list[str]] = defaultdict(list)
    unseen = [i for i in free if faces.ids[i] not in people.seen]
    if edited and unseen:
        choices = _nearest_people(faces, unseen, edited, threshold)
        for i, person_id in _one_per_photo(faces, choices, people, edited):
            attached[person_id].append(faces.ids[i])
    taken = {f for fs in attached.values() for f in fs}
    stages["attach_edited_s"] = time.perf_counter() - started

    # 2. Cluster the good faces left.
    seeds = [i for i in free if faces.ids[i] not in taken and not faces.low_quality[i]]
    t = time.perf_counter()
    cluster = algorithm_named(algorithm)
    try:
        inspect.signature(cluster).bind(faces.vectors[seeds], threshold, **(params or {}))
    except TypeError as error:  # an option this algorithm does not have
        raise ClusteringError(f"{algorithm}: {error}") from None
    result = cluster(faces.vectors[seeds], threshold, **(params or {}))
    stages["cluster_s"] = time.perf_counter() - t
    clusters: dict[int, list[int]] = defaultdict(list)
    for i, label in zip(seeds, result.labels.tolist()):
        if label >= 0:
            clusters[label].append(i)

    # 3. One face per photo in each cluster.
    members: dict[int, list[int]] = {}
    for label, idx in clusters.items():
        centre = normalised(faces.vectors[idx].mean(axis=0, keepdims=True))[0]
        best: dict[str, int] = {}
        for i in sorted(idx, key=lambda i: -float(faces.vectors[i] @ centre)):
            best.setdefault(photo_of(faces.ids[i]), i)
        members[label] = sorted(best.values())

    # 4. Leftovers join the nearest person when close enough.
    t = time.perf_counter()
    placed = {i for idx in members.values() for i in idx} | {faces.index[f] for f in taken}
    leftovers = [i for i in free if i not in placed]
    if attach_leftovers and leftovers and members:
        groups = {f"c{label}": [faces.ids[i] for i in idx] for label, idx in members.items()}
        choices = _nearest_people(faces, leftovers, groups, threshold)
        automatic = {key: {photo_of(f) for f in fs} for key, fs in groups.items()}
        for i, key in _best_per_photo(faces, choices):
            if photo_of(faces.ids[i]) not in automatic[key]:
                members[int(key[1:])].append(i)
                automatic[key].add(photo_of(faces.ids[i]))
    stages["attach_leftovers_s"] = time.perf_counter() - t

    # 5. Stable ids, representatives.
    new_people: dict[str, list[str]] = {}
    representatives: dict[str, str] = {}
    previous = {p.id: set(p.faces) for p in people.persons.values() if not p.edited}
    claimed: set[str] = set()
    for label in sorted(members, key=lambda lb: -len(members[lb])):
        idx = members[label]
        ids = [faces.ids[i] for i in idx]
        overlap = sorted(
            ((len(previous[p] & set(ids)), p) for p in previous if p not in claimed), reverse=True,
        )
        person_id = overlap[0][1] if overlap and overlap[0][0] > 0 else new_person_id()
        claimed.add(person_id)
        new_people[person_id] = ids
        centre = faces.vectors[idx].mean(axis=0)
        representatives[person_id] = ids[int(np.argmax(faces.vectors[idx] @ centre))]
    assigned = {f for fs in new_people.values() for f in fs} | taken
    unassigned = [faces.ids[i] for i in free if faces.ids[i] not in assigned]
    return ClusteringPlan(
        algorithm=algorithm, parameters={**result.parameters, "threshold": round(float(threshold), 6),
                                         "attach_leftovers": attach_leftovers},
        people=new_people, representatives=representatives, attached=dict(attached), unassigned=unassigned,
        timing_s=time.perf_counter() - started, stages_s=stages,
    )


def _nearest_people(
    faces: FaceSet, queries: list[int], groups: dict[str, list[str]], threshold: float,
) -> list[tuple[int, str, float]]:
    """For each query face, the group whose `JOIN_NEIGHBOURS` most similar faces are, on
    average, most similar to it, when that average reaches `threshold`: (face, group, score)."""
    member_ids = [f for fs in groups.values() for f in fs]
    if not member_ids:
        return []
    group_of = {f: g for g, fs in groups.items() for f in fs}
    member_vectors = faces.vectors[[faces.index[f] for f in member_ids]]
    out = []
    for start in range(0, len(queries), BLOCK_ROWS):
        block = queries[start : start + BLOCK_ROWS]
        sims = faces.vectors[block] @ member_vectors.T
        for row, i in enumerate(block):
            face, photo = faces.ids[i], photo_of(faces.ids[i])
            hits = [
                (member_ids[j], float(sims[row, j])) for j in np.flatnonzero(sims[row] >= threshold)
                if member_ids[j] != face and photo_of(member_ids[j]) != photo
            ]
            choice = choose_person(hits, group_of, threshold)
            if choice is not None:
                out.append((i, *choice))
    return out


def choose_person(hits: list[tuple[str, float]], person_of: dict[str, str], threshold: float) -> tuple[str, float] | None:
    """The person an arriving face belongs to, from its neighbours (face id, cosine): the
    person whose nearest `JOIN_NEIGHBOURS` neighbours are most similar on average, if that
    average reaches `threshold`."""
    by_person: dict[str, list[float]] = defaultdict(list)
    for face, similarity in hits:
        person = person_of.get(face)
        if person is not None and similarity >= threshold:
            by_person[person].append(similarity)
    if not by_person:
        return None
    scored = [(float(np.mean(sorted(s, reverse=True)[:JOIN_NEIGHBOURS])), p) for p, s in by_person.items()]
    score, person = max(scored)
    return (person, score) if score >= threshold else None


def _best_per_photo(faces: FaceSet, choices: list[tuple[int, str, float]]) -> list[tuple[int, str]]:
    """At most one face of each photo for each person: the most similar one."""
    best: dict[tuple[str, str], tuple[float, int]] = {}
    for i, person, score in choices:
        key = (person, photo_of(faces.ids[i]))
        if key not in best or score > best[key][0]:
            best[key] = (score, i)
    return sorted(((i, person) for (person, _), (_, i) in best.items()))


def _one_per_photo(
    faces: FaceSet, choices: list[tuple[int, str, float]], people: People, edited: dict[str, list[str]],
) -> list[tuple[int, str]]:
    allowed = [(i, p, s) for i, p, s in choices if people.may_join(faces.ids[i], p)]
    return _best_per_photo(faces, allowed)


# Recording ------------------------------------------------------------------------------------


def _load(app: Any, owner: str, model: str) -> People:
    try:
        return app.repository.get(people_id_for(owner, model))
    except AggregateNotFoundError:
        return People.start(owner, model)


def change_people(app: Any, owner: str, model: str, change: Callable[[People], Any], attempts: int = 3) -> Any:
    """Loads the owner's people for `model`, applies `change`, saves; retried when another
    command saved in between (the aggregate's version moved)."""
    for attempt in range(attempts):
        people = _load(app, owner, model)
        result = change(people)
        try:
            app.save(people)
            return result
        except IntegrityError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def peek_people(app: Any, owner: str, model: str) -> People | None:
    try:
        return app.repository.get(people_id_for(owner, model))
    except AggregateNotFoundError:
        return None


def record_clustering(app: Any, owner: str, model: str, faces: FaceSet, threshold: float,
                      algorithm: str = DEFAULT_ALGORITHM, params: dict[str, Any] | None = None) -> ClusteringPlan:
    """Plans a full run against the current people and records it as ClusteringCompleted."""
    def run(people: People) -> ClusteringPlan:
        plan = plan_clustering(people, faces, threshold, algorithm, params)
        people.record_clustering(
            algorithm=plan.algorithm, parameters=plan.parameters, people=plan.people,
            representatives=plan.representatives, attached=plan.attached, unassigned=plan.unassigned,
            timing_s=round(plan.timing_s, 3),
        )
        return plan

    return change_people(app, owner, model, run)


def record_attachments(
    app: Any, owner: str, model: str, faces: FaceSet, neighbours: Callable[[str, np.ndarray], list[tuple[str, float]]],
    threshold: float,
) -> dict[str, list[str]]:
    """Attaches faces no run or attachment has seen to existing people, by their nearest
    neighbours (`neighbours(face id, vector)` → [(face id, cosine)], e.g. from Milvus)."""
    def attach(people: People) -> dict[str, list[str]]:
        new = [i for i, f in enumerate(faces.ids) if f not in people.seen and f not in people.person_of]
        choices = []
        for i in new:
            face = faces.ids[i]
            hits = [(f, s) for f, s in neighbours(face, faces.vectors[i]) if f != face and photo_of(f) != photo_of(face)]
            choice = choose_person(hits, people.person_of, threshold)
            if choice is not None and people.may_join(face, choice[0]):
                choices.append((i, *choice))
        attached: dict[str, list[str]] = defaultdict(list)
        for i, person_id in _best_per_photo(faces, choices):
            attached[person_id].append(faces.ids[i])
        joined = {f for fs in attached.values() for f in fs}
        people.attach(dict(attached), [faces.ids[i] for i in new if faces.ids[i] not in joined])
        return dict(attached)

    return change_people(app, owner, model, attach)


# Corrections (synchronous: call from a thread in async code) ------------------------------------


def name_person(app: Any, owner: str, model: str, person_id: str, name: str) -> None:
    change_people(app, owner, model, lambda p: p.name(person_id, name))


def merge_people(app: Any, owner: str, model: str, person_id: str, other_id: str) -> None:
    """`other_id`'s faces join `person_id`; `other_id` disappears."""
    change_people(app, owner, model, lambda p: p.merge(person_id, other_id))


def move_face(app: Any, owner: str, model: str, face_id: str, person_id: str | None) -> str:
    """Puts a face into a person (a new one when `person_id` is None); returns that person's id."""
    return change_people(app, owner, model, lambda p: p.move(face_id, person_id))


def reject_face(app: Any, owner: str, model: str, face_id: str, person_id: str) -> None:
    """"Not this person": the face leaves and never joins that person again."""
    change_people(app, owner, model, lambda p: p.reject(face_id, person_id))


def split_person(app: Any, owner: str, model: str, person_id: str, face_ids: list[str]) -> str:
    """`face_ids` leave `person_id` as a new person; returns the new person's id."""
    return change_people(app, owner, model, lambda p: p.split(person_id, face_ids))
