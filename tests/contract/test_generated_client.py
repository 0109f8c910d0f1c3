"""A client generated from the mobile port's `/openapi.json` with openapi-python-client runs
the mobile journey, through its generated functions only: register, log in (form), create,
list with a cursor, a stale edit (409 with the current record), upload, search, sync push and
changes, share, chat (not streamed), log out (then 401). A schema that stops generating
cleanly (any warning) fails here."""

from __future__ import annotations

import importlib
import inspect
import io
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.contract.conftest import ServedStack

PASSWORD = "plum-Lantern-42"
PACKAGE = "jilu_client"
# The one setting a client developer needs: openapi-python-client knows JSON, text and
# octet-stream answers; the export is a zip (bytes). No post hooks (ruff on the output).
GENERATOR_CONFIG = "post_hooks: []\ncontent_type_overrides:\n  application/zip: application/octet-stream\n"


def generate_client(document: bytes, workdir: Path) -> str:
    """Run the generator on `document`; returns its output, asserting it generated cleanly."""
    (workdir / "openapi.json").write_bytes(document)
    (workdir / "config.yaml").write_text(GENERATOR_CONFIG)
    command = [sys.executable, "-m", "openapi_python_client", "generate"]
    command += ["--path", "openapi.json", "--output-path", PACKAGE, "--meta", "none", "--config", "config.yaml"]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for problem in ("Warning", "WARNING", "Unable to parse", "Cannot parse", "Error"):
        assert problem not in output, output
    assert (workdir / PACKAGE / "client.py").exists(), output
    return output


@pytest.fixture
def client_package(tmp_path: Path) -> Iterator[Path]:
    """Where the generated package goes; it is imported from there and forgotten after."""
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 60, 40)).save(buffer, "PNG")
    return buffer.getvalue()


class Generated:
    """`api("records.records_create")` → that generated module; `model("RecordCreate")` → class."""

    def __init__(self) -> None:
        self.package = importlib.import_module(PACKAGE)
        self.models = importlib.import_module(f"{PACKAGE}.models")
        self.types = importlib.import_module(f"{PACKAGE}.types")

    def api(self, name: str) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.api.{name}")

    def model(self, name: str) -> Any:
        return getattr(self.models, name)

    def body_of(self, name: str) -> Any:
        """The class of the body `api(name)` takes (for bodies without a component of their own)."""
        return inspect.signature(self.api(name).asyncio_detailed).parameters["body"].annotation


async def test_mobile_journey_through_a_generated_client(served_stack: ServedStack, client_package: Path) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{served_stack.mobile_url}/openapi.json")
    assert response.status_code == 200
    generate_client(response.content, client_package)
    gen = Generated()
    m, api = gen.model, gen.api
    timeout = httpx.Timeout(30.0)
    anonymous = gen.package.Client(base_url=served_stack.mobile_url, timeout=timeout)

    # Register, then log in with the OAuth2 form.
    answer = await api("auth.auth_register").asyncio_detailed(
        client=anonymous, body=m("UserCreate")(username="mei", password=PASSWORD)
    )
    assert answer.status_code == 201, answer.content
    assert answer.parsed.username == "mei"
    login_form = gen.body_of("auth.auth_token")
    assert "grant_type" in login_form.__annotations__  # the OAuth2 password form
    answer = await api("auth.auth_token").asyncio_detailed(
        client=anonymous, body=login_form(username="mei", password=PASSWORD)
    )
    assert answer.status_code == 200, answer.content
    tokens = answer.parsed
    assert isinstance(tokens, m("TokenPair"))
    client = gen.package.AuthenticatedClient(
        base_url=served_stack.mobile_url, token=tokens.access_token, timeout=timeout
    )

    # Create three records; page through them two at a time.
    created = []
    for word in ("heron", "lantern", "plum"):
        answer = await api("records.records_create").asyncio_detailed(
            client=client, body=m("RecordCreate")(content=f"a {word} by the river", tags=["walk"])
        )
        assert answer.status_code == 201, answer.content
        assert answer.headers["etag"] == f'"{answer.parsed.version}"'
        created.append(answer.parsed)
    listing = api("records.records_list")
    first = await listing.asyncio_detailed(client=client, limit=2)
    assert first.status_code == 200, first.content
    assert len(first.parsed.items) == 2 and isinstance(first.parsed.next_cursor, str)
    rest = await listing.asyncio_detailed(client=client, limit=2, cursor=first.parsed.next_cursor)
    assert len(rest.parsed.items) == 1 and rest.parsed.next_cursor is None
    assert {r.id for r in first.parsed.items + rest.parsed.items} == {r.id for r in created}

    # Edit at the current version, then again at the old one: 409 with the current record.
    record = created[0]
    update = api("records.records_update")
    answer = await update.asyncio_detailed(
        record.id, client=client, body=m("RecordUpdate")(version=record.version, content="a heron, fishing")
    )
    assert answer.status_code == 200, answer.content
    assert answer.parsed.version == record.version + 1
    stale = await update.asyncio_detailed(
        record.id, client=client, body=m("RecordUpdate")(version=record.version, content="lost edit")
    )
    assert stale.status_code == 409, stale.content
    assert isinstance(stale.parsed, m("VersionConflictBody"))
    assert stale.parsed.error == "version_conflict"
    assert stale.parsed.current.version == record.version + 1
    assert stale.parsed.current.content == "a heron, fishing"

    # Upload a small PNG to it (multipart).
    file = gen.types.File(payload=io.BytesIO(png_bytes()), file_name="dot.png", mime_type="image/png")
    answer = await api("attachments.attachments_upload").asyncio_detailed(
        record.id, client=client, body=m("AttachmentsUploadBody")(file=file)
    )
    assert answer.status_code == 201, answer.content
    assert answer.parsed.to_dict()["content_type"] == "image/png"

    # Search.
    answer = await api("records.records_search").asyncio_detailed(client=client, q="lantern")
    assert answer.status_code == 200, answer.content
    assert [hit.record.id for hit in answer.parsed.items] == [created[1].id]

    # Sync: push an offline-made record, then read the change feed.
    offline_id = str(uuid.uuid4())
    item = m("SyncPushItem")(
        id=offline_id,
        op=m("SyncPushItemOp")("upsert"),
        base_version=0,
        data=m("SyncPushItemDataType0").from_dict({"content": "written offline"}),
    )
    answer = await api("sync.sync_push_changes").asyncio_detailed(client=client, body=m("SyncPush")(items=[item]))
    assert answer.status_code == 200, answer.content
    assert [result.status.value for result in answer.parsed.results] == ["applied"]
    answer = await api("sync.sync_read_changes").asyncio_detailed(client=client, since=0)
    assert answer.status_code == 200, answer.content
    changed = {change.id for change in answer.parsed.changes}
    assert {offline_id, *(r.id for r in created)} <= changed
    assert answer.parsed.has_more is False and answer.parsed.cursor > 0

    # Share, and read the link without logging in.
    answer = await api("sharing.sharing_share_record").asyncio_detailed(created[2].id, client=client)
    assert answer.status_code == 201, answer.content
    slug = answer.parsed.to_dict()["slug"]
    shared = await api("sharing.sharing_read_shared_record").asyncio_detailed(slug, client=anonymous)
    assert shared.status_code == 200, shared.content
    assert shared.parsed.content == "a plum by the river"

    # Chat, not streamed: the offline provider answers.
    answer = await api("chat.chat_create_conversation").asyncio_detailed(
        client=client, body=m("ConversationCreate")(title="river")
    )
    assert answer.status_code == 201, answer.content
    conversation_id = answer.parsed.id
    answer = await api("chat.chat_ask").asyncio_detailed(
        conversation_id, client=client, body=m("MessageCreate")(content="What did I see by the river?", stream=False)
    )
    assert answer.status_code == 201, answer.content
    assert isinstance(answer.parsed, m("ChatMessagePublic"))
    assert answer.parsed.role.value == "assistant" and answer.parsed.content

    # Log out: the token stops working.
    answer = await api("auth.auth_logout").asyncio_detailed(client=client)
    assert answer.status_code == 204, answer.content
    answer = await listing.asyncio_detailed(client=client)
    assert answer.status_code == 401
    assert isinstance(answer.parsed, m("ErrorBody"))
