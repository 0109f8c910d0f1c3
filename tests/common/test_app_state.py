"""`app.state` is no service locator: only the app factory and the `deps.py` modules read the
typed state a lifespan stored there (`common.state`); every other module gets its
collaborators through a dependency alias or a constructor."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("common", "user_service", "mobile_service", "web_service", "llm_service")
# The app factory stores the state; the deps modules hand its parts to routes.
ALLOWED = {
    "common/app.py",
    "common/deps.py",
    "user_service/app/deps.py",
    "web_service/app/deps.py",
    "llm_service/app/deps.py",
}


def _is_app(node: ast.expr) -> bool:
    """`app`, `request.app`, `self._app`, `llm_app`, ...: what holds a Starlette app."""
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    name = name.lstrip("_")
    return name == "app" or name.endswith("_app")


def app_state_reads(source: str) -> list[int]:
    """The lines of `source` that touch an app's `state` (`x.app.state`, `app.state`,
    `getattr(app, "state")`). Strings and comments that mention it do not count."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == "state" and _is_app(node.value):
            lines.append(node.lineno)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and len(node.args) >= 2
            and _is_app(node.args[0])
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value == "state"
        ):
            lines.append(node.lineno)
    return sorted(lines)


def source_files() -> Iterator[Path]:
    yield ROOT / "main.py"
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "tests" not in path.relative_to(ROOT).parts:
                yield path


@pytest.mark.parametrize(
    "source",
    [
        "def f(request):\n    return request.app.state.redis\n",
        "async def hook(app, stack):\n    app.state.scheduler = 1\n",
        "def f(request):\n    state = request.app.state\n    return state.sessionmaker\n",
        "def f(self):\n    return self._app.state.rate_limiter\n",
        "def f(llm_app):\n    return llm_app.state.budgets\n",
        "def f(request):\n    return getattr(request.app.state, 'budgets', None)\n",
        "def f(app):\n    return getattr(app, 'state')\n",
    ],
)
def test_the_scanner_finds_a_planted_read(source: str) -> None:
    assert app_state_reads(source) != []


@pytest.mark.parametrize(
    "source",
    [
        '"""Made at start-up (`app.state.chat`, once)."""\n',
        "# request.app.state.redis would be a service locator\nx = 1\n",
        "def f(request):\n    request.state.user_id = 'u1'\n",  # the request's own state
        "def f(breaker):\n    return breaker.state\n",
        "def f(redis: RedisDep):\n    return redis\n",
    ],
)
def test_the_scanner_ignores_what_is_no_read(source: str) -> None:
    assert app_state_reads(source) == []


def test_only_the_app_factory_and_the_deps_modules_read_app_state() -> None:
    offenders = {}
    scanned = set()
    for path in source_files():
        name = path.relative_to(ROOT).as_posix()
        scanned.add(name)
        lines = app_state_reads(path.read_text(encoding="utf-8"))
        if lines and name not in ALLOWED:
            offenders[name] = lines
    assert offenders == {}, "take it from the service's deps.py (or a constructor) instead"
    assert ALLOWED <= scanned  # an allowed file that moved would leave the list stale
    assert "common/records/routes.py" in scanned  # the walk reaches the packages
