"""Signed attachment URLs: what an image loader fetches without an `Authorization` header.

    <port base URL>/api/v1/files/<attachment id>/<original|thumb>?owner=<owner id>&expires=<unix time>&sig=<hex>

`sig` is an HMAC-SHA256, under a key derived from the instance secret for this purpose
alone (`common.security.keys`), over the attachment id, the variant, the owner id and the
expiry. The signature is checked before any database work; then the file is looked up
through the owner's repository like the bearer route's, so a URL stops working once the
attachment is removed or its record deleted, and a URL signed for one user never reaches
another user's attachment. Every refusal is the same 404 (an expired link says so: that
much is in the URL itself).

Expiries are rounded up to a bucket of `EXPIRY_BUCKET` seconds, so repeated reads within a
few minutes give byte-identical URLs (HTTP caches hold); the next bucket gives new ones, so a
client's own cache is keyed on the attachment's `sha256`, not on the URL.

Which URLs a response carries is decided per request: the routes that show attachments take
an `AttachmentLinks` for the port that answered (`AttachmentLinksDep`) and hand it to the
views in `common.records.views` explicitly. Without one (the export's `records.json`) the
views give the bearer paths, `/api/v1/attachments/<id>`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import Depends

from common.deps import PortBaseUrlDep, SettingsDep
from common.errors import NotFound
from common.security.keys import sign, verify_signature

PURPOSE = "attachment-url"
FILES_PATH = "/api/v1/files"
EXPIRY_BUCKET = 300  # seconds
SIGNATURE_PATTERN = r"^[0-9a-f]{64}$"  # what `signature` makes: a lower-case hex SHA-256 HMAC
NOT_VALID = "no such file, or the link is not valid"  # every refusal but expiry says this
Variant = Literal["original", "thumb"]
VARIANTS: tuple[Variant, ...] = ("original", "thumb")


def now() -> float:
    """The time links are signed and checked at (a seam for tests)."""
    return time.time()


def _message(attachment_id: str, variant: str, owner_id: str, expires: int) -> str:
    return f"{attachment_id}\n{variant}\n{owner_id}\n{expires}"


def signature(secret: str, attachment_id: str, variant: str, owner_id: str, expires: int) -> str:
    """The `sig` of a URL for `owner_id`'s attachment `variant`, valid until `expires`."""
    return sign(secret, PURPOSE, _message(attachment_id, variant, owner_id, expires))


def expiry(now: float, lifetime: int) -> int:
    """`now + lifetime`, rounded up to the bucket (the bucket is never longer than the lifetime)."""
    bucket = max(1, min(EXPIRY_BUCKET, lifetime))
    return math.ceil((now + lifetime) / bucket) * bucket


def signed_path(secret: str, attachment_id: str, variant: Variant, owner_id: str, expires: int) -> str:
    query = urlencode(
        {"owner": owner_id, "expires": expires, "sig": signature(secret, attachment_id, variant, owner_id, expires)}
    )
    return f"{FILES_PATH}/{attachment_id}/{variant}?{query}"


def check(secret: str, attachment_id: str, variant: str, owner_id: str, expires: int, sig: str, at: float) -> None:
    """Raise the one `NotFound` of a signed URL unless `sig` is valid and not expired `at`."""
    if expires < at:
        raise NotFound("this link has expired: read the record again for a fresh one")
    if not verify_signature(secret, PURPOSE, _message(attachment_id, variant, owner_id, expires), sig):
        raise NotFound(NOT_VALID)


@dataclass(frozen=True)
class AttachmentLinks:
    """Makes the signed, absolute URLs of one response."""

    base_url: str
    secret: str
    lifetime: int

    def url(self, attachment_id: str, variant: Variant, owner_id: str) -> str:
        expires = expiry(now(), self.lifetime)
        return self.base_url + signed_path(self.secret, attachment_id, variant, owner_id, expires)


async def attachment_links(settings: SettingsDep, base_url: PortBaseUrlDep) -> AttachmentLinks:
    """A dependency: the signed, absolute attachment URLs of this response, for the port that answered."""
    return AttachmentLinks(base_url, settings.secret, settings.attachment_url_seconds)


AttachmentLinksDep = Annotated[AttachmentLinks, Depends(attachment_links)]
