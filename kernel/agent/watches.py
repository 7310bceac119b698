"""Change notifications that reach the agent between polls: provider ``watch`` subscriptions
and the hints they (and the webhook) leave for the next check.

:class:`ProviderWatches` asks every provider that can to push changes of the secrets the
managed containers use (each provider once per distinct set of paths), and tells when a watched
provider's process was started again (a change made while it was down reached no watch).
:class:`Hints` collects "look at these secrets now" from any thread, never a value; the agent's
sources loop takes them all at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any

from kernel.errors import DSOError
from kernel.log import get_logger
from kernel.protocol import SecretRef
from kernel.reference import parse_reference

if TYPE_CHECKING:
    from kernel.agent.managed import Managed
    from kernel.protocol import Changed
    from kernel.runtime import Runtime

__all__ = ["Hints", "ProviderWatches"]

log = get_logger("agent")

#: ``(provider, secret paths)``: what a watch notification or a webhook asks to check.
OnHint = Callable[[str, Collection[str]], None]


class Hints:
    """Secrets to check at the next look, by provider (thread-safe)."""

    def __init__(self) -> None:
        self._pending: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def add(self, provider: str, paths: Collection[str]) -> None:
        with self._lock:
            self._pending.setdefault(provider, set()).update(paths)

    def take(self) -> dict[str, set[str]]:
        """Everything added since the last call."""
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending


class ProviderWatches:
    """The agent's ``watch`` subscriptions, one per provider."""

    def __init__(self, on_hint: OnHint) -> None:
        self._on_hint = on_hint
        #: Provider → the paths asked (also for a provider that cannot watch: not asked again).
        self._watched: dict[str, tuple[str, ...]] = {}
        #: Provider → its process's start count when last looked at.
        self._starts: dict[str, int] = {}

    def forget(self) -> None:
        """Ask again at the next :meth:`update` (a new configuration, new provider processes)."""
        self._watched.clear()

    def update(self, runtime: Runtime, managed: Iterable[Managed]) -> None:
        """Ask each provider that can to push changes of the secrets ``managed`` use."""
        wanted: dict[str, set[str]] = {}
        default = runtime.config.default_provider
        for container in managed:
            for text in container.references.values():
                try:
                    ref = parse_reference(text)
                except DSOError:
                    continue
                if ref.version is None:
                    wanted.setdefault(ref.provider or default, set()).add(ref.path)
        for provider, paths in wanted.items():
            ordered = tuple(sorted(paths))
            if self._watched.get(provider) == ordered:
                continue
            self._watched[provider] = ordered
            refs = [SecretRef(str(i), path) for i, path in enumerate(ordered)]
            try:
                client = runtime.host.client(provider)
                if "watch" not in capabilities(client):
                    log.debug("%s cannot watch: polling only", provider)
                    continue
                client.watch(refs, self._on_changed(provider, ordered))
            except DSOError as exc:
                log.debug("%s: no watch (%s): polling only", provider, exc.message)
                continue
            log.debug("%s: watching %d secrets", provider, len(ordered))

    def restarted(self, runtime: Runtime) -> bool:
        """True when a watched provider's process was (re)started since the last look."""
        restarted = False
        for provider in self._watched:
            try:
                starts = int(runtime.host.client(provider).status().get("starts") or 0)
            except DSOError:
                continue
            if self._starts.get(provider, starts) != starts:
                restarted = True
            self._starts[provider] = starts
        return restarted

    def _on_changed(self, provider: str, paths: tuple[str, ...]) -> Callable[[Changed], None]:
        def changed(note: Changed) -> None:  # on the provider's reader thread: queue only
            named = set(note.paths)
            named.update(paths[int(i)] for i in note.refs if i.isdigit() and int(i) < len(paths))
            self._on_hint(provider, named or set(paths))

        return changed


def capabilities(client: Any) -> list[str]:
    """What the provider announced in its handshake (it is started to learn it)."""
    announced = client.status().get("capabilities")
    if announced is None:
        client.ping()
        announced = client.status().get("capabilities")
    return list(announced or ())
