"""``VerifiedTokens``: a verified token is kept a while, never past its ``exp`` nor before its
``nbf``, and the cache stays bounded."""

from __future__ import annotations

import time

from service.core.token_cache import VerifiedTokens


def test_a_kept_token_is_returned_as_a_copy_until_its_time_is_up() -> None:
    cache = VerifiedTokens(leeway=0, ttl=60)
    cache.put("t", {"sub": "u1", "roles": ["admin"], "exp": time.time() + 3600})
    got = cache.get("t")
    assert got is not None and got["sub"] == "u1"
    got["roles"].append("root")  # a caller changing its copy changes nothing kept
    assert cache.get("t")["roles"] == ["admin"]
    assert VerifiedTokens(leeway=0, ttl=0).get("t") is None and cache.get("other") is None


def test_never_past_exp_nor_before_nbf() -> None:
    cache = VerifiedTokens(leeway=0, ttl=60)
    cache.put("expired", {"sub": "u1", "exp": time.time() - 1})
    cache.put("early", {"sub": "u1", "exp": time.time() + 3600, "nbf": time.time() + 600})
    assert cache.get("expired") is None and cache.get("early") is None
    cache = VerifiedTokens(leeway=30, ttl=60)
    cache.put("in-leeway", {"sub": "u1", "exp": time.time() - 1})
    assert cache.get("in-leeway") is not None  # as pyjwt would accept it with the same leeway


def test_the_cache_stays_bounded() -> None:
    cache = VerifiedTokens(leeway=0, ttl=60, size=3)
    for i in range(10):
        cache.put(f"t{i}", {"sub": "u", "exp": time.time() + 60})
    assert len(cache._kept) <= 3 and cache.get("t9") is not None
