"""benchmarks.peers: this project's analyzer beside face_recognition (dlib, in a venv of its own)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import peers


def test_peer_answer_is_checked():
    answer = {"library": "face_recognition 1.3.0", "photo_seconds": 1.5, "boxes": [[[1, 2, 30, 40]], []],
              "lfw_seconds": 0.5, "lfw": {"a.jpg": [0.1] * 128, "b.jpg": None}}
    assert peers.parse_peer_answer(json.dumps(answer)) == answer
    with pytest.raises(peers.PeerUnavailable, match="photo_seconds"):
        peers.parse_peer_answer(json.dumps({k: v for k, v in answer.items() if k != "photo_seconds"}))
    with pytest.raises(peers.PeerUnavailable, match="box"):
        peers.parse_peer_answer(json.dumps(answer | {"boxes": [[[1, 2, 3]]]}))


def test_a_peer_venv_that_cannot_be_built_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(peers.sys, "executable", "/bin/false")  # `python -m venv` fails at once
    with pytest.raises(peers.PeerUnavailable, match="venv failed at `/bin/false -m venv"):
        peers.peer_python(tmp_path / "venv")


def test_pairs_are_balanced_and_spread(data_dir):
    pairs = peers.pick_pairs(data_dir / "lfw" / "pairs_dev_train.csv", 20)
    assert sum(p.same for p in pairs) == 10 and len(pairs) == 20
    # Spread over the file (ordered by name), not the first ten names.
    assert len({p.path_a.split("/")[1][0] for p in pairs if p.same}) >= 5


def test_lfw_figures_threshold_from_train_accuracy_on_test():
    v = {name: np.array(vec, dtype=float) for name, vec in {"a": [1, 0], "a2": [0.9, 0.1], "b": [0, 1], "b2": [0.1, 0.9]}.items()}
    vectors = {k: x / np.linalg.norm(x) for k, x in v.items()} | {"none": None}
    P = peers_pair
    train = [P("a", "a2", True), P("b", "b2", True), P("a", "b", False), P("a2", "b2", False)]
    test = [P("a", "a2", True), P("a", "b2", False), P("a", "none", True), P("b", "none", False)]
    accuracy, threshold, no_face = peers.lfw_figures(vectors, train, test, "cosine")
    assert accuracy == 0.5  # the pairs with the face-less image are errors, never skipped
    assert 0.2 < threshold < 0.99 and no_face == 1
    accuracy_l2, threshold_l2, _ = peers.lfw_figures(vectors, train, test, "l2")
    assert accuracy_l2 == 0.5 and 0.1 < threshold_l2 < 1.3


def peers_pair(a: str, b: str, same: bool):
    from gpu_workers.evaluation import Pair

    return Pair(a, b, same)


@pytest.mark.timeout(120)
def test_our_half_finds_the_wider_faces(data_dir, models_dir):
    # Two photos with a face of 40 px or more (the second of the file has only faces of 15 px or less).
    wider = [e for e in json.loads((data_dir / "wider" / "boxes.json").read_text())
             if max(min(f["w"], f["h"]) for f in e["faces"]) >= 40][:2]
    photos = [data_dir / "wider" / e["path"] for e in wider]
    lfw = ["images/Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "images/Aaron_Peirsol/Aaron_Peirsol_0002.jpg"]
    name, seconds, boxes, vectors, lfw_seconds = peers.run_ours(photos, data_dir / "lfw", lfw)
    assert "retinaface + facenet512" in name and seconds > 0 and lfw_seconds > 0
    assert len(boxes) == 2 and all(len(b) >= 1 for b in boxes)
    hits = peers.wider_hits(boxes, [e["faces"] for e in wider])
    assert hits >= 0.8 * sum(len(b) for b in boxes)  # what it finds is mostly on labelled faces
    a, b = (vectors[p] for p in lfw)
    assert a is not None and b is not None and a.shape == (512,) and float(a @ b) > 0.5  # one person


@pytest.mark.timeout(900)
def test_quick_mode_both_sides(capsys):
    """Builds the face_recognition venv on first use (PyPI); a venv that cannot be built fails here with pip's words."""
    out = peers.main(["--quick"])
    assert out["photos"] == 3 and out["lfw_test_pairs"] == 20 and out["lfw_train_pairs"] == 20
    for key in ("ours", "face_recognition"):
        side = out["sides"][key]
        assert side["faces"] > 0 and side["on_wider_boxes"] > 0
        assert side["ms_per_photo"] > 0 and 0.5 <= side["lfw_accuracy"] <= 1.0
    assert "face_recognition 1.3.0" in out["sides"]["face_recognition"]["name"]
    assert out["speedup"] == pytest.approx(out["sides"]["face_recognition"]["ms_per_photo"] / out["sides"]["ours"]["ms_per_photo"], rel=0.01)
    printed = capsys.readouterr().out
    assert any(line.startswith("| ratio (face_recognition / this project) ") for line in printed.splitlines())
    assert json.loads(printed.strip().splitlines()[-1])["benchmark"] == "peers"
