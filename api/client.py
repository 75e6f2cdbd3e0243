"""Serves the built Svelte client (frontend/dist) at the site root.

Files are served as built; any other path that is not the API gets index.html (the client
routes by hash, so this only matters for bookmarks). Without a build, the root explains
how to make one instead of answering 404.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from facesearch.settings import PROJECT_ROOT

DIST = PROJECT_ROOT / "frontend" / "dist"

NOT_BUILT = """<!doctype html><html lang="en"><meta charset="utf-8"><title>facesearch: client not built</title>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto">
<h1>The web client is not built</h1>
<p>The API is running (<a href="/health">/health</a>, <a href="/docs">/docs</a> after signing in).
To build the client once:</p>
<pre>cd frontend &amp;&amp; npm ci &amp;&amp; npm run build</pre>
<p>then reload this page.</p>
<h1 lang="ru">Веб-клиент не собран</h1>
<p lang="ru">Соберите его командой <code>cd frontend &amp;&amp; npm ci &amp;&amp; npm run build</code> и обновите страницу.</p>
</body></html>"""


def mount_client(app: FastAPI, dist: Path = DIST) -> None:
    index = dist / "index.html"
    if (dist / "assets").is_dir():
        # Hashed file names: safe to cache for good.
        app.mount("/assets", StaticFiles(directory=dist / "assets"), name="assets")

    @app.get("/", include_in_schema=False)
    async def client_root():
        if not index.exists():
            return HTMLResponse(NOT_BUILT, status_code=503)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    @app.get("/{path:path}", include_in_schema=False)
    async def client_file(path: str):
        if path.startswith(("api/", "graphql", "metrics")):
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        if not index.exists():
            return HTMLResponse(NOT_BUILT, status_code=503)
        candidate = (dist / path).resolve()
        if candidate.is_relative_to(dist.resolve()) and candidate.is_file():
            return FileResponse(candidate)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})
