"""The password hasher production runs with (the suite swaps in a cheap one: conftest.py)."""

from __future__ import annotations

from pwdlib import PasswordHash

from common.security import passwords


def test_production_hashes_with_argon2id_at_the_strong_cost(cheap_argon2: PasswordHash) -> None:
    """64 MiB, 3 passes, 4 lanes: the parameters every stored hash gets outside the tests."""
    stored = cheap_argon2.hash("plum-Lantern-42")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert cheap_argon2.verify("plum-Lantern-42", stored)
    assert not cheap_argon2.verify("plum-Lantern-43", stored)


async def test_the_suite_hashes_the_same_way_only_cheaper(cheap_argon2: PasswordHash) -> None:
    """The swapped hasher is argon2id too, and the production one still verifies its hashes."""
    stored = await passwords.hash_password("plum-Lantern-42")
    assert stored.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert await passwords.verify_password("plum-Lantern-42", stored)
    assert cheap_argon2.verify("plum-Lantern-42", stored)  # the parameters travel in the hash
    assert not await passwords.verify_password("plum-Lantern-42", None)
