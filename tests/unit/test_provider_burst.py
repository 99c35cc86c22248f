"""OpenLibrary's limit is nginx's limit_req (3 r/s, burst 25): the fake server models it as a leaky
bucket, and the limiter spaces OpenLibrary's calls at 1/rate (+2 %) when a burst absorbs lateness."""

from __future__ import annotations

import pytest

from bookwarm.keys import Keys
from bookwarm.providers.fake.server import RateWindow
from bookwarm.providers.limits import RedisLimiter
from bookwarm.settings import resolve


def test_a_strict_window_refuses_the_fourth_call_in_a_second():
    window = RateWindow()
    assert [window.allow(3.0, t) for t in (0.0, 0.1, 0.2, 0.3)] == [True, True, True, False]
    assert window.allow(3.0, 1.01)


def test_a_bucket_with_a_burst_lets_the_burst_through_then_the_rate():
    window = RateWindow()
    at_once = [window.allow(3.0, 0.0, burst=25) for _ in range(30)]
    assert at_once.count(True) == 26  # one at the rate, 25 above it
    assert not window.allow(3.0, 0.3, burst=25)  # not drained yet
    assert window.allow(3.0, 0.34, burst=25)  # one slot (1/3 s) later, one more


def test_a_bucket_never_refuses_calls_at_the_rate_however_late_some_are():
    window = RateWindow()
    times = [i / 3.0 for i in range(300)]
    times[50:60] = [times[60]] * 10  # ten calls held back and sent at once with the next
    assert all(window.allow(3.0, t, burst=25) for t in sorted(times))


class _NoRedis:
    def register_script(self, script):
        return None


def test_the_limiter_spaces_slots_at_the_rate_only_where_a_burst_absorbs_lateness():
    strict = RedisLimiter(_NoRedis(), Keys(), "openlibrary", rate_per_s=3.0)
    bursty = RedisLimiter(_NoRedis(), Keys(), "openlibrary", rate_per_s=3.0, burst=25)
    assert strict.interval_us == pytest.approx(433_333, abs=1)  # 3 slots + two send allowances per second
    assert bursty.interval_us == 340_000  # 1/rate + 2 %: within 1.02x of OpenLibrary's bound
    assert bursty.late_s == pytest.approx(12 / 3.0)


def test_openlibrary_s_burst_is_its_documented_25_and_configurable():
    assert resolve({}).openlibrary.burst == 25
    assert resolve({}).isbndb.burst == 0
    assert resolve({"BOOKWARM_OPENLIBRARY_BURST": "0"}).openlibrary.burst == 0
