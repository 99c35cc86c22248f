"""A reader of bookwarm's cache written only from docs/cache-contract.md, as an app in another
language would: no bookwarm import. Redis first, then the object store; the key of a plain ASCII
name (no initials, no accents) is its words, lower case, joined by "-"."""

from __future__ import annotations

import json
import re
from typing import Any

import redis
from minio import Minio


def plain_author_key(name: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", name.lower()))


def read_author(
    redis_url: str, prefix: str, s3_endpoint: str, access_key: str, secret_key: str, bucket: str, name: str
) -> tuple[dict[str, Any] | None, str]:
    """(the author's value, "hot" | "cold" | "miss"), per "Reading", step 1."""
    key = plain_author_key(name)
    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.get(f"{prefix}author:{key}")
    finally:
        client.close()
    if raw:
        return json.loads(raw), "hot"
    store = Minio(s3_endpoint, access_key=access_key, secret_key=secret_key, secure=False)
    try:
        response = store.get_object(bucket, f"authors/{key}.json")
    except Exception:
        return None, "miss"
    try:
        return json.loads(response.read()), "cold"
    finally:
        response.close()
        response.release_conn()
