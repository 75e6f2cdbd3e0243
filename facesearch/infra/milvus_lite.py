"""Sharing the embedded profile's Milvus Lite file between processes.

Milvus Lite serves its file from inside the process that opened it (a gRPC server on a
loopback port) and keeps it locked, so a second process cannot open the same file. The
long-running process (`facesearch up`, `facesearch run ...`) therefore advertises its
server's address in `var_dir/milvus-lite.json`; the CLI (`search`, `cluster`, `people`,
`replay`, `status`) connects to that server while it runs, and opens the file itself when
nothing is running.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from facesearch.infra.milvus_server import answers

ADVERTISEMENT = "milvus-lite.json"


def advertise(var_dir: Path, database: str) -> str:
    """Serve `database` from this process (or reuse its server) and advertise the address."""
    from milvus_lite.server_manager import server_manager_instance

    uri = server_manager_instance.start_and_get_uri(database)
    if uri is None:
        raise RuntimeError(f"Milvus Lite could not serve {database}")
    path = Path(var_dir) / ADVERTISEMENT
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "uri": uri, "database": os.path.abspath(database)}))
    tmp.replace(path)
    return uri


def withdraw(var_dir: Path) -> None:
    """Remove this process's advertisement (another process's stays)."""
    path = Path(var_dir) / ADVERTISEMENT
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def running_server(var_dir: Path, database: str) -> str | None:
    """The address of another live process's server for `database`, if one is advertised."""
    try:
        entry = json.loads((Path(var_dir) / ADVERTISEMENT).read_text())
        pid, uri = int(entry["pid"]), str(entry["uri"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid == os.getpid() or entry.get("database") != os.path.abspath(database) or not _alive(pid):
        return None
    return uri if answers(uri) else None  # not answering: a stale file left by a killed process


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
