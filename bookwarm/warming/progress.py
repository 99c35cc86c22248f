"""In-process listeners for finished authors (the CLI's progress bar). Runs in deployments have
none; the Prefect progress artifact and the job record serve them instead."""

from __future__ import annotations

from collections.abc import Callable

from bookwarm.warming.outcome import AuthorOutcome

Listener = Callable[[str, AuthorOutcome], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def notify(job_id: str, outcome: AuthorOutcome) -> None:
    for listener in list(_listeners):
        listener(job_id, outcome)
