"""How late a rate-limited call may leave: the excess of N slots over one second (no sockets)."""

from __future__ import annotations

import pytest

from bookwarm.providers.limits import late_tolerance_s


@pytest.mark.parametrize(
    ("rate", "interval_us", "expected_s"),
    [
        (1.0, 1_035_000, 0.035),  # ISBNdb basic: 1 slot of 1.035 s per window
        (3.0, 355_000, 0.065),  # OpenLibrary: 3 slots span 1.065 s
        (10.0, 117_000, 0.170),  # Google Books
        (0.5, 2_055_000, 0.055),  # below one a second: neighbours stay 1/rate apart
        (2.5, 423_000, 0.023),  # fractional: 2 slots span 0.846 s, so the per-slot slack is what holds
        (0.0, 0, 0.0),  # no limit
    ],
)
def test_tolerance_keeps_every_one_second_window_within_the_rate(rate, interval_us, expected_s):
    assert late_tolerance_s(rate, interval_us) == pytest.approx(expected_s, abs=1e-9)
