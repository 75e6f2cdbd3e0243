"""The worker applies the same header check as every other entry before it decodes, and holds
no more decoded pixels at once than its budget."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
import weakref
from types import SimpleNamespace

import numpy as np

import gpu_workers.worker as worker_module
from commands.blobs import content_hash
from commands.policies import AnalysePhoto, EmbedPhoto
from gpu_workers.worker import FaceWorker
from tests.reliability.hostile import flat_pngs, forged_jpeg


def test_a_forged_stored_image_fails_its_photo_without_being_decoded(tmp_path, monkeypatch):
    data = forged_jpeg()
    app = SimpleNamespace(max_image_pixels=60_000_000, blobs=SimpleNamespace(get=lambda digest: data),
                          get_photo=lambda photo_id: SimpleNamespace(needs_analysis=True))
    analyzer = SimpleNamespace(models_dir=tmp_path, detector_name="retinaface", embedder_name="facenet512",
                               model_name="facenet512")
    decoded = []
    monkeypatch.setattr(worker_module, "decode_rgb", lambda raw, max_pixels: decoded.append(raw))
    worker = FaceWorker(app, analyzer)
    try:
        result = worker._decode(AnalysePhoto("00000000-0000-0000-0000-000000000001", "ab" * 32, "ann"))
    finally:
        worker.close()
    assert result.image is None and "ImageRejected" in result.error and "7500 × 7900" in result.error
    assert decoded == []


class Bombs:
    """Flat PNGs of 4 M pixels (a few KB each) as stored blobs, and a decoder that counts
    the decoded images alive at once."""

    def __init__(self, count: int, monkeypatch) -> None:
        self.by_hash = {content_hash(data): data for data in flat_pngs(2000, 2000, count, salt="worker")}
        self.live = self.most = 0
        self._lock = threading.Lock()
        real_decode = worker_module.decode_rgb

        def decode_counted(data: bytes, max_pixels: int):
            image = real_decode(data, max_pixels)
            with self._lock:
                self.live += 1
                self.most = max(self.most, self.live)
            weakref.finalize(image, self._freed)
            return image

        monkeypatch.setattr(worker_module, "decode_rgb", decode_counted)

    def _freed(self) -> None:
        with self._lock:
            self.live -= 1


def slow_analyzer(tmp_path, **more):
    """An analyzer slower than decoding (decodes would pile up), finding no face."""
    def analyze(images):
        time.sleep(0.05)
        return [[] for _ in images]

    def embed_faces(images, faces):
        time.sleep(0.05)
        return [[np.ones(512, np.float32) for _ in f] for f in faces]

    return SimpleNamespace(models_dir=tmp_path, detector_name="retinaface", embedder_name="facenet512",
                           model_name="facenet512", analyze=analyze, embed_faces=embed_faces,
                           timings=SimpleNamespace(align=0.0, embed=0.0, detect=0.0, faces=1), **more)


def test_a_batch_of_content_bombs_holds_at_most_the_pixel_budget_decoded(tmp_path, monkeypatch):
    """Small files of huge flat pixels: decoding a whole batch before the model frees any would
    hold batch size × the pixel limit (8 × 180 MB at the defaults)."""
    bombs = Bombs(8, monkeypatch)
    recorded = []
    app = SimpleNamespace(max_image_pixels=4_000_000, blobs=SimpleNamespace(get=bombs.by_hash.__getitem__),
                          get_photo=lambda photo_id: SimpleNamespace(needs_analysis=True),
                          record_faces=lambda photo_id, *args: recorded.append(photo_id) or True)
    worker = FaceWorker(app, slow_analyzer(tmp_path), decode_threads=4)
    try:
        commands = [AnalysePhoto(str(uuid.uuid4()), digest, "ann").to_dict() for digest in bombs.by_hash]
        asyncio.run(asyncio.wait_for(worker.handle_batch(commands), 60))
    finally:
        worker.close()
    assert len(recorded) == 8
    # The budget is two images at the pixel limit: one analysed while the next decodes.
    assert bombs.most <= 2, f"{bombs.most} decoded images held at once"


def test_re_embedding_bombs_waits_for_the_budget_without_deadlock(tmp_path, monkeypatch):
    bombs = Bombs(5, monkeypatch)
    monkeypatch.setattr(worker_module, "DetectedFace", SimpleNamespace(from_dict=lambda data: data))
    recorded = []
    photo = SimpleNamespace(faces=[{"face": 0}], faces_missing=lambda model: [0])
    app = SimpleNamespace(max_image_pixels=4_000_000, blobs=SimpleNamespace(get=bombs.by_hash.__getitem__),
                          get_photo=lambda photo_id: photo,
                          record_embeddings=lambda photo_id, embeddings: recorded.append(photo_id) or len(embeddings))
    worker = FaceWorker(app, slow_analyzer(tmp_path), decode_threads=4)
    try:
        commands = [EmbedPhoto(str(uuid.uuid4()), digest, "ann", "facenet512").to_dict() for digest in bombs.by_hash]
        asyncio.run(asyncio.wait_for(worker.handle_embed_batch(commands), 60))
    finally:
        worker.close()
    assert len(recorded) == 5 and bombs.most <= 2, (len(recorded), bombs.most)


def test_concurrent_imports_and_uploads_decode_within_one_budget(tmp_path, monkeypatch):
    """Each import job checks its photos in a thread of its own: without a shared budget, jobs
    carrying bombs by content would decode one 180 MB image each, all at once."""
    from PIL import ImageFile

    from commands.app import FaceSearchApp
    from commands.blobs import DirectoryBlobStore

    app = FaceSearchApp(f"sqlite:///{tmp_path / 'events.sqlite'}", DirectoryBlobStore(tmp_path / "blobs"), 4_000_000)
    pngs = flat_pngs(2000, 2000, 6, salt="stores")  # 4 M pixels each: two fit the budget
    loading = [0, 0]
    lock = threading.Lock()
    real_load = ImageFile.ImageFile.load

    def slow_load(image):
        with lock:
            loading[0] += 1
            loading[1] = max(loading[1], loading[0])
        try:
            time.sleep(0.1)  # long enough for every thread to be decoding if nothing stops it
            return real_load(image)
        finally:
            with lock:
                loading[0] -= 1

    monkeypatch.setattr(ImageFile.ImageFile, "load", slow_load)
    try:
        threads = [threading.Thread(target=app.store_photo, args=(data,),
                                    kwargs=dict(owner="ann", source="upload", source_ref=f"upload:{i}.png"))
                   for i, data in enumerate(pngs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert loading[1] <= 2, f"{loading[1]} images decoded at once"
        assert app.decoding.held == 0
    finally:
        app.close()
