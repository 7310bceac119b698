"""The ``dso.yaml`` a bootstrap writes: the providers chosen, with the few settings each needs,
checked by the configuration's own validator before it is written.

Only what a provider cannot find by itself under systemd is asked for: the Vault server's
address (the agent has no ``VAULT_ADDR``), the AWS region, the Key Vault URL. Credentials are
never written here: a Vault token comes from a file (``token_file``) or from the agent's
environment (``env: [VAULT_TOKEN]``, set in a drop-in of the unit); AWS and Azure use their
default credential chains (instance role, managed identity).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.errors import UsageError

if TYPE_CHECKING:
    from kernel.config import Config

__all__ = [
    "PROVIDER_SETTINGS",
    "PROVIDER_TYPES",
    "ProviderChoice",
    "Setting",
    "check_text",
    "choose_providers",
    "render_config",
]

#: The provider types a bootstrap can configure, in the order they are offered.
PROVIDER_TYPES = ("local", "vault", "aws", "azure")


@dataclass(frozen=True, slots=True)
class Setting:
    """One provider setting a bootstrap asks for (by flag, or by a prompt)."""

    #: The key under ``providers.<name>`` (docs/providers/<type>.md).
    key: str
    #: The command-line option that gives it.
    option: str
    #: The prompt's question.
    question: str
    required: bool = True


#: What each provider type needs; ``local`` needs nothing (the layout names its vault and key).
PROVIDER_SETTINGS: dict[str, tuple[Setting, ...]] = {
    "local": (),
    "vault": (
        Setting("address", "--vault-addr", "Vault address (https://vault.example.com:8200)"),
        Setting(
            "token_file",
            "--vault-token-file",
            "File holding the Vault token (empty: VAULT_TOKEN in the agent's environment)",
            required=False,
        ),
    ),
    "aws": (Setting("region", "--aws-region", "AWS region of Secrets Manager (eu-west-1)"),),
    "azure": (
        Setting("vault_url", "--azure-vault-url", "Key Vault URL (https://NAME.vault.azure.net)"),
    ),
}

_PLAIN = re.compile(r"[A-Za-z/][A-Za-z0-9_./:@+-]*")


@dataclass(frozen=True, slots=True)
class ProviderChoice:
    """One provider of the generated file: its type (also its name) and settings."""

    type: str
    settings: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.type


def choose_providers(
    types: Sequence[str], values: Mapping[str, str | None]
) -> tuple[ProviderChoice, ...]:
    """The providers for ``types`` (default: local) with their settings taken from ``values``
    (setting option → value); raise :class:`UsageError` for a missing required setting, a
    setting of a provider not chosen, or a value that cannot be written."""
    chosen = list(dict.fromkeys(types or ("local",)))
    for kind in chosen:
        if kind not in PROVIDER_SETTINGS:
            raise UsageError(f"unknown provider type {kind!r}: one of {', '.join(PROVIDER_TYPES)}")
    for kind, settings in PROVIDER_SETTINGS.items():
        for setting in settings:
            if values.get(setting.option) and kind not in chosen:
                raise UsageError(
                    f"{setting.option} is a setting of the {kind} provider, which is not chosen",
                    hint=f"add --provider {kind}",
                )
    result = []
    for kind in chosen:
        pairs = []
        for setting in PROVIDER_SETTINGS[kind]:
            value = (values.get(setting.option) or "").strip()
            if not value:
                if setting.required:
                    raise UsageError(
                        f"the {kind} provider needs {setting.option}",
                        hint=f"docker dso bootstrap … --provider {kind} {setting.option} VALUE "
                        "(or run it in a terminal to be asked)",
                    )
                continue
            if any(ord(c) < 32 or ord(c) == 127 for c in value):
                raise UsageError(f"{setting.option}: control characters are not allowed")
            pairs.append((setting.key, value))
        result.append(ProviderChoice(kind, tuple(pairs)))
    return tuple(result)


def render_config(
    providers: Sequence[ProviderChoice], *, mode: str, default_provider: str | None = None
) -> str:
    """The text of the configuration file for ``mode`` (``agent`` or ``local``)."""
    default = default_provider or (providers[0].name if providers else "local")
    if default != "local" and default not in {p.name for p in providers}:
        raise UsageError(
            f"--default-provider {default}: not one of the chosen providers",
            hint=f"add --provider {default}",
        )
    if mode == "agent":
        lines = [
            "# dso configuration of the host agent, written by `docker dso bootstrap agent`.",
            "# Every key: docs/configuration.md. After a change: `docker dso config validate`,",
            "# then `sudo docker dso system restart`.",
        ]
    else:
        lines = ["# dso configuration (local mode). Every key: docs/configuration.md"]
    lines += ["version: 1", f"default_provider: {default}", "providers:"]
    for provider in providers:
        lines += [f"  {provider.name}:", f"    type: {provider.type}"]
        settings = dict(provider.settings)
        lines += [f"    {key}: {_scalar(value)}" for key, value in provider.settings]
        if provider.type == "vault" and "token_file" not in settings:
            lines += [
                "    # The token: VAULT_TOKEN in the agent's environment (`sudo systemctl edit",
                "    # dso-agent`: [Service] EnvironmentFile=/etc/dso/vault.env, mode 600).",
                "    env: [VAULT_TOKEN]",
            ]
    if mode == "agent":
        lines += _tunables()
    return "\n".join(lines) + "\n"


#: The agent's tunables a host agent's file spells out at their defaults (the spec's
#: "Performance Tuning"), so an operator finds and changes them in place (docs/operations.md).
AGENT_TUNABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cache", ("ttl", "max_size")),
    ("rotation", ("strategy", "timeout", "rollback_on_failure", "parallel", "drain_timeout")),
    ("watch", ("polling_interval", "debounce_window")),
)


def _tunables() -> list[str]:
    from kernel.config.schema import default_text, lookup

    lines = ["# The agent's tunables, at their defaults.", "agent:"]
    for section, keys in AGENT_TUNABLES:
        lines.append(f"  {section}:")
        lines += [f"    {key}: {default_text(lookup(f'agent.{section}.{key}'))}" for key in keys]
    lines += ["logging:", f"  level: {default_text(lookup('logging.level'))}"]
    return lines


def check_text(text: str, path: str) -> Config:
    """The configuration ``text`` describes (as if read from ``path``); raise the first
    :class:`ConfigError` the configuration's validator finds (with its file:line). The file
    itself is not read: its permissions are the bootstrap's to set."""
    from kernel.config.model import build_config
    from kernel.config.validate import validate_document
    from kernel.config.yaml_source import parse_document

    document = parse_document(text, path)
    validation = validate_document(document, path=path, env=os.environ)
    errors = sorted([*document.problems, *validation.errors], key=lambda e: e.line or 0)
    if errors:
        first = errors[0]
        more = len(errors) - 1
        if more:
            first.hint = f"{more} more problem{'s' if more > 1 else ''}: " + (
                f"`docker dso config validate {path}`"
            )
        raise first
    return build_config(validation.values, source=Path(path), lines=validation.lines)


def _scalar(value: str) -> str:
    """``value`` as a YAML scalar that means exactly it (``$`` is ``$$``: no ``${…}``)."""
    value = value.replace("$", "$$")
    if _PLAIN.fullmatch(value) and value.lower() not in (
        "true",
        "false",
        "null",
        "yes",
        "no",
        "on",
        "off",
    ):
        return value
    return json.dumps(value)
