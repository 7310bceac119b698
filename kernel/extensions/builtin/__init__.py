"""Extensions dso ships, built from the ``extensions`` configuration section.

They use the same hooks as third-party extensions and are loaded first, under fixed names:
``audit`` (on by default) and ``webhook`` (on when ``extensions.webhook.url`` is set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel.extensions.builtin.audit import AuditLog
from kernel.extensions.builtin.webhook import WebhookNotifier

if TYPE_CHECKING:
    from kernel.config import ExtensionsConfig
    from kernel.paths import Layout

__all__ = ["AuditLog", "Builtin", "WebhookNotifier", "builtin_extensions"]


@dataclass(frozen=True, slots=True)
class Builtin:
    """A built-in extension, or why it is off (``plugin`` is ``None``)."""

    name: str
    module: str
    plugin: object | None
    reason: str = ""


def builtin_extensions(layout: Layout, config: ExtensionsConfig | None = None) -> list[Builtin]:
    """The built-in extensions as ``config`` (default: the defaults) sets them up."""
    if config is None:
        from kernel.config import ExtensionsConfig

        config = ExtensionsConfig()
    found: list[Builtin] = []
    audit = config.audit
    if audit.enabled:
        path = audit.path or layout.logs / "audit.jsonl"
        found.append(Builtin("audit", AuditLog.__module__, AuditLog(path, max_size=audit.max_size)))
    else:
        found.append(Builtin("audit", AuditLog.__module__, None, "extensions.audit.enabled: false"))
    webhook = config.webhook
    module = WebhookNotifier.__module__
    if webhook.url is None:
        found.append(Builtin("webhook", module, None, "extensions.webhook.url is not set"))
    elif webhook.secret is None:
        found.append(Builtin("webhook", module, None, "extensions.webhook.secret is not set"))
    else:
        notifier = WebhookNotifier(
            webhook.url,
            webhook.secret,
            events=webhook.events,
            timeout=webhook.timeout,
            retries=webhook.retries,
        )
        found.append(Builtin("webhook", module, notifier))
    return found
