"""Redis key names: per-user keys never collide, whatever the user id holds."""

from __future__ import annotations

from service.core.keys import Keys


def test_idempotency_keys_of_two_users_never_collide() -> None:
    keys = Keys("p")
    assert keys.idempotency("carol", "x:k1") != keys.idempotency("carol:x", "k1")
    assert keys.idempotency("a%3Ab", "k") != keys.idempotency("a:b", "k")
    seen = {keys.idempotency(user, key) for user, key in [("a", "b:c"), ("a:b", "c"), ("a:b:c", ""), ("", "a:b:c")]}
    assert len(seen) == 4
