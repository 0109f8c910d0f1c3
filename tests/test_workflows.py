"""The GitHub Actions workflows do what the README promises: on every push and pull request,
lint and typecheck and the suite on SQLite and on PostgreSQL; on a version tag, that same CI
and then the image built and pushed to the GitHub container registry with the tag.

Read as files (no GitHub needed) and checked against what they call: the make targets and
.ci/run.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from common.config import PROJECT_ROOT

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
CI_RUN = PROJECT_ROOT / ".ci" / "run"
MAKEFILE = PROJECT_ROOT / "Makefile"


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    """`on:` (YAML 1.1 reads the bare key `on` as True)."""
    value = workflow["on"] if "on" in workflow else workflow[True]  # type: ignore[index]
    if isinstance(value, str):
        return {value: None}
    if isinstance(value, list):
        return dict.fromkeys(value)
    assert isinstance(value, dict), value
    return {key: item or {} for key, item in value.items()}


def runs(job: dict[str, Any]) -> list[str]:
    return [str(step["run"]) for step in job.get("steps", []) if "run" in step]


def uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    """The steps of `job` that use `action` (any version)."""
    return [step for step in job.get("steps", []) if str(step.get("uses", "")).split("@")[0] == action]


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE.read_text(encoding="utf-8"), flags=re.MULTILINE))


@pytest.fixture(scope="module")
def ci() -> dict[str, Any]:
    return load("ci.yml")


@pytest.fixture(scope="module")
def release() -> dict[str, Any]:
    return load("release.yml")


# -- CI ---------------------------------------------------------------------------------------


def test_ci_runs_on_every_push_and_pull_request(ci):
    on = triggers(ci)
    assert "pull_request" in on
    branches = on["push"].get("branches", ["**"]) if isinstance(on["push"], dict) else ["**"]
    assert "**" in branches, "every branch, not only main"
    assert "workflow_call" in on, "release.yml runs it before building the image"


def test_ci_lints_and_typechecks(ci):
    commands = " ".join(command for job in ci["jobs"].values() for command in runs(job))
    assert re.search(r"\bmake lint typecheck\b", commands) or "bash .ci/run" in commands
    assert {"lint", "typecheck"} <= make_targets()
    lint_job = next(job for job in ci["jobs"].values() if any("make lint typecheck" in run for run in runs(job)))
    assert "services" not in lint_job, "lint and typecheck need no database: quick feedback"


def test_ci_tests_on_sqlite_and_postgresql(ci):
    test_job = next(job for job in ci["jobs"].values() if any("bash .ci/run" in run for run in runs(job)))
    # .ci/run: the suite (SQLite) after lint and typecheck, then the PostgreSQL pass.
    script = CI_RUN.read_text(encoding="utf-8")
    assert re.search(r"^make lint typecheck test$", script, flags=re.MULTILINE)
    assert "make test-postgres" in script and "test-postgres" in make_targets()
    # The PostgreSQL service is where .ci/run looks for it: trust, admin database `test`.
    postgres = test_job["services"]["postgres"]
    assert str(postgres["image"]).startswith("postgres:16")
    assert "5432:5432" in [str(port) for port in postgres["ports"]]
    assert postgres["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    default_url = re.search(r"JILU_TEST_POSTGRES_URL:-([^}]+)\}", script)
    assert default_url, "the PostgreSQL pass names its server"
    assert default_url.group(1).endswith(f"@127.0.0.1:5432/{postgres['env']['POSTGRES_DB']}")
    # Redis for the tests (the suite's default address).
    assert "6379:6379" in [str(port) for port in test_job["services"]["redis"]["ports"]]
    setup = uses(test_job, "actions/setup-python")
    assert setup and str(setup[0]["with"]["python-version"]) == "3.11"
    assert "nginx" in " ".join(runs(test_job)), "tests/e2e/test_through_nginx.py would skip"


# -- CD ---------------------------------------------------------------------------------------


def test_release_runs_on_version_tags_only(release):
    on = triggers(release)
    assert set(on) == {"push"}
    assert on["push"].get("tags") == ["v*"]
    assert "branches" not in on["push"]


def test_release_builds_only_after_ci_passes(release):
    jobs = release["jobs"]
    callers = [name for name, job in jobs.items() if job.get("uses") == "./.github/workflows/ci.yml"]
    assert callers, "the tagged commit is tested first"
    image = next(job for job in jobs.values() if uses(job, "docker/build-push-action"))
    needs = image.get("needs", [])
    assert set(callers) <= set([needs] if isinstance(needs, str) else needs)


def test_release_pushes_the_image_to_ghcr_with_its_tag(release):
    image = next(job for job in release["jobs"].values() if uses(job, "docker/build-push-action"))
    assert image["permissions"]["packages"] == "write"
    login = uses(image, "docker/login-action")
    assert login and login[0]["with"]["registry"] == "ghcr.io"
    assert login[0]["with"]["password"] == "${{ secrets.GITHUB_TOKEN }}"
    meta = uses(image, "docker/metadata-action")
    assert meta and meta[0]["with"]["images"] == "ghcr.io/${{ github.repository }}"
    tags = meta[0]["with"]["tags"]
    assert "type=ref,event=tag" in tags, "the image carries the git tag itself"
    build = uses(image, "docker/build-push-action")[0]["with"]
    assert build["push"] is True
    assert build["tags"] == f"${{{{ steps.{meta[0]['id']}.outputs.tags }}}}"
    assert (PROJECT_ROOT / build.get("context", ".") / build.get("file", "Dockerfile")).is_file()
    # Login and tags come before the build that uses them.
    steps = [str(step.get("uses", "")).split("@")[0] for step in image["steps"]]
    assert steps.index("docker/login-action") < steps.index("docker/build-push-action")
    assert steps.index("docker/metadata-action") < steps.index("docker/build-push-action")


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_workflows_pin_their_actions_and_keep_tokens_read_only(name):
    workflow = load(name)
    assert workflow["permissions"] == {"contents": "read"}, "write access only where a job needs it"
    for job in workflow["jobs"].values():
        for step in job.get("steps", []):
            if "uses" in step:
                assert re.search(r"@v\d+$", str(step["uses"])), f"{step['uses']}: pin a major version"
