"""The :class:`~kernel.injection.resolver.Resolver` backed by the provider host.

Every reference goes to its provider process (DESIGN.md §1): ``local`` — the embedded default,
which needs no configuration — is ``dso-provider-local`` (or ``python -m providers.local``), and
named providers are the configured vault/aws/azure processes. One ``get`` batch per provider;
references that select the same secret, field and version share one entry of the batch.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from kernel.errors import DSOError, ProviderNotFoundError
from kernel.injection.resolver import Outcome, Resolved
from kernel.protocol import SecretRef, exception_for
from kernel.reference import SecretReference
from kernel.secret_value import SecretValue

if TYPE_CHECKING:
    from kernel.config import Config
    from kernel.provider_host import ProviderHost


class ProviderHostResolver:
    """Resolves through provider processes of a host it borrows and never closes: ``host``
    returns it (the :class:`~kernel.runtime.Runtime`'s, started on first use; whoever made it
    stops it)."""

    def __init__(self, config: Config, host: Callable[[], ProviderHost]) -> None:
        self.config = config
        self._host = host

    def prewarm(self, names: Sequence[str] = ()) -> None:
        """Start the providers ``names`` (default: the default provider) in the background, so
        that a :meth:`resolve` soon after does not wait for their processes to start."""
        host = self._host()
        for name in names or (self.config.default_provider,):
            if name in self.config.providers or name == "local":
                threading.Thread(
                    target=_warm, args=(host, name), name=f"dso-warm-{name}", daemon=True
                ).start()

    def provider_of(self, ref: SecretReference) -> str:
        return ref.provider or self.config.default_provider

    def resolve(self, refs: Sequence[SecretReference]) -> dict[SecretReference, Outcome]:
        outcomes: dict[SecretReference, Outcome] = {}
        by_provider: dict[str, list[SecretReference]] = {}
        for ref in refs:
            name = self.provider_of(ref)
            try:
                self.config.provider(name)
            except ProviderNotFoundError as exc:
                outcomes[ref] = _about(ref, exc)
                continue
            by_provider.setdefault(name, []).append(ref)
        if by_provider:
            host = self._host()
            for name, group in by_provider.items():
                outcomes.update(self._resolve_with(host, name, group))
        return {ref: outcomes[ref] for ref in refs}

    def _resolve_with(
        self, host: ProviderHost, name: str, refs: Sequence[SecretReference]
    ) -> dict[SecretReference, Outcome]:
        ids: dict[tuple[str, str | None, str | None], str] = {}
        wire: list[SecretRef] = []
        for ref in refs:
            key = (ref.path, ref.field, ref.version)
            if key not in ids:
                ids[key] = str(len(ids))
                wire.append(SecretRef(ids[key], ref.path, ref.field, ref.version))
        try:
            result = host.client(name).get(wire)
        except DSOError as exc:
            # The provider as a whole failed (did not start, breaker open, timeout).
            return dict.fromkeys(refs, exc)
        outcomes: dict[SecretReference, Outcome] = {}
        for ref in refs:
            ref_id = ids[(ref.path, ref.field, ref.version)]
            error = result.errors.get(ref_id)
            if error is not None:
                outcomes[ref] = exception_for(
                    error.code, error.message, provider=name, reference=ref.uri()
                )
                continue
            data = result.values[ref_id]
            outcomes[ref] = Resolved(SecretValue(data.value), data.version, name)
        return outcomes


def _warm(host: ProviderHost, name: str) -> None:
    with contextlib.suppress(DSOError):  # the resolve that needs it reports the problem
        host.client(name).warm()


def _about(ref: SecretReference, exc: ProviderNotFoundError) -> ProviderNotFoundError:
    error = ProviderNotFoundError(f"{ref}: {exc.message}", hint=exc.hint)
    error.provider = exc.provider
    return error
