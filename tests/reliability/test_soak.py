"""The soak benchmark, tiny: `facesearch up` as a user starts it, photos fed by upload and by
a folder import, two clients searching meanwhile, and the exactly-once audit at the end.

Would fail if the benchmark lost count of what it fed, if a corrupt upload were counted as
an error of the system (it is a rejected file), if the system lost or repeated a photo, a
face or a vector, or if the audit could not see a lost or an extra face.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from milvus_lite.server_manager import server_manager_instance

from benchmarks import soak
from facesearch.settings import Settings
from facesearch.system import make_vector_index
from projections.tables import faces


@pytest.mark.timeout(240)
def test_soak_tiny(tmp_path, data_dir, models_dir):
    out = tmp_path / "soak.json"
    result = soak.main([
        "--photos", "20", "--clients", "2", "--folder-share", "0.25", "--bad-uploads", "1",
        "--search-pause", "0.5", "--minutes-limit", "3", "--data", str(data_dir), "--out", str(out),
        "--setting", "worker_use_gpu=false", "--keep",
    ])
    work = Path(result["work_dir"])
    try:
        assert out.is_file()
        assert result["outcome"] == "complete", result
        assert result["errors"] == {}, result["errors"]
        assert result["upload_files"] == {"new": 15, "rejected": 1}  # the bad upload: rejected, not an error
        exact = result["exactly_once"]
        assert exact["photos_imported"] == 20 and exact["photos_rejected"] == 1, exact
        assert exact["faces"] >= 20 and exact["milvus"]["facenet512"] == {"missing": 0, "extra": 0, "repeated": 0}, exact
        assert result["lost"] == 0 and result["duplicated"] == 0, exact
        assert result["search"]["count"] > 0 and result["health"]["count"] > 0
        assert result["health_per_minute"] and result["rss_series"]
        assert result["rss_mb"]["peak"] >= result["rss_mb"]["start"] > 100

        # The audit sees damage: a vector and a face row gone, a face row that should not exist.
        settings = Settings(var_dir=work / "var", models_dir=models_dir)
        engine = sa.create_engine(settings.resolved_read_model_url())
        with engine.begin() as conn:
            row = dict(conn.execute(sa.select(faces).limit(1)).mappings().one())
            conn.execute(faces.delete().where(faces.c.id == row["id"]))
            conn.execute(faces.insert().values({**row, "id": row["photo_id"] + ":99"}))
        engine.dispose()
        index = make_vector_index(settings)
        try:
            name = index.ensure_collection("facenet512", 512)  # loaded: a Milvus Lite file opened anew is released
            index.client.delete(name, ids=[row["id"]])
        finally:
            index.close()
            # This process served the file (no `facesearch up` left): stop that server before the folder goes.
            server_manager_instance.release_server(settings.resolved_milvus_uri())
        damaged = soak.audit(settings)
        assert damaged["read_model_faces_missing"] == 1 and damaged["read_model_faces_extra"] == 1, damaged
        assert damaged["milvus"]["facenet512"]["missing"] == 1, damaged
        assert damaged["lost"] == 2 and damaged["duplicated"] == 1, damaged
    finally:
        shutil.rmtree(work, ignore_errors=True)
