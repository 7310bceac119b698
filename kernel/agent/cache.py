"""The agent's cache of fetched secret values: "last known good" while a provider is unreachable.

:class:`ValueCache` keeps each reference's latest :class:`~kernel.injection.resolver.Resolved`
(value, version, provider) with the time it was fetched: least recently used entries are evicted
once the values' total size passes ``agent.cache.max_size`` bytes, and an entry older than
``agent.cache.ttl`` seconds is never served (``ttl: 0s`` disables the cache).
:class:`CachingResolver` wraps a :class:`~kernel.injection.resolver.Resolver`: it always asks the
provider first (a rotation must deliver the provider's current value, never a cached one), stores
every value it gets, and only when the provider is *unreachable* (breaker open, timeout, did not
start, back end ``unavailable``) answers with the cached value, logging one WARNING per reference
per outage. Answers about the secret itself (``not_found``, ``access_denied``, bad credentials)
are passed on, never papered over.

Values live in memory only, held as :class:`~kernel.secret_value.SecretValue` (masked in every
repr, log line and :meth:`ValueCache.stats`); nothing is written to disk, so an agent restart or a
host reboot empties the cache, and an outage that starts before the first fetch has nothing to
fall back on.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel.errors import (
    DSOError,
    ProtocolError,
    ProviderError,
    ProviderStartError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    SecretNotFoundError,
)
from kernel.injection.resolver import Outcome, Resolved, Resolver
from kernel.log import get_logger
from kernel.protocol import ErrorCode
from kernel.reference import SecretReference

if TYPE_CHECKING:
    from kernel.config.model import CacheConfig

log = get_logger("agent.cache")

#: Wire codes of a ProviderError that mean "the provider could not be asked", not "it said no".
UNREACHABLE_CODES: frozenset[str] = frozenset({ErrorCode.UNAVAILABLE, ErrorCode.TIMEOUT})

#: Wire codes that are an answer about the secret itself: its cached value is dropped.
_FORGET_CODES: frozenset[str] = frozenset({ErrorCode.NOT_FOUND, ErrorCode.ACCESS_DENIED})


def is_unreachable(error: DSOError) -> bool:
    """True when ``error`` says the provider could not answer (so a cached value may stand in).

    A protocol violation or a crash mid-request (code ``internal``) is a broken provider, not an
    unreachable one, and is reported as it is.
    """
    if isinstance(error, ProviderUnavailableError | ProviderTimeoutError | ProviderStartError):
        return True
    return (
        isinstance(error, ProviderError)
        and not isinstance(error, ProtocolError)
        and error.code in UNREACHABLE_CODES
    )


def cache_key(ref: SecretReference | str) -> str:
    """The cache key of a reference: its URI without the scheme, since ``dso://`` and
    ``dsofile://`` references to the same secret, field and version hold the same value."""
    uri = ref.uri() if isinstance(ref, SecretReference) else ref
    _, sep, rest = uri.partition("://")
    return rest if sep else uri


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A cached outcome and how old it is (seconds since it was fetched from the provider)."""

    resolved: Resolved
    age: float


@dataclass(frozen=True, slots=True)
class _Entry:
    resolved: Resolved
    stored_at: float
    size: int


class ValueCache:
    """Resolved values in memory, least recently used evicted by total bytes, older than ``ttl``
    never served. Thread-safe; never shows a value (``repr`` and :meth:`stats` are metadata)."""

    def __init__(
        self, ttl: float, max_bytes: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl < 0 or max_bytes < 0:
            raise ValueError("ttl and max_bytes must not be negative")
        self.ttl = float(ttl)
        self.max_bytes = int(max_bytes)
        self._clock = clock
        self._lock = threading.Lock()
        # Recency order (first = least recently used) and storage order (first = oldest): a hit
        # moves an entry in the first but not the second, so expired entries are always at the
        # front of ``_by_age`` and are dropped without a scan.
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._by_age: OrderedDict[str, None] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._stale_served = 0

    @classmethod
    def from_config(
        cls, config: CacheConfig, clock: Callable[[], float] = time.monotonic
    ) -> ValueCache:
        """The cache ``agent.cache`` describes (``ttl`` in seconds, ``max_size`` in bytes)."""
        return cls(config.ttl, config.max_size, clock)

    @property
    def enabled(self) -> bool:
        """False when ``ttl`` or ``max_size`` is 0: nothing is ever stored."""
        return self.ttl > 0 and self.max_bytes > 0

    def put(self, ref: SecretReference | str, resolved: Resolved) -> bool:
        """Store ``resolved`` as the latest outcome of ``ref``; False when it was not cached
        (cache disabled, or the value alone is larger than ``max_bytes``). Either way an older
        entry of ``ref`` is gone: it must never be served in place of a newer version."""
        key = cache_key(ref)
        size = len(resolved.value)
        with self._lock:
            now = self._clock()
            self._drop(key)
            self._expire(now)
            if not self.enabled or size > self.max_bytes:
                return False
            while self._entries and self._bytes + size > self.max_bytes:
                self._drop(next(iter(self._entries)))
                self._evictions += 1
            self._entries[key] = _Entry(resolved, now, size)
            self._by_age[key] = None
            self._bytes += size
            return True

    def get(self, ref: SecretReference | str) -> CacheHit | None:
        """The cached outcome of ``ref`` if younger than ``ttl`` (counted as a hit), else None
        (a miss). A hit makes the entry the most recently used."""
        return self._lookup(cache_key(ref), provider=None, stale=False)

    def last_known_good(
        self, ref: SecretReference | str, provider: str | None = None
    ) -> CacheHit | None:
        """:meth:`get`, for serving in place of an unreachable provider: only a value fetched
        from ``provider`` (when given) is returned, and a hit also counts in ``stale_served``."""
        return self._lookup(cache_key(ref), provider=provider, stale=True)

    def discard(self, ref: SecretReference | str) -> bool:
        """Forget ``ref`` (the provider says it no longer exists or may not be read)."""
        with self._lock:
            return self._drop(cache_key(ref))

    def expire(self) -> int:
        """Drop every entry older than ``ttl`` now (they are never served anyway); how many."""
        with self._lock:
            return self._expire(self._clock())

    def clear(self) -> None:
        """Forget every value (the counters are kept)."""
        with self._lock:
            self._entries.clear()
            self._by_age.clear()
            self._bytes = 0

    def stats(self) -> dict[str, int | float]:
        """Counts only, never a value or a reference: for status, metrics and logs."""
        with self._lock:
            lookups = self._hits + self._misses
            return {
                "entries": len(self._entries),
                "bytes": self._bytes,
                "max_size": self.max_bytes,
                "hits": self._hits,
                "misses": self._misses,
                "hit_ratio": self._hits / lookups if lookups else 0.0,
                "evictions": self._evictions,
                "stale_served": self._stale_served,
            }

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        with self._lock:
            return (
                f"<ValueCache entries={len(self._entries)} bytes={self._bytes}"
                f" max_size={self.max_bytes} ttl={self.ttl:g}s>"
            )

    # -- under the lock --------------------------------------------------------------------------

    def _expire(self, now: float) -> int:
        dropped = 0
        while self._by_age:
            key = next(iter(self._by_age))
            if now - self._entries[key].stored_at < self.ttl:
                break
            self._drop(key)
            dropped += 1
        return dropped

    def _drop(self, key: str) -> bool:
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        del self._by_age[key]
        self._bytes -= entry.size
        return True

    def _lookup(self, key: str, *, provider: str | None, stale: bool) -> CacheHit | None:
        with self._lock:
            now = self._clock()
            self._expire(now)
            entry = self._entries.get(key)
            if entry is None or (provider is not None and entry.resolved.provider != provider):
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            self._stale_served += stale
            return CacheHit(entry.resolved, max(0.0, now - entry.stored_at))


class CachingResolver:
    """A :class:`~kernel.injection.resolver.Resolver` that asks ``inner`` every time, stores what
    it answers in ``cache``, and serves the cached value of a reference whose provider is
    unreachable while that value is younger than the cache's ``ttl``."""

    def __init__(self, inner: Resolver, cache: ValueCache) -> None:
        self.inner = inner
        self.cache = cache
        self._lock = threading.Lock()
        # References served from the cache in the current outage (one warning each); a fresh
        # answer from the provider ends the outage for that reference.
        self._warned: set[str] = set()

    def provider_of(self, ref: SecretReference) -> str:
        return self.inner.provider_of(ref)

    def resolve(self, refs: Sequence[SecretReference]) -> dict[SecretReference, Outcome]:
        outcomes = self.inner.resolve(refs)
        result: dict[SecretReference, Outcome] = {}
        for ref, outcome in outcomes.items():
            result[ref] = self._outcome(ref, outcome)
        return result

    def _outcome(self, ref: SecretReference, outcome: Outcome) -> Outcome:
        key = cache_key(ref)
        if isinstance(outcome, Resolved):
            self.cache.put(ref, outcome)
            with self._lock:
                self._warned.discard(key)
            return outcome
        if _about_the_secret(outcome):
            self.cache.discard(ref)
            return outcome
        if not is_unreachable(outcome):
            return outcome
        # A value from another provider (the default provider changed since) is not this one's.
        hit = self.cache.last_known_good(ref, self.provider_of(ref))
        if hit is None:
            return outcome
        with self._lock:
            first = key not in self._warned
            self._warned.add(key)
        if first:
            log.warning(
                "serving the last known good version of %s (%s, fetched %.0fs ago): %s",
                ref.uri(),
                hit.resolved.fingerprint,
                hit.age,
                outcome.message,
            )
        return hit.resolved


def _about_the_secret(error: DSOError) -> bool:
    """The provider answered that the secret is gone or may not be read."""
    if isinstance(error, SecretNotFoundError):
        return True
    return isinstance(error, ProviderError) and error.code in _FORGET_CODES
