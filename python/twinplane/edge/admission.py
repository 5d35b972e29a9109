"""Admission control for the DMI server: a token bucket instead of EdgeCore's 1 call/s limiter.

EdgeCore shares one limiter of 1 request per second (burst 100) between all DMI calls of a
node. twinplane admits calls from a configurable budget with a high default; a call over the
budget is answered at once with ``RESOURCE_EXHAUSTED`` (never queued, never a hang) and counted.
"""

from __future__ import annotations

import time


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` saved up.

    Not thread-safe; it is used from the event loop only.

    Args:
        rate: Tokens added per second (0 or less: unlimited).
        burst: The most tokens that can be saved up (at least 1).
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._last = time.monotonic()
        self.admitted = 0
        self.rejected = 0

    def try_acquire(self, n: int = 1) -> bool:
        """Takes ``n`` tokens if available; returns whether the call is admitted."""
        if self.rate <= 0:
            self.admitted += 1
            return True
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= n:
            self._tokens -= n
            self.admitted += 1
            return True
        self.rejected += 1
        return False
