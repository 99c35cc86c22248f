"""Settings and the one resolver that decides where each comes from.

Order, per field: a named Prefect block (when a Prefect API is configured) > the ``BOOKWARM_*``
environment variable > the local services started by ``bookwarm services up`` (Redis and S3 only)
> the embedded default. ``bookwarm config`` prints each value with its origin, secrets masked.

This module is Prefect-free: blocks reach it as plain dicts loaded by ``blocks.loader``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from pydantic import SecretStr

from bookwarm.errors import ConfigError


def _f(env: str, default: Any = None, *, secret: bool = False, doc: str = "") -> Any:
    return field(default=default, metadata={"env": env, "secret": secret, "doc": doc})


@dataclass(frozen=True)
class RedisSettings:
    url: str = _f(
        "BOOKWARM_REDIS_URL",
        doc="Redis URL of the hot tier (its password masked when shown; a secret in its block)",
    )
    key_prefix: str = _f("BOOKWARM_REDIS_PREFIX", "", doc="prefix of every key bookwarm writes")
    hot_ttl_s: int = _f("BOOKWARM_HOT_TTL_S", 24 * 3600, doc="TTL of author/ISBN/title entries (jittered)")
    processed_ttl_s: int = _f(
        "BOOKWARM_PROCESSED_TTL_S", 90 * 24 * 3600, doc="how long a warmed author stays fresh"
    )
    job_ttl_s: int = _f("BOOKWARM_JOB_TTL_S", 7 * 24 * 3600, doc="TTL of job records")
    job_heartbeat_s: float = _f(
        "BOOKWARM_JOB_HEARTBEAT_S", 10.0, doc="a running job beats its record; 3 missed beats: interrupted"
    )
    prefect_grace_s: float = _f(
        "BOOKWARM_PREFECT_GRACE_S",
        30.0,
        doc="a job that cannot reach the Prefect API this long stops starting authors (interrupted)",
    )
    ride_out_s: float = _f(
        "BOOKWARM_REDIS_RIDE_OUT_S",
        9.5,
        doc="every Redis call retries this long from the start of an outage (a restart, a failover)",
    )
    handover_patience_s: float = _f(
        "BOOKWARM_HANDOVER_PATIENCE_S",
        15.5,
        doc="a job's hand-over points (authors, co-authors) wait this long more for Redis before the job stops",
    )
    negative_ttl_s: int = _f("BOOKWARM_NEGATIVE_TTL_S", 6 * 3600, doc="TTL of 'author unknown' entries")
    claim_ttl_s: int = _f("BOOKWARM_CLAIM_TTL_S", 60, doc="author claim lifetime, renewed while fetching")
    soft_ttl_s: int = _f(
        "BOOKWARM_SOFT_TTL_S",
        7 * 24 * 3600,
        doc="an author fetched longer ago is served marked stale and counted as demand (refreshed)",
    )
    demand_keep_days: int = _f(
        "BOOKWARM_DEMAND_KEEP_DAYS", 7, doc="days of hourly demand buckets kept (each expires by itself)"
    )


@dataclass(frozen=True)
class ObjectStoreSettings:
    endpoint: str = _f("BOOKWARM_S3_ENDPOINT", doc="host:port or URL of the S3-compatible store")
    access_key: str = _f("BOOKWARM_S3_ACCESS_KEY", doc="S3 access key")
    secret_key: SecretStr | None = _f("BOOKWARM_S3_SECRET_KEY", secret=True, doc="S3 secret key")
    bucket: str = _f("BOOKWARM_S3_BUCKET", "bookwarm", doc="bucket (created when missing)")
    secure: bool = _f("BOOKWARM_S3_SECURE", False, doc="use TLS")
    region: str | None = _f("BOOKWARM_S3_REGION", None, doc="region, if the store needs one")


@dataclass(frozen=True)
class ProviderSettings:
    base_url: str = _f("", doc="API root")
    api_key: SecretStr | None = _f("", secret=True, doc="API key")
    rate_per_s: float = _f("", 1.0, doc="requests per second, shared by every worker")
    daily_quota: int = _f("", 0, doc="calls per UTC day, failed ones included (0 = unlimited)")
    timeout_s: float = _f("", 20.0, doc="per-request timeout")
    max_pages: int = _f(
        "", 1, doc="page budget per author (Google Books 40/page, ISBNdb 1,000/page; OpenLibrary: no cap)"
    )
    quota_share: float = _f(
        "", 0.9, doc="share of the daily quota bookwarm spends; calls stop there (fail-closed)"
    )
    counting: str = _f(
        "", "per_isbn", doc="how the provider counts POST /books: per_isbn (conservative) or per_request"
    )
    burst: int = _f(
        "",
        0,
        doc="calls the provider lets through above its rate before a 429 (OpenLibrary: nginx burst 25; 0: none)",
    )
    batch: int = _f(
        "",
        100,
        doc="OpenLibrary: authors per batched query (50); ISBNdb: ISBNs per POST /books (10/100/1000 by plan)",
    )


@dataclass(frozen=True)
class GeminiSettings:
    base_url: str | None = _f("BOOKWARM_GEMINI_URL", None, doc="API root override (tests, proxies)")
    api_key: SecretStr | None = _f("BOOKWARM_GEMINI_API_KEY", secret=True, doc="Gemini API key")
    model: str = _f("BOOKWARM_GEMINI_MODEL", "gemini-2.5-flash", doc="model name")
    chunk_rows: int = _f(
        "BOOKWARM_GEMINI_CHUNK_ROWS", 100, doc="rows per call: small enough that no answer is truncated"
    )
    concurrency: int = _f("BOOKWARM_GEMINI_CONCURRENCY", 4, doc="calls in flight at once")
    max_rows: int = _f("BOOKWARM_GEMINI_MAX_ROWS", 20000, doc="largest file (rows) sent to Gemini")
    max_tokens: int = _f(
        "BOOKWARM_GEMINI_MAX_TOKENS",
        2000000,
        doc="estimated tokens per file, refused before any call above it",
    )


@dataclass(frozen=True)
class IngestSettings:
    max_upload_mb: float = _f("BOOKWARM_MAX_UPLOAD_MB", 50.0, doc="largest library file accepted")
    max_job_authors: int = _f(
        "BOOKWARM_MAX_JOB_AUTHORS",
        200_000,
        doc="distinct authors one library job takes at most (a larger export is refused before anything "
        "is queued; split it, or warm from the dumps)",
    )
    warm_roles: str = _f("BOOKWARM_WARM_ROLES", "author", doc="roles warmed as authors, comma-separated")
    contact_email: str = _f(
        "BOOKWARM_CONTACT_EMAIL", "ops@bookwarm.invalid", doc="sent to OpenLibrary in the User-Agent"
    )
    uploads_prefix: str = _f(
        "BOOKWARM_UPLOADS_PREFIX", "uploads/", doc="object prefix runs may read library files from"
    )
    source_roots: str = _f(
        "BOOKWARM_SOURCE_ROOTS", "", doc="directories runs may read local files from (comma-separated; none)"
    )


@dataclass(frozen=True)
class ApiSettings:
    live_share: float = _f(
        "BOOKWARM_API_LIVE_SHARE",
        0.34,
        doc="share of OpenLibrary's rate the read API's live fetches may take (the rest stays the warms')",
    )
    live_wait_s: float = _f(
        "BOOKWARM_API_LIVE_WAIT_S",
        2.0,
        doc="how long a read waits for a live fetch before 202 (?wait= up to 10)",
    )
    live_daily_calls: int = _f(
        "BOOKWARM_API_LIVE_DAILY_CALLS",
        20_000,
        doc="OpenLibrary calls the read API's live fetches make a UTC day",
    )
    key_hashes: SecretStr | None = _f(
        "BOOKWARM_API_KEY_HASHES",
        secret=True,
        doc="SHA-256 hex digests of the API keys, comma-separated (`bookwarm api --new-key` makes one)",
    )
    reads_need_key: bool = _f(
        "BOOKWARM_API_READS_NEED_KEY", False, doc="reads need an API key too (writes always do)"
    )
    client_rps: float = _f(
        "BOOKWARM_API_CLIENT_RPS",
        50.0,
        doc="requests a second one client (key or address) may make, per API process (0: no limit)",
    )
    client_burst: int = _f(
        "BOOKWARM_API_CLIENT_BURST", 100, doc="requests one client may make at once above its rate"
    )
    cold_read_s: float = _f(
        "BOOKWARM_API_COLD_READ_S",
        3.0,
        doc="how long a read waits for the object store before a 503 (a store that hangs, not one that is down)",
    )


@dataclass(frozen=True)
class OrchestrationSettings:
    work_pool: str = _f(
        "BOOKWARM_WORK_POOL",
        "",
        doc="run each shard as a warm-authors deployment run on this work pool's workers (empty: in process)",
    )
    shard_deployment: str = _f(
        "BOOKWARM_SHARD_DEPLOYMENT", "warm-authors/warm-authors", doc="the deployment shards run as"
    )
    shard_lost_after_s: int = _f(
        "BOOKWARM_SHARD_LOST_AFTER_S",
        90,
        doc="a shard run silent this long (no heartbeat, every 30 s) is marked Crashed and run again",
    )
    shard_poll_s: float = _f(
        "BOOKWARM_SHARD_POLL_S", 2.0, doc="how often a job reads its shard runs' states (one API call)"
    )
    cancel_wait_s: float = _f(
        "BOOKWARM_CANCEL_WAIT_S",
        60.0,
        doc="a cancelled job waits this long for its running shard runs to end, then marks them Cancelled",
    )
    shard_start_timeout_s: int = _f(
        "BOOKWARM_SHARD_START_TIMEOUT_S",
        120,
        doc="a shard run taken by a worker but not started this long is Crashed and run again; one "
        "waiting this long while no worker of the pool is alive stops the job (interrupted, resumable)",
    )
    author_retries: int = _f(
        "BOOKWARM_AUTHOR_RETRIES", 3, doc="retries of an author (inside its batch) for failures outside HTTP"
    )
    author_retry_delay_s: float = _f(
        "BOOKWARM_AUTHOR_RETRY_DELAY_S",
        1.0,
        doc="first delay between an author's retries (doubles, plus jitter)",
    )
    prefect_run_retention_s: int = _f(
        "BOOKWARM_PREFECT_RUN_RETENTION_S",
        8 * 24 * 3600,
        doc="the local Prefect server deletes runs (with their task runs, dead letters and logs) ended "
        "longer ago than this; at least BOOKWARM_JOB_TTL_S, so dead letters stay while redrive can act",
    )
    prefect_event_retention_s: int = _f(
        "BOOKWARM_PREFECT_EVENT_RETENTION_S",
        3 * 24 * 3600,
        doc="the local Prefect server deletes events older than this (the UI's event feed; automations "
        "need minutes)",
    )
    prefect_vacuum_batch: int = _f(
        "BOOKWARM_PREFECT_VACUUM_BATCH",
        200,
        doc="rows the Prefect server's clean-up deletes per transaction (measured: docs/decisions.md)",
    )
    demand_max_authors: int = _f(
        "BOOKWARM_DEMAND_MAX_AUTHORS", 500, doc="authors one warm-demand run warms at most"
    )
    demand_openlibrary_share: float = _f(
        "BOOKWARM_DEMAND_OPENLIBRARY_SHARE",
        0.1,
        doc="share of a day's OpenLibrary calls (its quota, else 3/s for 24 h) warm-demand runs may spend",
    )


PROVIDERS: dict[str, dict[str, Any]] = {
    # name -> env prefix and embedded defaults (documented limits of each provider's free tier)
    "openlibrary": {
        "env": "BOOKWARM_OPENLIBRARY",
        "base_url": "https://openlibrary.org",
        "rate_per_s": 3.0,
        "burst": 25,  # OpenLibrary's nginx: limit_req 180 r/min, burst 25 (../shared/notes/providers.md)
        "batch": 50,  # authors per batched query: the sweep's best within URL and clause bounds (docs/decisions.md)
    },
    "google_books": {
        "env": "BOOKWARM_GOOGLE_BOOKS",
        "base_url": "https://www.googleapis.com/books/v1",
        "rate_per_s": 5.0,
        "daily_quota": 1000,
    },
    "isbndb": {
        "env": "BOOKWARM_ISBNDB",
        "base_url": "https://api2.isbndb.com",
        "rate_per_s": 1.0,
        "daily_quota": 2000,
    },
}
_PROVIDER_ENV = {
    "base_url": "URL",
    "api_key": "API_KEY",
    "rate_per_s": "RPS",
    "daily_quota": "DAILY_QUOTA",
    "timeout_s": "TIMEOUT_S",
    "max_pages": "MAX_PAGES",
    "quota_share": "QUOTA_SHARE",
    "counting": "COUNTING",
    "batch": "BATCH",
    "burst": "BURST",
}


@dataclass(frozen=True)
class Settings:
    redis: RedisSettings
    s3: ObjectStoreSettings
    openlibrary: ProviderSettings
    google_books: ProviderSettings
    isbndb: ProviderSettings
    gemini: GeminiSettings
    ingest: IngestSettings
    orchestration: OrchestrationSettings
    api: ApiSettings = field(default_factory=ApiSettings)
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)

    def provider(self, name: str) -> ProviderSettings:
        settings = getattr(self, name)
        if not isinstance(settings, ProviderSettings):
            raise KeyError(f"not a provider: {name!r}")
        return settings

    @property
    def warm_roles(self) -> frozenset[str]:
        return frozenset(r.strip() for r in self.ingest.warm_roles.split(",") if r.strip())


SECTIONS: dict[str, type] = {
    "redis": RedisSettings,
    "s3": ObjectStoreSettings,
    "openlibrary": ProviderSettings,
    "google_books": ProviderSettings,
    "isbndb": ProviderSettings,
    "gemini": GeminiSettings,
    "ingest": IngestSettings,
    "orchestration": OrchestrationSettings,
    "api": ApiSettings,
}


def env_name(section: str, field_name: str) -> str:
    """The environment variable of one setting."""
    if section in PROVIDERS:
        return f"{PROVIDERS[section]['env']}_{_PROVIDER_ENV[field_name]}"
    return str(next(f.metadata["env"] for f in fields(SECTIONS[section]) if f.name == field_name))


def resolve(
    env: Mapping[str, str] | None = None,
    blocks: Mapping[str, Mapping[str, Any]] | None = None,
    local_services: Mapping[str, str] | None = None,
) -> Settings:
    """Build Settings, field by field: block > environment > local services > embedded default.

    ``blocks`` maps a section ("redis", "s3", "openlibrary", ...) to the saved block's fields;
    ``local_services`` is the environment printed by ``bookwarm services up``.
    """
    env = os.environ if env is None else env
    blocks = blocks or {}
    local = local_services or {}
    origins: dict[str, str] = {}
    built: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = env_name(section, f.name)
            default = PROVIDERS.get(section, {}).get(f.name, f.default)
            block_value = blocks.get(section, {}).get(f.name)
            if block_value is not None:
                raw, origin = block_value, f"block:{section}"
            elif env.get(name, "") != "":
                raw, origin = env[name], f"env:{name}"
            elif local.get(name):
                raw, origin = local[name], "local services"
            else:
                raw, origin = default, "default"
            values[f.name] = _coerce(raw, f.type, f"{name}")
            origins[f"{section}.{f.name}"] = origin
        built[section] = cls(**values)
    settings = Settings(**built, origins=origins)
    _check_budgets(settings)
    _check_retention(settings)
    _check_bucket(settings.s3.bucket)
    if (
        not 0 < settings.api.live_share <= 1
        or not 0 < settings.api.live_wait_s <= 10
        or settings.api.live_daily_calls < 0
        or not 0 < settings.api.cold_read_s <= 60
    ):
        raise ConfigError(
            "BOOKWARM_API_LIVE_SHARE must be in (0, 1], BOOKWARM_API_LIVE_WAIT_S in (0, 10], "
            "BOOKWARM_API_LIVE_DAILY_CALLS not negative, BOOKWARM_API_COLD_READ_S in (0, 60]"
        )
    return settings


def _check_retention(settings: Settings) -> None:
    """Prefect's clean-up must never delete a job's runs (its dead letters in the UI) while the job's
    record, which `bookwarm redrive` acts on, still lives; Prefect refuses a retention of an hour or less."""
    orchestration, job_ttl_s = settings.orchestration, settings.redis.job_ttl_s
    if orchestration.prefect_run_retention_s < max(job_ttl_s, 3601):
        raise ConfigError(
            f"BOOKWARM_PREFECT_RUN_RETENTION_S ({orchestration.prefect_run_retention_s}) must be at least "
            f"BOOKWARM_JOB_TTL_S ({job_ttl_s}) and over an hour: a job's dead letters would leave the "
            "Prefect UI while `bookwarm redrive` can still act on them"
        )
    if orchestration.prefect_event_retention_s <= 3600 or orchestration.prefect_vacuum_batch < 1:
        raise ConfigError(
            "BOOKWARM_PREFECT_EVENT_RETENTION_S must be over an hour and BOOKWARM_PREFECT_VACUUM_BATCH at least 1"
        )


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _check_bucket(bucket: str) -> None:
    """S3's naming rules, checked before any server is asked (the client raised a bare ValueError)."""
    if not _BUCKET.match(bucket) or ".." in bucket or re.fullmatch(r"[0-9.]+", bucket):
        raise ConfigError(
            f"BOOKWARM_S3_BUCKET {bucket[:70]!r} is not a valid bucket name (3-63 lowercase letters, digits, "
            "dots or hyphens, starting and ending with a letter or digit)"
        )


def _check_budgets(settings: Settings) -> None:
    """Budget settings out of range would spend a quota or stop every call: refuse them up front."""
    for section in PROVIDERS:
        cfg: ProviderSettings = getattr(settings, section)
        if not 0 < cfg.quota_share <= 1:
            raise ConfigError(f"{env_name(section, 'quota_share')} must be in (0, 1], got {cfg.quota_share}")
        if cfg.counting not in ("per_isbn", "per_request"):
            raise ConfigError(f"{env_name(section, 'counting')} must be per_isbn or per_request")
        if cfg.batch < 1 or cfg.rate_per_s < 0 or cfg.daily_quota < 0 or cfg.burst < 0:
            raise ConfigError(
                f"{PROVIDERS[section]['env']}_BATCH, _RPS, _BURST and _DAILY_QUOTA must not be negative"
            )


def _coerce(raw: Any, type_name: Any, label: str) -> Any:
    if raw is None:
        return None
    kind = str(type_name)
    if isinstance(raw, SecretStr) and "SecretStr" not in kind:
        raw = raw.get_secret_value()  # a block keeps it secret (the Redis URL): plain here, as the env's
    try:
        if "SecretStr" in kind:
            return raw if isinstance(raw, SecretStr) else SecretStr(str(raw))
        if kind.startswith("bool"):
            return raw if isinstance(raw, bool) else str(raw).strip().lower() in {"1", "true", "yes", "on"}
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{label} must be a {kind.split()[0]}, got {raw!r}") from None
    return str(raw)


_URL_PASSWORD = re.compile(
    r"^(?P<head>[a-z][a-z0-9+.-]*://[^/@:]*:)(?P<password>[^/@]+)(?P<tail>@.*)$", re.I | re.S
)


def redact_url(value: str) -> str:
    """A URL with its password masked (``redis://:s3cret@host:6379/0`` -> ``redis://:****@host:6379/0``):
    a Redis URL carries its password, and is printed where the other secrets are masked."""
    match = _URL_PASSWORD.match(value)
    return f"{match['head']}****{match['tail']}" if match else value


def describe(settings: Settings) -> list[tuple[str, str, str, str]]:
    """Rows of (setting, environment variable, value, origin), secrets masked, for `bookwarm config`."""
    rows = []
    for section, cls in SECTIONS.items():
        obj = getattr(settings, section)
        for f in fields(cls):
            value = getattr(obj, f.name)
            shown = (
                ("(set)" if value else "(unset)")
                if f.metadata["secret"]
                else ("" if value is None else redact_url(str(value)))
            )
            rows.append(
                (
                    f"{section}.{f.name}",
                    env_name(section, f.name),
                    shown,
                    settings.origins.get(f"{section}.{f.name}", ""),
                )
            )
    return rows
