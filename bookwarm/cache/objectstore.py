"""The cold tier: JSON objects in an S3-compatible bucket (MinIO in production, SeaweedFS locally).

The reads and writes of a run (``put_json``, ``get_json``, ``get_raw``, ``ping``) go through
``S3Wire`` on the run's event loop; the rare, synchronous calls (the bucket's creation, listings,
uploaded files) through minio's client. Only portable S3 calls are used: nothing here depends on the
local server's quirks.
"""

from __future__ import annotations

import io
import json
from typing import Any

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from bookwarm.cache.s3_wire import S3Failure, S3Wire, WireSettings
from bookwarm.deadline import within
from bookwarm.errors import CacheError, ConfigError
from bookwarm.settings import ObjectStoreSettings


class ObjectStore:
    def __init__(
        self, settings: ObjectStoreSettings, *, connections: int = 32, read_patience_s: float | None = None
    ) -> None:
        """``read_patience_s``: how long one read may take, retries included, before a CacheError;
        the read API sets it so a store that hangs is a 503 in seconds (None: the wire's own timeouts,
        30 s a try, for runs that would rather wait)."""
        if not settings.endpoint or not settings.access_key or settings.secret_key is None:
            raise ConfigError(
                "object store not configured: set BOOKWARM_S3_ENDPOINT, BOOKWARM_S3_ACCESS_KEY and "
                "BOOKWARM_S3_SECRET_KEY (or run `bookwarm services up`)"
            )
        endpoint = settings.endpoint.removeprefix("https://").removeprefix("http://").rstrip("/")
        self.bucket = settings.bucket
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=30),
            maxsize=connections,
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
        )
        self._client = Minio(
            endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key.get_secret_value(),
            secure=settings.secure,
            region=settings.region,
            http_client=self._http,
        )
        self._endpoint = endpoint
        self._read_patience_s = read_patience_s
        self._wire = S3Wire(
            WireSettings(
                endpoint=endpoint,
                access_key=settings.access_key,
                secret_key=settings.secret_key.get_secret_value(),
                secure=settings.secure,
                region=settings.region,
                max_connections=connections,
            )
        )

    def ensure_bucket(self) -> None:
        """Create the bucket when missing (idempotent: a concurrent creator is not an error)."""
        try:
            if not self._client.bucket_exists(self.bucket):
                self._client.make_bucket(self.bucket)
        except S3Error as exc:
            if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise self._error("create bucket", exc) from None
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._error("create bucket", exc) from None

    async def ping(self) -> None:
        """CacheError unless the store answers for its bucket (a health check)."""
        try:
            await self._wire.head_bucket(self.bucket)
        except S3Failure as exc:
            raise self._error("reach the bucket", exc) from None

    def get_bytes_sync(self, key: str, *, max_bytes: int | None = None) -> bytes | None:
        """Raw object bytes of this store's bucket (uploaded library files), None when missing."""
        bucket = self.bucket
        response = None
        try:
            if max_bytes is not None:
                size = self._client.stat_object(bucket, key).size
                if size is not None and size > max_bytes:
                    from bookwarm.errors import SourceError

                    raise SourceError(
                        f"s3://{bucket}/{key} is {size:,} bytes, over the {max_bytes:,} byte limit "
                        "(raise it with BOOKWARM_MAX_UPLOAD_MB)"
                    )
            response = self._client.get_object(bucket, key)
            return response.read()
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchObject", "NoSuchBucket"}:
                return None
            raise self._error(f"read {key}", exc) from None
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._error(f"read {key}", exc) from None
        finally:
            if response is not None:
                response.close()
                response.release_conn()

    def put_bytes_sync(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        try:
            self._client.put_object(self.bucket, key, io.BytesIO(data), len(data), content_type=content_type)
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._error(f"write {key}", exc) from None

    async def put_json(self, key: str, value: Any) -> None:
        body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            await self._wire.put(self.bucket, key, body, "application/json")
        except S3Failure as exc:
            raise self._error(f"write {key}", exc) from None

    async def get_json(self, key: str) -> Any | None:
        """The decoded object, or None when it does not exist."""
        raw = await self.get_raw(key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise self._error(f"read {key}", exc) from None

    async def get_raw(self, key: str) -> bytes | None:
        """The object's bytes as stored, None when it does not exist."""
        try:
            return await within(self._wire.get(self.bucket, key), self._read_patience_s)
        except S3Failure as exc:
            raise self._error(f"read {key}", exc) from None
        except TimeoutError:
            raise self._error(f"read {key}", S3Failure(f"no answer in {self._read_patience_s:g} s")) from None

    def list_names(self, prefix: str, limit: int = 100_000) -> list[str]:
        """Object names under ``prefix`` (tools and tests; the warm and read paths never list)."""
        try:
            names = []
            for obj in self._client.list_objects(self.bucket, prefix=prefix, recursive=True):
                names.append(obj.object_name)
                if len(names) >= limit:
                    break
            return names
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._error("list objects", exc) from None

    def close(self) -> None:
        """minio's connections close now: a job opens a store per shard, and stores left to the
        garbage collector kept their sockets open (about a thousand to S3 by 22,500 authors of one
        job, found profiling the flow process's growth). A store used by a run: ``aclose``."""
        self._http.clear()

    async def aclose(self) -> None:
        """Both pools' connections close now (the run's, on its event loop, and minio's)."""
        await self._wire.aclose()
        self.close()

    def _error(self, action: str, exc: Exception) -> CacheError:
        detail = getattr(exc, "code", None) or type(exc).__name__
        return CacheError(f"object store {self._endpoint}/{self.bucket}: cannot {action} ({detail})")
