"""Importer throughput: photos per second discovered and fetched from the fake VK and
Yandex.Disk servers (real HTTP on 127.0.0.1) and from a local folder, with 1 and 8
concurrent fetches. Prints a table, then one JSON line with every row.

    .venv/bin/python -m benchmarks.importers [--vk-photos 2500] [--yadisk-photos 600]

"polite" rows use the sources' default request rates (VK 3 API calls/s, Yandex.Disk
20/s, each Yandex fetch costs one API call); "unthrottled" rows lift the rate limit to
show what the code path itself costs on this machine. The fakes run in this process
(one GIL for client and server), so on few cores concurrency adds little here; against
real services, where latency dominates, it does.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from commands.importers import parse_link
from commands.importers.base import PhotoSource, RemotePhoto
from commands.importers.local import LocalFolderSource
from commands.importers.vk import VkSource
from commands.importers.yadisk import YandexDiskSource
from tests.fakes import vk_server, yadisk_server
from tests.fakes.images import make_image


def measure(name: str, mode: str, concurrency: int, open_source: Callable[[], PhotoSource]) -> dict:
    with open_source() as source:
        started = time.perf_counter()
        photos = [p for p in source.discover() if isinstance(p, RemotePhoto)]
        discovered = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            total_bytes = sum(len(b) for b in pool.map(source.fetch, photos))
        finished = time.perf_counter()
    return {
        "source": name, "mode": mode, "concurrency": concurrency, "photos": len(photos),
        "discover_s": round(discovered - started, 3), "fetch_s": round(finished - discovered, 3),
        "photos_per_s": round(len(photos) / (finished - started), 1),
        "fetch_photos_per_s": round(len(photos) / (finished - discovered), 1),
        "mb": round(total_bytes / 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vk-photos", type=int, default=2500)
    parser.add_argument("--yadisk-photos", type=int, default=600)
    parser.add_argument("--local-photos", type=int, default=600)
    args = parser.parse_args()
    rows: list[dict] = []

    vk = vk_server.FakeVk()
    third = args.vk_photos // 3
    vk.add_community(123, "club_photos", [args.vk_photos - 2 * third, third, third])
    with vk_server.running(vk) as (_, base):
        # An untimed pass first, so the fake's Pillow encoding (cached) is not measured.
        measure("vk", "warm-up", 8, lambda: VkSource(parse_link("https://vk.com/club_photos"), vk_server.GOOD_TOKEN,
                                                     api_base=base, require_https=False, requests_per_second=1000.0))
        for mode, rate in (("polite", 3.0), ("unthrottled", 1000.0)):
            for concurrency in (1, 8):
                rows.append(measure("vk", mode, concurrency, lambda: VkSource(
                    parse_link("https://vk.com/club_photos"), vk_server.GOOD_TOKEN, api_base=base,
                    require_https=False, requests_per_second=rate)))

    disk = yadisk_server.FakeYandexDisk()
    per_folder = args.yadisk_photos // 6
    disk.public["BenchKey1"] = disk.photo_tree(folders=6, per_folder=per_folder)
    with yadisk_server.running(disk) as (_, base):
        for mode, rate in (("polite", 20.0), ("unthrottled", 10_000.0)):
            for concurrency in (1, 8):
                rows.append(measure("yadisk", mode, concurrency, lambda: YandexDiskSource(
                    parse_link("https://disk.yandex.ru/d/BenchKey1"), api_base=base, require_https=False,
                    requests_per_second=rate)))

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(args.local_photos):
            folder = root / f"{i // 100:02d}"
            folder.mkdir(exist_ok=True)
            (folder / f"IMG_{i:05d}.jpg").write_bytes(make_image(i))
        for concurrency in (1, 8):
            rows.append(measure("local", "-", concurrency, lambda: LocalFolderSource(root, [root])))

    header = ("source", "mode", "concurrency", "photos", "discover_s", "fetch_s", "photos_per_s", "fetch_photos_per_s")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(row[h]) for h in header) + " |")
    print(json.dumps({"benchmark": "importers", "rows": rows}))


if __name__ == "__main__":
    main()
