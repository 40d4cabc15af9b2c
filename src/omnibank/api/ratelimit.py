"""An in-process token bucket per key (a token, a user, a client address)."""

from __future__ import annotations

import math
import threading
import time


class TokenBucket:
    """``rate_per_minute`` tokens a minute, up to ``burst`` saved up; ``take`` answers None (allowed) or
    the seconds to wait."""

    def __init__(self, rate_per_minute: int, burst: int | None = None, *, max_keys: int = 100_000):
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst or rate_per_minute)
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> int | None:
        moment = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, moment))
            tokens = min(self.burst, tokens + (moment - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, moment)
                if len(self._buckets) > self.max_keys:
                    self._prune(moment)
                return None
            self._buckets[key] = (tokens, moment)
            return max(1, math.ceil((1.0 - tokens) / self.rate))

    def _prune(self, moment: float) -> None:
        full = [k for k, (t, last) in self._buckets.items() if t + (moment - last) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
