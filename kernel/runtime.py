"""One wired kernel: configuration, layout, provider host, resolver, extensions, journal, locks.

Every command that touches secrets or containers, and the agent, builds one :class:`Runtime`
and hands it what it needs; nothing below picks a layout or a configuration by itself (hatch's
``Application`` is the model)::

    with Runtime.load(local_layout(), config_path) as runtime:
        values = runtime.resolver.resolve(refs)          # one provider host, started on demand
        batch = runtime.batch(connect=connect)            # rotations with its journal and locks

The layout (local or agent) is chosen by the caller, explicitly. The provider host is started on
first use and owned here: the resolver borrows it, and :meth:`Runtime.close` stops every provider
process. Extensions are loaded on first use (strictly: a command that would rotate without an
extension meant to veto fails instead).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import docker

    from kernel.compose.confighash import ComposeHasher
    from kernel.config.model import Config, RotationConfig
    from kernel.extensions import Extensions
    from kernel.extensions.builtin.audit import AuditLog
    from kernel.injection.host_resolver import ProviderHostResolver
    from kernel.injection.resolver import Resolver
    from kernel.paths import Layout
    from kernel.provider_host import ProviderHost
    from kernel.rotation.batch import Batch
    from kernel.rotation.journal import Journal
    from kernel.rotation.locks import TargetLocks


class Runtime:
    """The parts of one kernel, built lazily and closed together."""

    def __init__(
        self,
        layout: Layout,
        config: Config,
        *,
        config_path: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.layout = layout
        self.config = config
        #: The file the configuration was read from (None: built-in defaults).
        self.config_path = config_path
        self._environ = environ
        self._lock = threading.Lock()
        self._host: ProviderHost | None = None
        self._resolver: ProviderHostResolver | None = None
        self._rollout: Resolver | None = None
        self._extensions: Extensions | None = None
        self._journal: Journal | None = None
        self._locks: TargetLocks | None = None
        self._closed = False

    @classmethod
    def load(cls, layout: Layout, config_path: Path | None = None) -> Runtime:
        """Find and load the configuration (``-c``, else the lookup order of the spec) for
        ``layout``. Raises :class:`~kernel.errors.ConfigError` for an invalid one."""
        from kernel.config import load_config

        loaded = load_config(config_path)
        return cls(layout, loaded.config, config_path=loaded.path)

    def __repr__(self) -> str:
        return f"Runtime({self.layout.mode}, {str(self.layout.root)!r})"

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- providers ------------------------------------------------------------------------

    @property
    def host(self) -> ProviderHost:
        """The provider host (one process per provider), created on first use."""
        with self._lock:
            if self._closed:
                from kernel.errors import ProviderUnavailableError

                raise ProviderUnavailableError("the runtime is closed")
            if self._host is None:
                from kernel.provider_host import ProviderHost

                self._host = ProviderHost(self.config, self.layout, environ=self._environ)
            return self._host

    @property
    def resolver(self) -> ProviderHostResolver:
        """References → values through :attr:`host` (which the resolver does not own)."""
        with self._lock:
            if self._resolver is None:
                from kernel.injection.host_resolver import ProviderHostResolver

                self._resolver = ProviderHostResolver(self.config, lambda: self.host)
            return self._resolver

    @property
    def rollout_resolver(self) -> Resolver:
        """The resolver rotations use: :attr:`resolver`, or what :meth:`wrap_resolver` made."""
        return self._rollout if self._rollout is not None else self.resolver

    def wrap_resolver(self, wrap: Callable[[Resolver], Resolver]) -> None:
        """Put ``wrap(resolver)`` between rotations and the providers (the agent's cache)."""
        self._rollout = wrap(self.resolver)

    def adopt_providers(self, other: Runtime) -> None:
        """Take over ``other``'s provider processes (a reload that left the providers' settings
        as they were restarts none of them)."""
        with other._lock:
            host, other._host = other._host, None
        if host is None:
            return
        with self._lock:
            if self._host is None:
                self._host = host
                return
        host.close()

    def stop_providers(self) -> None:
        """Stop the provider processes now (a later use starts them again)."""
        with self._lock:
            host, self._host = self._host, None
        if host is not None:
            host.close()

    # -- rotation -------------------------------------------------------------------------

    @property
    def extensions(self) -> Extensions:
        """The loaded extensions (built-in audit and webhook, entry points, the directory)."""
        with self._lock:
            if self._extensions is None:
                from kernel.extensions import Extensions

                self._extensions = Extensions.load(self.layout, self.config.extensions)
            return self._extensions

    def audit_log(self) -> AuditLog | None:
        """The audit log the configuration asks for (``extensions.audit``), or ``None``."""
        from kernel.extensions.builtin.audit import AuditLog

        audit = self.config.extensions.audit
        if not audit.enabled:
            return None
        return AuditLog(audit.path or self.layout.logs / "audit.jsonl", max_size=audit.max_size)

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            from kernel.rotation.journal import Journal

            self._journal = Journal(self.layout.state)
        return self._journal

    @property
    def locks(self) -> TargetLocks:
        if self._locks is None:
            from kernel.rotation.locks import TargetLocks

            self._locks = TargetLocks(self.layout.locks)
        return self._locks

    @property
    def secrets_base(self) -> Path:
        """Where ``dsofile://`` secrets live on this host (a tmpfs)."""
        from kernel.injection.tmpfs import default_base

        return default_base(self.layout, self._environ)

    def batch(
        self,
        *,
        connect: Callable[[], docker.DockerClient],
        hasher: ComposeHasher | None = None,
        rotation: RotationConfig | None = None,
        **settings: Any,
    ) -> Batch:
        """A :class:`~kernel.rotation.batch.Batch` on this runtime's journal, locks, resolver and
        extensions; ``settings`` are :class:`~kernel.rotation.batch.BatchSettings` fields
        (``strategy``, ``force``, ``dry_run``, ``wait``, ``concurrency``, ``trigger``)."""
        from kernel.rotation.batch import Batch, BatchSettings

        batch_settings = BatchSettings(
            journal=self.journal,
            locks=self.locks,
            config=rotation or self.config.agent.rotation,
            observer=self.extensions,
            **settings,
        )
        return Batch(batch_settings, connect=connect, resolver=self.rollout_resolver, hasher=hasher)

    # -- end ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the providers and shut the extensions down (idempotent)."""
        with self._lock:
            self._closed = True
            host, self._host = self._host, None
            extensions, self._extensions = self._extensions, None
        try:
            if host is not None:
                host.close()
        finally:
            if extensions is not None:
                extensions.shutdown()
