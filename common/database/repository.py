"""Owner-scoped repositories: the one place a domain's queries say whose rows they reach.

Each domain's `repository.py` subclasses `OwnedRepository` for the models its users own and
says, in a fastcrud `PolicyConfig`, which rows an owner reaches: `read` for reads, `update`
and `delete` (among the rows `read` reaches, as fastcrud applies them) for writes. Every
statement takes its WHERE from that policy, so no route or service writes `owner_id == …`.
Bound to a session and an owner, a repository gives:
- `statement()`: `SELECT` of the model within the owner's reach, to add filters and order to;
- `get(id)` / `get_or_404(id, for_update=…)`: one row, locked (`FOR UPDATE`, within the
  `update` rule, or `operation="delete"`'s) when a write follows;
- `page(statement, limit=…, cursor=…)`: a cursor page, newest first by `order` (a time column
  and the id, so pages are stable under ties; see `common.pagination`);
- `crud`: the model's `FastCRUD(...).with_policy(...)`, for what fastcrud does as it is
  (counts, existence, a delete by id).

The services change ORM rows and flush them in the request's transaction; fastcrud's reads
return dicts or schemas, and its writes commit by default, hence the statements here.
Statements built once, before the owner is known, pass a `bindparam` as the owner to the
domain's policy function (`scoped_select(Model, policy_for(bindparam("owner_id")))`).
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any, ClassVar, Generic, Literal, TypeVar

from fastcrud import AccessDenied, FastCRUD, PolicyConfig
from sqlalchemy import BindParameter, ColumnElement, Select, select
from sqlalchemy.exc import NoResultFound
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from common.errors import NotFound
from common.pagination import paginate

M = TypeVar("M")
OwnerId = str | BindParameter[str]
Operation = Literal["read", "update", "delete"]
# Ids are 36-character strings; anything longer, or with a NUL (which PostgreSQL refuses as
# a parameter), names no row and is not worth a query.
MAX_ID_LENGTH = 36


def reach(model: Any, policy: PolicyConfig, operation: Operation = "read") -> list[ColumnElement[bool]]:
    """The conditions on the rows `operation` (`read`, `update`, `delete`) reaches under
    `policy`: `read`'s own, and for a write its rule among the rows `read` reaches, as
    fastcrud applies a policy. An operation the policy denies is a programming error."""
    if not policy.grants(operation) or not policy.grants("read"):
        raise AccessDenied(operation, model)
    readable: list[Any] = policy.row_conditions("read")
    if operation == "read":
        return readable
    return [*readable, *policy.row_conditions(operation)]


def scoped_select(model: Any, policy: PolicyConfig, operation: Operation = "read") -> Select[Any]:
    """`SELECT model` limited to the rows `operation` reaches under `policy`."""
    return select(model).where(*reach(model, policy, operation))


def plausible_id(row_id: str) -> bool:
    """Whether `row_id` could name a row at all (checked before any query)."""
    return len(row_id) <= MAX_ID_LENGTH and "\x00" not in row_id


class OwnedRepository(Generic[M]):
    """One owner's rows of `model`, in `session`. Subclasses set `model`, `not_found` (the
    404's detail), `order` (the list order's time column and id) and `policy()`."""

    model: ClassVar[type[Any]]
    not_found: ClassVar[str]
    order: ClassVar[tuple[InstrumentedAttribute[datetime], InstrumentedAttribute[str]]]
    _fastcrud: ClassVar[FastCRUD]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "model" in cls.__dict__:
            cls._fastcrud = FastCRUD(cls.model)  # shared; each repository takes a policy copy

    def __init__(self, session: AsyncSession, owner_id: str) -> None:
        self.session = session
        self.owner_id = owner_id

    def policy(self) -> PolicyConfig:
        """Which of the model's rows this owner reaches, and for which operations."""
        raise NotImplementedError

    @cached_property
    def scope(self) -> PolicyConfig:
        """`policy()`, made once per repository."""
        return self.policy()

    @cached_property
    def crud(self) -> FastCRUD:
        """The model's FastCRUD under this owner's policy."""
        return self._fastcrud.with_policy(self.scope)

    def statement(self, operation: Operation = "read") -> Select[Any]:
        """`SELECT` of the rows `operation` reaches (reads by default)."""
        return scoped_select(self.model, self.scope, operation)

    async def get(
        self,
        row_id: str,
        *,
        for_update: bool = False,
        operation: Operation | None = None,
        within: Select[Any] | None = None,
    ) -> M | None:
        """The row with `row_id` among the rows `operation` reaches (default: `update` with
        `for_update`, else `read`), or among `within`; with `for_update`, locked until the
        transaction ends, for the write that follows."""
        if not plausible_id(row_id):
            return None
        reached = operation or ("update" if for_update else "read")
        statement = within if within is not None else self.statement(reached)
        statement = statement.where(self.model.id == row_id)
        if for_update:
            statement = statement.with_for_update()
        row: M | None = (await self.session.execute(statement)).scalar()
        return row

    async def get_or_404(
        self,
        row_id: str,
        *,
        for_update: bool = False,
        operation: Operation | None = None,
        within: Select[Any] | None = None,
    ) -> M:
        """As `get`, raising `NotFound(not_found)` when there is no such row of this owner's."""
        row = await self.get(row_id, for_update=for_update, operation=operation, within=within)
        if row is None:
            raise NotFound(self.not_found)
        return row

    async def delete_or_404(self, row_id: str) -> None:
        """Delete the row with `row_id` by fastcrud's delete (within the policy's `delete`
        rule), in the caller's transaction; `NotFound` when this owner has no such row.
        fastcrud soft-deletes a model with `is_deleted`/`deleted_at` columns: records are
        never deleted this way (their deletion goes through the record write path)."""
        if plausible_id(row_id):
            try:
                await self.crud.delete(self.session, commit=False, id=row_id)
                return
            except NoResultFound:
                pass
        raise NotFound(self.not_found)

    async def page(
        self,
        statement: Select[Any] | None = None,
        *,
        limit: int,
        cursor: str | None,
        order: tuple[InstrumentedAttribute[datetime], InstrumentedAttribute[str]] | None = None,
    ) -> tuple[list[M], str | None]:
        """One page of `statement` (default: `statement()`), newest first by `order`
        (default: the class's), and the cursor of the next page."""
        time_column, id_column = order or self.order
        chosen = statement if statement is not None else self.statement()
        return await paginate(self.session, chosen, time_column, id_column, limit=limit, cursor=cursor)
