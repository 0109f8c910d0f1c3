"""Field types that take only what their OpenAPI schema says.

Pydantic's lax mode converts on the way in: `0` and `"yes"` become a boolean, `0` or `"0.5"` a
date or a time (seconds since 1970). A client that sends those has a bug the server should
name, and the documents say `boolean` and an ISO 8601 `date` / `date-time` (Schemathesis's
`negative_data_rejection` found each). These types refuse them with a 422 instead.

- `StrictFlag`: a JSON `true` or `false` in a body (not for query strings, which are text).
- `IsoDate`, `IsoDatetime`, `IsoAwareDatetime`: written as ISO 8601 text, in a body or a query;
  a number, or text that is only a number, is refused.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, Field

_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _iso_text(value: Any) -> Any:
    """Refuse a number, or text that is only a number, before Pydantic reads it as seconds."""
    if isinstance(value, bool | int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("write it as ISO 8601 text, e.g. 2026-03-14 or 2026-03-14T09:30:00Z, not a number")
    return value


StrictFlag = Annotated[bool, Field(strict=True)]
IsoDate = Annotated[dt.date, BeforeValidator(_iso_text)]
IsoDatetime = Annotated[dt.datetime, BeforeValidator(_iso_text)]
IsoAwareDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]
