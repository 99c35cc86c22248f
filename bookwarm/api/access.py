"""Who may ask, and how often: API keys and per-client rate limits.

Keys are stored as SHA-256 digests (BOOKWARM_API_KEY_HASHES) and a presented key's digest is compared
with every stored one in constant time; no key, nor any part of one, is logged or echoed. Writes
(the triggers) always need a key, reads when BOOKWARM_API_READS_NEED_KEY says so. Each client (its
key, else its address) has a token bucket per API process (BOOKWARM_API_CLIENT_RPS and _BURST):
one retrying in a storm gets 429s with Retry-After and cannot starve the others. Buckets live in
the process (no Redis round trip on the hot path); N processes behind a balancer allow N times the
rate, which is what a process can serve anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections import OrderedDict

from fastapi import Request

from bookwarm.settings import ApiSettings

MAX_CLIENTS = 10_000  # buckets kept: the least recently seen are dropped (a flood of addresses)


class Unauthorized(Exception):
    """401: no key, or not one of the configured keys."""


class TooManyRequests(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__("too many requests from this client")
        self.retry_after_s = retry_after_s


def new_key() -> tuple[str, str]:
    """(a new API key, its SHA-256 digest for BOOKWARM_API_KEY_HASHES)."""
    key = "bw_" + secrets.token_urlsafe(32)
    return key, hashlib.sha256(key.encode()).hexdigest()


class Access:
    def __init__(self, settings: ApiSettings) -> None:
        raw = settings.key_hashes.get_secret_value() if settings.key_hashes else ""
        self.hashes = [h.strip().lower().removeprefix("sha256:") for h in raw.split(",") if h.strip()]
        self.reads_need_key = settings.reads_need_key
        self.rate = settings.client_rps
        self.burst = max(1, settings.client_burst)
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def check(self, request: Request, *, write: bool) -> None:
        header = request.headers.get("authorization")
        client = None
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("Authorization must be `Bearer KEY`")
            client = self._key_id(token.strip())
            if client is None:
                raise Unauthorized("not a valid API key")
        elif write or self.reads_need_key:
            raise Unauthorized("this needs an API key: `Authorization: Bearer KEY`")
        self._take(client or f"address:{request.client.host if request.client else '-'}")

    def _key_id(self, token: str) -> str | None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        found = None
        for stored in self.hashes:  # every one compared, in constant time: no early exit to time
            if hmac.compare_digest(digest, stored):
                found = f"key:{stored[:12]}"
        return found

    def _take(self, client: str) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        tokens, at = self.buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens < 1:
            self.buckets[client] = (tokens, now)
            raise TooManyRequests(max(1, math.ceil((1 - tokens) / self.rate)))
        self.buckets[client] = (tokens - 1, now)
        if len(self.buckets) > MAX_CLIENTS:
            self.buckets.popitem(last=False)
