"""A progress listener that fails is dropped, logged, and the batch that notified it goes on."""

from __future__ import annotations

import logging

import pytest

from bookwarm.warming.outcome import AuthorOutcome
from bookwarm.warming.progress import notify, subscribe


def test_a_failing_listener_is_dropped_and_the_others_still_hear(caplog: pytest.LogCaptureFixture) -> None:
    heard: list[str] = []
    broken_calls: list[str] = []

    def broken(job_id: str, outcome: AuthorOutcome) -> None:
        broken_calls.append(outcome.key)
        raise BrokenPipeError("the terminal went away")

    def display(job_id: str, outcome: AuthorOutcome) -> None:
        heard.append(outcome.key)

    forget = [subscribe(broken), subscribe(display)]
    try:
        with caplog.at_level(logging.WARNING, logger="bookwarm"):
            for key in ("neil-gaiman", "terry-pratchett"):
                notify("job-1", AuthorOutcome(key.replace("-", " ").title(), key, 0, "warmed"))
    finally:
        for unsubscribe in forget:
            unsubscribe()  # the broken one was dropped already: forgetting it again is no error
            unsubscribe()
    assert heard == ["neil-gaiman", "terry-pratchett"]
    assert broken_calls == ["neil-gaiman"]  # dropped after its failure
    assert sum("progress listener failed" in r.getMessage() for r in caplog.records) == 1
    notify("job-1", AuthorOutcome("Ursula Le Guin", "ursula-le-guin", 0, "warmed"))
    assert heard == ["neil-gaiman", "terry-pratchett"]  # both forgotten
