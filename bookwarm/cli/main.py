"""Entry point: builds the argument parser from the command modules and maps errors to exit codes.

Exit codes: 0 success, 1 runtime failure (a service or provider), 2 bad input or configuration,
130 interrupted (Ctrl-C), 143 stopped by SIGTERM before a job started. Errors print one line, never
a traceback (set BOOKWARM_DEBUG=1 to get one).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from bookwarm.cli import (
    api_cmd,
    config_cmd,
    deploy_cmd,
    dump_cmd,
    enrich_cmd,
    parse_cmd,
    providers_cmd,
    read_cmd,
    review_cmd,
    services_cmd,
    warm_cmd,
    workers_cmd,
)
from bookwarm.errors import BookwarmError, CacheError, ConfigError, InputError, ServiceError

COMMANDS = (
    parse_cmd,
    warm_cmd,
    enrich_cmd,
    dump_cmd,
    read_cmd,
    api_cmd,
    review_cmd,
    services_cmd,
    providers_cmd,
    deploy_cmd,
    workers_cmd,
    config_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bookwarm", description="Warm a book-metadata cache from library exports."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


class Terminated(BaseException):
    """SIGTERM while a command starts (imports, services, parsing, an upload): one line, not a
    silent exit 143. A job's flow takes SIGTERM over once it runs (``hand_sigterm_to_prefect``)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def hand_sigterm_to_prefect() -> None:
    """Before a flow runs in this process: SIGTERM raises Prefect's own TerminationSignal, which
    the job's flow turns into its interrupted record and the CLI into one line naming the job.

    Not SIG_DFL: Prefect's engine installs its handler over the one it finds, and when the signal
    leaves the outermost flow engine it restores that handler and sends the signal again (so "the
    previous handler gets called as well"). Over SIG_DFL that killed the CLI silently (exit -15, no
    line) whenever the signal reached the flow's outermost scope, a race seen under load. Over
    this handler, the second delivery raises TerminationSignal again, and the CLI reports it."""
    from prefect.exceptions import TerminationSignal

    def raise_termination(signum: int, frame: object) -> None:
        raise TerminationSignal(signal=signum)

    signal.signal(signal.SIGTERM, raise_termination)


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        args = build_parser().parse_args(argv)
        return int(args.handler(args) or 0)
    except Terminated:
        print("bookwarm: stopped by SIGTERM (before any job started)", file=sys.stderr)
        return 143
    except (InputError, ConfigError) as exc:
        return _fail(exc, 2)
    except BookwarmError as exc:
        return _fail(exc, 1)
    except BrokenPipeError:  # `bookwarm parse x --json | head`: the reader left, that is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("bookwarm: interrupted", file=sys.stderr)
        return 130
    except BaseException as exc:  # SIGTERM after a flow ran, outside any job (hand_sigterm_to_prefect)
        if type(exc).__name__ != "TerminationSignal":
            raise
        print("bookwarm: stopped by SIGTERM", file=sys.stderr)
        return 143


def _fail(exc: Exception, code: int) -> int:
    if os.environ.get("BOOKWARM_DEBUG"):
        raise exc
    print(f"bookwarm: error: {exc}{_hint(exc)}", file=sys.stderr)
    return code


def _hint(exc: Exception) -> str:
    """What to do about a failing service, and where the details are."""
    from bookwarm.cli.runtime_env import LOG_FILE
    from bookwarm.services.local import default_home

    if not isinstance(exc, CacheError | ServiceError):
        return ""
    log = default_home() / LOG_FILE
    details = f"; details in {log}" if log.exists() else ""
    if "Prefect" in str(exc):  # the message says what to do already
        return f" ({details[2:]})" if details else ""
    service = (
        "Redis"
        if "Redis" in str(exc)
        else "the object store"
        if "object store" in str(exc)
        else "the service"
    )
    return f" (is {service} running? `bookwarm services up` starts the local ones{details})"


if __name__ == "__main__":
    sys.exit(main())
