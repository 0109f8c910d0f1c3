"""Nothing acknowledged is lost, nothing half-written is visible: the writing services killed
with SIGKILL at random moments while clients create records and upload attachments through
them, one writer and then four at once, on SQLite; and on PostgreSQL, the services' database
connections terminated by the server and the services killed.

Real launcher (it restarts what was killed), real processes, real HTTP. The moments are
random but seeded (`JILU_FAULT_SEED`, printed on failure), so a failing run can be replayed.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.e2e.stack import e2e_stack
from tests.faults.acknowledged import Writer, check_files, check_writer, sqlite_rows
from tests.harness import Launcher, answers_health
from tests.support import wait_until

pytestmark = pytest.mark.e2e

SEED = int(os.environ.get("JILU_FAULT_SEED", "1313"))
# (concurrent writers, writes acknowledged in the round): a writer alone, then four at once;
# on PostgreSQL four at once (the kills and terminated connections are what it adds). A round
# goes on past its count until each writing service was killed (and the connections ended).
ROUNDS = ((1, 200), (4, 200))
POSTGRES_ROUNDS = ((4, 200),)
ROUND_TIMEOUT = 90.0  # a bound on waiting only
WRITERS = ("mobile", "web")  # both write, and both are killed in turn
SERVICES = "user,mobile,web"
# The launcher's default gives up after 5 crashes a minute: here crashes are the point.
ARGS = ("--max-crashes", "1000")


class Killer:
    """Kills the `services` in turn with SIGKILL, each at a random moment (0.1 to 1 s) after
    all of them answer again (so one is up while another restarts), until stopped; `chaos`,
    when given, is called instead every other time (e.g. to end the database connections).
    Whatever it failed with is raised on leaving."""

    def __init__(
        self, launcher: Launcher, services: tuple[str, ...], rng: random.Random, chaos: Callable[[], None] | None = None
    ) -> None:
        self.launcher, self.services, self.rng, self.chaos = launcher, services, rng, chaos
        self.kills: list[str] = []
        self.chaos_done = 0
        self.halt = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="killer", daemon=True)

    def _run(self) -> None:
        try:
            turn = 0
            while not self.halt.is_set():
                turn += 1
                if not wait_until(lambda: self._all_answer() or self.halt.is_set(), timeout=90):
                    raise AssertionError(f"a killed service did not come back:\n{self.launcher.output}")
                if self.halt.wait(self.rng.uniform(0.1, 1.0)):
                    return
                if self.chaos is not None and turn % 2 == 0:
                    self.chaos()
                    self.chaos_done += 1
                    continue
                name = self.services[len(self.kills) % len(self.services)]
                process = self.launcher.service_processes().get(name)
                if process is not None:
                    process.kill()
                    self.kills.append(f"{name}:{process.pid}")
        except BaseException as exc:  # noqa: BLE001 - raised again on leaving
            self.error = exc

    def enough(self) -> bool:
        """Every service killed at least once (and `chaos` done once, when given)."""
        killed = {kill.split(":")[0] for kill in self.kills}
        return killed == set(self.services) and (self.chaos is None or self.chaos_done > 0)

    def _all_answer(self) -> bool:
        # One at a time: the other writing service is up while one restarts.
        return all(answers_health(self.launcher.url(name)) for name in self.services)

    def __enter__(self) -> Killer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.halt.set()
        self.thread.join(30)
        if self.error is not None:
            raise self.error


def write_rounds(
    launcher: Launcher,
    rng: random.Random,
    rounds: tuple[tuple[int, int], ...] = ROUNDS,
    chaos: Callable[[], None] | None = None,
) -> list[Writer]:
    """Every round of `rounds` under a `Killer`; the writers, once every service answers again."""
    urls = [launcher.url(name) for name in WRITERS]
    writers: list[Writer] = []
    kills: list[str] = []
    for number, (count, target) in enumerate(rounds):
        team = [Writer(f"r{number}w{i}", urls, random.Random(rng.getrandbits(64))) for i in range(count)]
        wait_for_all(launcher, urls)  # the last round's last kill may still be restarting
        with httpx.Client(timeout=30) as client:
            for writer in team:  # before the killing starts
                writer.register(client, urls[0])
        with Killer(launcher, WRITERS, random.Random(rng.getrandbits(64)), chaos) as killer:
            errors = write_concurrently(team, target, killer.enough)
        if errors:
            raise AssertionError(f"{errors[0]}\n{launcher.output}") from errors[0]
        acknowledged = sum(writer.acknowledged for writer in team)
        assert acknowledged >= target, (
            f"round {number}: {acknowledged} of {target} acknowledged in time ({summary(team)}, kills {killer.kills})"
            f":\n{launcher.output}"
        )
        assert killer.enough(), f"round {number}: only {killer.kills} killed, {killer.chaos_done} other faults"
        kills += killer.kills
        writers += team
    wait_for_all(launcher, urls)
    lost = sum(writer.statuses["lost"] for writer in writers)
    assert lost, f"no answer was ever lost to a kill ({kills}): the test proved nothing"
    assert not any(500 in writer.statuses for writer in writers)
    print(f"{len(kills)} kills ({', '.join(kills)}); {summary(writers)}")  # shown with -rP
    return writers


def wait_for_all(launcher: Launcher, urls: list[str]) -> None:
    for url in urls:
        assert wait_until(partial(answers_health, url), timeout=90), f"{url} is not back:\n{launcher.output}"


def write_concurrently(team: list[Writer], target: int, enough: Callable[[], bool]) -> list[BaseException]:
    """`target` acknowledged writes shared out among `team`, each writer in a thread of its
    own, going on until `enough()`; what they failed with (all stop at the first failure)."""
    stop = threading.Event()
    deadline = time.monotonic() + ROUND_TIMEOUT
    errors: list[BaseException] = []

    def work(writer: Writer, goal: int) -> None:
        try:
            writer.run(goal, deadline, stop, enough)
        except BaseException as exc:  # noqa: BLE001 - returned
            errors.append(exc)
            stop.set()

    shares = [target // len(team) + (i < target % len(team)) for i in range(len(team))]
    threads = [threading.Thread(target=work, args=pair, daemon=True) for pair in zip(team, shares, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(ROUND_TIMEOUT + 30)
    stop.set()
    return errors


def check_everything(launcher: Launcher, writers: list[Writer]) -> list[str]:
    problems: list[str] = []
    with httpx.Client(timeout=30) as client:
        for writer in writers:
            problems += check_writer(writer, client, launcher.url("mobile"))
    return problems


def summary(writers: list[Writer]) -> str:
    statuses: dict[str, int] = {}
    for writer in writers:
        for status, count in writer.statuses.items():
            statuses[str(status)] = statuses.get(str(status), 0) + count
    recreated = sum(writer.recreated for writer in writers)
    return f"seed {SEED}; answers {statuses}; creates found stored after a lost answer: {recreated}"


def uploaded_bytes(writers: list[Writer]) -> dict[str, bytes]:
    return {upload.sha256: upload.data for writer in writers for upload in writer.uploads}


@pytest.mark.sqlite
def test_killed_writers_lose_nothing_acknowledged_on_sqlite(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    with e2e_stack(tmp_path, ARGS, JILU_SERVICES=SERVICES, JILU_DATABASE_URL="") as launcher:
        writers = write_rounds(launcher, rng)
        problems = check_everything(launcher, writers)
        integrity, foreign, rows = sqlite_rows(launcher.data_dir / "jilu.db")
        problems += check_files(launcher.data_dir, rows, uploaded_bytes(writers))
    assert integrity == "ok", f"PRAGMA integrity_check: {integrity}"
    assert not foreign, f"PRAGMA foreign_key_check: {foreign}"
    assert not problems, f"{summary(writers)}\n" + "\n".join(problems[:50])


# -- PostgreSQL ----------------------------------------------------------------------------


def _admin_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def terminate_connections(database_url: str) -> Callable[[], None]:
    """Ends every server process of the services on `database_url` (`pg_terminate_backend`,
    as an administrator or a failover would), whatever each was doing."""

    async def terminate() -> None:
        connection = await asyncpg.connect(_admin_url(database_url))
        try:
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await connection.close()

    return lambda: asyncio.run(terminate())


async def _postgres_check(database_url: str) -> tuple[list[str], list[tuple[str, str, int, bool]]]:
    """amcheck over every table and B-tree index (what `PRAGMA integrity_check` is to SQLite),
    and every attachment row."""
    connection = await asyncpg.connect(_admin_url(database_url))
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        corrupt = await connection.fetch(
            "SELECT c.relname, v.msg FROM pg_class c, verify_heapam(c.oid) v "
            "WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace"
        )
        problems = [f"heap {row['relname']}: {row['msg']}" for row in corrupt]
        indexes = await connection.fetch(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_am am ON am.oid = c.relam WHERE am.amname = 'btree' AND c.relnamespace = 'public'::regnamespace"
        )
        for index in indexes:
            try:
                await connection.execute("SELECT bt_index_check(quote_ident($1)::regclass, true)", index["relname"])
            except asyncpg.PostgresError as exc:
                problems.append(f"index {index['relname']}: {exc}")
        rows = await connection.fetch("SELECT owner_id, sha256, size, has_thumbnail FROM attachments")
        return problems, [(r["owner_id"], r["sha256"], int(r["size"]), bool(r["has_thumbnail"])) for r in rows]
    finally:
        await connection.close()


@pytest.mark.postgres
def test_killed_writers_and_connections_lose_nothing_acknowledged_on_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    # `postgres_url`: a new database of its own (skipped, saying why, when no server answers).
    rng = random.Random(SEED + 1)
    with e2e_stack(tmp_path, ARGS, JILU_SERVICES=SERVICES, JILU_DATABASE_URL=postgres_url) as launcher:
        writers = write_rounds(launcher, rng, POSTGRES_ROUNDS, terminate_connections(postgres_url))
        problems = check_everything(launcher, writers)
        corrupt, rows = asyncio.run(_postgres_check(postgres_url))
        problems += check_files(launcher.data_dir, rows, uploaded_bytes(writers))
    assert not corrupt, "\n".join(corrupt)
    assert not problems, f"{summary(writers)}\n" + "\n".join(problems[:50])
