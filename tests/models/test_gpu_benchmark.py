"""benchmarks.gpu in its dry mode (CPU provider, a handful of photos): the path a GPU run takes."""

from __future__ import annotations

import json

import pytest

from gpu_workers import runtime


def test_gpu_provider_preference():
    try:
        runtime.prefer_gpu_providers(["CUDAExecutionProvider"])
        assert runtime.available_providers(True)[-1] == "CPUExecutionProvider"
        assert "TensorrtExecutionProvider" not in runtime.available_providers(True)
        assert runtime.available_providers(False) == ["CPUExecutionProvider"]
        with pytest.raises(ValueError, match="ROCm"):
            runtime.prefer_gpu_providers(["ROCmExecutionProvider"])
    finally:
        runtime.prefer_gpu_providers(runtime.GPU_PROVIDERS)


# About 50 s here, 35 of them the ingest's System start (its broker consumers joining their groups).
@pytest.mark.timeout(90)
def test_dry_run_writes_all_figures(models_dir, tmp_path, capsys):
    from benchmarks import gpu

    out = tmp_path / "gpu.json"
    result = gpu.main(["--dry-run", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written == result
    assert written["provider"] == "cpu" and written["dry_run"] is True and written["skipped"] == []
    analyzer = written["analyzer"]
    assert analyzer["providers"] == {"detector": ["CPUExecutionProvider"], "embedder": ["CPUExecutionProvider"]}
    assert [r["batch"] for r in analyzer["runs"]] == [1, 2]
    for run in analyzer["runs"]:
        assert run["photos"] == 4 and run["faces"] > 4 and run["photos_per_s"] > 0
        assert run["stages_s"]["detect"] > 0 and run["stages_s"]["embed"] > 0
    assert analyzer["runs"][0]["faces"] == analyzer["runs"][1]["faces"]  # batching changes no result
    (ingest,) = written["ingest"]
    assert ingest["batch"] == 2 and ingest["photos"] == 4 and ingest["faces"] > 4 and ingest["vectors"] == ingest["faces"]
    assert written["setup_s"] >= 0 and written["analyzer_s"] > 0 and written["total_s"] >= written["seconds"]
    assert "| analyzer  | 1" in capsys.readouterr().out
