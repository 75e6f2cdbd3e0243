"""The GPU run, prepared: the analyzer and ingest benchmarks on ONNX Runtime's CUDA provider at
several batch sizes, all figures in one JSON file.

    python -m benchmarks.gpu [--out var/bench/gpu.json] [--batches 1,8,32,64] [--dry-run]

On a machine with an NVIDIA GPU (`nvidia-smi` lists one) it builds a throwaway venv, installs
`onnxruntime-gpu[cuda,cudnn]` from PyPI into it (the same version as the project's onnxruntime;
the CUDA and cuDNN libraries come as pip packages) and links the project's venv behind it, so
the GPU build shadows the CPU one for this run only; then, in that venv, it measures

- the analyzer (the workers' detector + embedder, photos already decoded) on --photos WIDER FACE
  photos at each batch size (photos per `analyze` call): photos/s, faces, stage seconds;
- `benchmarks.ingest` (import -> event store -> broker -> worker -> projections) on
  --ingest-photos photos at each batch size, the worker on the GPU.

It stops starting new measurements once --budget-s is spent (default 270 s: the whole run
within 5 minutes), and says which it skipped. Without a GPU (or with --dry-run) it runs the
same code path, in a throwaway venv without the install, on the CPU provider with a handful of
photos: that is what the tests run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from benchmarks._common import machine, print_table
from facesearch.settings import get_settings

REPO_ROOT = Path(__file__).resolve().parent.parent


def has_nvidia_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listed.returncode == 0 and "GPU" in listed.stdout


def build_venv(venv: Path, install_gpu_runtime: bool) -> Path:
    """A venv whose own site-packages come first (onnxruntime-gpu, when installed) and the
    project's venv after them (a .pth that adds it as a site dir, editable installs included)."""
    subprocess.run([sys.executable, "-m", "venv", *([] if install_gpu_runtime else ["--without-pip"]), str(venv)],
                   check=True, timeout=300)
    python = venv / "bin" / "python"
    if install_gpu_runtime:
        constraints = venv / "constraints.txt"
        # The project's compiled packages (cv2, ...) were built against its numpy: keep that one.
        constraints.write_text(f"numpy=={version('numpy')}\n")
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-c", str(constraints),
                        f"onnxruntime-gpu[cuda,cudnn]=={version('onnxruntime')}"], check=True, timeout=600)
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    (Path(own) / "facesearch-project.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n"
    )
    return python


def _providers_of(analyzer) -> dict[str, list[str]]:
    """The providers each session really got (ONNX Runtime falls back to the CPU silently)."""
    detector = analyzer.detector
    session = getattr(detector, "session", None) or detector.pnet  # MTCNN has three, made alike
    return {"detector": list(session.get_providers()), "embedder": list(analyzer.embedder.session.get_providers())}


def measure_analyzer(provider: str, batches: list[int], photos: int, embed_batch: int) -> dict:
    """Photos/s of the workers' analyzer at each batch size, on decoded WIDER photos."""
    from gpu_workers.analyzer import FaceAnalyzer
    from gpu_workers.evaluation import read_rgb

    settings = get_settings()
    paths = [settings.data_dir / "wider" / e["path"] for e in json.loads((settings.data_dir / "wider" / "boxes.json").read_text())]
    images = [read_rgb(paths[i % len(paths)]) for i in range(photos)]  # cycled: there are 100
    analyzer = FaceAnalyzer(
        settings.detector, settings.embedder, settings.models_dir, threads=settings.worker_threads,
        use_gpu=provider != "cpu", try_rotations=settings.detect_rotated_photos,
        embedder_options={"batch_size": embed_batch, "allow_noncommercial": settings.allow_noncommercial_weights},
    )
    providers = _providers_of(analyzer)
    if provider == "cuda" and any(p[0] != "CUDAExecutionProvider" for p in providers.values()):
        raise RuntimeError(f"the CUDA provider did not load (sessions run on {providers}); see ONNX Runtime's log above")
    runs = []
    for batch in batches:
        analyzer.analyze(images[:batch])  # warm-up: the first call at a shape sets up the kernels
        stages = {"detect": 0.0, "align": 0.0, "embed": 0.0}
        faces = 0
        started = time.perf_counter()
        for i in range(0, len(images), batch):
            found = analyzer.analyze(images[i : i + batch])
            faces += sum(len(f) for f in found)
            timings = analyzer.timings
            stages["detect"] += timings.detect
            stages["align"] += timings.align
            stages["embed"] += timings.embed
        seconds = time.perf_counter() - started
        runs.append({"batch": batch, "photos": len(images), "faces": faces, "seconds": round(seconds, 3),
                     "photos_per_s": round(len(images) / seconds, 2), "ms_per_photo": round(1000 * seconds / len(images), 2),
                     "stages_s": {k: round(v, 3) for k, v in stages.items()}})
    return {"providers": providers, "embed_batch": embed_batch, "flip": analyzer.embedder.flip,
            "detector": settings.detector, "embedder": settings.embedder, "runs": runs}


def measure(args: argparse.Namespace) -> dict:
    """Everything the run reports (the child's work, in the venv that has the runtime to test)."""
    import onnxruntime as ort

    from gpu_workers.runtime import prefer_gpu_providers

    started = time.monotonic()
    if args.provider == "cuda":
        if hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # the CUDA/cuDNN libraries of the nvidia-* pip packages
        prefer_gpu_providers(["CUDAExecutionProvider"])
    result: dict = {
        "benchmark": "gpu", "provider": args.provider, "dry_run": args.provider == "cpu",
        "onnxruntime": f"{ort.__version__} ({ort.get_device()})", "available_providers": ort.get_available_providers(),
        "machine": machine(), "gpu": _gpu_name(), "batches": args.batches, "skipped": [],
    }
    result["analyzer"] = measure_analyzer(args.provider, args.batches, args.photos, args.embed_batch)
    result["analyzer_s"] = round(time.monotonic() - started, 1)  # model loading and warm-ups included
    from benchmarks import ingest

    result["ingest"] = []
    for batch in args.ingest_batches:
        if time.monotonic() - started > args.budget_s:
            result["skipped"].append(f"ingest at batch {batch}: the {args.budget_s:.0f} s budget was spent")
            continue
        argv = ["--photos", str(args.ingest_photos), "--batch", str(batch), "--timeout", str(args.budget_s)]
        run_started = time.monotonic()
        figures = ingest.main(argv + (["--gpu"] if args.provider == "cuda" else []))
        result["ingest"].append(figures | {"run_s": round(time.monotonic() - run_started, 1)})  # start and stop included
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def _gpu_name() -> str:
    if shutil.which("nvidia-smi") is None:
        return ""
    done = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                          capture_output=True, text=True, timeout=30)
    return done.stdout.strip()


def summary(result: dict) -> None:
    analyzer = result["analyzer"]
    print(f"GPU run: provider {result['provider']}, onnxruntime {result['onnxruntime']}, {result['gpu'] or result['machine']}; "
          f"{analyzer['detector']} + {analyzer['embedder']} (flip {analyzer['flip']}, embedder batch {analyzer['embed_batch']})")
    print_table(["benchmark", "batch", "photos", "faces", "photos/s", "seconds"],
                [["analyzer", r["batch"], r["photos"], r["faces"], r["photos_per_s"], r["seconds"]] for r in analyzer["runs"]]
                + [["ingest", r["batch"], r["photos"], r["faces"], r["photos_per_s"], r["total_s"]] for r in result["ingest"]])
    for line in result["skipped"]:
        print(f"skipped: {line}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="the JSON file (default var_dir/bench/gpu.json)")
    parser.add_argument("--dry-run", action="store_true", help="CPU provider, a handful of photos (automatic without nvidia-smi)")
    parser.add_argument("--batches", default=None, help="photos per analyzer call (default 1,8,32,64; dry 1,2)")
    parser.add_argument("--ingest-batches", default=None, help="worker batch sizes for the ingest (default as --batches; dry 2)")
    parser.add_argument("--photos", type=int, default=None, help="analyzer photos per batch size (default 512; dry 4)")
    parser.add_argument("--ingest-photos", type=int, default=None, help="photos per ingest run (default 300; dry 4)")
    parser.add_argument("--embed-batch", type=int, default=None, help="faces per embedder call (default 256; dry 16)")
    parser.add_argument("--budget-s", type=float, default=270.0, help="start no measurement after this many seconds")
    parser.add_argument("--venv", type=Path, default=None, help="keep the venv here (default: a temporary one)")
    parser.add_argument("--child", choices=["cuda", "cpu"], default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    dry = args.child == "cpu" if args.child else (args.dry_run or not has_nvidia_gpu())
    defaults = {"batches": "1,2", "ingest_batches": "2", "photos": 4, "ingest_photos": 4, "embed_batch": 16} if dry else \
        {"batches": "1,8,32,64", "ingest_batches": None, "photos": 512, "ingest_photos": 300, "embed_batch": 256}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.ingest_batches = args.ingest_batches or args.batches
    args.batches = [int(b) for b in str(args.batches).split(",")]
    args.ingest_batches = [int(b) for b in str(args.ingest_batches).split(",")]
    args.out = args.out or get_settings().var_dir / "bench" / "gpu.json"

    if args.child:  # in the throwaway venv
        args.provider = args.child
        result = measure(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, sort_keys=True))
        return result

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="fs-gpu-"))
    try:
        venv = args.venv or work / "venv"
        python = venv / "bin" / "python" if (venv / "bin" / "python").is_file() else build_venv(venv, install_gpu_runtime=not dry)
        setup_s = time.monotonic() - started
        child = [str(python), "-m", "benchmarks.gpu", "--child", "cpu" if dry else "cuda", "--out", str(args.out),
                 "--batches", ",".join(map(str, args.batches)), "--ingest-batches", ",".join(map(str, args.ingest_batches)),
                 "--photos", str(args.photos), "--ingest-photos", str(args.ingest_photos),
                 "--embed-batch", str(args.embed_batch), "--budget-s", str(max(30.0, args.budget_s - setup_s))]
        subprocess.run(child, cwd=REPO_ROOT, check=True, timeout=args.budget_s + 600)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = json.loads(args.out.read_text())
    result["setup_s"] = round(setup_s, 1)
    result["total_s"] = round(time.monotonic() - started, 1)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True))
    summary(result)
    print(f"figures written to {args.out}")
    return result


if __name__ == "__main__":
    main()
