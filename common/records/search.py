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

Results page by offset (`search_page`): equal scores are ordered by record id, inside the
FTS5 cut too, so the order is total and consecutive pages neither repeat nor skip a record.
"""

from __future__ import annotations

import asyncio
import functools
import html
import json
import logging
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jieba
from sqlalchemy import (
    BindParameter,
    Column,
    ColumnElement,
    Integer,
    MetaData,
    Select,
    String,
    Subquery,
    Table,
    Text,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    table,
    text,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload
from sqlalchemy.sql.expression import TableClause

from common.pagination import decode_offset_cursor, encode_offset_cursor
from common.records.extraction import texts_read
from common.records.models import Attachment, Record, RecordTag
from common.records.repository import owned_records

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
# Built once: a record's write holds SQLite's write lock while they run (`writer`).
_INSERT_SEARCH_ROW = insert(_search_table)
_MAP_SEARCH_ROWID = text("INSERT INTO record_search_rowids (record_id, fts_rowid) VALUES (:id, last_insert_rowid())")


# jieba loads its dictionary (about a second, some 60 MB) on first use, not at start-up, so
# an idle service stays small; the first record written or searched pays the second once, on
# a worker thread (`segmenter_ready`).


async def segmenter_ready() -> None:
    """jieba's dictionary, loaded on a worker thread the first time. On the event loop that
    second of CPU (several on a busy machine) stalled every request, stream and queue worker
    of the process: under `bench/load.py` llm_service's first chat question held its loop
    long enough for its Redis reads to time out. jieba's own lock makes concurrent first
    callers wait for the one load."""
    if not jieba.dt.initialized:
        await asyncio.to_thread(jieba.initialize)


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
    if prepared is None:
        await segmenter_ready()
    text_ = prepared or index_text(record.title, record.content, record.tags)
    body = text_.body
    if not fresh:  # what was read out of its attachments and its link, segmented already
        body = "\n".join([body, *(await _extracted_indexes(session, record.id))])
    sqlite = _is_sqlite(session)
    owner = owner_token(record.owner_id) if sqlite else record.owner_id
    values = {"record_id": record.id, "owner_id": owner, "title": text_.title, "body": body}
    await session.execute(_INSERT_SEARCH_ROW, values)
    if sqlite:
        await session.execute(_MAP_SEARCH_ROWID, {"id": record.id})


async def _extracted_indexes(session: AsyncSession, record_id: str) -> list[str]:
    """The segmented texts of the record's finished extractions (`common.records.extraction`)."""
    own = select(Record.extracted_index).where(Record.id == record_id, Record.extraction_status == "done")
    attached = select(Attachment.extracted_index).where(
        Attachment.record_id == record_id, Attachment.extraction_status == "done"
    )
    return [text_ for text_ in (await session.execute(own.union_all(attached))).scalars() if text_]


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
    """What lists and searches are narrowed to: any of `kinds` (a record has one kind), all
    of `tags` (each tag narrows further), `occurred_at` in [from, to)."""

    kinds: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None
    # Leave out records that opted out of AI (what a remote provider may be shown).
    ai_allowed_only: bool = False

    @property
    def shape(self) -> FilterShape:
        """Which filters are set, without their values."""
        return FilterShape(
            bool(self.kinds), len(self.tags), bool(self.occurred_from), bool(self.occurred_to), self.ai_allowed_only
        )

    @property
    def params(self) -> dict[str, Any]:
        """The values of the bound parameters that `filter_conditions(self.shape)` names."""
        values: dict[str, Any] = {
            "filter_kinds": list(self.kinds),
            "filter_from": self.occurred_from,
            "filter_to": self.occurred_to,
            **{f"filter_tag_{n}": tag for n, tag in enumerate(self.tags)},
        }
        return {name: value for name, value in values.items() if value}


@dataclass(frozen=True)
class FilterShape:
    kinds: bool = False
    tags: int = 0  # how many: each is a condition of its own
    occurred_from: bool = False
    occurred_to: bool = False
    ai_allowed_only: bool = False

    @property
    def any(self) -> bool:
        return any((self.kinds, self.tags, self.occurred_from, self.occurred_to, self.ai_allowed_only))


def filter_conditions(shape: FilterShape) -> list[ColumnElement[bool]]:
    """The WHERE conditions of the filters that are set, their values as bound parameters
    (`SearchFilters.params`), so one statement serves every value."""
    conditions: list[ColumnElement[bool]] = []
    if shape.ai_allowed_only:
        conditions.append(Record.ai_opt_out.is_(False))
    if shape.kinds:
        conditions.append(Record.kind.in_(bindparam("filter_kinds", expanding=True)))
    for n in range(shape.tags):
        tagged = select(RecordTag.record_id).where(RecordTag.name == bindparam(f"filter_tag_{n}"))
        conditions.append(Record.id.in_(tagged))
    if shape.occurred_from:
        conditions.append(Record.occurred_at >= bindparam("filter_from"))
    if shape.occurred_to:
        conditions.append(Record.occurred_at < bindparam("filter_to"))
    return conditions


def apply_filters(statement: Any, filters: SearchFilters) -> Any:
    """`statement` limited to what `filters` lets through, values bound."""
    conditions = filter_conditions(filters.shape)
    return statement.where(*conditions).params(filters.params) if conditions else statement


async def search(
    session: AsyncSession,
    owner_id: str,
    query: str,
    *,
    limit: int,
    offset: int = 0,
    filters: SearchFilters = SearchFilters(),
    match_any: bool = False,
) -> list[tuple[Record, float, Snippet]]:
    """The owner's best-matching live records: (record, score, highlighted snippet).

    Records with every word of the query; with `match_any`, records with any of them, those
    with the most of the words first and then by score. One statement either way. Equal
    scores are ordered by id (newest first), so `offset` pages through one fixed order."""
    await segmenter_ready()
    terms = parse_query(query)
    hits = await ranked_records(
        session, owner_id, terms, limit=limit, offset=offset, filters=filters, match_any=match_any
    )
    shown = await snippets(session, [record for record, _ in hits], terms)
    return [(record, score, snippet) for (record, score), snippet in zip(hits, shown, strict=True)]


# Paging stops this deep into the results: a search is for finding, and an offset costs more
# the deeper it goes. A query that matches more is refined, not paged through.
MAX_SEARCH_DEPTH = 1000


async def search_page(
    session: AsyncSession,
    owner_id: str,
    query: str,
    *,
    limit: int,
    cursor: str | None,
    filters: SearchFilters = SearchFilters(),
) -> tuple[list[tuple[Record, float, Snippet]], str | None]:
    """One page of `search`, and the cursor of the next (None on the last page). A cursor is
    good only for the owner, query and filters it was made for: another is a 422."""
    scope = _page_scope(owner_id, query, filters)
    offset = decode_offset_cursor(cursor, scope, max_offset=MAX_SEARCH_DEPTH - 1) if cursor else 0
    take = min(limit, MAX_SEARCH_DEPTH - offset)
    hits = await search(session, owner_id, query, limit=take + 1, offset=offset, filters=filters)
    if len(hits) <= take or offset + take >= MAX_SEARCH_DEPTH:
        return hits[:take], None
    return hits[:take], encode_offset_cursor(offset + take, scope)


def _page_scope(owner_id: str, query: str, filters: SearchFilters) -> str:
    """What a search cursor is bound to: the owner, the query and the filters."""
    bounds = (filters.occurred_from, filters.occurred_to)
    when = [moment.astimezone(UTC).isoformat() if moment else None for moment in bounds]  # one instant, one text
    kinds, tags = sorted(set(filters.kinds)), sorted(set(filters.tags))
    return json.dumps([owner_id, query, kinds, tags, *when, filters.ai_allowed_only], ensure_ascii=False)


async def ranked_records(
    session: AsyncSession,
    owner_id: str,
    terms: list[Term],
    *,
    limit: int,
    offset: int = 0,
    filters: SearchFilters = SearchFilters(),
    match_any: bool = False,
    with_attachments: bool = True,
) -> list[tuple[Record, float]]:
    """`search` without the snippets: (record, score), best first, for `parse_query`'s terms.
    Without `with_attachments` the records come without them (one query fewer); reading
    `record.attachments` then raises.

    The statement depends only on the query's shape (how many words, the limit, which
    filters), never on its values, which are bound parameters: it is built once per shape
    and reused, so a search costs its execution, not the building and caching of a large
    statement."""
    if not terms:
        return []
    count_words = match_any and len(terms) > 1
    sqlite = _is_sqlite(session)
    shape = _QueryShape(sqlite, len(terms), limit, offset, count_words, filters.shape, with_attachments)
    params: dict[str, Any] = {**filters.params, "owner_id": owner_id}
    if sqlite:
        owner = f'owner_id : "{owner_token(owner_id)}"'
        params["fts_every"] = f"{owner} AND ({_fts5_query(terms)})"
        params["fts_any"] = f"{owner} AND ({_fts5_query(terms, match_any=True)})"
        params.update({f"fts_word_{n}": f"{owner} AND {_fts5_query([term])}" for n, term in enumerate(terms)})
    else:
        params["ts_every"] = _tsquery(terms)
        params["ts_any"] = _tsquery(terms, match_any=True)
        params.update({f"ts_word_{n}": _tsquery([term]) for n, term in enumerate(terms)})
    rows = (await session.execute(_statement(shape), params)).all()
    return [(record, float(score)) for record, score in rows]


@dataclass(frozen=True)
class _QueryShape:
    sqlite: bool
    words: int
    limit: int
    offset: int
    count_words: bool
    filters: FilterShape
    with_attachments: bool


@functools.lru_cache(maxsize=256)
def _statement(shape: _QueryShape) -> Select[Any]:
    build = _sqlite_statement if shape.sqlite else _postgresql_statement
    statement = build(shape)
    return statement if shape.with_attachments else statement.options(raiseload(Record.attachments))


_BM25 = "bm25(record_search, 0.0, 0.0, 4.0, 1.0)"  # the title weighs 4 times the body


def _fts5_table() -> TableClause:
    """`FROM record_search` on SQLite: a new one each time, so that a subquery over the same
    table is never taken for a correlated one."""
    return table("record_search")


def _how_many(has_each: Sequence[ColumnElement[Any]]) -> ColumnElement[int]:
    """How many of the conditions hold: 0 to len(has_each)."""
    return functools.reduce(operator.add, (case((has, 1), else_=0) for has in has_each))


def _fills(with_every_word: Select[Any], limit: int, filters: FilterShape) -> ColumnElement[bool]:
    """Whether the records with every word (and through the filters) fill `limit` on their
    own. Then no record with fewer words can make the cut, so `match_any` matches those
    alone: what it costs follows the few with every word, not the many with any of them.
    The condition refers to nothing outside itself, so the database works it out once,
    before the search it steers."""
    enough = with_every_word.where(*filter_conditions(filters)).limit(limit).subquery("enough")
    return select(func.count()).select_from(enough).correlate(None).scalar_subquery() >= limit


def _owned(shape: _QueryShape) -> Select[Any]:
    """The owner's live records through the filters, the owner a bound parameter."""
    return owned_records(bindparam("owner_id")).where(*filter_conditions(shape.filters))


def _sqlite_statement(shape: _QueryShape) -> Select[Any]:
    # The owner's token narrows the match inside FTS5 (it is in every `fts_*` query); without
    # filters the ranking and the cut at the page's last place happen there too, and only
    # the rows that make the cut are joined to `records` (`_sqlite_hits`).
    ranked: Select[*tuple[Any, ...]] = select(
        literal_column("rowid").label("fts_rowid"), literal_column(_BM25).label("rank")
    ).select_from(_fts5_table())
    if not shape.count_words:
        ranked = ranked.where(text("record_search MATCH :fts_every"))
    else:
        every_hit = (
            select(literal_column("record_id").label("record_id"))
            .select_from(_fts5_table())
            .where(text("record_search MATCH :fts_every"))
            .subquery("every_hit")
        )
        with_every_word = (
            owned_records(bindparam("owner_id"))
            .with_only_columns(Record.id)
            .join(every_hit, every_hit.c.record_id == Record.id)
        )
        filled = _fills(with_every_word, shape.offset + shape.limit, shape.filters)
        # How many of the words a record has: one more FTS5 lookup per word, inside this
        # statement, made on first use, so not at all when the records with every word fill.
        has_each = " + ".join(
            f"(rowid IN (SELECT rowid FROM record_search WHERE record_search MATCH :fts_word_{n}))"  # noqa: S608
            for n in range(shape.words)
        )
        words = case((filled, shape.words), else_=type_coerce(text(has_each), Integer))
        fts_query = case((filled, bindparam("fts_every", type_=String)), else_=bindparam("fts_any", type_=String))
        ranked = ranked.where(literal_column("record_search").op("MATCH")(fts_query)).add_columns(words.label("words"))
    hits = _sqlite_hits(ranked, shape)
    order = [hits.c.words.desc()] if shape.count_words else []
    return (
        _owned(shape)
        .join(hits, hits.c.record_id == Record.id)
        .add_columns((-hits.c.rank).label("score"))
        .order_by(*order, hits.c.rank, Record.id.desc())
        .limit(shape.limit)
        .offset(shape.offset)
    )


def _sqlite_hits(matched: Select[Any], shape: _QueryShape) -> Subquery:
    """The matches that can make the page: `record_id`, `rank` (and `words`).

    FTS5 keeps `record_id` in its content table, so reading it is one more lookup a match,
    dearer than ranking it: a common word's 10,000 matches are not all read. Each match is
    ranked once (a materialized CTE), the place of the (offset + limit)-th is found, and only
    the matches at that place or better, ties included, have their `record_id` read: every
    one that can make the page or the pages before it, and in most searches hardly more.
    With filters every match is read: which ones they let through shows only in `records`."""
    if shape.filters.any:
        return matched.add_columns(literal_column("record_id").label("record_id")).subquery("hits")
    scored = matched.cte("scored").prefix_with("MATERIALIZED")
    most_words = [scored.c.words.desc()] if shape.count_words else []
    last = (
        select(*scored.c)
        .order_by(*most_words, scored.c.rank)
        .offset(shape.offset + shape.limit - 1)
        .limit(1)
        .cte("last")
        .prefix_with("MATERIALIZED")
    )
    last_rank = select(last.c.rank).scalar_subquery()
    as_good: ColumnElement[bool] = scored.c.rank <= last_rank
    if shape.count_words:
        last_words = select(last.c.words).scalar_subquery()
        as_good = or_(scored.c.words > last_words, and_(scored.c.words == last_words, as_good))
    indexed = table("record_search").alias("indexed")
    record_id = (
        select(literal_column("indexed.record_id"))
        .select_from(indexed)
        .where(literal_column("indexed.rowid") == scored.c.fts_rowid)
        .scalar_subquery()
    )
    # Fewer matches than the cut: there is no last place, and every match can make it.
    return select(record_id.label("record_id"), *scored.c).where(or_(last_rank.is_(None), as_good)).subquery("hits")


def _postgresql_statement(shape: _QueryShape) -> Select[Any]:
    search_rows = _search_table.c
    document: ColumnElement[Any] = literal_column("record_search.document")
    owner_id: BindParameter[str] = bindparam("owner_id")

    def tsquery(name: str) -> ColumnElement[Any]:
        return func.to_tsquery("simple", bindparam(name, type_=String))

    if not shape.count_words:
        query = tsquery("ts_every")
    else:
        every_hit = _search_table.alias("every_hit")
        with_every_word = (
            owned_records(owner_id)
            .with_only_columns(Record.id)
            .join(every_hit, every_hit.c.record_id == Record.id)
            .where(every_hit.c.owner_id == owner_id, literal_column("every_hit.document").op("@@")(tsquery("ts_every")))
        )
        filled = _fills(with_every_word, shape.offset + shape.limit, shape.filters)
        query = func.to_tsquery(
            "simple", case((filled, bindparam("ts_every", type_=String)), else_=bindparam("ts_any", type_=String))
        )
    score = func.ts_rank(document, query)
    order: list[Any] = [score.desc(), Record.id.desc()]
    if shape.count_words:
        order.insert(0, _how_many([document.op("@@")(tsquery(f"ts_word_{n}")) for n in range(shape.words)]).desc())
    return (
        _owned(shape)
        .join(_search_table, search_rows.record_id == Record.id)
        .where(search_rows.owner_id == owner_id, document.op("@@")(query))
        .add_columns(score.label("score"))
        .order_by(*order)
        .limit(shape.limit)
        .offset(shape.offset)
    )


@dataclass(frozen=True)
class Snippet:
    """Where a search hit matched, as an HTML-escaped excerpt with the matches in <mark>: in
    the record's own text, or in what was read out of one of its attachments (`attachment_id`)
    or from behind its link (`in_link`)."""

    text: str
    attachment_id: str | None = None
    in_link: bool = False


def _match_pattern(terms: list[Term]) -> re.Pattern[str] | None:
    words = sorted({w for term in terms for words in term.alternatives for w in words}, key=len, reverse=True)
    return re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE) if words else None


def highlight(record: Record, terms: list[Term]) -> str:
    """An HTML-escaped excerpt of the record around the first match, matches in <mark>."""
    source = "\n".join(part for part in (record.title, record.content) if part)
    return excerpt_of(source, _match_pattern(terms)) or excerpt_of(source, None) or ""


def excerpt_of(source: str, pattern: re.Pattern[str] | None) -> str | None:
    """`source` around the first match of `pattern`, escaped, matches in <mark>; None when
    `pattern` finds nothing (with no pattern: the start of `source`)."""
    first = pattern.search(source) if pattern else None
    if pattern is not None and first is None:
        return None
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


async def snippets(session: AsyncSession, records: Sequence[Record], terms: list[Term]) -> list[Snippet]:
    """Where each record matched: its own text if the words are there, else the first text
    read out of its link or attachments that has them (one more query, only then)."""
    pattern = _match_pattern(terms)
    own = [excerpt_of("\n".join(part for part in (r.title, r.content) if part), pattern) for r in records]
    elsewhere = [r.id for r, found in zip(records, own, strict=True) if found is None]
    read: dict[str, list[tuple[str | None, str]]] = {}
    if elsewhere and pattern is not None:
        for record_id, attachment_id, text_ in await texts_read(session, elsewhere):
            read.setdefault(record_id, []).append((attachment_id, text_))
    found: list[Snippet] = []
    for record, excerpt in zip(records, own, strict=True):
        if excerpt is not None:
            found.append(Snippet(excerpt))
            continue
        for attachment_id, text_ in read.get(record.id, []):
            if (inside := excerpt_of(text_, pattern)) is not None:
                found.append(Snippet(inside, attachment_id, attachment_id is None))
                break
        else:  # matched by a word form the pattern does not show (a prefix): the record's start
            found.append(Snippet(highlight(record, terms)))
    return found
