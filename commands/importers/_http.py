"""HTTP plumbing shared by the remote sources: one httpx client per source, a
token bucket for request rate, retries with backoff (tenacity), capped streaming downloads,
https enforcement on every hop (redirects included) and scrubbing secrets out of error text."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

import httpx
import tenacity

from commands.importers.base import PhotoTooLarge, SourceError, SourceUnavailable

USER_AGENT = "facesearch-importer/0.1 (+self-hosted face search)"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
MAX_REDIRECTS = 5


class Busy(Exception):
    """A transient refusal worth another try: a transport error, 429, 5xx, VK's flood codes.
    `rate_limited` says the service itself asked to slow down."""

    def __init__(self, reason: str, *, rate_limited: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rate_limited = rate_limited


def retrying(
    retries: int,
    backoff_seconds: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[Busy, float], None] | None = None,
) -> tenacity.Retrying:
    """Retries a call that raised `Busy` up to `retries` times, waiting `backoff_seconds`,
    then twice as long each time; the last `Busy` propagates. `on_retry(busy, wait)` runs
    before each wait (counting, logging)."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None and state.next_action is not None:
            error = state.outcome.exception()
            assert isinstance(error, Busy)
            on_retry(error, state.next_action.sleep)

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(retries + 1),
        wait=tenacity.wait_exponential(multiplier=backoff_seconds, min=0),
        retry=tenacity.retry_if_exception_type(Busy),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


class TokenBucket:
    """At most `rate` acquisitions per second on average, bursts up to `capacity`.

    With capacity 1 (the default) calls are spaced 1/rate apart, so no one-second
    window ever holds more than `rate` of them. Thread-safe; sleeps outside the lock.
    Our own rather than aiolimiter's: the sources run in worker threads, and aiolimiter
    paces asyncio tasks only.
    """

    def __init__(
        self,
        rate: float,
        capacity: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("rate must be > 0 and capacity >= 1")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._tokens = capacity
        self._updated = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, waiting for it if needed; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1.0  # may go negative: a reservation for this caller
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        if wait > 0:
            self._sleep(wait)
        return wait


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every non-empty secret replaced by a mask."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[masked]")
    return text


def make_client(*, require_https: bool, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> httpx.Client:
    """An httpx client that follows a few redirects and, when `require_https`, refuses
    any hop that is not https (a redirect to http:// or file:// never gets fetched)."""

    def check_scheme(request: httpx.Request) -> None:
        if require_https and request.url.scheme != "https":
            raise SourceError("refused a non-https address returned by the service")

    return httpx.Client(
        timeout=timeout,
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        headers={"User-Agent": USER_AGENT},
        event_hooks={"request": [check_scheme]},
        trust_env=False,
    )


def download(
    client: httpx.Client,
    url: str,
    *,
    max_bytes: int,
    what: str,
    retries: int = 2,
    backoff_seconds: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[], None] | None = None,
) -> bytes:
    """The body at `url`, streamed and capped at `max_bytes` (`PhotoTooLarge` beyond).

    Transport errors, 429 and 5xx are retried with exponential backoff; other non-2xx
    answers raise `SourceUnavailable`. Error text never includes the URL (signed
    download URLs are credentials of a kind)."""

    def once() -> bytes:
        try:
            with client.stream("GET", url) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    raise Busy(f"HTTP {response.status_code}")
                if response.status_code >= 400:
                    raise SourceUnavailable(f"{what}: download refused (HTTP {response.status_code})")
                return _capped_body(response, max_bytes, what)
        except httpx.TransportError as exc:
            raise Busy(type(exc).__name__) from None
        except httpx.TooManyRedirects:
            raise SourceUnavailable(f"{what}: too many redirects") from None

    try:
        return retrying(retries, backoff_seconds, sleep=sleep,
                        on_retry=(lambda _busy, _wait: on_retry()) if on_retry else None)(once)
    except Busy as busy:
        raise SourceUnavailable(f"{what}: download failed after {retries + 1} attempts ({busy.reason})") from None


def _capped_body(response: httpx.Response, max_bytes: int, what: str) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PhotoTooLarge(f"{what}: {int(declared)} bytes exceeds the {max_bytes} byte limit",
                            params={"limit_megabytes": round(max_bytes / 2**20)})
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > max_bytes:
            raise PhotoTooLarge(f"{what}: larger than the {max_bytes} byte limit",
                                params={"limit_megabytes": round(max_bytes / 2**20)})
        chunks.append(chunk)
    return b"".join(chunks)
