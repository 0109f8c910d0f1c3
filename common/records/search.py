"""Full-text search over a user's records, in Chinese, English and both at once.

Text is segmented with jieba before it is indexed (search mode: words and the words inside
them) and every run of Chinese characters also gives its character bigrams, so any
two-character query is found even where jieba drew the word boundary elsewhere. Queries are
segmented the same way. SQLite ranks with FTS5's bm25, PostgreSQL with ts_rank over a
`simple` tsvector of the same tokens. The index lives in `record_search`, written in the
same transaction as the record.

A query matches records with all its words; `match_any` matches those with any of them,
the ones with the most of its words first (then by rank), also in one statement. When the
records with every word already fill the page, `match_any` matches only those: the others
could not make the cut, and matching any word of a common query touches most of a large
account.
"""

from __future__ import annotations

import functools
import html
import logging
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jieba
from sqlalchemy import (
    Column,
    ColumnElement,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    Text,
    case,
    delete,
    func,
    insert,
    literal_column,
    select,
    table,
    text,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import TableClause

from common.records.crud import owned_records
from common.records.models import Record, RecordTag

jieba.setLogLevel(logging.WARNING)

MAX_QUERY_TERMS = 16
SNIPPET_BEFORE, SNIPPET_AFTER = 30, 90

# Runs of CJK ideographs (and the compatibility block), and word-ish Latin/digit tokens.
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[\w\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")

_search_table = Table(
    "record_search",
    MetaData(),
    Column("record_id", String(36)),
    Column("owner_id", String(36)),
    Column("title", Text),
    Column("body", Text),
)


# jieba loads its dictionary (about a second, some 60 MB) on first use, not at start-up, so
# an idle service stays small; the first record written or searched pays the second once.


def _bigrams(run: str) -> list[str]:
    return [run[i : i + 2] for i in range(len(run) - 1)]


def segment_for_index(text_: str) -> str:
    """Space-separated tokens: jieba's search-mode words plus Chinese bigrams."""
    tokens = [t.casefold() for t in jieba.cut_for_search(text_) if _WORD.fullmatch(t)]
    for run in _CJK_RUN.findall(text_):
        tokens.extend(_bigrams(run))
    return " ".join(tokens)


@dataclass(frozen=True)
class Term:
    """One query word; matched as itself, or (long Chinese words) by all its bigrams."""

    word: str
    is_cjk: bool

    @property
    def alternatives(self) -> list[list[str]]:
        if self.is_cjk and len(self.word) > 2:
            return [[self.word], _bigrams(self.word)]
        return [[self.word]]


def parse_query(query: str) -> list[Term]:
    terms: dict[str, Term] = {}
    for token in jieba.cut(query):
        token = token.strip().casefold()
        if not _WORD.fullmatch(token or " "):
            continue
        is_cjk = bool(_CJK_RUN.fullmatch(token))
        if is_cjk and len(token) == 1:
            continue  # a lone character matches too much; its neighbours' bigrams cover it
        terms.setdefault(token, Term(token, is_cjk))
    # A Chinese query jieba split into single characters only ("会讨"): use its bigrams.
    if not terms:
        for run in _CJK_RUN.findall(query):
            for bigram in _bigrams(run):
                terms.setdefault(bigram, Term(bigram, True))
    return list(terms.values())[:MAX_QUERY_TERMS]


def _fts5_query(terms: list[Term], *, match_any: bool = False) -> str:
    def quoted(word: str, prefix: bool) -> str:
        return '"' + word.replace('"', '""') + '"' + ("*" if prefix else "")

    parts = []
    for term in terms:
        options = [
            " AND ".join(quoted(w, prefix=not term.is_cjk and len(w) >= 3) for w in words)
            for words in term.alternatives
        ]
        parts.append("(" + " OR ".join(f"({o})" for o in options) + ")")
    return (" OR " if match_any else " AND ").join(parts)


def _tsquery(terms: list[Term], *, match_any: bool = False) -> str:
    def lexeme(word: str, prefix: bool) -> str:
        return "'" + word.replace("'", "''").replace("\\", "\\\\") + "'" + (":*" if prefix else "")

    parts = []
    for term in terms:
        options = [
            " & ".join(lexeme(w, prefix=not term.is_cjk and len(w) >= 3) for w in words) for words in term.alternatives
        ]
        parts.append("(" + " | ".join(f"({o})" for o in options) + ")")
    return (" | " if match_any else " & ").join(parts)


# -- keeping the index in step ------------------------------------------------------------


@dataclass(frozen=True)
class IndexText:
    """A record's segmented text, made before its write transaction takes the lock."""

    title: str
    body: str


def index_text(title: str | None, content: str | None, tags: list[str] | None) -> IndexText:
    body = "\n".join([content or "", " ".join(tags or [])])
    return IndexText(segment_for_index(title or ""), segment_for_index(body))


def owner_token(owner_id: str) -> str:
    """How SQLite's index names an owner: one token, so `owner_id : "o…"` limits a query."""
    return "o" + owner_id.replace("-", "")


def _is_sqlite(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "sqlite"


async def index_record(
    session: AsyncSession, record: Record, prepared: IndexText | None = None, *, fresh: bool = False
) -> None:
    """(Re)index a live record; a deleted one is taken out. `fresh`: never indexed before."""
    if not fresh:
        await unindex_record(session, record.id)
    if record.is_deleted:
        return
    text_ = prepared or index_text(record.title, record.content, record.tags)
    sqlite = _is_sqlite(session)
    owner = owner_token(record.owner_id) if sqlite else record.owner_id
    values = {"record_id": record.id, "owner_id": owner, "title": text_.title, "body": text_.body}
    await session.execute(insert(_search_table).values(**values))
    if sqlite:
        await session.execute(
            text("INSERT INTO record_search_rowids (record_id, fts_rowid) VALUES (:id, last_insert_rowid())"),
            {"id": record.id},
        )


async def unindex_record(session: AsyncSession, record_id: str) -> None:
    if not _is_sqlite(session):
        await session.execute(delete(_search_table).where(_search_table.c.record_id == record_id))
        return
    # By rowid: FTS5 would scan every row to find an UNINDEXED record_id.
    params = {"id": record_id}
    fts_rowid = (
        await session.execute(text("SELECT fts_rowid FROM record_search_rowids WHERE record_id = :id"), params)
    ).scalar()
    if fts_rowid is not None:
        await session.execute(text("DELETE FROM record_search WHERE rowid = :rowid"), {"rowid": fts_rowid})
        await session.execute(text("DELETE FROM record_search_rowids WHERE record_id = :id"), params)


# -- searching ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchFilters:
    kind: str | None = None
    tag: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None
    # Leave out records that opted out of AI (what a remote provider may be shown).
    ai_allowed_only: bool = False

    @property
    def any(self) -> bool:
        return any((self.kind, self.tag, self.occurred_from, self.occurred_to, self.ai_allowed_only))


def apply_filters(statement: Any, filters: SearchFilters) -> Any:
    if filters.ai_allowed_only:
        statement = statement.where(Record.ai_opt_out.is_(False))
    if filters.kind:
        statement = statement.where(Record.kind == filters.kind)
    if filters.tag:
        tagged = select(RecordTag.record_id).where(RecordTag.name == filters.tag)
        statement = statement.where(Record.id.in_(tagged))
    if filters.occurred_from:
        statement = statement.where(Record.occurred_at >= filters.occurred_from)
    if filters.occurred_to:
        statement = statement.where(Record.occurred_at < filters.occurred_to)
    return statement


async def search(
    session: AsyncSession,
    owner_id: str,
    query: str,
    *,
    limit: int,
    filters: SearchFilters = SearchFilters(),
    match_any: bool = False,
) -> list[tuple[Record, float, str]]:
    """The owner's best-matching live records: (record, score, highlighted snippet).

    Records with every word of the query; with `match_any`, records with any of them, those
    with the most of the words first and then by score. One statement either way."""
    terms = parse_query(query)
    if not terms:
        return []
    count_words = match_any and len(terms) > 1
    if _is_sqlite(session):
        statement = _sqlite_statement(owner_id, terms, limit, filters, count_words=count_words)
    else:
        statement = _postgresql_statement(owner_id, terms, limit, filters, count_words=count_words)
    rows = (await session.execute(statement)).all()
    return [(record, float(score), highlight(record, terms)) for record, score in rows]


def _fts5_table() -> TableClause:
    """`FROM record_search` on SQLite: a new one each time, so that a subquery over the same
    table is never taken for a correlated one."""
    return table("record_search")


def _how_many(has_each: Sequence[ColumnElement[Any]]) -> ColumnElement[int]:
    """How many of the conditions hold: 0 to len(has_each)."""
    return functools.reduce(operator.add, (case((has, 1), else_=0) for has in has_each))


def _fills(with_every_word: Select[Any], limit: int, filters: SearchFilters) -> ColumnElement[bool]:
    """Whether the records with every word (and through the filters) fill `limit` on their
    own. Then no record with fewer words can make the cut, so `match_any` matches those
    alone: what it costs follows the few with every word, not the many with any of them.
    The condition refers to nothing outside itself, so the database works it out once,
    before the search it steers."""
    enough = apply_filters(with_every_word, filters).limit(limit).subquery("enough")
    return select(func.count()).select_from(enough).correlate(None).scalar_subquery() >= limit


def _sqlite_statement(
    owner_id: str, terms: list[Term], limit: int, filters: SearchFilters, *, count_words: bool
) -> Select[Any]:
    # The owner's token narrows the match inside FTS5; without filters the ranking and the
    # cut to `limit` happen there too, and only those rows are joined to `records`.
    owner = f'owner_id : "{owner_token(owner_id)}"'
    every_word = f"{owner} AND ({_fts5_query(terms)})"
    ranked: Select[*tuple[Any, ...]] = select(
        literal_column("record_id").label("record_id"),
        literal_column("bm25(record_search, 0.0, 0.0, 4.0, 1.0)").label("rank"),
    ).select_from(_fts5_table())
    owned = owned_records(owner_id)
    if not count_words:
        ranked = ranked.where(text("record_search MATCH :fts_query").bindparams(fts_query=every_word))
    else:
        every_hit = (
            select(literal_column("record_id").label("record_id"))
            .select_from(_fts5_table())
            .where(text("record_search MATCH :fts_every").bindparams(fts_every=every_word))
            .subquery("every_hit")
        )
        filled = _fills(
            owned.with_only_columns(Record.id).join(every_hit, every_hit.c.record_id == Record.id), limit, filters
        )
        any_word = f"{owner} AND ({_fts5_query(terms, match_any=True)})"
        # How many of the words a record has: one more FTS5 lookup per word, inside this
        # statement, made on first use, so not at all when the records with every word fill.
        has_each = " + ".join(
            # Only the word's number goes into the text; the word itself is a bound parameter.
            f"(rowid IN (SELECT rowid FROM record_search WHERE record_search MATCH :fts_word_{n}))"  # noqa: S608
            for n in range(len(terms))
        )
        each_word = {f"fts_word_{n}": f"{owner} AND {_fts5_query([term])}" for n, term in enumerate(terms)}
        words = case((filled, len(terms)), else_=type_coerce(text(has_each).bindparams(**each_word), Integer))
        ranked = (
            ranked.where(literal_column("record_search").op("MATCH")(case((filled, every_word), else_=any_word)))
            .add_columns(words.label("words"))
            .order_by(literal_column("words").desc())
        )
    ranked = ranked.order_by(literal_column("rank"))
    if not filters.any:
        ranked = ranked.limit(limit)
    hits = ranked.subquery("hits")
    order = [hits.c.words.desc()] if count_words else []
    statement = (
        owned.join(hits, hits.c.record_id == Record.id)
        .add_columns((-hits.c.rank).label("score"))
        .order_by(*order, hits.c.rank, Record.occurred_at.desc())
        .limit(limit)
    )
    return apply_filters(statement, filters)


def _postgresql_statement(
    owner_id: str, terms: list[Term], limit: int, filters: SearchFilters, *, count_words: bool
) -> Select[Any]:
    search_rows = _search_table.c
    document: ColumnElement[Any] = literal_column("record_search.document")
    every_word = _tsquery(terms)
    if not count_words:
        tsquery = func.to_tsquery("simple", every_word)
    else:
        every_hit = _search_table.alias("every_hit")
        with_every_word = (
            owned_records(owner_id)
            .with_only_columns(Record.id)
            .join(every_hit, every_hit.c.record_id == Record.id)
            .where(
                every_hit.c.owner_id == owner_id,
                literal_column("every_hit.document").op("@@")(func.to_tsquery("simple", every_word)),
            )
        )
        any_word = _tsquery(terms, match_any=True)
        tsquery = func.to_tsquery("simple", case((_fills(with_every_word, limit, filters), every_word), else_=any_word))
    score = func.ts_rank(document, tsquery)
    order: list[Any] = [score.desc(), Record.occurred_at.desc()]
    if count_words:
        has_each = [document.op("@@")(func.to_tsquery("simple", _tsquery([term]))) for term in terms]
        order.insert(0, _how_many(has_each).desc())
    statement = (
        owned_records(owner_id)
        .join(_search_table, search_rows.record_id == Record.id)
        .where(search_rows.owner_id == owner_id, document.op("@@")(tsquery))
        .add_columns(score.label("score"))
        .order_by(*order)
        .limit(limit)
    )
    return apply_filters(statement, filters)


def highlight(record: Record, terms: list[Term]) -> str:
    """An HTML-escaped excerpt of the record around the first match, matches in <mark>."""
    source = "\n".join(part for part in (record.title, record.content) if part)
    words = sorted({w for term in terms for words in term.alternatives for w in words}, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE) if words else None
    first = pattern.search(source) if pattern else None
    start = max(0, first.start() - SNIPPET_BEFORE) if first else 0
    end = min(len(source), (first.end() if first else 0) + SNIPPET_AFTER)
    excerpt = source[start:end]
    pieces, position = [], 0
    for match in pattern.finditer(excerpt) if pattern else []:
        pieces.append(html.escape(excerpt[position : match.start()]))
        pieces.append(f"<mark>{html.escape(match.group())}</mark>")
        position = match.end()
    pieces.append(html.escape(excerpt[position:]))
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(source) else ""
    return prefix + "".join(pieces).replace("\n", " ") + suffix
