"""HTTP plumbing shared by the remote sources: one httpx client per source, a
token bucket for request rate, capped streaming downloads, https enforcement on every
hop (redirects included) and scrubbing secrets out of error text."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

import httpx

from commands.importers.base import PhotoTooLarge, SourceError, SourceUnavailable

USER_AGENT = "facesearch-importer/0.1 (+self-hosted face search)"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
MAX_REDIRECTS = 5


class TokenBucket:
    """At most `rate` acquisitions per second on average, bursts up to `capacity`.

    With capacity 1 (the default) calls are spaced 1/rate apart, so no one-second
    window ever holds more than `rate` of them. Thread-safe; sleeps outside the lock.
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
    for attempt in range(retries + 1):
        try:
            with client.stream("GET", url) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    raise _Retryable(f"HTTP {response.status_code}")
                if response.status_code >= 400:
                    raise SourceUnavailable(f"{what}: download refused (HTTP {response.status_code})")
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
        except (httpx.TransportError, _Retryable) as exc:
            if attempt == retries:
                reason = type(exc).__name__ if isinstance(exc, httpx.TransportError) else str(exc)
                raise SourceUnavailable(f"{what}: download failed after {retries + 1} attempts ({reason})") from None
            if on_retry:
                on_retry()
            sleep(backoff_seconds * 2**attempt)
        except httpx.TooManyRedirects:
            raise SourceUnavailable(f"{what}: too many redirects") from None
    raise AssertionError("unreachable")


class _Retryable(Exception):
    pass
