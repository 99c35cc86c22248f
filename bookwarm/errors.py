"""The one error tree of bookwarm.

Library errors (httpx, redis, minio, polars, google-genai) are mapped to these at the boundary
where they happen, as httpx maps socket errors to its own, so callers handle bookwarm errors only.
Messages are written for the person running the command and never contain credentials.

    BookwarmError
    ├── ConfigError              a setting is missing or invalid
    ├── InputError               user input is unusable (exit code 2 at the CLI)
    │   ├── SourceError          the file or source cannot be read
    │   ├── ParseError           the content cannot be understood as a library
    │   └── DumpError            an OpenLibrary dump file is missing, truncated, corrupt or not a dump
    ├── ServiceError             a local Redis/S3 server could not be started or stopped
    ├── CacheError               a cache tier (Redis or object store) failed
    ├── JobStopped               a job stopped before its end: cancelled, or the Prefect API was lost
    ├── DeadLetter               an author failed every retry (its dead-letter task run fails with it)
    └── ProviderError            a book provider failed
        ├── ProviderUnavailable  down, circuit open, or retries exhausted (batch split; then a dead letter)
        ├── QuotaExhausted       the daily budget is spent (fail closed: enrichment pending, no bibliography)
        └── ProviderRejected     a non-retryable 4xx other than 404
"""

from __future__ import annotations


class BookwarmError(Exception):
    """Base of every error bookwarm raises on purpose."""


class ConfigError(BookwarmError):
    """A setting is missing or invalid."""


class InputError(BookwarmError):
    """User input cannot be used; the CLI reports it in one line with exit code 2."""


class SourceError(InputError):
    """The library source (path, bytes, base64, object) cannot be read."""


class ParseError(InputError):
    """The content was read but is not a library bookwarm understands."""


class DumpError(InputError):
    """An OpenLibrary dump file cannot be used: missing, truncated, corrupt, or not a dump."""


class ServiceError(BookwarmError):
    """A local service could not be started, reached or stopped."""


class CacheError(BookwarmError):
    """Redis or the object store failed."""


class DeadLetter(BookwarmError):
    """An author failed every retry: recorded in its job's dead letters, re-driven by `redrive`."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.reason = reason


class JobStopped(BookwarmError):
    """A job stopped starting authors: ``status`` is ``cancelled`` or ``interrupted``. Authors not
    started are counted in its record, and `bookwarm resume JOB_ID` finishes it."""

    def __init__(self, job_id: str, status: str, why: str) -> None:
        super().__init__(f"job {job_id} {status}: {why}; `bookwarm resume {job_id}` finishes it")
        self.job_id = job_id
        self.status = status
        self.why = why


class ProviderError(BookwarmError):
    """A book provider failed. ``provider`` names it; messages never include API keys."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider


class ProviderUnavailable(ProviderError):
    """The provider is down, its circuit is open, or retries ran out."""


class QuotaExhausted(ProviderError):
    """The provider's daily quota is spent; calls are refused until the next UTC day."""


class ProviderRejected(ProviderError):
    """The provider refused the request (4xx other than 404/429); retrying cannot help."""
