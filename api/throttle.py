"""Sign-in throttling: so many attempts per account and per address in a sliding window.

A sliding window of timestamps rather than `aiolimiter`'s token bucket: a bucket paces
callers by making them wait, while sign-in must refuse at once and tell how long to wait
(Retry-After), per key, and forget a key after a success. Each attempt is counted before
the password is hashed, so concurrent guesses cannot all slip past the check, and the
Argon2 work an attacker can cause is bounded by the limits. In memory, per process: with
several API processes each counts on its own (the limits then multiply by their number).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class SlidingWindow:
    """At most `limit` events per key in any `seconds`; keeps at most `max_keys` keys
    (the least recently used are forgotten first, so memory stays bounded)."""

    def __init__(self, limit: int, seconds: float, *, max_keys: int = 50_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.seconds = seconds
        self.max_keys = max_keys
        self.clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            return deque()
        horizon = self.clock() - self.seconds
        while events and events[0] <= horizon:
            events.popleft()
        return events

    def retry_after(self, key: str) -> float:
        """Seconds until `key` may have another event; 0 when it may now."""
        events = self._recent(key)
        if len(events) < self.limit:
            return 0.0
        return max(events[-self.limit] + self.seconds - self.clock(), 0.001)

    def add(self, key: str) -> None:
        events = self._events.setdefault(key, deque())
        self._events.move_to_end(key)
        events.append(self.clock())
        while len(events) > self.limit:
            events.popleft()
        while len(self._events) > self.max_keys:
            self._events.popitem(last=False)

    def remove_last(self, key: str) -> None:
        events = self._events.get(key)
        if events:
            events.pop()

    def clear(self, key: str) -> None:
        self._events.pop(key, None)


class LoginThrottle:
    """Failed sign-ins per account (normalised name) and per client address."""

    def __init__(self, per_account: int, per_address: int, seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.accounts = SlidingWindow(per_account, seconds, clock=clock)
        self.addresses = SlidingWindow(per_address, seconds, clock=clock)

    def attempt(self, account: str, address: str) -> int:
        """Whole seconds to wait before trying again (0: go ahead, and this attempt counts
        as a failure until `succeeded` says otherwise)."""
        wait = max(self.accounts.retry_after(account), self.addresses.retry_after(address))
        if wait > 0:
            return math.ceil(wait)
        self.accounts.add(account)
        self.addresses.add(address)
        return 0

    def succeeded(self, account: str, address: str) -> None:
        self.accounts.clear(account)
        self.addresses.remove_last(address)
