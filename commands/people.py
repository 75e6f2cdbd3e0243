"""Commands on people: clustering runs, attaching new faces, and the owner's corrections.

The clustering itself is a pure function of the faces and the current People aggregate
(`plan_clustering`), so the benchmark runs the very code the command runs. A run:

1. Faces of edited people stay where they are. Faces never considered before join an
   edited person when close enough (the same nearest-neighbour rule as `attach`).
2. The algorithm clusters the remaining faces of good quality (low-quality faces never
   seed a person).
3. A person keeps one face per photo: the one nearest its centre; the others are set free.
4. Faces left over (noise, set free) join the person of their nearest neighbours when
   similar enough for a search among all the faces (the join threshold), and the rules
   allow it. Low-quality faces never join on their own: they wait, unassigned, for the
   owner (a crowd's small, blurred faces resemble everyone a little).
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
from typing import TYPE_CHECKING, Any

import numpy as np
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from commands.clustering import DEFAULT_ALGORITHM, ClusteringError
from commands.clustering import algorithm as algorithm_named
from commands.clustering.graph import BLOCK_ROWS, normalised
from domain.people import People, new_person_id, people_id_for, photo_of
from domain.similarity import Calibration

if TYPE_CHECKING:
    from commands.app import FaceSearchApp

# How many nearest faces of a person count towards joining it (their mean similarity).
JOIN_NEIGHBOURS = 3
# The fewest good faces (from different photos) an automatic person starts with: fewer is
# too little evidence that it is one person (Settings.people_min_faces).
MIN_PERSON_FACES = 3
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


# Clustering compares each face with the few dozen faces nearest it (the k-NN graph): a pair
# is judged as a search among that many faces, not as a lone pair.
CLUSTERING_ARCHIVE_FACES = 30


def cosine_threshold(calibration_file: Path, percent: float, archive_faces: int = CLUSTERING_ARCHIVE_FACES) -> float:
    """The cosine at which a pair of typical faces reaches the calibrated `percent` in a
    search among `archive_faces` faces. Among `CLUSTERING_ARCHIVE_FACES` (the default) it is
    clustering's "same person"; `join_threshold` asks it for the whole archive."""
    if not Path(calibration_file).is_file():
        raise ClusteringError(
            f"no calibration at {calibration_file}: run `facesearch models calibrate` for this model first"
        )
    data = json.loads(Path(calibration_file).read_text())
    try:
        return Calibration.from_dict(data["cosine"]).typical_cosine(percent, max(archive_faces, CLUSTERING_ARCHIVE_FACES))
    except (KeyError, ValueError) as error:
        raise ClusteringError(f"{calibration_file}: {error}") from None


def join_threshold(calibration_file: Path, percent: float, archive_faces: int) -> float:
    """The cosine a face needs to join a person after the algorithm ran (a leftover, an
    arriving face): it is compared with every face of every person, a search among the whole
    archive, so its bar rises with the archive (`benchmarks.clustering --distractors`, LFW
    people and WIDER crowds, 1,770 faces: with the pair threshold 28.6 % of the crowd's faces
    joined cards, with this one and low-quality faces kept out 0.0 %; docs/benchmarks.md)."""
    return cosine_threshold(calibration_file, percent, archive_faces)


# Planning a run (pure) ----------------------------------------------------------------------


def plan_clustering(
    people: People | None,
    faces: FaceSet,
    threshold: float,
    algorithm: str = DEFAULT_ALGORITHM,
    params: dict[str, Any] | None = None,
    attach_leftovers: bool = True,
    join: float | None = None,
    min_faces: int = MIN_PERSON_FACES,
) -> ClusteringPlan:
    """What a full run would record, given the current people (None: there are none yet).
    `threshold` is the algorithm's "same person"; `join` (default: `threshold`) the bar for
    a face joining a person afterwards (see `join_threshold`); an automatic person needs
    `min_faces` good faces of different photos from the algorithm to exist."""
    started = time.perf_counter()
    join = threshold if join is None else join
    stages: dict[str, float] = {}
    people = people or People(owner="", model="")  # not recorded: a blank state to plan against
    edited = {p.id: [f for f in p.faces if f in faces.index] for p in people.edited_people()}
    fixed = {f for fs in edited.values() for f in fs}
    free = [i for i, f in enumerate(faces.ids) if f not in fixed]

    attached = _attach_unseen_to_edited(people, faces, edited, free, join)
    taken = {f for fs in attached.values() for f in fs}
    stages["attach_edited_s"] = time.perf_counter() - started

    t = time.perf_counter()
    seeds = [i for i in free if faces.ids[i] not in taken and not faces.low_quality[i]]
    result = _run_algorithm(algorithm, faces.vectors[seeds], threshold, params or {})
    stages["cluster_s"] = time.perf_counter() - t
    members = _one_face_per_photo(faces, seeds, result.labels.tolist(), min_faces)

    t = time.perf_counter()
    if attach_leftovers:
        placed = {i for idx in members.values() for i in idx} | {faces.index[f] for f in taken}
        _attach_leftovers(faces, members, [i for i in free if i not in placed and not faces.low_quality[i]], join)
    stages["attach_leftovers_s"] = time.perf_counter() - t

    new_people, representatives = _people_with_stable_ids(people, faces, members)
    assigned = {f for fs in new_people.values() for f in fs} | taken
    unassigned = [faces.ids[i] for i in free if faces.ids[i] not in assigned]
    return ClusteringPlan(
        algorithm=algorithm, parameters={**result.parameters, "threshold": round(float(threshold), 6),
                                         "join_threshold": round(float(join), 6), "min_faces": min_faces,
                                         "attach_leftovers": attach_leftovers},
        people=new_people, representatives=representatives, attached=dict(attached), unassigned=unassigned,
        timing_s=time.perf_counter() - started, stages_s=stages,
    )


def _attach_unseen_to_edited(
    people: People, faces: FaceSet, edited: dict[str, list[str]], free: list[int], join: float,
) -> dict[str, list[str]]:
    """Step 1: faces never seen before may join the people a user edited (person id -> faces)."""
    attached: dict[str, list[str]] = defaultdict(list)
    unseen = [i for i in free if faces.ids[i] not in people.seen and not faces.low_quality[i]]
    if edited and unseen:
        choices = _nearest_people(faces, unseen, edited, join)
        for i, person_id in _one_per_photo(faces, choices, people, edited):
            attached[person_id].append(faces.ids[i])
    return attached


def _run_algorithm(algorithm: str, vectors: np.ndarray, threshold: float, params: dict[str, Any]) -> Any:
    """Step 2: the clustering algorithm over the good faces left (a clear error for an
    option it does not have)."""
    cluster = algorithm_named(algorithm)
    try:
        inspect.signature(cluster).bind(vectors, threshold, **params)
    except TypeError as error:
        raise ClusteringError(f"{algorithm}: {error}") from None
    return cluster(vectors, threshold, **params)


def _one_face_per_photo(faces: FaceSet, seeds: list[int], labels: list[int], min_faces: int) -> dict[int, list[int]]:
    """Step 3: in each cluster, the face of each photo nearest the cluster's centre; a
    cluster with fewer than `min_faces` photos is left over (label -> face indices)."""
    clusters: dict[int, list[int]] = defaultdict(list)
    for i, label in zip(seeds, labels):
        if label >= 0:
            clusters[label].append(i)
    members: dict[int, list[int]] = {}
    for label, idx in clusters.items():
        centre = normalised(faces.vectors[idx].mean(axis=0, keepdims=True))[0]
        best: dict[str, int] = {}
        for i in sorted(idx, key=lambda i: -float(faces.vectors[i] @ centre)):
            best.setdefault(photo_of(faces.ids[i]), i)
        if len(best) >= min_faces:
            members[label] = sorted(best.values())
    return members


def _attach_leftovers(faces: FaceSet, members: dict[int, list[int]], leftovers: list[int], join: float) -> None:
    """Step 4: each leftover joins its nearest cluster when close enough, one face per photo
    (`members` grows in place)."""
    if not leftovers or not members:
        return
    groups = {f"c{label}": [faces.ids[i] for i in idx] for label, idx in members.items()}
    choices = _nearest_people(faces, leftovers, groups, join)
    automatic = {key: {photo_of(f) for f in fs} for key, fs in groups.items()}
    for i, key in _best_per_photo(faces, choices):
        if photo_of(faces.ids[i]) not in automatic[key]:
            members[int(key[1:])].append(i)
            automatic[key].add(photo_of(faces.ids[i]))


def _people_with_stable_ids(
    people: People, faces: FaceSet, members: dict[int, list[int]],
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Step 5: each cluster, largest first, keeps the id of the automatic person it overlaps
    most (a new id otherwise), with the face nearest its centre as representative."""
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
    return new_people, representatives


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


def _load(app: FaceSearchApp, owner: str, model: str) -> People:
    try:
        return app.repository.get(people_id_for(owner, model))
    except AggregateNotFoundError:
        return People.start(owner, model)


def change_people(app: FaceSearchApp, owner: str, model: str, change: Callable[[People], Any], attempts: int = 3) -> Any:
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


def peek_people(app: FaceSearchApp, owner: str, model: str) -> People | None:
    try:
        return app.repository.get(people_id_for(owner, model))
    except AggregateNotFoundError:
        return None


def record_clustering(app: FaceSearchApp, owner: str, model: str, faces: FaceSet, threshold: float,
                      algorithm: str = DEFAULT_ALGORITHM, params: dict[str, Any] | None = None,
                      join: float | None = None, min_faces: int = MIN_PERSON_FACES) -> ClusteringPlan:
    """Plans a full run against the current people and records it as ClusteringCompleted."""
    def run(people: People) -> ClusteringPlan:
        plan = plan_clustering(people, faces, threshold, algorithm, params, join=join, min_faces=min_faces)
        people.record_clustering(
            algorithm=plan.algorithm, parameters=plan.parameters, people=plan.people,
            representatives=plan.representatives, attached=plan.attached, unassigned=plan.unassigned,
            timing_s=round(plan.timing_s, 3),
        )
        return plan

    return change_people(app, owner, model, run)


def record_attachments(
    app: FaceSearchApp, owner: str, model: str, faces: FaceSet, neighbours: Callable[[str, np.ndarray], list[tuple[str, float]]],
    threshold: float,
) -> dict[str, list[str]]:
    """Attaches faces no run or attachment has seen to existing people, by their nearest
    neighbours (`neighbours(face id, vector)` → [(face id, cosine)], e.g. from Milvus), when
    they reach `threshold` (a `join_threshold`); low-quality faces stay unassigned."""
    def attach(people: People) -> dict[str, list[str]]:
        new = [i for i, f in enumerate(faces.ids) if f not in people.seen and f not in people.person_of]
        choices = []
        for i in new:
            if faces.low_quality[i]:
                continue
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


def name_person(app: FaceSearchApp, owner: str, model: str, person_id: str, name: str) -> None:
    change_people(app, owner, model, lambda p: p.name(person_id, name))


def merge_people(app: FaceSearchApp, owner: str, model: str, person_id: str, other_id: str) -> None:
    """`other_id`'s faces join `person_id`; `other_id` disappears."""
    change_people(app, owner, model, lambda p: p.merge(person_id, other_id))


def move_face(app: FaceSearchApp, owner: str, model: str, face_id: str, person_id: str | None) -> str:
    """Puts a face into a person (a new one when `person_id` is None); returns that person's id."""
    return change_people(app, owner, model, lambda p: p.move(face_id, person_id))


def reject_face(app: FaceSearchApp, owner: str, model: str, face_id: str, person_id: str) -> None:
    """"Not this person": the face leaves and never joins that person again."""
    change_people(app, owner, model, lambda p: p.reject(face_id, person_id))


def split_person(app: FaceSearchApp, owner: str, model: str, person_id: str, face_ids: list[str]) -> str:
    """`face_ids` leave `person_id` as a new person; returns the new person's id."""
    return change_people(app, owner, model, lambda p: p.split(person_id, face_ids))


def decline_merge(app: FaceSearchApp, owner: str, model: str, person_id: str, other_id: str) -> None:
    """"Not the same person": this pair is never suggested again."""
    change_people(app, owner, model, lambda p: p.decline(person_id, other_id))


def hide_person(app: FaceSearchApp, owner: str, model: str, person_id: str, hidden: bool = True) -> None:
    change_people(app, owner, model, lambda p: p.hide(person_id, hidden))


def choose_cover(app: FaceSearchApp, owner: str, model: str, person_id: str, face_id: str) -> None:
    change_people(app, owner, model, lambda p: p.choose_cover(person_id, face_id))


def review_faces(app: FaceSearchApp, owner: str, model: str, accepted: dict[str, str], declined: dict[str, str]) -> None:
    """Faces in no person: `accepted` (face → person) join, `declined` never join that person."""
    change_people(app, owner, model, lambda p: p.review(accepted, declined))


# Similarity between people (pure: for suggestions, pickers and the review) -------------------

# A pair of people is judged by the mean of its PAIR_TOP_K most similar cross pairs of faces
# (one lucky pair of look-alike faces is not enough; a few are the same person's evidence).
PAIR_TOP_K = 5
# Only each person's PAIR_CANDIDATES nearest people by centroid are compared face by face.
PAIR_CANDIDATES = 10


@dataclass(frozen=True)
class PersonPair:
    person_id: str
    other_id: str
    score: float  # cosine


def _members(people: People, faces: FaceSet, include_hidden: bool = False) -> dict[str, list[int]]:
    """Person id → rows of its faces in `faces` (people with no loaded face left out)."""
    out = {}
    for p in people.persons.values():
        rows = [faces.index[f] for f in p.faces if f in faces.index]
        if rows and (include_hidden or not p.hidden):
            out[p.id] = rows
    return out


def _pair_score(faces: FaceSet, a: list[int], b: list[int], k: int = PAIR_TOP_K) -> float:
    sims = (faces.vectors[a] @ faces.vectors[b].T).ravel()
    top = np.sort(sims)[::-1][:k]
    return float(top.mean())


def _centroids(faces: FaceSet, members: dict[str, list[int]]) -> tuple[list[str], np.ndarray]:
    ids = list(members)
    if not ids:
        return ids, np.zeros((0, faces.vectors.shape[1] if faces.vectors.ndim == 2 else 1), dtype=np.float32)
    return ids, normalised(np.stack([faces.vectors[members[p]].mean(axis=0) for p in ids]))


def merge_suggestions(people: People | None, faces: FaceSet, floor: float, limit: int = 50) -> list[PersonPair]:
    """Pairs of people that are probably one, most likely first: their score (see
    `PAIR_TOP_K`) reaches `floor`; pairs declined, sharing a photo, or hidden are left out."""
    if people is None:
        return []
    members = _members(people, faces)
    ids, centres = _centroids(faces, members)
    if len(ids) < 2:
        return []
    near = centres @ centres.T
    pairs: dict[frozenset[str], PersonPair] = {}
    for i, person_id in enumerate(ids):
        for j in np.argsort(-near[i])[: PAIR_CANDIDATES + 1]:
            other_id = ids[int(j)]
            key = frozenset((person_id, other_id))
            if other_id == person_id or key in pairs or people.is_declined(person_id, other_id):
                continue
            if people.persons[person_id].photos & people.persons[other_id].photos:
                continue
            score = _pair_score(faces, members[person_id], members[other_id])
            if score >= floor:
                first, second = sorted((person_id, other_id), key=lambda p: (-len(members[p]), p))
                pairs[key] = PersonPair(first, second, score)
    return sorted(pairs.values(), key=lambda p: (-p.score, p.person_id, p.other_id))[:limit]


def nearest_people(people: People | None, faces: FaceSet, face_ids: list[str], limit: int = 20,
                   exclude: str | None = None) -> list[tuple[str, float]]:
    """The people nearest to these faces (a person's, or one face), nearest first, by the
    mean of their top cross similarities; people the faces may not join (a shared photo, a
    face marked "not this person") and `exclude` are left out."""
    if people is None:
        return []
    rows = [faces.index[f] for f in face_ids if f in faces.index]
    if not rows:
        return []
    photos = {photo_of(f) for f in face_ids}
    out = []
    for person_id, member_rows in _members(people, faces).items():
        person = people.persons[person_id]
        if person_id == exclude or person.photos & photos or any((f, person_id) in people.rejected for f in face_ids):
            continue
        out.append((person_id, _pair_score(faces, rows, member_rows, min(PAIR_TOP_K, JOIN_NEIGHBOURS * len(rows)))))
    return sorted(out, key=lambda x: -x[1])[:limit]


# A face's candidate people are read off its REVIEW_NEIGHBOURS nearest faces of any person.
REVIEW_NEIGHBOURS = 50


@dataclass(frozen=True)
class FaceCandidate:
    face_id: str
    person_id: str
    score: float  # cosine


def unassigned_candidates(people: People | None, faces: FaceSet, limit: int = 200) -> list[FaceCandidate]:
    """Faces in no person, each with its best candidate person (by its `JOIN_NEIGHBOURS`
    nearest faces of that person), most similar first. Faces whose only candidates are
    ruled out (a shared photo, "not this person") are left out."""
    if people is None:
        return []
    members = _members(people, faces)
    if not members:
        return []
    member_ids = [faces.ids[r] for rows in members.values() for r in rows]
    member_vectors = faces.vectors[[faces.index[f] for f in member_ids]]
    free = [i for i, f in enumerate(faces.ids) if f not in people.person_of]
    out = []
    for start in range(0, len(free), BLOCK_ROWS):
        block = free[start : start + BLOCK_ROWS]
        sims = faces.vectors[block] @ member_vectors.T
        for row, i in enumerate(block):
            face = faces.ids[i]
            by_person: dict[str, list[float]] = defaultdict(list)
            top = np.argpartition(-sims[row], REVIEW_NEIGHBOURS - 1)[:REVIEW_NEIGHBOURS] if len(member_ids) > REVIEW_NEIGHBOURS \
                else np.arange(len(member_ids))
            for j in top[np.argsort(-sims[row][top])]:
                person_id = people.person_of[member_ids[int(j)]]
                by_person[person_id].append(float(sims[row, int(j)]))
            scored = sorted(
                ((float(np.mean(s[:JOIN_NEIGHBOURS])), p) for p, s in by_person.items() if people.may_join(face, p)),
                reverse=True,
            )
            if scored:
                out.append(FaceCandidate(face, scored[0][1], scored[0][0]))
    return sorted(out, key=lambda c: (-c.score, c.face_id))[:limit]
