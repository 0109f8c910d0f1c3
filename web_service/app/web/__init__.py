"""The Flask side of web_service: the web app's static files and the public share pages."""

import logging
from pathlib import Path

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from common.errors import HTTP_STATUS_CODES
from web_service.app.web.assets import StaticBundle, assets_blueprint
from web_service.app.web.share import SharedRecords, share_blueprint

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"

# On every answer Flask gives; a page that sets its own (the share page's stricter CSP) keeps it.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob:; connect-src 'self'; font-src 'self'; worker-src 'self'; "
        "manifest-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

logger = logging.getLogger("jilu.web")


def _error(status: int, code: str, detail: str) -> tuple[Response, int]:
    return jsonify(error=code, detail=detail), status


def create_flask_app(shared_records: SharedRecords | None = None, static_dir: Path = STATIC_DIR) -> Flask:
    """The Flask app: the web app from `static_dir` (read once, now), and with `shared_records`
    (bound to the running API app) the share pages at `/s/<slug>`."""
    flask_app = Flask(__name__, static_folder=None)
    bundle = StaticBundle(static_dir)
    flask_app.register_blueprint(assets_blueprint(bundle))
    if shared_records is not None:
        flask_app.register_blueprint(share_blueprint(shared_records, stylesheet=bundle.url("share.css")))

    # The same JSON error shape as the API, for every path Flask answers.
    @flask_app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        return _error(status, HTTP_STATUS_CODES.get(status, "http_error"), exc.name)

    @flask_app.errorhandler(Exception)
    def unexpected_error(exc: Exception) -> tuple[Response, int]:
        logger.exception("unhandled error in the web app", exc_info=exc)
        return _error(500, "internal_error", "Internal server error")

    @flask_app.after_request
    def security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    return flask_app
