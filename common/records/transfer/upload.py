"""One file from a multipart body, with its size cap enforced while the body arrives.

FastAPI's `UploadFile` parameters read the whole body before the route runs; an archive of
any size would be spooled to disk first. Here the body is counted as it streams in and the
request is refused (413) as soon as it passes the cap, and the parser's temp files go with it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from common.bodies import media_type
from common.errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedMediaType

# Room for the multipart boundaries and part headers around the file itself.
MULTIPART_OVERHEAD = 64 * 1024


def multipart_body(field: str, description: str) -> dict[str, Any]:
    """`openapi_extra` documenting a body of one file field (the route reads it itself)."""
    schema = {
        "type": "object",
        "properties": {field: {"type": "string", "format": "binary", "description": description}},
        "required": [field],
    }
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


async def _capped(stream: AsyncIterator[bytes], limit: int) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"the upload is larger than {limit // (1024 * 1024)} MB")
        yield chunk


async def read_file_field(request: Request, field: str, limit: int) -> UploadFile:
    """The file sent as multipart field `field`, at most `limit` bytes; the caller closes it."""
    if media_type(request.headers.get("content-type")) != "multipart/form-data":
        raise UnsupportedMediaType(f"send the file as the multipart/form-data field `{field}`")
    too_large = PayloadTooLarge(f"the upload is larger than {limit // (1024 * 1024)} MB")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise too_large
    parser = MultiPartParser(
        request.headers, _capped(request.stream(), limit + MULTIPART_OVERHEAD), max_files=1, max_fields=16
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadRequest(f"malformed multipart body: {exc.message}") from exc
    upload = form.get(field)
    if not isinstance(upload, UploadFile):
        await form.close()
        raise Unprocessable(field, f"a file is required in the multipart field `{field}`")
    if upload.size is not None and upload.size > limit:
        await form.close()
        raise too_large
    return upload
