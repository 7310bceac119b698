"""``providers.binaries`` on a real plugins directory, and ``providers.reachable``'s contact
and verdict with a stand-in provider (the real one: tests/integration/test_doctor_cli.py)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from kernel.doctor import Status, programs
from kernel.doctor.programs import Contact, contact
from kernel.errors import ProviderError, ProviderStartError
from kernel.paths import Layout
from kernel.protocol import SecretRef, VersionsResult, WireError
from kernel.protocol.codes import ErrorCode
from tests.unit.doctor_support import check, home, make_context

__all__ = ["home"]


def _program(layout: Layout, *, listed: str | None) -> None:
    program = layout.plugins / "dso-provider-local"
    program.write_bytes(b"#!/bin/sh\nexit 1\n")
    program.chmod(0o755)
    if listed is not None:
        digest = listed or hashlib.sha256(program.read_bytes()).hexdigest()
        (layout.plugins / "SHA256SUMS").write_text(f"{digest}  dso-provider-local\n")


def test_a_program_matching_sha256sums_passes(home: Layout) -> None:
    _program(home, listed="")
    status, finding, detail, _ = check(make_context(home), "providers.binaries")
    assert (status, finding) == (Status.OK, "1 provider program(s) found and verified")
    assert f"{home.plugins / 'dso-provider-local'}, matches SHA256SUMS" in detail


def test_a_checksum_mismatch_fails_naming_the_program(home: Layout) -> None:
    _program(home, listed="0" * 64)
    status, finding, _, fix = check(make_context(home), "providers.binaries")
    assert status is Status.FAIL
    assert finding.startswith(
        f"local (provider local): {home.plugins / 'dso-provider-local'} cannot be used: "
        "checksum mismatch"
    )
    assert "SHA256SUMS" in fix and "providers list" in fix


def test_without_a_manifest_a_program_is_refused_unless_unverified_is_allowed(
    home: Layout,
) -> None:
    _program(home, listed=None)
    status, finding, _, _ = check(make_context(home), "providers.binaries")
    assert status is Status.FAIL and "no SHA256SUMS manifest" in finding
    environ = {"DSO_PLUGINS_UNVERIFIED": "1", "DSO_SECRETS_DIR": "/dev/shm/x/secrets"}
    status, finding, _, _ = check(make_context(home, environ=environ), "providers.binaries")
    assert status is Status.WARN and "runs unverified" in finding


def test_a_missing_program_fails(home: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    assert check(make_context(home), "providers.binaries")[0] is Status.OK  # from source
    monkeypatch.setattr(programs, "source_names", lambda: [])  # a frozen dso: no source
    status, finding, _, _ = check(make_context(home), "providers.binaries")
    assert status is Status.FAIL
    assert finding == f"local (provider local): no program dso-provider-local in {home.plugins}"


# -- providers.reachable ------------------------------------------------------------------------


class _Handshake:
    name, version, protocol = "local", "0.1.0", 1


class _Client:
    handshake = _Handshake()


class StandInProvider:
    def __init__(self, answer: VersionsResult | ProviderError) -> None:
        self.answer = answer
        self.client = _Client()
        self.asked: list[SecretRef] = []
        self.got = 0

    def ping(self) -> float:
        return 0.001

    def versions(self, refs: list[SecretRef]) -> VersionsResult:
        self.asked = refs
        if isinstance(self.answer, ProviderError):
            raise self.answer
        return self.answer

    def get(self, refs: list[SecretRef]) -> Any:  # the doctor must never call it
        self.got += 1
        raise AssertionError("get called")


class StandInHost:
    def __init__(self, provider: StandInProvider | Exception) -> None:
        self.provider = provider

    def client(self, name: str) -> StandInProvider:
        if isinstance(self.provider, Exception):
            raise self.provider
        return self.provider


def test_contact_asks_versions_of_each_path_and_reports_the_missing_ones() -> None:
    missing = WireError(ErrorCode.NOT_FOUND, "no secret 'app/gone' in the vault")
    provider = StandInProvider(VersionsResult(versions={"1": "3"}, errors={"0": missing}))
    paths = {"app/gone": ["web DB_PASSWORD"], "app/ok": ["web API_KEY"]}
    report = contact(StandInHost(provider), "local", paths)  # type: ignore[arg-type]
    assert [r.path for r in provider.asked] == ["app/gone", "app/ok"]
    assert all(r.version is None and r.field is None for r in provider.asked)
    assert provider.got == 0
    assert report.missing == {"app/gone": "not_found: no secret 'app/gone' in the vault"}
    assert (report.asked, report.started) == (2, "local 0.1.0, protocol 1")
    status, finding, detail, fix = _verdict([report], {"local": paths})
    assert status is Status.FAIL
    assert finding == (
        "local: app/gone: not_found: no secret 'app/gone' in the vault (used by web DB_PASSWORD)"
    )
    assert "local: local 0.1.0, protocol 1; 1 of 2 referenced secret(s) found" in detail
    assert "docker dso secret set" in fix


def test_a_provider_that_does_not_start_fails_with_its_reason() -> None:
    error = ProviderStartError("no handshake within 5 s", provider="vault", hint="check its log")
    report = contact(StandInHost(error), "vault", {})  # type: ignore[arg-type]
    status, finding, _, _ = _verdict([report], {})
    assert status is Status.FAIL
    assert finding.startswith("vault: ") and "no handshake within 5 s (check its log)" in finding


def test_a_provider_without_versions_is_only_pinged() -> None:
    unsupported = ProviderError(
        "does not support 'versions' (it announced get)", provider="x", code="invalid_request"
    )
    report = contact(StandInHost(StandInProvider(unsupported)), "x", {"a": ["c V"]})  # type: ignore[arg-type]
    status, finding, _, _ = _verdict([report], {"x": {"a": ["c V"]}})
    assert (status, finding) == (
        Status.WARN,
        "x: it offers no `versions`: the secrets were not looked up",
    )


def test_references_to_an_unconfigured_provider_fail() -> None:
    status, finding, _, _ = _verdict([Contact("local")], {"vault": {"kv/app": ["web PW"]}})
    assert status is Status.FAIL
    assert "vault: containers reference this provider, which is not configured" in finding


def _verdict(
    reports: list[Contact], wanted: dict[str, dict[str, list[str]]]
) -> tuple[Status, str, str, str]:
    unknown = sorted(set(wanted) - {r.name for r in reports})
    finding = programs._judge(reports, wanted, unknown, "")
    return finding.status, finding.finding, finding.detail, finding.fix
