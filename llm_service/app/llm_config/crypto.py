"""API keys at rest: Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from the
instance secret for this one purpose, so no other use of the secret shares it.

A stored key that no longer decrypts (the instance secret was changed) is reported as
`UnreadableKey`; nothing here ever logs or repr()s a key.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken

from common.security.keys import derive_key

PURPOSE = "llm-api-keys"


class UnreadableKey(Exception):
    """A stored API key that cannot be decrypted with the current instance secret."""


class KeyCipher:
    """Encrypts and decrypts provider API keys with the instance secret."""

    def __init__(self, secret: str) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(derive_key(secret, PURPOSE)))

    def __repr__(self) -> str:
        return "KeyCipher(<derived key>)"

    def encrypt(self, api_key: str) -> str:
        """A token safe to store; a new random IV each time (the same key never looks the same)."""
        return self._fernet.encrypt(api_key.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeError, ValueError):
            raise UnreadableKey("the stored API key cannot be decrypted (was the secret key changed?)") from None
