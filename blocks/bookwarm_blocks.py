"""Block types. Field names equal those of ``bookwarm.settings`` (a test keeps them in step),
so a saved block is read by the same resolver as the environment."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class BookwarmRedis(Block):
    """Redis hot tier: where bibliographies live for hours and claims/limits are coordinated."""

    _block_type_name = "Bookwarm Redis"
    url: SecretStr = Field(
        description="redis://[:password@]host:port/db (rediss:// for TLS); secret, as it holds the password"
    )
    key_prefix: str = Field("", description="prefix of every key bookwarm writes")
    hot_ttl_s: int = Field(24 * 3600, description="TTL of author/ISBN/title entries, jittered")
    processed_ttl_s: int = Field(90 * 24 * 3600, description="how long a warmed author stays fresh")
    job_ttl_s: int = Field(7 * 24 * 3600, description="TTL of job records")
    negative_ttl_s: int = Field(6 * 3600, description="TTL of 'author unknown' entries")
    claim_ttl_s: int = Field(
        60, description="author claim lifetime; renewed while fetching, so a crash frees it fast"
    )
    job_heartbeat_s: float = Field(
        10.0, gt=0, description="a running job beats its record; after 3 missed beats it reads as interrupted"
    )
    prefect_grace_s: float = Field(
        30.0, gt=0, description="a job that cannot reach the Prefect API this long stops starting authors"
    )
    ride_out_s: float = Field(
        9.5, ge=0, description="every Redis call retries this long from the start of an outage (a restart)"
    )
    handover_patience_s: float = Field(
        15.5, ge=0, description="a job's hand-over points wait this long more for Redis before the job stops"
    )
    soft_ttl_s: int = Field(
        7 * 24 * 3600, ge=60, description="an author fetched longer ago is served marked stale and refreshed"
    )
    demand_keep_days: int = Field(7, ge=1, le=90, description="days of hourly demand buckets kept")


class BookwarmObjectStore(Block):
    """S3-compatible cold tier (MinIO, AWS S3, SeaweedFS)."""

    _block_type_name = "Bookwarm Object Store"
    endpoint: str = Field(description="host:port of the S3 API")
    access_key: str
    secret_key: SecretStr
    bucket: str = "bookwarm"
    secure: bool = Field(False, description="use TLS")
    region: str | None = None


class BookwarmProvider(Block):
    """One book provider (OpenLibrary, Google Books, ISBNdb): where, with which key, how fast."""

    _block_type_name = "Bookwarm Provider"
    base_url: str = Field(description="API root, e.g. https://openlibrary.org")
    api_key: SecretStr | None = None
    rate_per_s: float = Field(1.0, description="requests per second across all workers")
    daily_quota: int = Field(0, description="calls per UTC day, failed ones included; 0 = unlimited")
    timeout_s: float = 20.0
    max_pages: int = Field(
        1, description="page budget per author (Google Books, ISBNdb); OpenLibrary is never capped"
    )
    quota_share: float = Field(
        0.9, gt=0, le=1, description="share of the daily quota bookwarm spends; calls stop there"
    )
    counting: str = Field(
        "per_isbn", description="ISBNdb POST /books counted per_isbn (conservative) or per_request"
    )
    burst: int = Field(
        0,
        ge=0,
        description="calls let through above the rate before a 429 (OpenLibrary's nginx: 25); 0: none",
    )
    batch: int = Field(
        100, ge=1, description="OpenLibrary: authors per batched query; ISBNdb: ISBNs per POST /books call"
    )


class BookwarmGemini(Block):
    """Gemini, used only for library files no parsing rule understands."""

    _block_type_name = "Bookwarm Gemini"
    api_key: SecretStr | None = None
    model: str = "gemini-2.5-flash"
    base_url: str | None = None
    chunk_rows: int = Field(100, description="rows per call: small enough that no answer is truncated")
    concurrency: int = Field(4, description="calls in flight at once")
    max_rows: int = Field(20000, description="largest file (rows) sent to Gemini")
    max_tokens: int = Field(
        2000000, description="estimated tokens per file; refused before any call above it"
    )


class BookwarmOrchestration(Block):
    """Where shards run: in the job's process, or as deployment runs on a work pool's workers."""

    _block_type_name = "Bookwarm Orchestration"
    work_pool: str = Field("", description="work pool whose workers run shards; empty: in the job's process")
    shard_deployment: str = Field("warm-authors/warm-authors", description="the deployment shards run as")
    shard_lost_after_s: int = Field(
        90, ge=45, description="a shard run silent this long (heartbeats every 30 s) is marked Crashed"
    )
    shard_poll_s: float = Field(2.0, gt=0, description="how often a job reads its shard runs' states")
    cancel_wait_s: float = Field(
        60.0, gt=0, description="a cancelled job waits this long for its running shard runs to end"
    )
    shard_start_timeout_s: int = Field(
        120,
        ge=1,
        description="a shard run taken but not started this long is Crashed and run again; one waiting this "
        "long with no live worker on the pool stops the job",
    )
    author_retries: int = Field(3, ge=0, le=10, description="retries of an author for failures outside HTTP")
    author_retry_delay_s: float = Field(
        1.0, ge=0, description="first delay between an author's retries (doubles, plus jitter)"
    )
    prefect_run_retention_s: int = Field(
        8 * 24 * 3600,
        gt=3600,
        description="the local Prefect server deletes runs ended longer ago (at least the job records' TTL)",
    )
    prefect_event_retention_s: int = Field(
        3 * 24 * 3600, gt=3600, description="the local Prefect server deletes events older than this"
    )
    prefect_vacuum_batch: int = Field(
        200, ge=1, description="rows the server's clean-up deletes per transaction"
    )
    demand_max_authors: int = Field(500, ge=1, description="authors one warm-demand run warms at most")
    demand_openlibrary_share: float = Field(
        0.1, gt=0, le=1, description="share of a day's OpenLibrary calls warm-demand runs may spend"
    )


class BookwarmApi(Block):
    """The read API's keys and limits, shared by every API process and machine."""

    _block_type_name = "Bookwarm API"
    key_hashes: SecretStr | None = Field(
        None, description="SHA-256 hex digests of the API keys, comma-separated (`bookwarm api --new-key`)"
    )
    reads_need_key: bool = Field(False, description="reads need an API key too (writes always do)")
    client_rps: float = Field(
        50.0, ge=0, description="requests a second one client may make, per process (0: off)"
    )
    client_burst: int = Field(100, ge=1, description="requests one client may make at once above its rate")
    live_share: float = Field(
        0.34, gt=0, le=1, description="share of OpenLibrary's rate live fetches may take"
    )
    live_wait_s: float = Field(
        2.0, gt=0, le=10, description="how long a read waits for a live fetch before 202"
    )
    cold_read_s: float = Field(
        3.0, gt=0, le=60, description="how long a read waits for the object store before a 503"
    )
    live_daily_calls: int = Field(20_000, ge=0, description="OpenLibrary calls live fetches make a UTC day")


# settings section -> (block class, saved block name)
BLOCK_NAMES: dict[str, tuple[type[Block], str]] = {
    "redis": (BookwarmRedis, "bookwarm-redis"),
    "s3": (BookwarmObjectStore, "bookwarm-s3"),
    "openlibrary": (BookwarmProvider, "bookwarm-openlibrary"),
    "google_books": (BookwarmProvider, "bookwarm-google-books"),
    "isbndb": (BookwarmProvider, "bookwarm-isbndb"),
    "gemini": (BookwarmGemini, "bookwarm-gemini"),
    "orchestration": (BookwarmOrchestration, "bookwarm-orchestration"),
    "api": (BookwarmApi, "bookwarm-api"),
}
