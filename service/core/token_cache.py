"""Tokens already verified, kept for a minute: a client sends the same bearer token with every
request, and checking its signature again costs more than the rest of the authentication.

A token is kept at most ``TTL_SECONDS`` and never past its own ``exp`` (nor used before its
``nbf``), so a token verified before its key left a JWKS is accepted at most a minute after the
refreshed key set dropped the key. Only tokens that verified are kept; a refusal is always
decided afresh.
"""

from __future__ import annotations

import copy
import time
from typing import Any

TTL_SECONDS = 60.0
MAX_TOKENS = 10_000  # past it the cache starts over: memory stays bounded whatever the clients send


class VerifiedTokens:
    def __init__(self, *, leeway: float, ttl: float = TTL_SECONDS, size: int = MAX_TOKENS) -> None:
        self.leeway, self.ttl, self.size = leeway, ttl, size
        self._kept: dict[str, tuple[float, float, dict[str, Any]]] = {}

    def get(self, token: str) -> dict[str, Any] | None:
        """The claims of ``token`` if it verified less than ``ttl`` ago and is still in its validity window."""
        kept = self._kept.get(token)
        if kept is None:
            return None
        until, not_before, claims = kept
        now = time.time()
        if now >= until or now < not_before:
            self._kept.pop(token, None)
            return None
        return copy.deepcopy(claims)  # callers may change what they get

    def put(self, token: str, claims: dict[str, Any]) -> None:
        now = time.time()
        until = now + self.ttl
        exp = claims.get("exp")
        if isinstance(exp, int | float):
            until = min(until, exp + self.leeway)
        nbf = claims.get("nbf")
        not_before = nbf - self.leeway if isinstance(nbf, int | float) else 0.0
        if len(self._kept) >= self.size:
            self._kept.clear()
        self._kept[token] = (until, not_before, copy.deepcopy(claims))
