"""`bookwarm warm FILE`, `bookwarm upload FILE`, `bookwarm warm-authors NAME...`, `bookwarm redrive JOB_ID`,
`bookwarm resume JOB_ID`.

A local file is checked here, then uploaded into the bucket's uploads prefix, and the run reads it
from there by its s3:// URI: the same way a deployment run from the UI or REST API reads one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bookwarm.cli.output import print_json, print_table
from bookwarm.deadline import within
from bookwarm.errors import BookwarmError, InputError, JobStopped, ParseError, ServiceError
from bookwarm.keys import Keys
from bookwarm.parsing.ingest import parse_library
from bookwarm.parsing.llm import GeminiFallback
from bookwarm.settings import Settings, resolve

if TYPE_CHECKING:  # Prefect is imported where a flow runs: the CLI's other commands start faster
    from prefect import Flow
    from prefect.states import State

    AsyncFlow = Flow[..., Coroutine[Any, Any, Any]]


def add_parser(sub: argparse._SubParsersAction) -> None:
    warm = sub.add_parser("warm", help="warm the cache for every author in a library export (and co-authors)")
    warm.add_argument("file", help="library export (uploaded first), or the s3:// URI of an upload")
    warm.add_argument("--max-depth", type=int, default=2, help="co-author levels, 1-3 (default 2)")
    warm.add_argument("--force", action="store_true", help="re-warm authors that are still fresh")
    warm.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    warm.add_argument(
        "--shard-size",
        type=int,
        default=None,
        help="authors per shard (default 1,000; a shard is one run on a worker)",
    )
    warm.set_defaults(handler=run_warm)

    upload = sub.add_parser(
        "upload", help="put a library export into the uploads prefix; prints its s3:// URI"
    )
    upload.add_argument("file")
    upload.set_defaults(handler=run_upload)

    authors = sub.add_parser("warm-authors", help="warm the named authors (and their co-authors)")
    authors.add_argument("names", nargs="+")
    authors.add_argument("--max-depth", type=int, default=1, help="co-author levels, 0-3 (default 1)")
    authors.add_argument("--force", action="store_true")
    authors.add_argument("--json", action="store_true")
    authors.set_defaults(handler=run_warm_authors)

    demand = sub.add_parser(
        "warm-demand", help="warm what readers asked for and missed, or found stale (most-missed first)"
    )
    demand.add_argument(
        "--max-authors", type=int, default=None, help="authors this run warms at most (default 500)"
    )
    demand.add_argument("--max-depth", type=int, default=0, help="co-author levels, 0-3 (default 0)")
    demand.add_argument("--json", action="store_true")
    demand.set_defaults(handler=run_warm_demand)

    refresh = sub.add_parser(
        "refresh",
        help="re-warm the cached authors OpenLibrary changed (its change feed, since the checkpoint)",
    )
    refresh.add_argument("--since", default=None, help="read from this UTC day (YYYY-MM-DD) instead")
    refresh.add_argument("--json", action="store_true")
    refresh.set_defaults(handler=run_refresh)

    redrive = sub.add_parser("redrive", help="re-run a job's dead letters")
    redrive.add_argument("job_id")
    redrive.add_argument("--json", action="store_true")
    redrive.set_defaults(handler=run_redrive)

    resume = sub.add_parser("resume", help="finish a job that was interrupted or cancelled")
    resume.add_argument("job_id")
    resume.add_argument("--json", action="store_true")
    resume.set_defaults(handler=run_resume)


def run_warm(args: argparse.Namespace) -> int:
    check_depth(args.max_depth, low=1)
    extra = {}
    if getattr(args, "shard_size", None) is not None:
        if not 1 <= args.shard_size <= 10_000:
            raise InputError(f"--shard-size must be between 1 and 10000, got {args.shard_size}")
        extra["shard_size"] = args.shard_size
    if args.file.startswith("s3://"):
        return run_flow(
            "warm_library", args.json, source=args.file, max_depth=args.max_depth, force=args.force, **extra
        )
    path = Path(args.file)
    _check_locally(path)
    from bookwarm.cli.runtime_env import prepare_flow_runtime

    settings = prepare_flow_runtime()
    source = _upload(path, settings)
    return run_flow(
        "warm_library",
        args.json,
        settings,
        source=source,
        max_depth=args.max_depth,
        force=args.force,
        **extra,
    )


def run_upload(args: argparse.Namespace) -> int:
    from bookwarm.runtime import load_settings

    path = Path(args.file)
    _check_locally(path)
    print(_upload(path, load_settings(start_services=True)))
    return 0


def _check_locally(path: Path) -> None:
    """Bad input fails here, in one line, before any server starts. Files that need Gemini are only
    checked for a key here: the flow makes the (paid) calls once."""
    settings = resolve()
    try:
        parse_library(
            path,
            max_bytes=int(settings.ingest.max_upload_mb * 1024 * 1024),
            max_authors=settings.ingest.max_job_authors,
        )
    except ParseError as exc:
        if "no recognisable author column" not in str(exc) and "not a readable" not in str(exc):
            raise
        GeminiFallback(settings.gemini)  # raises ConfigError (exit 2) when no key is configured


def _upload(path: Path, settings: Settings) -> str:
    from bookwarm.cache.objectstore import ObjectStore
    from bookwarm.sources import upload_file

    store = ObjectStore(settings.s3)
    try:
        store.ensure_bucket()
        return upload_file(
            path, store, settings.ingest.uploads_prefix, int(settings.ingest.max_upload_mb * 1024 * 1024)
        )
    finally:
        store.close()


def run_warm_authors(args: argparse.Namespace) -> int:
    from flows.params import MAX_NAMES, checked_name

    check_depth(args.max_depth, low=0)
    if len(args.names) > MAX_NAMES:
        raise InputError(f"at most {MAX_NAMES} names a run (BOOKWARM_MAX_NAMES), got {len(args.names)}")
    for name in args.names:
        checked_name(name)
    return run_flow(
        "warm_popular_authors", args.json, names=args.names, max_depth=args.max_depth, force=args.force
    )


def run_warm_demand(args: argparse.Namespace) -> int:
    check_depth(args.max_depth, low=0)
    if args.max_authors is not None and not 1 <= args.max_authors <= 100_000:
        raise InputError(f"--max-authors must be between 1 and 100000, got {args.max_authors}")
    return run_flow("warm_demand", args.json, max_authors=args.max_authors, max_depth=args.max_depth)


def run_refresh(args: argparse.Namespace) -> int:
    from datetime import date

    if args.since is not None:
        try:
            date.fromisoformat(args.since)
        except ValueError:
            raise InputError(f"--since must be a day as YYYY-MM-DD, got {args.since[:20]!r}") from None
    return run_flow("refresh", args.json, since=args.since)


def run_redrive(args: argparse.Namespace) -> int:
    return run_flow("redrive", args.json, job_id=args.job_id)


def run_resume(args: argparse.Namespace) -> int:
    return run_flow("resume", args.json, job_id=args.job_id)


def check_depth(value: int, *, low: int) -> None:
    if not low <= value <= 3:
        raise InputError(f"--max-depth must be between {low} and 3, got {value}")


def run_flow(flow_name: str, as_json: bool, settings: Settings | None = None, **parameters: Any) -> int:
    from bookwarm.cli.progress import ProgressBar
    from bookwarm.cli.runtime_env import log_to_file, prepare_flow_runtime
    from bookwarm.warming.progress import subscribe
    from bookwarm.warming.stop import jobs_here, on_stopped

    # Prefect is imported only after the runtime's settings are in the environment: it configures its
    # logging on import, and imported first it put a line per task run on every job's run page.
    settings = settings or prepare_flow_runtime()
    import httpx
    from prefect.exceptions import PrefectHTTPStatusError, TerminationSignal

    from flows import redrive, refresh, resolve_review, resume, warm_demand, warm_library, warm_popular

    flows: dict[str, AsyncFlow] = {
        "warm_library": warm_library.warm_library,
        "warm_popular_authors": warm_popular.warm_popular_authors,
        "redrive": redrive.redrive,
        "resume": resume.resume,
        "resolve_review": resolve_review.resolve_review,
        "warm_demand": warm_demand.warm_demand,
        "refresh": refresh.refresh,
    }
    flow = flows[flow_name]
    log_to_file()
    bar = ProgressBar(settings.redis.url, Keys(settings.redis.key_prefix))
    unsubscribe = subscribe(bar)

    def stopped(job_id: str, status: str, summary: dict[str, Any]) -> None:
        """The Prefect API is gone: the job's record is written, so say so and exit now, without
        waiting on the engine's retries to an API that is not there."""
        bar.close()
        if as_json:  # the partial summary, as on every other stop
            print_json(summary)
        left = summary.get("authors_not_started", 0)
        print(
            f"bookwarm: error: job {job_id} {status}: the Prefect API was lost; authors not started: "
            f"{left} (claims released); `bookwarm resume {job_id}` finishes it once the server is back",
            file=sys.stderr,
            flush=True,
        )
        sys.stdout.flush()
        logging.shutdown()
        os._exit(1)

    forget_stopped = on_stopped(stopped)
    sigterms: list[bool] = []
    try:
        state = run_to_state(flow, on_sigterm=lambda: sigterms.append(True), **parameters)
    except (PrefectHTTPStatusError, httpx.HTTPError) as exc:  # the API failed the run's creation or start
        logging.getLogger("bookwarm").warning("the Prefect API failed the run", exc_info=True)
        started = jobs_here()
        raise ServiceError(
            f"the Prefect API failed {'job ' + started[-1] if started else 'the run before its job started'}: "
            f"{_http_failure(exc)}" + (f"; `bookwarm resume {started[-1]}` finishes it" if started else "")
        ) from None
    except (TerminationSignal, KeyboardInterrupt) as exc:
        # SIGTERM (raised by Prefect's handler) or Ctrl-C: the job's record is written by now
        # (interrupted, claims released); say which job, and how to finish it, in one line.
        bar.close()
        why = "stopped by SIGTERM" if isinstance(exc, TerminationSignal) else "stopped by Ctrl-C"
        ids = jobs_here()
        if not ids:
            raise BookwarmError(f"{why} before its job started") from None
        if _completed(settings, ids[-1]):  # it came as the job ended
            raise BookwarmError(_completed_then_stopped(ids[-1], why)) from None
        raise BookwarmError(
            f"job {ids[-1]} interrupted: {why}; `bookwarm resume {ids[-1]}` finishes it"
        ) from None
    finally:
        forget_stopped()
        unsubscribe()
        bar.close()
    if sigterms and (ids := jobs_here()) and _completed(settings, ids[-1]):
        # A SIGTERM that came as the job ended, however the engine's report of the end came out of it
        # (seen: the run Completed with its result, or Failed when the signal's TerminationSignal
        # unwound through anyio's cancel scopes): the job's record holds the truth, as when the
        # signal is raised out of the run (above) or the run's result is missing (_completed_summary).
        raise BookwarmError(_completed_then_stopped(ids[-1], "stopped by SIGTERM"))
    if state.is_cancelled():
        raise BookwarmError(state.message or "the job was cancelled")
    if state.is_failed():
        started = jobs_here()
        job_id = started[-1] if started else None
        if as_json and job_id:
            print_json(_partial_summary(settings, job_id))
        raise_flow_failure(state, job_id)
    summary = _completed_summary(state, settings, bool(sigterms))
    if as_json:
        print_json(summary)
    else:
        from bookwarm.warming.jobs import summary_rows

        print_table(("", ""), summary_rows(summary))
        if summary.get("job_id"):
            print(f"\nDetails: bookwarm status {summary.get('job_id')}")
    if summary.get("authors_failed"):
        print(
            f"bookwarm: {summary['authors_failed']} authors failed (dead letters, with reasons: "
            f"`bookwarm status {summary.get('job_id')}`); `bookwarm redrive {summary.get('job_id')}` retries them",
            file=sys.stderr,
        )
        return 1
    return 0


def _completed(settings: Settings, job_id: str) -> bool:
    """Whether the job's record reads completed: what a stop that came as it ended is judged by."""
    return (_job_record(settings, job_id) or {}).get("status") == "completed"


def _completed_then_stopped(job_id: str, why: str, status: str = "completed") -> str:
    """The one line for a stop that came as the job ended: it needs no resume (which would refuse)."""
    return f"job {job_id} {status}; {why} came as it ended (`bookwarm status {job_id}`)"


def _http_failure(exc: Exception) -> str:
    """One line for an HTTP failure of the Prefect API: status, method and path, no body."""
    try:  # httpx raises RuntimeError for a request or response an error was not given
        request, response = getattr(exc, "request", None), getattr(exc, "response", None)
    except RuntimeError:
        request = response = None
    if response is not None and request is not None:
        return f"HTTP {response.status_code} on {request.method} {request.url.path}"
    return type(exc).__name__


def _completed_summary(state: State[Any], settings: Settings, got_sigterm: bool) -> dict[str, Any]:
    """The summary a completed run returned. A SIGTERM that lands while Prefect's engine reports
    the end makes the engine propose Crashed, which the server refuses (the run is Completed) and
    answers with its own state, without the run's return value: the job's record holds the truth."""
    from prefect.exceptions import MissingResult

    from bookwarm.warming.jobs import summary as summary_of
    from bookwarm.warming.stop import jobs_here

    try:
        result: dict[str, Any] = state.result()
        return result
    except MissingResult:
        ids = jobs_here()
        if not ids:
            raise BookwarmError(f"the run ended {state.name} without its summary") from None
        record = _job_record(settings, ids[-1]) or {}
        if got_sigterm:
            raise BookwarmError(
                _completed_then_stopped(ids[-1], "stopped by SIGTERM", record.get("status", "ended"))
            ) from None
        return {**summary_of(record or {"job_id": ids[-1]}), "job_id": ids[-1]}


def run_to_state(
    flow: AsyncFlow, on_sigterm: Callable[[], None] | None = None, **parameters: Any
) -> State[Any]:
    """Run an async flow to its final state. Prefect types the call as an ``Awaitable``, where
    ``asyncio.run`` wants a coroutine. A SIGTERM meanwhile stops the job as interrupted, however
    Prefect's handler raised it (``sigterm_stops_jobs``); ``on_sigterm`` hears of it too."""

    from bookwarm.cli.event_loop import run_to_end
    from bookwarm.cli.main import hand_sigterm_to_prefect
    from bookwarm.task_dump import dump_tasks_on_sigusr1
    from bookwarm.warming.stop import sigterm_stops_jobs

    async def run() -> State[Any]:
        dump_tasks_on_sigusr1(asyncio.get_running_loop())
        async with sigterm_stops_jobs(on_sigterm):
            state: State[Any] = await flow(**parameters, return_state=True)
        return state

    hand_sigterm_to_prefect()
    return run_to_end(run())  # asyncio.run, but a SIGTERM in the loop's own step cannot hang its end


def raise_flow_failure(state: Any, job_id: str | None = None) -> None:
    """Re-raise the run's own bookwarm error (its exit code and one-line message); wrap anything else.
    A job that had started is named, with the command that finishes it."""
    message = state.message or "flow run failed"
    try:
        state.result()
    except (InputError, JobStopped):  # bad input never started a job; a stopped one says how to go on
        raise
    except BookwarmError as exc:
        if job_id:
            exc.args = (
                f"job {job_id} failed: {exc}; `bookwarm resume {job_id}` finishes it once that is fixed",
            )
        raise
    except Exception as exc:
        if job_id:
            message = f"job {job_id} failed: {message}"
        raise BookwarmError(
            f"{message}: {type(exc).__name__}: {exc}"
            + (f"; `bookwarm resume {job_id}` finishes it" if job_id else "")
        ) from None
    raise BookwarmError(message)


def _partial_summary(settings: Settings, job_id: str) -> dict[str, Any]:
    """What the job's record holds when it failed (Redis may be what failed: then its id and status)."""
    from bookwarm.warming.jobs import summary

    record = _job_record(settings, job_id)
    return {**summary(record or {"job_id": job_id}), "job_id": job_id, "status": "failed"}


def _job_record(settings: Settings, job_id: str) -> dict[str, Any] | None:
    """The job's record, or None when Redis does not answer within 5 s."""
    from bookwarm.cache.redis_client import make_redis
    from bookwarm.warming.jobs import JobStore

    async def read() -> dict[str, Any] | None:
        client = make_redis(settings.redis.url, ride_out_s=settings.redis.ride_out_s)
        try:
            jobs = JobStore(client, Keys(settings.redis.key_prefix), settings.redis.job_ttl_s)
            return await within(jobs.get(job_id), 5.0)
        finally:
            await client.aclose()

    try:
        return asyncio.run(read())
    except Exception:
        return None
