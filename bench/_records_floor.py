"""The floor of `bench/records.py`'s list benchmark: `GET /api/v1/records?limit=50` as a
minimal Starlette app over raw aiosqlite, with nothing but the query and the JSON.

It runs the two statements the real route runs (the owner's live records, newest
`occurred_at` first with `id` as the tie-break, one row more than the page to know whether a
next page exists; then those records' attachments) on the same database file, and answers
the same JSON shape. No authentication, no rate limit, no validation, no ORM, no pydantic:
the owner is fixed on the command line. Served by uvicorn with the settings of
`common.runner.run_service`, on a socket bound the same way.

`python -m bench._records_floor DATABASE OWNER_ID PORT`
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiosqlite
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from common.database.engine import SQLITE_PRAGMAS
from common.runner import bind_socket

POOL_SIZE = 1  # measured faster than 4 here: one aiosqlite thread, less GIL contention
LIST_SQL = (
    "SELECT id, kind, title, content, tags, occurred_at, created_at, updated_at, version, ai_opt_out,"
    " share_slug, ai_status, ai_title, ai_summary, ai_tags FROM records"
    " WHERE owner_id = ? AND is_deleted = 0 ORDER BY occurred_at DESC, id DESC LIMIT ?"
)
ATTACHMENTS_SQL = (
    "SELECT id, record_id, content_type, size, sha256, filename, has_thumbnail FROM attachments"
    " WHERE record_id IN ({marks}) ORDER BY id"
)


def _iso(stored: str) -> str:
    return stored.replace(" ", "T") + "Z"  # SQLite keeps UTC as "YYYY-MM-DD HH:MM:SS.ffffff"


def create_app(database: str, owner_id: str) -> Starlette:
    pool: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        connections = [await aiosqlite.connect(database) for _ in range(POOL_SIZE)]
        for connection in connections:
            for pragma in SQLITE_PRAGMAS:
                await connection.execute(pragma)
            pool.put_nowait(connection)
        yield
        for connection in connections:
            await connection.close()

    async def list_records(request: Request) -> JSONResponse:
        limit = int(request.query_params.get("limit", "50"))
        connection = await pool.get()
        try:
            rows = list(await connection.execute_fetchall(LIST_SQL, (owner_id, limit + 1)))
            page = rows[:limit]
            ids = [row[0] for row in page]
            marks = ",".join("?" * len(ids))
            found = await connection.execute_fetchall(ATTACHMENTS_SQL.format(marks=marks), ids) if ids else []
        finally:
            pool.put_nowait(connection)
        attachments: dict[str, list[dict[str, object]]] = {}
        for a_id, record_id, content_type, size, sha256, filename, has_thumbnail in found:
            url = f"/api/v1/attachments/{a_id}"
            attachments.setdefault(record_id, []).append(
                {
                    "id": a_id,
                    "content_type": content_type,
                    "size": size,
                    "sha256": sha256,
                    "filename": filename,
                    "url": url,
                    "thumbnail_url": f"{url}?thumb=1" if has_thumbnail else None,
                }
            )
        items = [
            {
                "id": r[0],
                "kind": r[1],
                "title": r[2],
                "content": r[3],
                "tags": json.loads(r[4]),
                "occurred_at": _iso(r[5]),
                "created_at": _iso(r[6]),
                "updated_at": _iso(r[7]),
                "version": r[8],
                "ai_opt_out": bool(r[9]),
                "shared": r[10] is not None,
                "attachments": attachments.get(r[0], []),
                "ai": {"status": r[11], "title": r[12], "summary": r[13], "tags": json.loads(r[14])},
            }
            for r in page
        ]
        next_cursor = None
        if len(rows) > limit:
            raw = json.dumps([_iso(page[-1][5]), page[-1][0]]).encode()
            next_cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return JSONResponse({"items": items, "next_cursor": next_cursor})

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    routes = [Route("/api/v1/records", list_records), Route("/health", health)]
    return Starlette(routes=routes, lifespan=lifespan)


def main(argv: list[str]) -> None:
    database, owner_id, port = argv
    sock = bind_socket("127.0.0.1", int(port))
    # The same settings as common.runner.run_service (uvloop and httptools when installed).
    config = uvicorn.Config(
        create_app(database, owner_id),
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1:])
