"""The People aggregate: who is who among one owner's faces, for one embedding model.

One stream per owner and model (its id derives from both), so clustering runs and the
owner's corrections are ordered on one stream and each decision sees all earlier ones.

A person found by clustering is *automatic*: the next run may dissolve and re-form it.
A person the owner has touched (named, merged into, moved a face into, split, rejected a
face from, declared "not the same" as another, hidden, given a cover face) is *edited*:
runs never take its faces away, only add new faces close enough.
Two rules hold for every person, whatever made it:
- one person appears at most once per photo (two faces of one photo are never one person);
- a face marked "not this person" never joins that person again.

Face ids are "<photo id>:<face index>", as in the faces read model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate


def people_id_for(owner: str, model: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"facesearch:people:{owner}:{model}")


def photo_of(face_id: str) -> str:
    return face_id.rsplit(":", 1)[0]


def new_person_id() -> str:
    return uuid4().hex[:16]


@dataclass
class Person:
    id: str
    faces: list[str]
    representative: str
    name: str = ""
    edited: bool = False
    hidden: bool = False

    @property
    def photos(self) -> set[str]:
        return {photo_of(f) for f in self.faces}


# Events -------------------------------------------------------------------------------------


class PeopleStarted(Aggregate.Created):
    owner: str
    model: str


class ClusteringCompleted(Aggregate.Event):
    """A full run: `people` (person id → face ids) replaces every automatic person;
    `attached` adds faces to edited people; `unassigned` were considered and fit no one.
    `representatives` names each listed person's representative face."""

    run_id: str
    algorithm: str
    parameters: dict[str, Any]
    model: str
    people: dict[str, list[str]]
    representatives: dict[str, str]
    attached: dict[str, list[str]]
    unassigned: list[str]
    timing_s: float

    def apply(self, people: People) -> None:
        for person_id in [p.id for p in people.persons.values() if not p.edited]:
            people._drop(person_id)
        for person_id, faces in self.people.items():
            people._add(Person(person_id, list(faces), self.representatives[person_id]))
        for person_id, faces in self.attached.items():
            people._extend(person_id, faces)
        people.seen.update(self.unassigned)
        people.runs += 1


class FacesAttached(Aggregate.Event):
    """New faces joined existing people by their nearest neighbours (no re-run)."""

    attached: dict[str, list[str]]
    unassigned: list[str]

    def apply(self, people: People) -> None:
        for person_id, faces in self.attached.items():
            people._extend(person_id, faces)
        people.seen.update(self.unassigned)


class PersonNamed(Aggregate.Event):
    person_id: str
    name: str

    def apply(self, people: People) -> None:
        person = people.persons[self.person_id]
        person.name = self.name
        person.edited = True


class PeopleMerged(Aggregate.Event):
    """`merged_id`'s faces now belong to `person_id`; `merged_id` is gone."""

    person_id: str
    merged_id: str
    name: str
    representative: str

    def apply(self, people: People) -> None:
        merged = people.persons[self.merged_id]
        people._drop(self.merged_id)
        people._extend(self.person_id, merged.faces)
        person = people.persons[self.person_id]
        person.name, person.representative, person.edited = self.name, self.representative, True
        # "Not the same as X" said of the merged person now holds for the one it joined.
        people.declined = {
            frozenset(self.person_id if p == self.merged_id else p for p in pair) for pair in people.declined
        }
        people.declined = {pair for pair in people.declined if len(pair) == 2}


class FaceMoved(Aggregate.Event):
    """A face put by hand into `to_person` (new when `created`); it leaves `from_person`."""

    face_id: str
    from_person: str | None
    from_representative: str | None
    to_person: str
    created: bool

    def apply(self, people: People) -> None:
        people._take_out(self.face_id, self.from_representative)
        if self.created:
            people._add(Person(self.to_person, [self.face_id], self.face_id, edited=True))
        else:
            people._extend(self.to_person, [self.face_id])
            people.persons[self.to_person].edited = True
        people.seen.add(self.face_id)


class FaceRejected(Aggregate.Event):
    """"Not this person": the face leaves `person_id` and never joins it again."""

    face_id: str
    person_id: str
    representative: str | None

    def apply(self, people: People) -> None:
        people._take_out(self.face_id, self.representative)
        people.rejected.add((self.face_id, self.person_id))
        if self.person_id in people.persons:
            people.persons[self.person_id].edited = True


class PersonSplit(Aggregate.Event):
    """`face_ids` leave `person_id` and form `new_person_id`; both are edited."""

    person_id: str
    new_person_id: str
    face_ids: list[str]
    representative: str
    new_representative: str

    def apply(self, people: People) -> None:
        person = people.persons[self.person_id]
        moving = set(self.face_ids)
        person.faces = [f for f in person.faces if f not in moving]
        person.representative, person.edited = self.representative, True
        people._add(Person(self.new_person_id, list(self.face_ids), self.new_representative, edited=True))


class PeopleDeclared(Aggregate.Event):
    """"Not the same person": the pair is never suggested for a merge again; both are edited
    so that runs keep them (and their ids) as they are."""

    person_id: str
    other_id: str

    def apply(self, people: People) -> None:
        people.declined.add(frozenset((self.person_id, self.other_id)))
        people.persons[self.person_id].edited = True
        people.persons[self.other_id].edited = True


class PersonHidden(Aggregate.Event):
    """Hidden from the people list and from suggestions (`hidden` false: shown again)."""

    person_id: str
    hidden: bool

    def apply(self, people: People) -> None:
        person = people.persons[self.person_id]
        person.hidden, person.edited = self.hidden, True


class CoverChosen(Aggregate.Event):
    """The owner's choice of the face that stands for the person."""

    person_id: str
    face_id: str

    def apply(self, people: People) -> None:
        person = people.persons[self.person_id]
        person.representative, person.edited = self.face_id, True


class FacesReviewed(Aggregate.Event):
    """The review of faces in no person: `accepted` (face → person) join those people, as
    moves by hand do; `declined` (face → person) are "not this person" for faces outside it."""

    accepted: dict[str, str]
    declined: dict[str, str]

    def apply(self, people: People) -> None:
        for face_id, person_id in self.accepted.items():
            people._extend(person_id, [face_id])
            people.persons[person_id].edited = True
        for face_id, person_id in self.declined.items():
            people.rejected.add((face_id, person_id))
            people.seen.add(face_id)
            if person_id in people.persons:
                people.persons[person_id].edited = True


# The aggregate -------------------------------------------------------------------------------


class People(Aggregate):
    def __init__(self, owner: str, model: str) -> None:
        self.owner = owner
        self.model = model
        self.persons: dict[str, Person] = {}
        self.person_of: dict[str, str] = {}  # face id → person id
        self.rejected: set[tuple[str, str]] = set()  # (face id, person id)
        self.seen: set[str] = set()  # every face a run or an attachment has considered
        self.declined: set[frozenset[str]] = set()  # pairs of people "not the same"
        self.runs = 0

    @classmethod
    def start(cls, owner: str, model: str) -> People:
        return cls._create(PeopleStarted, id=people_id_for(owner, model), owner=owner, model=model)

    # Queries ---------------------------------------------------------------------------------

    def person(self, person_id: str) -> Person:
        try:
            return self.persons[person_id]
        except KeyError:
            raise PersonNotFound(person_id) from None

    def edited_people(self) -> list[Person]:
        return [p for p in self.persons.values() if p.edited]

    def may_join(self, face_id: str, person_id: str) -> bool:
        """Whether the rules allow this face into this person (ignoring similarity)."""
        if (face_id, person_id) in self.rejected:
            return False
        person = self.persons[person_id]
        photo = photo_of(face_id)
        return not any(photo_of(f) == photo and f != face_id for f in person.faces)

    def is_declined(self, person_id: str, other_id: str) -> bool:
        return frozenset((person_id, other_id)) in self.declined

    # Commands --------------------------------------------------------------------------------

    def record_clustering(
        self,
        *,
        algorithm: str,
        parameters: dict[str, Any],
        people: dict[str, list[str]],
        representatives: dict[str, str],
        attached: dict[str, list[str]],
        unassigned: list[str],
        timing_s: float,
        run_id: str | None = None,
    ) -> None:
        """Records a full run. Edited people keep every face; the new automatic people may
        not take any of their faces, nor break the per-photo and rejection rules."""
        for person_id, faces in attached.items():
            for face in faces:
                if not self.may_join(face, person_id):
                    raise PeopleRuleBroken(f"face {face} may not join person {person_id}")
        fixed = {f for p in self.edited_people() for f in p.faces} | {f for fs in attached.values() for f in fs}
        for person_id, faces in people.items():
            if person_id in self.persons and self.persons[person_id].edited:
                raise PeopleRuleBroken(f"a run may not rewrite edited person {person_id}")
            if fixed.intersection(faces):
                raise PeopleRuleBroken(f"person {person_id} takes faces of an edited person")
            if len({photo_of(f) for f in faces}) != len(faces):
                raise PeopleRuleBroken(f"person {person_id} has two faces of one photo")
            if any((f, person_id) in self.rejected for f in faces):
                raise PeopleRuleBroken(f"person {person_id} holds a face rejected from it")
        self.trigger_event(
            ClusteringCompleted,
            run_id=run_id or uuid4().hex,
            algorithm=algorithm,
            parameters=parameters,
            model=self.model,
            people={k: list(v) for k, v in people.items()},
            representatives=dict(representatives),
            attached={k: list(v) for k, v in attached.items() if v},
            unassigned=list(unassigned),
            timing_s=timing_s,
        )

    def attach(self, attached: dict[str, list[str]], unassigned: Iterable[str]) -> None:
        attached = {k: list(v) for k, v in attached.items() if v}
        unassigned = [f for f in unassigned if f not in self.seen]
        if not attached and not unassigned:
            return
        for person_id, faces in attached.items():
            if len({photo_of(f) for f in faces}) != len(faces):
                raise PeopleRuleBroken(f"two faces of one photo would join person {person_id}")
            for face in faces:
                if face in self.person_of or not self.may_join(face, person_id):
                    raise PeopleRuleBroken(f"face {face} may not join person {person_id}")
        self.trigger_event(FacesAttached, attached=attached, unassigned=unassigned)

    def name(self, person_id: str, name: str) -> None:
        name = name.strip()
        if not name:
            raise InvalidCorrection("a name may not be empty")
        person = self.person(person_id)
        if person.name != name or not person.edited:
            self.trigger_event(PersonNamed, person_id=person_id, name=name)

    def merge(self, person_id: str, merged_id: str) -> None:
        """`merged_id` joins `person_id` (which keeps its name, or takes the other's)."""
        if person_id == merged_id:
            raise InvalidCorrection("a person cannot be merged with itself")
        kept, merged = self.person(person_id), self.person(merged_id)
        shared = kept.photos & merged.photos
        if shared:
            raise SamePhotoConflict(f"both people appear in photo {sorted(shared)[0]}: move or reject one face first")
        if any((f, person_id) in self.rejected for f in merged.faces):
            raise InvalidCorrection(f"a face of {merged_id} was marked as not {person_id}")
        representative = kept.representative if len(kept.faces) >= len(merged.faces) else merged.representative
        self.trigger_event(
            PeopleMerged, person_id=person_id, merged_id=merged_id, name=kept.name or merged.name,
            representative=representative,
        )

    def decline(self, person_id: str, other_id: str) -> None:
        """"Not the same person" for a suggested pair."""
        if person_id == other_id:
            raise InvalidCorrection("a person is always the same as itself")
        self.person(person_id), self.person(other_id)
        if not self.is_declined(person_id, other_id):
            self.trigger_event(PeopleDeclared, person_id=person_id, other_id=other_id)

    def hide(self, person_id: str, hidden: bool = True) -> None:
        if self.person(person_id).hidden != hidden:
            self.trigger_event(PersonHidden, person_id=person_id, hidden=hidden)

    def choose_cover(self, person_id: str, face_id: str) -> None:
        person = self.person(person_id)
        if face_id not in person.faces:
            raise InvalidCorrection(f"face {face_id} is not one of this person's faces")
        if person.representative != face_id or not person.edited:
            self.trigger_event(CoverChosen, person_id=person_id, face_id=face_id)

    def review(self, accepted: dict[str, str], declined: dict[str, str]) -> None:
        """Accepts or declines candidate people for faces that belong to no one."""
        if set(accepted) & set(declined):
            raise InvalidCorrection("a face may not be both accepted and declined")
        joining: dict[str, set[str]] = {}
        for face_id, person_id in {**accepted, **declined}.items():
            self.person(person_id)
            if face_id in self.person_of:
                raise InvalidCorrection(f"face {face_id} already belongs to a person")
        for face_id, person_id in accepted.items():
            if (face_id, person_id) in self.rejected:
                raise InvalidCorrection(f"face {face_id} was marked as not this person")
            if not self.may_join(face_id, person_id) or photo_of(face_id) in joining.get(person_id, set()):
                raise SamePhotoConflict(f"person {person_id} already appears in photo {photo_of(face_id)}")
            joining.setdefault(person_id, set()).add(photo_of(face_id))
        if accepted or declined:
            self.trigger_event(FacesReviewed, accepted=dict(accepted), declined=dict(declined))

    def move(self, face_id: str, to_person: str | None) -> str:
        """Puts a face into `to_person` (a new person when None); returns the person's id."""
        created = to_person is None
        target = new_person_id() if to_person is None else to_person
        if not created:
            person = self.person(target)
            if face_id in person.faces:
                return target
            if not self.may_join(face_id, target):
                if (face_id, target) in self.rejected:
                    raise InvalidCorrection(f"face {face_id} was marked as not this person")
                raise SamePhotoConflict(f"person {target} already appears in photo {photo_of(face_id)}")
        source = self.person_of.get(face_id)
        self.trigger_event(
            FaceMoved, face_id=face_id, from_person=source,
            from_representative=self._representative_without(source, {face_id}), to_person=target, created=created,
        )
        return target

    def reject(self, face_id: str, person_id: str) -> None:
        person = self.person(person_id)
        if face_id not in person.faces:
            raise InvalidCorrection(f"face {face_id} is not in person {person_id}")
        self.trigger_event(
            FaceRejected, face_id=face_id, person_id=person_id,
            representative=self._representative_without(person_id, {face_id}),
        )

    def split(self, person_id: str, face_ids: list[str]) -> str:
        """Moves `face_ids` out of `person_id` into a new person; returns the new id."""
        person = self.person(person_id)
        moving = list(dict.fromkeys(face_ids))
        if not moving or any(f not in person.faces for f in moving):
            raise InvalidCorrection(f"split needs some, not all, of person {person_id}'s faces")
        if len(moving) == len(person.faces):
            raise InvalidCorrection("split needs some, not all, of the person's faces")
        new_id = new_person_id()
        new_rep = person.representative if person.representative in moving else moving[0]
        self.trigger_event(
            PersonSplit, person_id=person_id, new_person_id=new_id, face_ids=moving,
            representative=self._representative_without(person_id, set(moving)), new_representative=new_rep,
        )
        return new_id

    # State changes shared by the events' apply ----------------------------------------------

    def _representative_without(self, person_id: str | None, leaving: set[str]) -> str | None:
        if person_id is None:
            return None
        person = self.persons[person_id]
        if person.representative not in leaving:
            return person.representative
        rest = [f for f in person.faces if f not in leaving]
        return rest[0] if rest else None

    def _add(self, person: Person) -> None:
        self.persons[person.id] = person
        for face in person.faces:
            self.person_of[face] = person.id
        self.seen.update(person.faces)

    def _drop(self, person_id: str) -> None:
        person = self.persons.pop(person_id)
        for face in person.faces:
            if self.person_of.get(face) == person_id:
                del self.person_of[face]

    def _extend(self, person_id: str, faces: Iterable[str]) -> None:
        person = self.persons[person_id]
        for face in faces:
            person.faces.append(face)
            self.person_of[face] = person_id
            self.seen.add(face)

    def _take_out(self, face_id: str, representative: str | None) -> None:
        person_id = self.person_of.pop(face_id, None)
        if person_id is None:
            return
        person = self.persons[person_id]
        person.faces.remove(face_id)
        if not person.faces:
            del self.persons[person_id]
        elif representative is not None:
            person.representative = representative


class PersonNotFound(KeyError):
    def __init__(self, person_id: str) -> None:
        super().__init__(person_id)
        self.person_id = person_id

    def __str__(self) -> str:
        return f"no person {self.person_id}"


class InvalidCorrection(ValueError):
    """A correction that makes no sense (empty name, a face not in that person, ...)."""


class SamePhotoConflict(InvalidCorrection):
    """The correction would put two faces of one photo into one person."""


class PeopleRuleBroken(ValueError):
    """A clustering result that breaks a rule the aggregate guarantees (a bug, not user input)."""
