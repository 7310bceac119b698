"""The providers the contract suite runs against, each with a fixture describing its secrets.

- ``local``: ``python -m providers.local`` from source, over a throwaway vault seeded with
  kernel.vault (the same fixture ``docker dso providers test local`` uses);
- ``echo``: tests/fakes/echo_provider.py, its secrets given in ``configure`` settings;
- a third-party command from ``DSO_CONTRACT_PROVIDER`` (a command line) with the JSON fixture
  named by ``DSO_CONTRACT_FIXTURE``; absent unless the variable is set.
"""

from __future__ import annotations

import os
import secrets
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.conformance import ExpectedSecret, Fixture, load_fixture, seed_local_vault
from kernel.provider_host import ProviderClient, ProviderCommand
from kernel.provider_host import source_command as find_source

PROVIDER_ENV = "DSO_CONTRACT_PROVIDER"
FIXTURE_ENV = "DSO_CONTRACT_FIXTURE"

Factory = Callable[[Path], tuple[ProviderCommand, Fixture]]


@dataclass(frozen=True)
class Target:
    id: str
    build: Factory
    #: Checks that do not apply to this provider; None for a third-party one (unknown).
    not_applicable: frozenset[str] | None = frozenset()


def source_command(name: str, module: str, **env: str) -> ProviderCommand:
    return ProviderCommand(
        name, (sys.executable, "-m", module), "source", env_set=tuple(env.items())
    )


def local_target(directory: Path) -> tuple[ProviderCommand, Fixture]:
    command = find_source("local")  # exactly how discovery runs it from source
    assert command is not None
    return command, seed_local_vault(directory)


def echo_settings(plain: str, password: str, large: str) -> dict[str, Any]:
    return {
        "secrets": {
            "conformance/plain": plain,
            "conformance/json": {"fields": {"password": password}, "version": "1"},
            "conformance/large": large,
        }
    }


def echo_target(directory: Path) -> tuple[ProviderCommand, Fixture]:
    plain = secrets.token_urlsafe(24)
    password = secrets.token_urlsafe(18)
    large = secrets.token_hex(512 * 1024)  # 1 MiB of text

    def mutate(client: ProviderClient) -> None:
        # The echo provider notifies watched references whose version moved on configure.
        client.configure(echo_settings(secrets.token_urlsafe(24), password, large))

    fixture = Fixture(
        settings=echo_settings(plain, password, large),
        secrets=(
            ExpectedSecret("conformance/plain", value=plain.encode()),
            ExpectedSecret("conformance/json", "password", password.encode()),
            ExpectedSecret("conformance/large", value=large.encode()),
        ),
        missing="conformance/missing",
        mutate=mutate,
        change_path="conformance/plain",
        change_timeout=5.0,
    )
    return source_command("echo", "tests.fakes.echo_provider"), fixture


def third_party_target(directory: Path) -> tuple[ProviderCommand, Fixture]:
    argv = tuple(shlex.split(os.environ[PROVIDER_ENV]))
    fixture_path = os.environ.get(FIXTURE_ENV)
    if not fixture_path:
        raise RuntimeError(f"{PROVIDER_ENV} is set: set {FIXTURE_ENV} to its JSON fixture too")
    fixture = load_fixture(Path(fixture_path))
    name = Path(argv[0]).name.removeprefix("dso-provider-") or "third-party"
    return ProviderCommand(name, argv, "path", env_allow=fixture.env_allow), fixture


def targets() -> list[Target]:
    """Built-in targets, plus the third-party one only when its variable is set."""
    # Both advertise every optional method, so there is nothing unadvertised to probe.
    every_method = frozenset({"unadvertised-methods"})
    found = [
        Target("local", local_target, every_method),
        Target("echo", echo_target, every_method),
    ]
    if os.environ.get(PROVIDER_ENV):
        found.append(Target("third-party", third_party_target, None))
    return found
