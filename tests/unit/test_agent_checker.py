"""The version check: one batched call per provider, pinned references skipped, lagging
targets found from labels, an outage logged once, a secret's problem logged once."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kernel.agent.checker import VersionChecker
from kernel.agent.managed import Managed
from kernel.config.model import Config
from kernel.errors import ProviderUnavailableError
from kernel.protocol import SecretRef, VersionsResult, WireError
from kernel.rotation.targets import Target


class FakeProvider:
    def __init__(self, versions: dict[str, str], errors: dict[str, WireError] | None = None):
        self.versions_of = versions
        self.errors = errors or {}
        self.calls: list[list[str]] = []
        self.down = False

    def versions(self, refs: list[SecretRef]) -> VersionsResult:
        self.calls.append([r.path for r in refs])
        if self.down:
            raise ProviderUnavailableError("circuit open", provider="local")
        found = {r.id: self.versions_of[r.path] for r in refs if r.path in self.versions_of}
        errors = {r.id: self.errors[r.path] for r in refs if r.path in self.errors}
        return VersionsResult(versions=found, errors=errors)


class FakeRuntime:
    def __init__(self, provider: FakeProvider) -> None:
        self.config = Config.default()
        self.provider = provider
        self.host = self

    def client(self, name: str) -> Any:
        assert name == "local"
        return self.provider


def container(n: int, refs: dict[str, str], versions: dict[str, str]) -> Managed:
    target = (
        Target("web", "service-shop.web", "shop", "web")
        if n < 100
        else Target(f"c{n}", f"container-c{n}", containers=(f"c{n}",))
    )
    return Managed(f"{n:064x}", f"c{n}", target, refs, versions)


def test_one_call_per_provider_whatever_the_number_of_containers() -> None:
    provider = FakeProvider({f"s{i}": "1" for i in range(20)})
    checker = VersionChecker(FakeRuntime(provider))  # type: ignore[arg-type]
    managed = [
        container(100 + n, {"A": f"dso://s{n % 20}", "P": "dso://s1@1"}, {"A": "local:1"})
        for n in range(200)
    ]

    result = checker.check(managed)

    assert len(provider.calls) == 1 and sorted(provider.calls[0]) == sorted(
        f"s{i}" for i in range(20)
    )
    assert result.calls == {"local": 1} and result.secrets == 20 and not result.lagging


def test_lagging_targets_are_found_from_the_labels_and_grouped_by_lock() -> None:
    provider = FakeProvider({"db": "3", "token": "1"})
    checker = VersionChecker(FakeRuntime(provider))  # type: ignore[arg-type]
    managed = [
        container(1, {"DB": "dso://db"}, {"DB": "local:2"}),  # replica 1 lags
        container(2, {"DB": "dso://db"}, {"DB": "local:3"}),  # replica 2 is current
        container(101, {"T": "dsofile://token"}, {"T": "local:1"}),
    ]

    result = checker.check(managed)

    assert list(result.lagging) == ["service-shop.web"]
    target, moved = result.lagging["service-shop.web"]
    assert target.service == "web" and moved == {"dso://db"}
    assert not checker.check(managed, only={"local": {"token"}}).lagging


def test_an_outage_is_logged_once_and_recovery_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = FakeProvider({"db": "1"})
    checker = VersionChecker(FakeRuntime(provider))  # type: ignore[arg-type]
    managed = [container(1, {"DB": "dso://db"}, {"DB": "local:1"})]
    caplog.set_level(logging.INFO, logger="dso")
    monkeypatch.setattr(logging.getLogger("dso"), "propagate", True)
    checker.check(managed)
    provider.down = True
    for _ in range(5):
        assert checker.check(managed).failed == {"local": "provider 'local': circuit open"}
    provider.down = False
    checker.check(managed)
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("Provider connection lost, retrying...") == 1
    assert messages.count("Secret backend connected: local") == 2


def test_a_back_end_down_for_every_secret_is_an_outage_and_one_secret_problem_is_logged_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    sealed = WireError("unavailable", "sealed")
    provider = FakeProvider({}, {"db": sealed})
    checker = VersionChecker(FakeRuntime(provider))  # type: ignore[arg-type]
    managed = [container(1, {"DB": "dso://db", "X": "dso://gone"}, {})]
    caplog.set_level(logging.INFO, logger="dso")
    monkeypatch.setattr(logging.getLogger("dso"), "propagate", True)
    assert checker.check([container(1, {"DB": "dso://db"}, {})]).failed == {"local": "sealed"}
    provider.errors = {"gone": WireError("not_found", "no secret gone")}
    provider.versions_of = {"db": "1"}
    for _ in range(3):
        checker.check(managed)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "Provider connection lost, retrying...",
        "local: cannot check gone: no secret gone",
    ]
