"""The provider host: every provider of one configuration, started lazily, closed together.

:class:`ProviderHost` maps provider names to :class:`~kernel.provider_host.supervisor.
SupervisedProvider` handles, created on first use from the configuration (``local`` always
exists, even with no configuration) or from explicit commands (tests, ``providers check``). It
resolves each provider's program (plugins directory, else source; see :mod:`.discovery`) at
every start, so a replaced binary is verified again, and reports ``status()`` for ``status
--json`` ``.observability``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kernel.errors import ProviderUnavailableError
from kernel.protocol import START_TIMEOUT
from kernel.provider_host.discovery import find_command, plugins_dir
from kernel.provider_host.process import ProviderCommand
from kernel.provider_host.supervisor import Backoff, SupervisedProvider

if TYPE_CHECKING:
    from kernel.config import Config, ProviderConfig
    from kernel.paths import Layout

#: Variables the embedded local provider always receives: the vault passphrase is dso's own.
LOCAL_ENV = ("DSO_VAULT_PASSPHRASE",)


@dataclass(frozen=True, slots=True)
class Plan:
    """What :meth:`ProviderHost.plan` returns."""

    config: ProviderConfig
    #: The ``configure`` settings (the configuration's, plus the local vault's paths).
    settings: Mapping[str, Any]
    #: Finds the program now (plugins directory, else source); raises ProviderNotFoundError.
    resolve: Callable[[], ProviderCommand]


class ProviderHost:
    """Every provider of one configuration, started lazily, supervised, closed together."""

    def __init__(
        self,
        config: Config,
        layout: Layout,
        *,
        commands: Mapping[str, ProviderCommand] | None = None,
        environ: Mapping[str, str] | None = None,
        start_timeout: float = START_TIMEOUT,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        # Both explicit: which installation (local or agent) is the caller's choice, never a
        # default picked down here.
        self.config = config
        self.layout = layout
        self.plugins_dir = plugins_dir(self.layout, environ)
        self._commands = dict(commands or {})
        self._environ = environ
        self._start_timeout = start_timeout
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._rand = rand
        self._lock = threading.Lock()
        self._providers: dict[str, SupervisedProvider] = {}
        self._closed = False

    def names(self) -> list[str]:
        """Every provider this host can serve: the configured ones and explicit commands."""
        return sorted({*self.config.providers, *self._commands})

    def client(self, name: str | None = None) -> SupervisedProvider:
        """The supervised provider ``name`` (default: the configuration's default provider).
        Nothing starts until its first call. Raises :class:`ProviderNotFoundError`."""
        name = name or self.config.default_provider
        with self._lock:
            if self._closed:
                raise ProviderUnavailableError("the provider host is closed", provider=name)
            provider = self._providers.get(name)
            if provider is None:
                provider = self._providers[name] = self._create(name)
            return provider

    def plan(self, name: str) -> Plan:
        """How provider ``name`` is launched: its configuration, the settings sent with
        ``configure``, and a resolver for its command (run at every start).
        Raises :class:`ProviderNotFoundError` for a name that is neither configured nor given."""
        from kernel.config import ProviderConfig

        if name in self.config.providers:
            config = self.config.providers[name]
        elif name in self._commands:
            config = ProviderConfig(name=name, type=name)
        else:
            config = self.config.provider(name)  # raises ProviderNotFoundError
        settings: dict[str, Any] = dict(config.settings)
        env_allow = config.env
        if config.type == "local":
            # The embedded local vault lives in this host's layout, whatever DSO_HOME the
            # provider would see; its passphrase variable is dso's own.
            settings.setdefault("path", str(self.layout.vault))
            settings.setdefault("key_file", str(self.layout.vault_key))
            env_allow = (*env_allow, *(v for v in LOCAL_ENV if v not in env_allow))
        command = self._commands.get(name)

        def resolve() -> ProviderCommand:
            if command is not None:
                return command
            return find_command(
                config.type, self.plugins_dir, name=name, env_allow=env_allow, environ=self._environ
            )

        return Plan(config, settings, resolve)

    def _create(self, name: str) -> SupervisedProvider:
        plan = self.plan(name)
        return SupervisedProvider(
            plan.config,
            plan.resolve,
            plan.settings,
            environ=self._environ,
            start_timeout=self._start_timeout,
            backoff=self._backoff,
            clock=self._clock,
            rand=self._rand,
        )

    def status(self) -> dict[str, Any]:
        """``{"providers": {name: {...}}}`` for ``status --json`` ``.observability``; providers
        never used report ``stopped`` with empty latency."""
        with self._lock:
            started = dict(self._providers)
        docs: dict[str, Any] = {}
        for name in self.names():
            if name in started:
                docs[name] = started[name].status()
            else:
                docs[name] = {"name": name, "state": "stopped", "pid": None, "latency": {}}
        return {"plugins_dir": str(self.plugins_dir), "providers": docs}

    def close(self) -> None:
        """Stop every provider process (in parallel, each gracefully and reaped)."""
        with self._lock:
            self._closed = True
            providers = list(self._providers.values())
        threads = [
            threading.Thread(target=p.close, name=f"dso-close-{p.name}", daemon=True)
            for p in providers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def __enter__(self) -> ProviderHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
