"""The agent's value cache: LRU by bytes, TTL, stats, thread safety, and the caching resolver
that serves the last known good value only while a provider is unreachable."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import pytest

from kernel.agent.cache import CachingResolver, ValueCache, cache_key, is_unreachable
from kernel.config.model import Config
from kernel.errors import (
    DSOError,
    ProtocolError,
    ProviderError,
    ProviderStartError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    SecretNotFoundError,
)
from kernel.injection.resolver import Outcome, Resolved
from kernel.protocol import exception_for
from kernel.reference import SecretReference, parse_reference
from kernel.secret_value import SecretValue

CANARY = "canary-9f3e1c-never-log-me"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ref(text: str) -> SecretReference:
    return parse_reference(text)


def resolved(value: str | bytes, version: str = "1", provider: str = "local") -> Resolved:
    return Resolved(SecretValue(value), version, provider)


class FakeResolver:
    """Answers from ``values``; ``errors`` (per reference URI) or ``down`` (every reference)."""

    def __init__(self, values: dict[str, Resolved]) -> None:
        self.values = values
        self.errors: dict[str, DSOError] = {}
        self.down: DSOError | None = None
        self.default_provider = "local"
        self.calls = 0

    def provider_of(self, ref: SecretReference) -> str:
        return ref.provider or self.default_provider

    def resolve(self, refs: Sequence[SecretReference]) -> dict[SecretReference, Outcome]:
        self.calls += 1
        out: dict[SecretReference, Outcome] = {}
        for r in refs:
            if self.down is not None:
                out[r] = self.down
            elif r.uri() in self.errors:
                out[r] = self.errors[r.uri()]
            else:
                out[r] = self.values[r.uri()]
        return out


# -- ValueCache: LRU by bytes --------------------------------------------------------------------


def test_lru_evicts_least_recently_used_by_bytes() -> None:
    cache = ValueCache(ttl=60, max_bytes=10)
    cache.put("dso://a", resolved("aaaa"))
    cache.put("dso://b", resolved("bbbb"))
    assert cache.get("dso://a") is not None  # a is now the most recently used
    cache.put("dso://c", resolved("cccc"))  # 12 bytes > 10: b goes, not a
    assert cache.get("dso://b") is None
    assert cache.get("dso://a") is not None
    assert cache.get("dso://c") is not None
    stats = cache.stats()
    assert stats["entries"] == 2
    assert stats["bytes"] == 8
    assert stats["evictions"] == 1


def test_one_large_value_evicts_as_many_as_needed() -> None:
    cache = ValueCache(ttl=60, max_bytes=10)
    for name in "abc":
        cache.put(f"dso://{name}", resolved("xxx"))
    cache.put("dso://big", resolved("y" * 9))
    assert [cache.get(f"dso://{n}") is None for n in "abc"] == [True, True, True]
    assert cache.stats()["bytes"] == 9
    assert cache.stats()["evictions"] == 3


def test_value_larger_than_max_bytes_is_not_cached_and_evicts_nothing() -> None:
    cache = ValueCache(ttl=60, max_bytes=10)
    cache.put("dso://a", resolved("aaaa"))
    assert cache.put("dso://big", resolved("z" * 11)) is False
    assert cache.get("dso://big") is None
    assert cache.get("dso://a") is not None
    assert cache.stats()["evictions"] == 0


def test_oversize_new_version_drops_the_older_cached_one() -> None:
    cache = ValueCache(ttl=60, max_bytes=10)
    cache.put("dso://a", resolved("old", version="1"))
    cache.put("dso://a", resolved("n" * 11, version="2"))
    # serving version 1 later would roll a rotation back
    assert cache.get("dso://a") is None
    assert cache.stats()["bytes"] == 0


def test_replace_accounts_bytes_of_the_new_value_only() -> None:
    cache = ValueCache(ttl=60, max_bytes=100)
    cache.put("dso://a", resolved("x" * 30, version="1"))
    cache.put("dso://a", resolved("y" * 5, version="2"))
    hit = cache.get("dso://a")
    assert hit is not None and hit.resolved.version == "2"
    assert cache.stats()["bytes"] == 5
    assert cache.stats()["entries"] == 1


def test_reference_and_its_uri_share_an_entry_across_deliveries() -> None:
    cache = ValueCache(ttl=60, max_bytes=100)
    cache.put(ref("dso://app/db"), resolved("v"))
    assert cache.get("dso://app/db") is not None
    assert cache.get(ref("dsofile://app/db")) is not None
    assert cache.get("dso://app/db@2") is None
    assert cache_key(ref("dsofile://vault:app/db#user")) == "vault:app/db#user"


# -- ValueCache: TTL, stats, config ----------------------------------------------------------------


def test_entries_older_than_ttl_are_not_served_and_are_dropped() -> None:
    clock = Clock()
    cache = ValueCache(ttl=10, max_bytes=100, clock=clock)
    cache.put("dso://a", resolved("aaaa"))
    clock.now += 9.5
    hit = cache.get("dso://a")
    assert hit is not None and hit.age == pytest.approx(9.5)
    clock.now += 0.5
    assert cache.get("dso://a") is None
    assert cache.stats()["entries"] == 0
    assert cache.stats()["bytes"] == 0


def test_a_hit_does_not_extend_the_ttl() -> None:
    clock = Clock()
    cache = ValueCache(ttl=10, max_bytes=100, clock=clock)
    cache.put("dso://a", resolved("a"))
    cache.put("dso://b", resolved("b"))
    clock.now += 5
    assert cache.get("dso://a") is not None
    clock.now += 5
    assert cache.get("dso://a") is None
    assert cache.get("dso://b") is None


def test_ttl_zero_disables_the_cache() -> None:
    cache = ValueCache(ttl=0, max_bytes=100)
    assert cache.put("dso://a", resolved("a")) is False
    assert cache.get("dso://a") is None
    assert not cache.enabled


def test_stats_count_hits_misses_and_ratio() -> None:
    cache = ValueCache(ttl=60, max_bytes=100)
    assert cache.stats() == {
        "entries": 0,
        "bytes": 0,
        "max_size": 100,
        "hits": 0,
        "misses": 0,
        "hit_ratio": 0.0,
        "evictions": 0,
        "stale_served": 0,
    }
    cache.put("dso://a", resolved("abc"))
    cache.get("dso://a")
    cache.get("dso://a")
    cache.get("dso://a")
    cache.get("dso://missing")
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["hit_ratio"]) == (3, 1, 0.75)
    cache.clear()
    assert cache.stats()["entries"] == 0 and cache.stats()["bytes"] == 0
    assert cache.get("dso://a") is None


def test_from_config_reads_seconds_and_bytes() -> None:
    cache = ValueCache.from_config(Config.default().agent.cache)
    assert cache.ttl == 3600.0
    assert cache.max_bytes == 500 * 1024 * 1024


def test_concurrent_puts_and_gets_keep_the_byte_bound() -> None:
    cache = ValueCache(ttl=60, max_bytes=1000)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(2000):
                key = f"dso://s{(worker * 7 + i) % 50}"
                cache.put(key, resolved("x" * (1 + i % 40), version=str(i)))
                cache.get(key)
                cache.get(f"dso://s{i % 50}")
                assert cache.stats()["bytes"] <= 1000
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stats = cache.stats()
    assert stats["bytes"] <= 1000
    total = 0
    for n in range(50):
        hit = cache.get(f"dso://s{n}")
        total += len(hit.resolved.value) if hit else 0
    assert total == stats["bytes"]
    assert stats["hits"] + stats["misses"] == 6 * 2000 * 2


# -- is_unreachable ------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "unreachable"),
    [
        (ProviderUnavailableError("circuit open", provider="p", code="unavailable"), True),
        (ProviderTimeoutError("slow", provider="p", code="timeout"), True),
        (ProviderStartError("no handshake", provider="p"), True),
        (ProviderError("was stopped", provider="p", code="unavailable"), True),
        (exception_for("unavailable", "sealed", provider="p"), True),
        (exception_for("timeout", "slow", provider="p"), True),
        (exception_for("not_found", "no such secret", provider="p"), False),
        (exception_for("access_denied", "denied", provider="p"), False),
        (exception_for("auth_failed", "bad token", provider="p"), False),
        (exception_for("invalid_request", "bad", provider="p"), False),
        (exception_for("internal", "bug", provider="p"), False),
        (ProtocolError("garbage frame", provider="p"), False),
        (SecretNotFoundError("gone"), False),
    ],
)
def test_is_unreachable(error: DSOError, unreachable: bool) -> None:
    assert is_unreachable(error) is unreachable


# -- CachingResolver ------------------------------------------------------------

DB = "dsofile://app/db"


@pytest.fixture
def dso_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> pytest.LogCaptureFixture:
    monkeypatch.setattr(logging.getLogger("dso"), "propagate", True)
    caplog.set_level(logging.DEBUG, logger="dso")
    return caplog


def wired(ttl: float = 60) -> tuple[FakeResolver, CachingResolver, ValueCache, Clock]:
    clock = Clock()
    cache = ValueCache(ttl=ttl, max_bytes=1024, clock=clock)
    inner = FakeResolver({DB: resolved(CANARY, version="3")})
    return inner, CachingResolver(inner, cache), cache, clock


def test_fresh_provider_values_always_win_and_are_stored() -> None:
    inner, resolver, cache, _ = wired()
    first = resolver.resolve([ref(DB)])[ref(DB)]
    assert isinstance(first, Resolved) and first.version == "3"
    inner.values[DB] = resolved("rotated", version="4")
    second = resolver.resolve([ref(DB)])[ref(DB)]
    assert isinstance(second, Resolved)
    assert (second.version, second.value.reveal()) == ("4", b"rotated")
    assert inner.calls == 2  # the provider was asked both times
    hit = cache.get(DB)
    assert hit is not None and hit.resolved.version == "4"


def test_unreachable_provider_serves_last_known_good_once_warned(
    dso_log: pytest.LogCaptureFixture,
) -> None:
    inner, resolver, cache, clock = wired()
    resolver.resolve([ref(DB)])
    clock.now += 42
    inner.down = ProviderUnavailableError(
        "circuit breaker open after 5 failures", provider="local", code="unavailable"
    )
    for _ in range(3):
        outcome = resolver.resolve([ref(DB)])[ref(DB)]
        assert isinstance(outcome, Resolved)
        assert (outcome.version, outcome.value.reveal()) == ("3", CANARY.encode())
    warnings = [r for r in dso_log.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        f"serving the last known good version of {DB} (local:3, fetched 42s ago): "
        "provider 'local': circuit breaker open after 5 failures"
    ]
    assert cache.stats()["stale_served"] == 3

    # the provider answers again: the outage is over; the next one warns again
    inner.down = None
    resolver.resolve([ref(DB)])
    inner.down = ProviderTimeoutError("'get' did not answer", provider="local", code="timeout")
    assert isinstance(resolver.resolve([ref(DB)])[ref(DB)], Resolved)
    warnings = [r for r in dso_log.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert cache.stats()["stale_served"] == 4


def test_unreachable_beyond_ttl_gives_the_error() -> None:
    inner, resolver, cache, clock = wired(ttl=60)
    resolver.resolve([ref(DB)])
    clock.now += 60
    down = ProviderStartError("did not complete the handshake", provider="local")
    inner.down = down
    assert resolver.resolve([ref(DB)])[ref(DB)] is down
    assert cache.stats()["stale_served"] == 0


@pytest.mark.parametrize(
    "error",
    [
        exception_for("not_found", "no such secret", provider="local", reference=DB),
        exception_for("access_denied", "policy denies read", provider="local", reference=DB),
        exception_for("auth_failed", "token expired", provider="local", reference=DB),
        exception_for("internal", "crashed", provider="local", reference=DB),
    ],
    ids=["not_found", "access_denied", "auth_failed", "internal"],
)
def test_answers_about_the_secret_are_never_papered_over(error: DSOError) -> None:
    inner, resolver, cache, _ = wired()
    resolver.resolve([ref(DB)])
    inner.errors[DB] = error
    assert resolver.resolve([ref(DB)])[ref(DB)] is error
    assert cache.stats()["stale_served"] == 0


def test_a_deleted_secret_is_not_resurrected_by_a_later_outage() -> None:
    inner, resolver, cache, _ = wired()
    resolver.resolve([ref(DB)])
    inner.errors[DB] = exception_for("not_found", "no such secret", provider="local")
    resolver.resolve([ref(DB)])
    down = ProviderUnavailableError("circuit open", provider="local", code="unavailable")
    inner.down = down
    assert resolver.resolve([ref(DB)])[ref(DB)] is down
    assert cache.get(DB) is None


def test_a_value_of_another_provider_is_not_served() -> None:
    inner, resolver, _, _ = wired()
    resolver.resolve([ref(DB)])  # fetched from "local", the default provider then
    inner.default_provider = "vault"
    down = ProviderUnavailableError("circuit open", provider="vault", code="unavailable")
    inner.down = down
    assert resolver.resolve([ref(DB)])[ref(DB)] is down


def test_mixed_batch_only_unreachable_references_fall_back() -> None:
    inner, resolver, _, _ = wired()
    other = "dso://app/other"
    inner.values[other] = resolved("fresh", version="9")
    resolver.resolve([ref(DB)])
    inner.errors[DB] = ProviderTimeoutError("slow", provider="local", code="timeout")
    out = resolver.resolve([ref(DB), ref(other)])
    assert list(out) == [ref(DB), ref(other)]
    versions = {r.uri(): o.version for r, o in out.items() if isinstance(o, Resolved)}
    assert versions == {DB: "3", other: "9"}


def test_the_value_never_shows_in_repr_stats_or_logs(dso_log: pytest.LogCaptureFixture) -> None:
    inner, resolver, cache, clock = wired()
    resolver.resolve([ref(DB)])
    clock.now += 5
    inner.down = ProviderUnavailableError("circuit open", provider="local", code="unavailable")
    served = resolver.resolve([ref(DB)])[ref(DB)]
    assert isinstance(served, Resolved) and served.value.reveal() == CANARY.encode()
    hit = cache.get(DB)
    shown = [repr(cache), str(cache), repr(resolver), repr(hit), str(cache.stats()), dso_log.text]
    shown += [r.getMessage() for r in dso_log.records]
    assert dso_log.records  # the warning was logged
    for text in shown:
        assert CANARY not in text
