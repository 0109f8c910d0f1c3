"""The Flask side of web_service: the web app's static files and the public share pages."""

import logging
from pathlib import Path

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from common.errors import HTTP_STATUS_CODES
from web_service.app.web.share import SharedRecords, share_blueprint

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"

logger = logging.getLogger("jilu.web")


def _error(status: int, code: str, detail: str) -> tuple[Response, int]:
    return jsonify(error=code, detail=detail), status


def create_flask_app(shared_records: SharedRecords | None = None) -> Flask:
    """The Flask app; with `shared_records` (bound to the running API app) it serves `/s/<slug>`."""
    flask_app = Flask(__name__, static_folder=str(STATIC_DIR), static_url_path="")
    if shared_records is not None:
        flask_app.register_blueprint(share_blueprint(shared_records))

    @flask_app.get("/")
    def index() -> Response:
        return flask_app.send_static_file("index.html")

    # The same JSON error shape as the API, for every path Flask answers.
    @flask_app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        return _error(status, HTTP_STATUS_CODES.get(status, "http_error"), exc.name)

    @flask_app.errorhandler(Exception)
    def unexpected_error(exc: Exception) -> tuple[Response, int]:
        logger.exception("unhandled error in the web app", exc_info=exc)
        return _error(500, "internal_error", "Internal server error")

    return flask_app
