"""Rules of the configuration that span keys: the version, the reserved ``local`` name, the
default provider, third-party provider types, the webhook's URL and secret, the agent's inbound
webhook (a listen address that parses, a credential when enabled), the metrics listener's
address.

They run after the schema pass (:mod:`kernel.config.validate`), on its converted values, and
report through the same checker (file, line and dotted key of every problem).
"""

from __future__ import annotations

import difflib
from typing import Any, Protocol
from urllib.parse import urlsplit

from kernel.config.model import parse_listen
from kernel.config.schema import PROVIDER_TYPES, SUPPORTED_VERSION


class Reporter(Protocol):
    """Where problems go: the schema pass's checker."""

    lines: dict[str, int]

    def error(self, line: int | None, key: str, message: str, hint: str | None = None) -> Any: ...

    def warn(self, line: int, key: str, message: str) -> None: ...


def cross_check(report: Reporter, values: dict[str, Any]) -> None:
    """Every rule that spans keys; problems go to ``report``."""
    version = values.get("version")
    if isinstance(version, int) and version != SUPPORTED_VERSION:
        report.error(
            report.lines.get("version"),
            "version",
            f"this dso supports config version {SUPPORTED_VERSION}; got {version}",
            hint="upgrade dso, or rewrite the file for version 1 (docs/configuration.md)",
        )
    _check_webhook(report, values.get("extensions"))
    _check_agent_webhook(report, values.get("agent"))
    agent = values.get("agent")
    metrics = agent.get("metrics") if isinstance(agent, dict) else None
    if isinstance(metrics, dict):
        _check_listen(report, "agent.metrics.listen", metrics.get("listen"))
    providers = values.get("providers")
    if not isinstance(providers, dict):
        return
    for name, provider in providers.items():
        _check_provider_type(report, name, provider)
    local = providers.get("local")
    kind = local.get("type") if isinstance(local, dict) else None
    if isinstance(kind, str) and kind != "local":  # not a str: already reported
        report.error(
            report.lines.get("providers.local.type"),
            "providers.local.type",
            "the provider name 'local' is reserved for the local vault (type: local)",
            hint="give this provider another name",
        )
    chosen = values.get("default_provider")
    if isinstance(chosen, str) and chosen != "local" and chosen not in providers:
        defined = ", ".join(sorted({"local", *providers}))
        message = f"default_provider {chosen!r} is not defined under providers (defined: {defined})"
        guess = difflib.get_close_matches(chosen, list(providers), n=1)
        if guess:
            message += f"; did you mean '{guess[0]}'?"
        report.error(report.lines.get("default_provider"), "default_provider", message)


def _check_provider_type(report: Reporter, name: str, provider: Any) -> None:
    """A type dso does not ship is a third-party program: say which, and catch typos."""
    kind = provider.get("type") if isinstance(provider, dict) else None
    if not isinstance(kind, str) or kind in PROVIDER_TYPES:
        return
    key = f"providers.{name}.type"
    message = (
        f"{kind!r} is not one of dso's providers ({', '.join(PROVIDER_TYPES)}): dso will run "
        f"the third-party program dso-provider-{kind} from the plugins directory"
    )
    guess = difflib.get_close_matches(kind, PROVIDER_TYPES, n=1, cutoff=0.7)
    if guess:
        message += f"; did you mean '{guess[0]}'?"
    report.warn(report.lines.get(key) or 0, key, message)


def _check_webhook(report: Reporter, extensions: Any) -> None:
    """``extensions.webhook``: an http(s) URL, and a secret to sign with."""
    webhook = extensions.get("webhook") if isinstance(extensions, dict) else None
    url = webhook.get("url") if isinstance(webhook, dict) else None
    if not isinstance(url, str):
        return
    assert isinstance(webhook, dict)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        report.error(
            report.lines.get("extensions.webhook.url"),
            "extensions.webhook.url",
            # Not echoed: a webhook URL's path is often a token (Slack, Teams).
            "expected an http:// or https:// URL with a host",
        )
    if webhook.get("secret") is None:
        report.error(
            report.lines.get("extensions.webhook.url"),
            "extensions.webhook.secret",
            "a webhook needs a secret to sign its requests with",
            hint="add `secret: ${DSO_WEBHOOK_SECRET}` under extensions.webhook",
        )


def _check_agent_webhook(report: Reporter, agent: Any) -> None:
    """``agent.webhook``: a ``listen`` that parses; once enabled, a token or an HMAC secret."""
    webhook = agent.get("webhook") if isinstance(agent, dict) else None
    if not isinstance(webhook, dict):
        return
    _check_listen(report, "agent.webhook.listen", webhook.get("listen"))
    if webhook.get("enabled") is not True:
        return
    if webhook.get("token") is None and webhook.get("hmac_secret") is None:
        report.error(
            report.lines.get("agent.webhook.enabled") or report.lines.get("agent.webhook"),
            "agent.webhook.enabled",
            "an enabled webhook needs `token` or `hmac_secret` to authenticate its callers",
            hint="add `token: ${DSO_AGENT_WEBHOOK_TOKEN}` (or `hmac_secret:`) under agent.webhook",
        )


def _check_listen(report: Reporter, key: str, listen: Any) -> None:
    """A ``host:port`` that parses (a value of another type was already reported)."""
    if isinstance(listen, str):
        try:
            parse_listen(listen)
        except ValueError as exc:
            report.error(report.lines.get(key), key, str(exc))
