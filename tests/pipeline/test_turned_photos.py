"""An upside-down group photo through the whole pipeline (import, workers with the real
models, read models): filed with its faces, not under "No faces", each box on a face of the
photo as it is stored and shown; a photo without faces stays under "No faces"."""

from __future__ import annotations

import asyncio
import shutil

import numpy as np
import sqlalchemy as sa
from PIL import Image

from domain.faces import Box
from facesearch.services.imports import import_local
from facesearch.system import System
from projections.faces import photos_without_faces
from projections.tables import faces, photos
from tests.pipeline.conftest import wait_until_analysed


def turned_box(box: Box, turns: int, shape: tuple[int, int]) -> Box:
    """`box` of an upright image, in np.rot90(image, turns), by turning a mask."""
    mask = np.zeros(shape, dtype=bool)
    mask[int(round(box.y1)):int(round(box.y2)), int(round(box.x1)):int(round(box.x2))] = True
    ys, xs = np.nonzero(np.rot90(mask, turns))
    return Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


async def test_upside_down_group_photo_is_filed_with_its_faces(pipeline_settings, data_dir, tmp_path):
    album = tmp_path / "album"
    album.mkdir()
    t1 = data_dir / "photos" / "insightface" / "t1.jpg"
    shutil.copy(t1, album / "t1.jpg")
    upright = np.asarray(Image.open(t1).convert("RGB"))
    Image.fromarray(np.rot90(upright, 2)).save(album / "t1_upside_down.png")  # PNG: the same pixels, turned
    clean = sorted((data_dir / "no_faces" / "clean").iterdir())[0]
    shutil.copy(clean, album / f"noface_{clean.name}")

    system = System(pipeline_settings)
    await system.start(workers=True)
    try:
        result = await asyncio.to_thread(import_local, system.app, pipeline_settings, str(album), owner="ann", operator=True)
        assert result.counts["stored"] == 3
        await wait_until_analysed(system, 3)
        async with system.engine.connect() as conn:
            by_ref = {r.source_ref.rsplit("/", 1)[-1]: r for r in await conn.execute(sa.select(photos))}
            face_rows = {ref: (await conn.execute(sa.select(faces).where(faces.c.photo_id == row.id))).all()
                         for ref, row in by_ref.items()}
        turned = by_ref["t1_upside_down.png"]
        assert turned.status == "analysed" and turned.face_count == 6, (turned.status, turned.face_count)
        upright_boxes = [Box(f.x1, f.y1, f.x2, f.y2) for f in face_rows["t1.jpg"]]
        assert len(upright_boxes) == 6
        expected = [turned_box(b, 2, upright.shape[:2]) for b in upright_boxes]
        for f in face_rows["t1_upside_down.png"]:
            best = max(Box(f.x1, f.y1, f.x2, f.y2).iou(e) for e in expected)
            assert best > 0.7, best

        no_faces = await photos_without_faces(system.engine, owner="ann")
        assert [r["source_ref"].rsplit("/", 1)[-1] for r in no_faces] == [f"noface_{clean.name}"]
    finally:
        await system.stop()
