"""SIGTERM that reaches a flow's outermost scope: Prefect's engine restores the handler it found and
sends the signal again. Over SIG_DFL that killed the CLI silently (exit -15, no line), a race the
job-stop tests met under load; over bookwarm's handler it is TerminationSignal again, which the CLI
reports in one line. A real flow on a real Prefect server, in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from prefect import flow
    from prefect.exceptions import TerminationSignal
    from bookwarm.cli.main import hand_sigterm_to_prefect

    @flow
    def signalled():
        os.kill(os.getpid(), signal.SIGTERM)  # lands in the flow's own frame, outside any job's code
        signal.pause()

    hand_sigterm_to_prefect()
    try:
        signalled()
    except TerminationSignal:
        print("caught", flush=True)
        sys.exit(3)
    """
)


def test_a_sigterm_leaving_the_outermost_flow_reaches_the_cli_as_termination(
    prefect_api: str, tmp_path
) -> None:
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_LOGGING_LEVEL": "ERROR"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 3 and "caught" in done.stdout, (done.returncode, done.stderr[-2000:])
