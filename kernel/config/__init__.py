"""dso configuration: one strict schema, its loader and validator (docs/configuration.md).

Typical use::

    from kernel.config import load_config

    loaded = load_config(app.config_path)      # raises ConfigError with file:line: key:
    provider = loaded.config.provider()          # the default provider's ProviderConfig

Modules: ``schema`` (every key, the single source of truth), ``yaml_source`` (YAML with line
numbers), ``expand`` (``${VAR}``), ``units`` (durations and sizes), ``validate``,
``credentials`` (literal credentials, for the permission check), ``model`` (frozen
dataclasses), ``document`` (masked rendering), ``loader`` (lookup and permissions),
``agent_socket`` (``agent.socket`` without a full load while the file is unchanged). The names
below are imported on first use.
"""

from __future__ import annotations

import importlib

# Eager: the function ``expand`` shares its name with its module, which would otherwise shadow
# it here once any module imported ``kernel.config.expand`` (the import binds the module).
from kernel.config.expand import expand, is_reference_only

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kernel.config.document import config_document, config_yaml
    from kernel.config.loader import (
        Candidate,
        ConfigReport,
        LoadedConfig,
        check_config,
        default_candidates,
        find_config,
        load_config,
        lookup_order,
    )
    from kernel.config.model import (
        AgentConfig,
        AuditConfig,
        BreakerConfig,
        CacheConfig,
        Config,
        ExtensionsConfig,
        LoggingConfig,
        ProviderConfig,
        RotationConfig,
        WatchConfig,
        WebhookConfig,
    )
    from kernel.config.schema import (
        CREDENTIAL_KEYS,
        PROVIDER_TYPES,
        SCHEMA,
        SUPPORTED_VERSION,
        Field,
        FieldType,
        is_credential_key,
        iter_fields,
    )
    from kernel.config.units import format_duration, format_size, parse_duration, parse_size

#: Public name → its module. Imported on first use: a command that needs one key
#: (``status``: ``agent.socket``, see :mod:`kernel.config.agent_socket`) skips the schema, the
#: model and PyYAML, tens of milliseconds.
_MODULES = {
    **dict.fromkeys(("config_document", "config_yaml"), "document"),
    **dict.fromkeys(
        (
            "Candidate",
            "ConfigReport",
            "LoadedConfig",
            "check_config",
            "default_candidates",
            "find_config",
            "load_config",
            "lookup_order",
        ),
        "loader",
    ),
    **dict.fromkeys(
        (
            "AgentConfig",
            "AuditConfig",
            "BreakerConfig",
            "CacheConfig",
            "Config",
            "ExtensionsConfig",
            "LoggingConfig",
            "ProviderConfig",
            "RotationConfig",
            "WatchConfig",
            "WebhookConfig",
        ),
        "model",
    ),
    **dict.fromkeys(
        (
            "CREDENTIAL_KEYS",
            "PROVIDER_TYPES",
            "SCHEMA",
            "SUPPORTED_VERSION",
            "Field",
            "FieldType",
            "is_credential_key",
            "iter_fields",
        ),
        "schema",
    ),
    **dict.fromkeys(("format_duration", "format_size", "parse_duration", "parse_size"), "units"),
}

__all__ = [
    "CREDENTIAL_KEYS",
    "PROVIDER_TYPES",
    "SCHEMA",
    "SUPPORTED_VERSION",
    "AgentConfig",
    "AuditConfig",
    "BreakerConfig",
    "CacheConfig",
    "Candidate",
    "Config",
    "ConfigReport",
    "ExtensionsConfig",
    "Field",
    "FieldType",
    "LoadedConfig",
    "LoggingConfig",
    "ProviderConfig",
    "RotationConfig",
    "WatchConfig",
    "WebhookConfig",
    "check_config",
    "config_document",
    "config_yaml",
    "default_candidates",
    "expand",
    "find_config",
    "format_duration",
    "format_size",
    "is_credential_key",
    "is_reference_only",
    "iter_fields",
    "load_config",
    "lookup_order",
    "parse_duration",
    "parse_size",
]


def __getattr__(name: str) -> object:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'kernel.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"kernel.config.{module}"), name)
    globals()[name] = value
    return value
