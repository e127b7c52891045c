"""The relay's retry schedule: exponential back-off with jitter, bounded by the retry window."""

from __future__ import annotations

import statistics

from flowdesk.config import Settings
from flowdesk.notifications.relay import RetryPolicy


def test_the_back_off_doubles_up_to_the_cap_within_the_jitter() -> None:
    policy = RetryPolicy(30, 3600)
    for attempts in range(0, 12):
        raw = min(30 * 2 ** max(attempts - 1, 0), 3600)
        samples = [policy.delay(attempts) for _ in range(500)]
        assert all(raw * 0.8 <= s <= raw * 1.2 for s in samples), raw
        # Jitter around the doubled value, spread over most of the ±20%.
        assert abs(statistics.mean(samples) - raw) <= raw * 0.04
        assert max(samples) - min(samples) >= raw * 0.3
    # Fractions of a second when the base is (tests); no overflow, however many attempts.
    assert 0.04 <= RetryPolicy(0.05, 0.2).delay(1) <= 0.06
    assert 48 <= RetryPolicy(1, 60).delay(5000) <= 72


def retry_times(policy: RetryPolicy, window: float) -> list[float]:
    """When each attempt of a delivery that always fails is made, as the relay schedules them:
    the first at once, then after each the policy's delay, until a retry would come after the
    delivery's deadline (it fails then)."""
    times = [0.0]
    while True:
        next_at = times[-1] + policy.delay(len(times))
        if next_at > window:
            return times
        times.append(next_at)


def test_the_default_back_off_makes_about_thirty_attempts_in_a_day() -> None:
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    policy = RetryPolicy(
        defaults["delivery_retry_base_seconds"], defaults["delivery_retry_max_seconds"]
    )
    assert (policy.base_seconds, policy.max_seconds) == (30, 3600)
    window = defaults["delivery_retry_hours"] * 3600
    counts = [len(retry_times(policy, window)) for _ in range(300)]
    # Without jitter: 0, 30, 90, ... 3810 s (8 attempts), then hourly up to 86400 s (22).
    assert 28.5 <= statistics.mean(counts) <= 31.5
    # The jitter's extremes bound it: all delays 20% longer (26) or shorter (36).
    assert all(26 <= c <= 36 for c in counts)
