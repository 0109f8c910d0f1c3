"""The web app's static files, read once at start-up and served from memory.

Every file under the static dir is served at `/assets/<version>/<path>`, where `version` is
a hash of all of them: a new release is a new URL, so those answers are cached for a year.
The entry points the browser asks for by a fixed name (`/`, `/sw.js`,
`/manifest.webmanifest`) are revalidated on every load and name the current version: each
literal `__ASSETS__` in them becomes `/assets/<version>` (and, in the service worker,
`__VERSION__` the version itself and `__APP_SHELL__` the list of files it precaches).
Text files are gzipped once, at level 9.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Response, abort, request

ASSETS_PREFIX = "/assets"
IMMUTABLE = "public, max-age=31536000, immutable"
FAVICON_CACHE = "public, max-age=86400"
GZIP_LEVEL = 9

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}
TEXT_SUFFIXES = {".js", ".mjs", ".css", ".html", ".svg", ".json", ".webmanifest", ".txt", ".md"}
# Licence texts have no suffix; they are served as plain text.
PLAIN_TEXT_DIRS = ("vendor/licenses/",)


def content_type_of(path: str) -> str:
    if path.startswith(PLAIN_TEXT_DIRS):
        return "text/plain; charset=utf-8"
    return CONTENT_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")


def _is_text(path: str) -> bool:
    return path.startswith(PLAIN_TEXT_DIRS) or Path(path).suffix.lower() in TEXT_SUFFIXES


@dataclass(frozen=True)
class Asset:
    """One file's bytes, ready to send: its type, weak ETag and, for text, its gzipped form
    (None when gzip would not make it smaller)."""

    body: bytes
    content_type: str
    etag: str
    is_text: bool
    gzipped: bytes | None

    @classmethod
    def of(cls, body: bytes, content_type: str, *, is_text: bool) -> Asset:
        etag = f'W/"{hashlib.sha256(body).hexdigest()[:32]}"'
        packed = gzip.compress(body, GZIP_LEVEL, mtime=0) if is_text else None
        smaller = packed if packed is not None and len(packed) < len(body) else None
        return cls(body, content_type, etag, is_text, smaller)


def _read_tree(static_dir: Path) -> dict[str, bytes]:
    """Every regular file under `static_dir` by its relative path; dotfiles are left out."""
    files: dict[str, bytes] = {}
    if not static_dir.is_dir():
        return files
    for path in sorted(static_dir.rglob("*")):
        relative = path.relative_to(static_dir).as_posix()
        if path.is_file() and not any(part.startswith(".") for part in relative.split("/")):
            files[relative] = path.read_bytes()
    return files


SHELL_SUFFIXES = {".js", ".mjs", ".css"}


def app_shell(files: dict[str, bytes]) -> list[str]:
    """What the service worker precaches for offline use: every script and style, and the
    vector icons the page shows (the PNG icons are for installing only), bar the worker
    itself and the licence texts."""
    return [
        path
        for path in sorted(files)
        if path != "sw.js"
        and not path.startswith(PLAIN_TEXT_DIRS)
        and (Path(path).suffix.lower() in SHELL_SUFFIXES or (path.startswith("icons/") and path.endswith(".svg")))
    ]


def version_of(files: dict[str, bytes]) -> str:
    """The first 12 hex digits of sha256 over each file's relative path and bytes, in order."""
    digest = hashlib.sha256()
    for relative in sorted(files):
        digest.update(relative.encode())
        digest.update(files[relative])
    return digest.hexdigest()[:12]


class StaticBundle:
    """The static dir as it was at start-up."""

    def __init__(self, static_dir: Path) -> None:
        files = _read_tree(static_dir)
        self.version = version_of(files)
        self.prefix = f"{ASSETS_PREFIX}/{self.version}"
        self.assets = {
            path: Asset.of(body, content_type_of(path), is_text=_is_text(path)) for path, body in files.items()
        }
        self.entry_points = {
            "index.html": self._entry(files, "index.html"),
            "sw.js": self._entry(files, "sw.js"),
            "manifest.webmanifest": self._entry(files, "manifest.webmanifest"),
        }

    def url(self, path: str) -> str:
        """The versioned URL of a static file."""
        return f"{self.prefix}/{path}"

    def _entry(self, files: dict[str, bytes], path: str) -> Asset | None:
        if path not in files:
            return None
        text = (
            files[path]
            .decode("utf-8")
            .replace("__ASSETS__", self.prefix)
            .replace("__VERSION__", self.version)
            .replace("__APP_SHELL__", json.dumps(app_shell(files)))
        )
        return Asset.of(text.encode("utf-8"), content_type_of(path), is_text=True)


def _client_has(etag: str) -> bool:
    """`If-None-Match` names `etag`, by weak comparison (RFC 9110 §13.1.2), or is `*`."""
    candidates = [part.strip() for part in request.headers.get("If-None-Match", "").split(",")]
    opaque = etag.removeprefix("W/")
    return any(candidate == "*" or candidate.removeprefix("W/") == opaque for candidate in candidates)


def send(asset: Asset | None, cache_control: str, **headers: str) -> Response:
    """`asset` (404 when missing), gzipped if the client takes it, 304 if it has it already."""
    if asset is None:
        abort(404)
    response_headers = {"Cache-Control": cache_control, "ETag": asset.etag, **headers}
    if asset.is_text:
        response_headers["Vary"] = "Accept-Encoding"
    if _client_has(asset.etag):
        return Response(status=304, headers=response_headers, content_type=asset.content_type)
    body = asset.body
    if asset.gzipped is not None and request.accept_encodings.quality("gzip") > 0:
        body = asset.gzipped
        response_headers["Content-Encoding"] = "gzip"
    return Response(body, status=200, content_type=asset.content_type, headers=response_headers)


def assets_blueprint(bundle: StaticBundle) -> Blueprint:
    app = Blueprint("assets", __name__)

    @app.get(f"{ASSETS_PREFIX}/<version>/<path:path>")
    def asset(version: str, path: str) -> Response:
        if version != bundle.version:
            abort(404)
        return send(bundle.assets.get(path), IMMUTABLE)

    @app.get("/")
    @app.get("/index.html")
    def index() -> Response:
        return send(bundle.entry_points["index.html"], "no-cache")

    @app.get("/sw.js")
    def service_worker() -> Response:
        return send(bundle.entry_points["sw.js"], "no-cache", **{"Service-Worker-Allowed": "/"})

    @app.get("/manifest.webmanifest")
    def manifest() -> Response:
        return send(bundle.entry_points["manifest.webmanifest"], "no-cache")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return send(bundle.assets.get("icons/icon.svg"), FAVICON_CACHE)

    return app
