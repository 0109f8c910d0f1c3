"""Structured logs: one JSON object per line with level, service, request id and extra fields."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI

from common.logging import request_id_var, setup_logging
from tests.support import app_client

logger = logging.getLogger("jilu.test")
TOUCHED = ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx")


@contextmanager
def configured_logging(*, json_logs: bool) -> Iterator[None]:
    """`setup_logging` for one test; the loggers it changes are put back afterwards."""
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in TOUCHED)]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers]
    setup_logging("test_service", json_logs=json_logs)
    try:
        yield
    finally:
        for lg, handlers, level, propagate, disabled in saved:
            lg.handlers[:], lg.level, lg.propagate, lg.disabled = handlers, level, propagate, disabled


def json_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]  # each line is JSON


@contextmanager
def request_id(value: str) -> Iterator[None]:
    token = request_id_var.set(value)
    try:
        yield
    finally:
        request_id_var.reset(token)


def test_json_line_has_the_standard_and_extra_fields(capsys: pytest.CaptureFixture[str]) -> None:
    with configured_logging(json_logs=True):
        with request_id("req-42"):
            logger.info("saved %s", "记录", extra={"record_id": "r1", "size": 3})
        logger.warning("outside any request")
    inside, outside = json_lines(capsys)
    assert inside["level"] == "INFO" and inside["message"] == "saved 记录"
    assert (inside["service"], inside["logger"], inside["request_id"]) == ("test_service", "jilu.test", "req-42")
    assert (inside["record_id"], inside["size"]) == ("r1", 3)
    assert "ts" in inside
    assert (outside["level"], outside["request_id"]) == ("WARNING", "-")


def test_json_line_carries_the_exception(capsys: pytest.CaptureFixture[str]) -> None:
    with configured_logging(json_logs=True):
        try:
            raise ValueError("bad value")
        except ValueError:
            logger.exception("it failed")
    (line,) = json_lines(capsys)
    assert line["level"] == "ERROR" and line["message"] == "it failed"
    assert "Traceback" in line["exception"] and "ValueError: bad value" in line["exception"]


def test_text_logs_show_the_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    with configured_logging(json_logs=False), request_id("req-7"):
        logger.info("plain text")
    out = capsys.readouterr().out
    assert "[req-7]" in out and "plain text" in out and "INFO" in out


async def test_one_access_line_per_request(
    build_app: Callable[..., FastAPI], capsys: pytest.CaptureFixture[str]
) -> None:
    app = build_app("user")

    @app.get("/test/crash")
    async def crash() -> None:
        raise RuntimeError("kaboom")

    with configured_logging(json_logs=True):
        async with app_client(app) as client:
            await client.get("/health", headers={"X-Request-ID": "log-ok"})
            await client.get("/no/such/page", headers={"X-Request-ID": "log-missing"})
            await client.get("/test/crash", headers={"X-Request-ID": "log-crash"})
    lines = json_lines(capsys)
    access = {line["request_id"]: line for line in lines if line["logger"] == "jilu.access"}
    assert set(access) == {"log-ok", "log-missing", "log-crash"}
    assert [access[rid]["status"] for rid in ("log-ok", "log-missing", "log-crash")] == [200, 404, 500]
    for line in access.values():
        assert line["service"] == "test_service" and line["level"] == "INFO" and line["method"] == "GET"
        assert isinstance(line["latency_ms"], int | float) and line["latency_ms"] >= 0
    assert access["log-ok"]["path"] == "/health"
    (error,) = [line for line in lines if line["logger"] == "jilu.errors"]
    assert error["request_id"] == "log-crash" and "RuntimeError: kaboom" in error["exception"]
