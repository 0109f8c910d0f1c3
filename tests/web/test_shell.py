"""The app shell: served with its CSP, and a first visit lands on the login page without a
console error or a failed request."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import Guard, Stack

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_shell_is_served_with_its_policy(stack: Stack) -> None:
    response = stack.http.get(f"{stack.web}/")
    assert response.status_code == 200
    policy = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in policy, policy
    assert "unsafe-inline" not in policy.split("style-src")[0], policy
    assert re.search(r'src="/assets/[^"/]+/app\.js"', response.text), response.text[:800]


def test_first_visit_shows_the_login_page(page: Page, guard: Guard) -> None:
    """Strict: not even the KNOWN_ISSUES of conftest.py pass here."""
    guard.strict = True
    page.goto("/")
    expect(page).to_have_url(re.compile(r"#/login$"))
    expect(page.get_by_role("heading", level=1)).to_be_visible()
