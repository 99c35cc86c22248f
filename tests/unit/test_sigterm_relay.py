"""The SIGTERM relay (bookwarm.warming.stop.sigterm_stops_jobs) is the process's: jobs that run
together enter and leave it out of order, and each hears a SIGTERM while it is in."""

from __future__ import annotations

import asyncio
import signal
import socket

from bookwarm.warming.stop import forget, sigterm_stops_jobs, stop_signal


def test_blocks_that_overlap_out_of_order_share_one_relay_and_restore_the_wakeup_fd() -> None:
    heard: list[str] = []
    keeper, spare = socket.socketpair()  # a wakeup fd someone else installed before the jobs
    spare.setblocking(False)
    keeper.setblocking(False)
    before_handler = signal.signal(signal.SIGTERM, lambda *_: None)  # the C handler still writes the fd
    before_fd = signal.set_wakeup_fd(keeper.fileno())

    async def scenario() -> None:
        first = sigterm_stops_jobs(lambda: heard.append("first"))
        second = sigterm_stops_jobs(lambda: heard.append("second"))
        await first.__aenter__()
        await second.__aenter__()
        job = stop_signal("relay-job")
        await first.__aexit__(None, None, None)  # the first job ends while the second runs
        signal.raise_signal(signal.SIGTERM)
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.01)
        await second.__aexit__(None, None, None)
        assert (job.status, job.why) == ("interrupted", "stopped by SIGTERM")

    try:
        asyncio.run(scenario())
        assert heard == ["second"]  # the job still in heard it; the one gone did not
        assert signal.set_wakeup_fd(-1) == keeper.fileno()  # what was there before is back
        assert spare.recv(16) == bytes([signal.SIGTERM])  # and heard the signal, passed on
    finally:
        forget("relay-job")
        signal.set_wakeup_fd(before_fd)
        signal.signal(signal.SIGTERM, before_handler)
        keeper.close()
        spare.close()
