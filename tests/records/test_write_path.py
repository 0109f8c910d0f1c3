"""One write path: only `common/records/writer.py` writes a record's bookkeeping columns.

The version, the change number, the device and the AI columns are what synced devices,
the change feed and the analysis queue rely on; a module that set them itself could skip
a step (the change number, the tags, the search index, the event). This test reads every
non-test module of the services and of `common` and fails on any of these outside the
writer:
- an assignment to `<x>.version`, `<x>.change_seq`, `<x>.device_id` or `<x>.ai_*`
  (also augmented, annotated, unpacked, or through `setattr` with the name spelled out);
- `Record(...)` given one of those columns;
- an `UPDATE`/`INSERT` of the records table (`update(Record)`, `insert(Record)`,
  `Record.__table__.update()`, or in SQL text);
- taking a change number (`next_change_seq`).
An object's own attribute (`self.version = …`) is not a record and is not looked at.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("common", "llm_service", "user_service", "mobile_service", "web_service", "main.py")
WRITE_PATH = "common/records/writer.py"
GUARDED = frozenset(
    {"version", "change_seq", "device_id", "ai_status", "ai_title", "ai_summary", "ai_tags", "ai_error"}
)
RECORD_MODEL = "Record"
_SQL_WRITE = re.compile(r"\b(?:update\s+records|insert\s+into\s+records)\b", re.IGNORECASE)


def _names(node: ast.expr) -> str | None:
    """`Record` for `Record` or `models.Record`; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _is_record_table(node: ast.expr) -> bool:
    """`Record` or `Record.__table__`."""
    if isinstance(node, ast.Attribute) and node.attr == "__table__":
        return _names(node.value) == RECORD_MODEL
    return _names(node) == RECORD_MODEL


def _targets(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.Tuple | ast.List):
        return [leaf for element in node.elts for leaf in _targets(element)]
    if isinstance(node, ast.Starred):
        return _targets(node.value)
    return [node]


def _guarded_keys(node: ast.expr) -> list[str]:
    """The guarded string keys of a dict literal (`**{"version": 1}`)."""
    if not isinstance(node, ast.Dict):
        return []
    return [key.value for key in node.keys if isinstance(key, ast.Constant) and key.value in GUARDED]


class _Scanner(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []

    def _flag(self, node: ast.AST, what: str) -> None:
        self.found.append((getattr(node, "lineno", 0), what))

    def _assigned(self, target: ast.expr) -> None:
        for leaf in _targets(target):
            if not isinstance(leaf, ast.Attribute) or leaf.attr not in GUARDED:
                continue
            if isinstance(leaf.value, ast.Name) and leaf.value.id == "self":
                continue  # an object's own attribute, not a record's column
            self._flag(leaf, f"assigns .{leaf.attr}")

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._assigned(target)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._assigned(node.target)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._assigned(node.target)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        called = _names(node.func)
        if called == "setattr" and len(node.args) >= 2:
            name = node.args[1]
            if isinstance(name, ast.Constant) and name.value in GUARDED:
                self._flag(node, f"setattr(…, {name.value!r}, …)")
        if called == RECORD_MODEL:
            for keyword in node.keywords:
                keys = [keyword.arg] if keyword.arg in GUARDED else _guarded_keys(keyword.value)
                for key in keys:
                    self._flag(node, f"Record({key}=…)")
        if called in ("update", "insert") and node.args and _is_record_table(node.args[0]):
            self._flag(node, f"{called}(Record)")
        if (
            isinstance(node.func, ast.Attribute)
            and node.func.attr in ("update", "insert")
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr == "__table__"
            and _names(node.func.value.value) == RECORD_MODEL
        ):
            self._flag(node, f"Record.__table__.{node.func.attr}()")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and _SQL_WRITE.search(node.value):
            self._flag(node, "writes the records table in SQL text")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id == "next_change_seq":
            self._flag(node, "takes a change number")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr == "next_change_seq":
            self._flag(node, "takes a change number")
        self.generic_visit(node)

    def visit_alias(self, node: ast.alias) -> None:
        if node.name.rsplit(".", 1)[-1] == "next_change_seq":
            self._flag(node, "imports next_change_seq")


def violations(source: str) -> list[tuple[int, str]]:
    """(line, what) for each way `source` writes a record other than through the writer."""
    scanner = _Scanner()
    scanner.visit(ast.parse(source))
    return scanner.found


def _scanned_files() -> list[Path]:
    files: list[Path] = []
    for entry in SCANNED:
        path = ROOT / entry
        candidates = [path] if path.is_file() else sorted(path.rglob("*.py"))
        # Tests, and migrations (which reshape stored rows before any service runs), aside.
        files += [file for file in candidates if not {"tests", "migrations"} & set(file.relative_to(ROOT).parts)]
    return files


def test_nothing_outside_the_writer_writes_a_record() -> None:
    files = _scanned_files()
    assert len(files) > 100  # the scan really read the services
    found = [
        f"{file.relative_to(ROOT)}:{line}: {what}"
        for file in files
        if file.relative_to(ROOT).as_posix() != WRITE_PATH
        for line, what in violations(file.read_text(encoding="utf-8"))
    ]
    assert found == [], "write records through common.records.writer.RecordWriter:\n" + "\n".join(found)


def test_the_writer_is_what_the_scan_would_catch() -> None:
    """The exemption is not for nothing: the writer itself does every guarded write."""
    source = (ROOT / WRITE_PATH).read_text(encoding="utf-8")
    found = " ".join(what for _, what in violations(source))
    for column in ("version", "change_seq", "device_id", "ai_status", "ai_title", "ai_summary", "ai_tags", "ai_error"):
        assert column in found
    assert "update(Record)" in found and "takes a change number" in found


@pytest.mark.parametrize(
    "source",
    [
        "record.version += 1",
        "record.version = record.version + 1",
        "row.change_seq = 5",
        "record.device_id = None",
        "item.record.ai_status: str = 'done'",
        "record.ai_title, record.ai_summary = title, summary",
        "first, *record.ai_tags = tags",
        "setattr(record, 'ai_error', None)",
        "Record(id=x, version=1)",
        "models.Record(owner_id=o, **{'change_seq': 3})",
        "update(Record).where(Record.id == x).values(title='t')",
        "sa.insert(Record).values(id=x)",
        "Record.__table__.update().values(kind='note')",
        "session.execute(text('UPDATE records SET ai_status = :s'))",
        "conn.exec_driver_sql('insert into records (id) values (1)')",
        "seq = await next_change_seq(session, owner)",
        "seq = await writer.next_change_seq(session, owner)",
        "from common.records.writer import next_change_seq",
    ],
)
def test_a_planted_write_is_caught(source: str) -> None:
    assert violations(source), source


@pytest.mark.parametrize(
    "source",
    [
        "if record.version != expected: raise Conflict()",
        "public = RecordPublic(id=record.id, version=record.version, ai=info)",
        "self.version = version_of(files)",
        "record.title = 'new'; record.share_slug = None",
        "Record(owner_id=o, title=t)",
        "select(Record).where(Record.change_seq > since)",
        "update(Memory).values(version=2)",
        "fields = {'version': str(record.version)}",
        "text('SELECT * FROM records')",
    ],
)
def test_reading_or_writing_something_else_is_not_caught(source: str) -> None:
    assert violations(source) == []
