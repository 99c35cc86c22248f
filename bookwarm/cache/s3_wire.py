"""The cold tier's own reads and writes (GET, PUT and HEAD of one object) on aiohttp, signed by
minio's SigV4 signer.

Why not minio's client for these: it is synchronous (urllib3 and http.client, run in threads), and
measured here it spent 0.80-0.85 ms of CPU per 1 KB PUT against the local store (http.client's
header parsing, urllib3's pool and retries), against 0.38 ms for the same signed PUT on aiohttp in
the event loop, with no thread handing the GIL back and forth. A dump load writes one object an
author and a warm one, so that was a third of a dump load's writing CPU (docs/decisions.md, "The
cold tier's wire"). minio's client still does what is rare (creating the bucket, listing, uploads).

Requests are path-style (``/bucket/key``), as minio's client sends them to any store but AWS.
Retried as minio's urllib3 pool retried them: connection errors, timeouts and 500/502/503/504, up
to three times with a short exponential backoff (a refused certificate is not retried). HTTPS is
verified against the system's CA store, as urllib3 verified it. Errors leave as CacheError carrying
the store's S3 error code or the exception's type, never a credential or a signature.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass, field
from typing import NamedTuple, cast
from urllib.parse import quote, urlsplit

import aiohttp
import yarl
from minio.credentials import Credentials
from minio.signer import sign_v4_s3
from minio.time import to_amz_date, utcnow

from bookwarm.tls import system_tls_context

RETRIED_STATUSES = frozenset({500, 502, 503, 504})
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")
_LOCATION = re.compile(rb"<LocationConstraint[^>]*>([a-z0-9-]{0,40})</LocationConstraint>")


class S3Failure(Exception):
    """One request's failure: ``code`` is S3's error code, the HTTP status or the exception's type."""

    def __init__(self, code: str, status: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.status = status


class Answer(NamedTuple):
    status: int
    body: bytes


@dataclass(frozen=True)
class WireSettings:
    endpoint: str  # host:port
    access_key: str
    secret_key: str = field(repr=False)
    secure: bool
    region: str | None
    max_connections: int = 32
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 0.2


class S3Wire:
    """One connection pool for one event loop (created on first use inside it, closed by
    ``aclose``): a store is opened per run, and a run is one loop."""

    def __init__(self, settings: WireSettings) -> None:
        self.settings = settings
        self._base = f"{'https' if settings.secure else 'http'}://{settings.endpoint}"
        self._credentials = Credentials(settings.access_key, settings.secret_key)
        self._region = settings.region
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def get(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, None when it does not exist (nor its bucket: nothing was written yet)."""
        answer = await self.request("GET", f"/{bucket}/{quote(key, safe='/~')}")
        if answer.status == 404:
            code = _code(answer.body)
            if code in {"NoSuchKey", "NoSuchObject", "NoSuchBucket", ""}:
                return None
            raise S3Failure(code, 404)
        _raise_unless_ok(answer)
        return answer.body

    async def put(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        answer = await self.request(
            "PUT", f"/{bucket}/{quote(key, safe='/~')}", body=body, content_type=content_type
        )
        _raise_unless_ok(answer)

    async def head_bucket(self, bucket: str) -> None:
        """S3Failure unless the store answers for the bucket (a health check): a bucket not created
        yet is an answer (a reader starts before any warm has created it)."""
        answer = await self.request("HEAD", f"/{bucket}")
        if answer.status != 404:
            _raise_unless_ok(answer)

    async def request(
        self, method: str, path: str, *, query: str = "", body: bytes = b"", content_type: str = ""
    ) -> Answer:
        """A signed request, retried on what a healthy store's next attempt may answer."""
        attempt = 0
        while True:
            try:
                region = self._region or await self._bucket_region(path)
                answer = await self._send(method, path, query, body, content_type, region)
                if answer.status not in RETRIED_STATUSES:
                    return answer
                failure = S3Failure(_code(answer.body) or str(answer.status), answer.status)
            except aiohttp.ClientSSLError as exc:  # a certificate does not heal in a second
                raise S3Failure(type(exc).__name__) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = S3Failure(type(exc).__name__)
            except S3Failure as exc:  # the bucket's region could not be asked yet
                failure = exc
            if attempt >= self.settings.retries:
                raise failure
            await asyncio.sleep(self.settings.backoff_s * 2**attempt)
            attempt += 1

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _send(
        self, method: str, path: str, query: str, body: bytes, content_type: str, region: str
    ) -> Answer:
        url = f"{self._base}{path}" + (f"?{query}" if query else "")
        sha256 = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        date = utcnow()
        headers: dict[str, str | list[str] | tuple[str]] = {  # minio's type; every value is a str
            "Host": self.settings.endpoint,
            "x-amz-content-sha256": sha256,
            "x-amz-date": to_amz_date(date),
        }
        if content_type:
            headers["Content-Type"] = content_type
        sign_v4_s3(  # adds the Authorization header
            method=method,
            url=urlsplit(url),
            region=region,
            headers=headers,
            credentials=self._credentials,
            content_sha256=sha256,
            date=date,
        )
        async with self._pool().request(
            method, yarl.URL(url, encoded=True), data=body or None, headers=cast(dict[str, str], headers)
        ) as response:
            return Answer(response.status, await response.read())

    def _pool(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.settings.max_connections,
                ssl=system_tls_context() if self.settings.secure else False,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Content-Type"),
                timeout=aiohttp.ClientTimeout(
                    sock_connect=self.settings.connect_timeout_s, sock_read=self.settings.read_timeout_s
                ),
            )
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("an object store is used by one event loop: open one per run")
        return self._session

    async def _bucket_region(self, path: str) -> str:
        """The bucket's region, asked once (GetBucketLocation, signed for us-east-1 as minio's client
        asks it) when none is configured; a store that has no answer is us-east-1."""
        bucket = path.lstrip("/").split("/", 1)[0]
        answer = await self._send("GET", f"/{bucket}", "location=", b"", "", "us-east-1")
        if answer.status in RETRIED_STATUSES:
            raise S3Failure(_code(answer.body) or str(answer.status), answer.status)
        if answer.status != 200:  # no bucket yet (or no right to ask): us-east-1, asked again later
            return "us-east-1"
        found = _LOCATION.search(answer.body)
        self._region = (found.group(1).decode() if found else "") or "us-east-1"
        return self._region


def _code(body: bytes) -> str:
    found = _CODE.search(body[:4096])
    return found.group(1).decode() if found else ""


def _raise_unless_ok(answer: Answer) -> None:
    if not 200 <= answer.status < 300:
        raise S3Failure(_code(answer.body) or str(answer.status), answer.status)
