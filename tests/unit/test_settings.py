from dataclasses import fields

import pytest

from blocks.bookwarm_blocks import BLOCK_NAMES
from bookwarm.errors import ConfigError
from bookwarm.settings import SECTIONS, describe, env_name, redact_url, resolve

REQUIRED_ENV = [
    "BOOKWARM_REDIS_URL",
    "BOOKWARM_S3_ENDPOINT",
    "BOOKWARM_S3_ACCESS_KEY",
    "BOOKWARM_S3_SECRET_KEY",
    "BOOKWARM_S3_BUCKET",
    "BOOKWARM_OPENLIBRARY_URL",
    "BOOKWARM_GOOGLE_BOOKS_URL",
    "BOOKWARM_GOOGLE_BOOKS_API_KEY",
    "BOOKWARM_ISBNDB_URL",
    "BOOKWARM_ISBNDB_API_KEY",
    "BOOKWARM_GEMINI_URL",
    "BOOKWARM_GEMINI_API_KEY",
]


def test_the_documented_environment_names_exist():
    names = {env_name(section, f.name) for section, cls in SECTIONS.items() for f in fields(cls)}
    assert set(REQUIRED_ENV) <= names


def test_block_beats_env_beats_local_services_beats_default():
    env = {"BOOKWARM_REDIS_URL": "redis://env:1/0", "BOOKWARM_S3_ENDPOINT": "env:9000"}
    local = {
        "BOOKWARM_REDIS_URL": "redis://local:2/0",
        "BOOKWARM_S3_ENDPOINT": "local:9000",
        "BOOKWARM_S3_ACCESS_KEY": "local-key",
    }
    blocks = {"redis": {"url": "redis://block:3/0"}}
    s = resolve(env, blocks, local)
    assert s.redis.url == "redis://block:3/0" and s.origins["redis.url"] == "block:redis"
    assert s.s3.endpoint == "env:9000" and s.origins["s3.endpoint"] == "env:BOOKWARM_S3_ENDPOINT"
    assert s.s3.access_key == "local-key" and s.origins["s3.access_key"] == "local services"
    assert s.s3.bucket == "bookwarm" and s.origins["s3.bucket"] == "default"


def test_provider_defaults_are_the_real_api_roots_and_limits():
    s = resolve({})
    assert s.openlibrary.base_url == "https://openlibrary.org"
    assert s.google_books.base_url == "https://www.googleapis.com/books/v1"
    assert s.isbndb.base_url == "https://api2.isbndb.com"
    assert (s.openlibrary.rate_per_s, s.isbndb.rate_per_s) == (3.0, 1.0)


def test_secrets_are_masked_everywhere_they_are_shown():
    s = resolve({"BOOKWARM_ISBNDB_API_KEY": "sk-very-secret", "BOOKWARM_S3_SECRET_KEY": "s3-secret"})
    assert s.isbndb.api_key.get_secret_value() == "sk-very-secret"
    shown = repr(s) + str(describe(s))
    assert "sk-very-secret" not in shown and "s3-secret" not in shown


def test_bad_numbers_are_config_errors():
    with pytest.raises(ConfigError, match="BOOKWARM_OPENLIBRARY_RPS"):
        resolve({"BOOKWARM_OPENLIBRARY_RPS": "fast"})


@pytest.mark.parametrize("section", sorted(BLOCK_NAMES))
def test_block_fields_match_settings_fields(section):
    block_cls, _ = BLOCK_NAMES[section]
    assert set(block_cls.model_fields) == {f.name for f in fields(SECTIONS[section])}


@pytest.mark.parametrize(
    "bucket", ["Bad_Bucket", "ab", "-bucket", "bucket-", "a..b", "x" * 64, "192.168.1.1"]
)
def test_an_invalid_bucket_name_is_a_config_error(bucket):
    with pytest.raises(ConfigError, match="not a valid bucket name"):
        resolve({"BOOKWARM_S3_BUCKET": bucket})


@pytest.mark.parametrize("bucket", ["bookwarm", "chaos-s3-restart", "my.bucket.1"])
def test_valid_bucket_names_pass(bucket):
    assert resolve({"BOOKWARM_S3_BUCKET": bucket}).s3.bucket == bucket


@pytest.mark.parametrize(
    "url, shown",
    [
        ("redis://:s3cret@cache.example:6379/0", "redis://:****@cache.example:6379/0"),
        ("rediss://app:s3cret@cache.example:6380/2", "rediss://app:****@cache.example:6380/2"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://user@cache.example/0", "redis://user@cache.example/0"),
    ],
)
def test_a_url_is_shown_with_its_password_masked(url, shown):
    assert redact_url(url) == shown
    rows = {row[0]: row[2] for row in describe(resolve({"BOOKWARM_REDIS_URL": url}))}
    assert rows["redis.url"] == shown


def test_prefect_retention_never_shorter_than_a_job_record() -> None:
    """A job's runs (its dead letters in the UI) must outlive its record, which redrive acts on."""
    settings = resolve({})
    assert settings.orchestration.prefect_run_retention_s >= settings.redis.job_ttl_s
    with pytest.raises(ConfigError, match=r"BOOKWARM_PREFECT_RUN_RETENTION_S .* BOOKWARM_JOB_TTL_S"):
        resolve({"BOOKWARM_JOB_TTL_S": "86400", "BOOKWARM_PREFECT_RUN_RETENTION_S": "86399"})
    with pytest.raises(ConfigError, match="over an hour"):
        resolve({"BOOKWARM_JOB_TTL_S": "60", "BOOKWARM_PREFECT_RUN_RETENTION_S": "3600"})
    assert resolve({"BOOKWARM_JOB_TTL_S": "86400", "BOOKWARM_PREFECT_RUN_RETENTION_S": "86400"})


def test_the_prefect_servers_clean_up_follows_the_settings() -> None:
    from bookwarm.services.retention import prefect_retention_env

    env = prefect_retention_env(
        resolve({"BOOKWARM_PREFECT_RUN_RETENTION_S": "900000", "BOOKWARM_PREFECT_EVENT_RETENTION_S": "7200"})
    )
    assert env["PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD"] == "900000"
    assert env["PREFECT_SERVER_EVENTS_RETENTION_PERIOD"] == "PT7200S"
    assert "flow_runs" in env["PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED"].split(",")
