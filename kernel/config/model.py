"""The validated configuration as frozen dataclasses; what the rest of dso reads.

Defaults come from :mod:`kernel.config.schema` (never repeated here), so ``Config.default()``
is exactly what a missing file means: one provider, ``local``, of type ``local``. Durations are
float seconds, sizes int bytes. Provider settings are read-only mappings in which credentials
are :class:`~kernel.secret_value.SecretValue` objects, so printing a ``Config`` never shows one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

from kernel.config.schema import SUPPORTED_VERSION, default
from kernel.errors import ConfigError, ProviderNotFoundError
from kernel.secret_value import SecretValue

_P = "providers.<name>"


def _frozen(value: Any) -> Any:
    """Deep read-only copy: dicts become mapping proxies, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """``providers.<name>.breaker``: when a failing provider is isolated, and for how long."""

    failure_threshold: int = default(f"{_P}.breaker.failure_threshold")
    cooldown: float = default(f"{_P}.breaker.cooldown")


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """``providers.<name>``: one secret back end.

    ``source``, ``line`` and ``setting_lines`` locate the provider in its file so the provider
    can report a bad setting at ``file:line`` (:meth:`setting_error`); they do not take part in
    equality.
    """

    name: str
    type: str
    timeout: float = default(f"{_P}.timeout")
    #: Seconds without a request or a watch before the process is stopped (0: never).
    idle_timeout: float = default(f"{_P}.idle_timeout")
    env: tuple[str, ...] = default(f"{_P}.env")
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    #: Type-specific settings, ``${VAR}`` already expanded; credentials are SecretValue.
    settings: Mapping[str, Any] = field(default_factory=_empty)
    source: Path | None = field(default=None, compare=False, repr=False)
    line: int | None = field(default=None, compare=False, repr=False)
    #: Setting key (dotted below the provider: ``auth.role_id``) → line in ``source``.
    setting_lines: Mapping[str, int] = field(default_factory=_empty, compare=False, repr=False)

    def credential(self, key: str) -> SecretValue | None:
        """The credential setting ``key``, or None when absent."""
        value = self.settings.get(key)
        return value if isinstance(value, SecretValue) else None

    def setting_error(self, key: str, message: str, *, hint: str | None = None) -> ConfigError:
        """A :class:`ConfigError` at the line of setting ``key`` (for the provider's checks)."""
        return ConfigError(
            message,
            path=self.source,
            line=self.setting_lines.get(key, self.line),
            key=f"providers.{self.name}.{key}",
            hint=hint,
        )


def _local_provider() -> Mapping[str, ProviderConfig]:
    return MappingProxyType({"local": ProviderConfig(name="local", type="local")})


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """``agent.cache``: the cache of fetched secret values."""

    ttl: float = default("agent.cache.ttl")
    max_size: int = default("agent.cache.max_size")


@dataclass(frozen=True, slots=True)
class RotationConfig:
    """``agent.rotation``: how containers are rotated when their secrets change."""

    strategy: str = default("agent.rotation.strategy")
    timeout: float = default("agent.rotation.timeout")
    rollback_on_failure: bool = default("agent.rotation.rollback_on_failure")
    parallel: int = default("agent.rotation.parallel")
    drain_timeout: float = default("agent.rotation.drain_timeout")


@dataclass(frozen=True, slots=True)
class WatchConfig:
    """``agent.watch``: how changes are noticed."""

    polling_interval: float = default("agent.watch.polling_interval")
    debounce_window: float = default("agent.watch.debounce_window")


_RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → ``(host, port)``; ValueError saying what is wrong."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"expected host:port, got {text!r}; write an IPv6 address as [::1]:9871")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(
            f"expected host:port with a port from 0 to 65535, got {text!r}; "
            "e.g. 127.0.0.1:9871 or [::1]:9871"
        )
    return host, int(port)


def parse_rate(text: str) -> float:
    """``10/s``, ``60/m``, ``100/h`` → requests per second; :class:`ValueError` otherwise."""
    count, _, unit = text.partition("/")
    if not count.isdigit() or int(count) < 1 or unit not in _RATE_UNITS:
        raise ValueError(f"expected a rate such as 10/s, 60/m or 100/h, got {text!r}")
    return int(count) / _RATE_UNITS[unit]


@dataclass(frozen=True, slots=True)
class AgentWebhookConfig:
    """``agent.webhook``: the inbound webhook that asks for a ``versions`` check (off by default).

    Not ``WebhookConfig``: that name is the outbound notifier's (``extensions.webhook``).
    """

    enabled: bool = default("agent.webhook.enabled")
    #: ``host:port`` as written; :attr:`address` parses it (validation already did).
    listen: str = default("agent.webhook.listen")
    path: str = default("agent.webhook.path")
    token: SecretValue | None = None
    hmac_secret: SecretValue | None = None
    #: ``<n>/<s|m|h>`` as written; :attr:`rate_per_second` parses it.
    rate_limit: str = default("agent.webhook.rate_limit")
    burst: int = default("agent.webhook.burst")

    @property
    def address(self) -> tuple[str, int]:
        """``listen`` as ``(host, port)``."""
        return parse_listen(self.listen)

    @property
    def rate_per_second(self) -> float:
        """``rate_limit`` in requests per second."""
        return parse_rate(self.rate_limit)


@dataclass(frozen=True, slots=True)
class AgentMetricsConfig:
    """``agent.metrics``: where the metrics are served over TCP (``None``: nowhere)."""

    listen: str | None = default("agent.metrics.listen")


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """``agent``: the long-running agent."""

    #: ``None``: the layout's (:attr:`kernel.paths.Layout.socket`).
    socket: Path | None = field(default_factory=partial(default, "agent.socket"))
    cache: CacheConfig = field(default_factory=CacheConfig)
    rotation: RotationConfig = field(default_factory=RotationConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    webhook: AgentWebhookConfig = field(default_factory=AgentWebhookConfig)
    metrics: AgentMetricsConfig = field(default_factory=AgentMetricsConfig)


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """``logging``: the agent's log messages."""

    level: str = default("logging.level")
    format: str = default("logging.format")
    file: Path | None = field(default_factory=partial(default, "logging.file"))
    max_size: int = default("logging.max_size")
    backups: int = default("logging.backups")


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """``extensions.audit``: the built-in audit log."""

    enabled: bool = default("extensions.audit.enabled")
    #: ``None``: ``audit.jsonl`` in the layout's logs directory.
    path: Path | None = field(default_factory=partial(default, "extensions.audit.path"))
    max_size: int = default("extensions.audit.max_size")


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """``extensions.webhook``: the built-in webhook notifier (off without ``url``)."""

    url: str | None = default("extensions.webhook.url")
    secret: SecretValue | None = None
    events: str = default("extensions.webhook.events")
    timeout: float = default("extensions.webhook.timeout")
    retries: int = default("extensions.webhook.retries")


@dataclass(frozen=True, slots=True)
class ExtensionsConfig:
    """``extensions``: where extensions are loaded from, and the built-in ones."""

    #: ``None``: ``extensions`` in the layout's root.
    directory: Path | None = field(default_factory=partial(default, "extensions.directory"))
    audit: AuditConfig = field(default_factory=AuditConfig)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)


@dataclass(frozen=True, slots=True)
class Config:
    """A whole, valid configuration."""

    version: int = SUPPORTED_VERSION
    default_provider: str = default("default_provider")
    #: Name → provider; always contains ``local``.
    providers: Mapping[str, ProviderConfig] = field(default_factory=_local_provider)
    agent: AgentConfig = field(default_factory=AgentConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    extensions: ExtensionsConfig = field(default_factory=ExtensionsConfig)

    @classmethod
    def default(cls) -> Config:
        """The configuration in force when there is no file."""
        return cls()

    def provider(self, name: str | None = None) -> ProviderConfig:
        """The provider called ``name`` (default: ``default_provider``)."""
        name = name or self.default_provider
        try:
            return self.providers[name]
        except KeyError:
            defined = ", ".join(sorted(self.providers))
            raise ProviderNotFoundError(
                f"no provider {name!r} is configured (configured: {defined})",
                provider=name,
                hint="add it under `providers:` in the configuration "
                "(docker dso config path shows which file)",
            ) from None


def build_config(
    values: Mapping[str, Any], *, source: Path | None = None, lines: Mapping[str, int] | None = None
) -> Config:
    """The :class:`Config` for the value tree of a successful validation."""
    lines = lines or {}
    providers: dict[str, ProviderConfig] = {}
    for name, spec in values["providers"].items():
        prefix = f"providers.{name}."
        providers[name] = ProviderConfig(
            name=name,
            type=spec["type"],
            timeout=spec["timeout"],
            idle_timeout=spec["idle_timeout"],
            env=tuple(spec["env"]),
            breaker=BreakerConfig(**spec["breaker"]),
            settings=_frozen(spec["settings"]),
            source=source,
            line=lines.get(f"providers.{name}"),
            setting_lines=MappingProxyType(
                {
                    key[len(prefix) :]: line
                    for key, line in lines.items()
                    if key.startswith(prefix)
                    and key[len(prefix) :].split(".")[0].split("[")[0] in spec["settings"]
                }
            ),
        )
    if "local" not in providers:
        providers = {**_local_provider(), **providers}
    agent = values["agent"]
    return Config(
        version=values["version"],
        default_provider=values["default_provider"],
        providers=MappingProxyType(providers),
        agent=AgentConfig(
            socket=agent["socket"],
            cache=CacheConfig(**agent["cache"]),
            rotation=RotationConfig(**agent["rotation"]),
            watch=WatchConfig(**agent["watch"]),
            webhook=_agent_webhook(agent["webhook"]),
            metrics=AgentMetricsConfig(**agent["metrics"]),
        ),
        logging=LoggingConfig(**values["logging"]),
        extensions=_extensions(values["extensions"]),
    )


def _extensions(values: Mapping[str, Any]) -> ExtensionsConfig:
    webhook = dict(values["webhook"])
    if webhook["secret"] is not None:
        webhook["secret"] = SecretValue(webhook["secret"])
    return ExtensionsConfig(
        directory=values["directory"],
        audit=AuditConfig(**values["audit"]),
        webhook=WebhookConfig(**webhook),
    )


def _agent_webhook(values: Mapping[str, Any]) -> AgentWebhookConfig:
    webhook = dict(values)
    for key in ("token", "hmac_secret"):
        if webhook[key] is not None:
            webhook[key] = SecretValue(webhook[key])
    return AgentWebhookConfig(**webhook)
