"""Clustering quality on LFW identities: every image of a `path,identity` CSV embedded once
(largest face, cached under var/bench), then clustered by each algorithm through the same
planning code a `facesearch cluster` run uses (quality rules, one face per photo, leftovers
joining their nearest person).

    python -m benchmarks.clustering --clusters ../shared/data/lfw/clusters.csv --root ../shared/data/lfw \
        [--distractors ../shared/data/wider/images]

`--distractors` adds every face found in another folder (crowds: many small, blurred or
turned faces of people who are nobody's), as a real album holds them.

Prints a Markdown table and, last, one JSON line: per algorithm pairwise and BCubed
precision/recall/F1 and NMI on the people's faces, clusters against identities, and seconds;
with distractors, the share of them that joined a card and the cards that are not one of the
people. Each face's quality flag comes from the detector, as in the product. Faces a run
leaves unassigned count as clusters of their own (as a user would see them: unsorted faces).
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from benchmarks._common import machine, print_json, print_table
from commands.clustering import ALGORITHMS, DEFAULT_ALGORITHM


def _pairs(counts: Counter) -> int:
    return sum(c * (c - 1) // 2 for c in counts.values())


def scores(predicted: list[str], truth: list[str]) -> dict[str, float]:
    """Pairwise and BCubed precision, recall and F1, and NMI, of `predicted` against `truth`."""
    n = len(truth)
    joint, by_pred, by_true = Counter(zip(predicted, truth)), Counter(predicted), Counter(truth)
    together = _pairs(joint)
    precision = together / _pairs(by_pred) if _pairs(by_pred) else 1.0
    recall = together / _pairs(by_true) if _pairs(by_true) else 1.0
    b_precision = sum(joint[(p, t)] / by_pred[p] for p, t in zip(predicted, truth)) / n
    b_recall = sum(joint[(p, t)] / by_true[t] for p, t in zip(predicted, truth)) / n

    def entropy(counts: Counter) -> float:
        return -sum(c / n * math.log(c / n) for c in counts.values())

    mutual = sum(c / n * math.log(c * n / (by_pred[p] * by_true[t])) for (p, t), c in joint.items())
    h_pred, h_true = entropy(by_pred), entropy(by_true)
    nmi = mutual / ((h_pred + h_true) / 2) if h_pred + h_true else 1.0

    def f1(p: float, r: float) -> float:
        return 2 * p * r / (p + r) if p + r else 0.0

    return {
        "pairwise_precision": precision, "pairwise_recall": recall, "pairwise_f1": f1(precision, recall),
        "bcubed_precision": b_precision, "bcubed_recall": b_recall, "bcubed_f1": f1(b_precision, b_recall),
        "nmi": nmi, "clusters": len(by_pred), "identities": len(by_true),
    }


def distractor_scores(predicted: list[str | None], truth: list[str], is_distractor: list[bool]) -> dict[str, Any]:
    """What distractors did to the cards: the share that joined one, how many strangers sit on
    the people's cards, and the cards that are not one of the people (their faces mostly
    distractors), with how many of those hold 3 or more faces of different people."""
    cards: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(predicted):
        if label is not None:
            cards[label].append(i)
    joined = sum(1 for i, label in enumerate(predicted) if label is not None and is_distractor[i])
    strangers_on_people, not_people, not_people_3 = 0, 0, 0
    for members in cards.values():
        majority, count = Counter(truth[i] for i in members).most_common(1)[0]
        if majority.startswith("stranger:"):
            not_people += 1
            if len({truth[i] for i in members}) >= 3:
                not_people_3 += 1
        else:
            strangers_on_people += sum(1 for i in members if is_distractor[i])
    distractors = sum(is_distractor)
    return {
        "distractor_faces": distractors, "distractors_joined": joined,
        "distractors_joined_share": joined / distractors if distractors else 0.0,
        "strangers_on_people_cards": strangers_on_people,
        "cards_not_a_person": not_people, "cards_not_a_person_3_people": not_people_3,
    }


def main() -> None:
    import numpy as np

    from benchmarks._faces import folder_faces, read_clusters
    from commands.people import CLUSTERING_ARCHIVE_FACES, FaceSet, cosine_threshold, join_threshold, plan_clustering
    from facesearch.settings import get_settings
    from gpu_workers.weights import calibration_path

    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clusters", type=Path, default=settings.data_dir / "lfw" / "clusters.csv")
    parser.add_argument("--root", type=Path, default=settings.data_dir / "lfw")
    parser.add_argument("--distractors", type=Path, help="A folder whose every face is a stranger (e.g. WIDER photos)")
    parser.add_argument("--model", default=settings.embedder)
    parser.add_argument("--algorithm", choices=sorted(ALGORITHMS), action="append",
                        help="Repeat to compare several (default: all, the default first)")
    parser.add_argument("--percent", type=float, default=settings.search_threshold_percent,
                        help="Calibrated similarity for 'same person' (default 85)")
    args = parser.parse_args()

    identity_of = dict(read_clusters(args.clusters))
    people = folder_faces(args.root, args.model, list(identity_of)).largest_per_image()
    ids, vectors, low = list(people.ids), [people.vectors], [people.low_quality]
    truth = [identity_of[face.rsplit(":", 1)[0]] for face in people.ids]
    if args.distractors:
        strangers = folder_faces(args.distractors, args.model)
        ids += [f"distractor/{face}" for face in strangers.ids]
        truth += [f"stranger:{face}" for face in strangers.ids]
        vectors.append(strangers.vectors)
        low.append(strangers.low_quality)
    is_distractor = [label.startswith("stranger:") for label in truth]
    threshold = cosine_threshold(calibration_path(settings.models_dir, args.model), args.percent)
    join = join_threshold(calibration_path(settings.models_dir, args.model), args.percent, len(ids))
    faces = FaceSet(ids, np.concatenate(vectors), np.concatenate(low))
    on_people = [i for i, d in enumerate(is_distractor) if not d]
    names = args.algorithm or [DEFAULT_ALGORITHM] + sorted(set(ALGORITHMS) - {DEFAULT_ALGORITHM})

    results, rows = {}, []
    for name in names:
        started = time.perf_counter()
        plan = plan_clustering(None, faces, threshold, name, join=join)
        seconds = time.perf_counter() - started
        predicted = plan.labels_for(faces.ids)
        labels = [predicted[i] or f"alone:{faces.ids[i]}" for i in on_people]
        result = {**scores(labels, [truth[i] for i in on_people]), "seconds": round(seconds, 3),
                  "parameters": plan.parameters, "unassigned": len(plan.unassigned)}
        if args.distractors:
            result |= distractor_scores(predicted, truth, is_distractor)
        results[name] = result
        rows.append([
            name, result["pairwise_precision"], result["pairwise_recall"], result["pairwise_f1"],
            result["bcubed_precision"], result["bcubed_recall"], result["bcubed_f1"], result["nmi"],
            f"{result['clusters']} / {result['identities']}", result["unassigned"],
            *([f"{result['distractors_joined_share']:.4f}", result["strangers_on_people_cards"],
               f"{result['cards_not_a_person']} ({result['cards_not_a_person_3_people']})"] if args.distractors else []),
            f"{seconds:.2f}",
        ])
    print(f"{len(on_people)} faces of {len(set(truth[i] for i in on_people))} identities"
          + (f" and {sum(is_distractor)} distractor faces from {args.distractors}" if args.distractors else "")
          + f", {int(faces.low_quality.sum())} of all flagged low quality, model {args.model}, "
          f"threshold cosine {threshold:.4f} ({args.percent:g} % among {CLUSTERING_ARCHIVE_FACES} faces), "
          f"joining afterwards {join:.4f} ({args.percent:g} % among {len(ids)}), {machine()}")
    print_table(
        ["algorithm", "pair P", "pair R", "pair F1", "BCubed P", "BCubed R", "BCubed F1", "NMI",
         "clusters / identities", "unassigned",
         *(["distractors joined", "strangers on people's cards", "cards not a person (≥ 3 people)"] if args.distractors else []),
         "seconds"],
        rows,
    )
    print_json({"benchmark": "clustering", "model": args.model, "faces": len(faces.ids), "threshold": threshold,
                "join_threshold": join,
                "machine": machine(), "default": DEFAULT_ALGORITHM, "algorithms": results})


if __name__ == "__main__":
    main()
