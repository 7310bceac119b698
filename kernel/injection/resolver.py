"""Turning secret references into secret values: the :class:`Resolver` interface.

Injection (compose ``up``, ``validate``) only ever talks to a :class:`Resolver`. The embedded
default, :class:`LocalVaultResolver`, reads the local vault in-process, so ``dso://app/db`` works
with no configuration at all; the provider host plugs in later behind the same interface, routing
named providers to their processes.

Resolution is batched: one call for every reference of a project, one vault read for all of them.
Failures are per reference: :meth:`Resolver.resolve` returns, for each reference, either a
:class:`Resolved` or the :class:`~kernel.errors.DSOError` explaining why it failed (naming the
reference, never a value), so ``validate`` can list every problem and ``up`` can stop at the first
(:func:`require`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from kernel.errors import DSOError, ProviderNotFoundError, SecretError, SecretNotFoundError
from kernel.injection.fields import select_field
from kernel.reference import SecretReference
from kernel.secret_value import SecretValue

if TYPE_CHECKING:
    from kernel.vault import SecretEntry, Vault

#: The provider name of the local encrypted vault, and the default provider without config.
LOCAL = "local"


@dataclass(frozen=True, slots=True)
class Resolved:
    """One resolved reference: the value (masked) and where and which version it came from."""

    value: SecretValue
    #: The provider's version id of the secret (local vault: its version number).
    version: str
    #: The provider that answered (a configured name, e.g. ``local``).
    provider: str

    @property
    def fingerprint(self) -> str:
        """``provider:version``: identifies the injected version without touching the value."""
        return f"{self.provider}:{self.version}"


#: What :meth:`Resolver.resolve` gives for each reference.
Outcome = Resolved | DSOError


class Resolver(Protocol):
    """Resolves references in batches. Implementations never log or raise values."""

    def provider_of(self, ref: SecretReference) -> str:
        """The provider ``ref`` goes to (``ref.provider``, else the default provider)."""
        ...

    def resolve(self, refs: Sequence[SecretReference]) -> dict[SecretReference, Outcome]:
        """An outcome for every reference in ``refs``; references of one secret share a fetch.

        A failure of a whole provider (vault missing, provider down) is the outcome of each of
        its references; only bugs raise.
        """
        ...


def require(outcomes: Mapping[SecretReference, Outcome]) -> dict[SecretReference, Resolved]:
    """Every outcome as :class:`Resolved`; raises the first error (in reference order)."""
    resolved: dict[SecretReference, Resolved] = {}
    for ref, outcome in outcomes.items():
        if isinstance(outcome, DSOError):
            raise outcome
        resolved[ref] = outcome
    return resolved


class LocalVaultResolver:
    """The embedded resolver: the local vault for ``local`` (and the default provider).

    ``open_vault`` is called at most once per :meth:`resolve`, and only when a reference needs
    the vault. ``local_providers`` are the provider names served by the local vault (``local``
    plus any configured ``type: local``); ``configured`` maps every other configured provider
    name to its type, for the error until the provider host serves them.
    """

    def __init__(
        self,
        open_vault: Callable[[], Vault],
        *,
        default_provider: str = LOCAL,
        local_providers: Collection[str] = (LOCAL,),
        configured: Mapping[str, str] | None = None,
    ) -> None:
        self._open_vault = open_vault
        self.default_provider = default_provider
        self.local_providers = frozenset({LOCAL, *local_providers})
        self.configured = dict(configured or {})

    def provider_of(self, ref: SecretReference) -> str:
        return ref.provider or self.default_provider

    def resolve(self, refs: Sequence[SecretReference]) -> dict[SecretReference, Outcome]:
        outcomes: dict[SecretReference, Outcome] = {}
        local = [ref for ref in refs if self.provider_of(ref) in self.local_providers]
        for ref in refs:
            if ref not in local:
                outcomes[ref] = self._unavailable(ref)
        if local:
            outcomes.update(self._resolve_local(local))
        # Callers read outcomes in the order they asked.
        return {ref: outcomes[ref] for ref in refs}

    def _resolve_local(self, refs: Sequence[SecretReference]) -> dict[SecretReference, Outcome]:
        try:
            vault = self._open_vault()
        except DSOError as exc:
            return dict.fromkeys(refs, exc)
        entries: dict[str, SecretEntry | DSOError] = {}
        outcomes: dict[SecretReference, Outcome] = {}
        for ref in refs:
            if ref.path not in entries:
                try:
                    entries[ref.path] = vault.get(ref.path)
                except DSOError as exc:
                    entries[ref.path] = _about(ref, exc)
            entry = entries[ref.path]
            if isinstance(entry, DSOError):
                outcomes[ref] = entry
                continue
            try:
                outcomes[ref] = self._select(ref, entry)
            except DSOError as exc:
                outcomes[ref] = exc
        return outcomes

    def _select(self, ref: SecretReference, entry: SecretEntry) -> Resolved:
        provider = self.provider_of(ref)
        if ref.version is not None and ref.version != str(entry.version):
            raise SecretNotFoundError(
                f"{ref}: version {ref.version} of {ref.path!r} is not available: the local vault "
                f"keeps only the latest value (version {entry.version})",
                hint=f"drop '@{ref.version}' to follow the current version",
            )
        value = entry.value
        if ref.field is not None:
            value = select_field(value, ref.field, subject=str(ref))
        return Resolved(value, str(entry.version), provider)

    def _unavailable(self, ref: SecretReference) -> ProviderNotFoundError:
        name = self.provider_of(ref)
        kind = self.configured.get(name)
        if kind is not None:
            error = ProviderNotFoundError(
                f"{ref}: provider {name!r} is configured (type {kind}) but cannot serve "
                "injection yet",
                hint="only the local vault is wired into compose injection in this build",
            )
        else:
            known = ", ".join(sorted(self.local_providers | set(self.configured)))
            error = ProviderNotFoundError(
                f"{ref}: no provider {name!r} is configured (configured: {known})",
                hint="add it under `providers:` in the configuration, or drop the "
                f"'{name}:' prefix to use the default provider",
            )
        # Set after construction: the message already names it (no "provider 'x':" prefix).
        error.provider = name
        return error


def _about(ref: SecretReference, exc: DSOError) -> DSOError:
    """A secret-level ``exc`` with the reference in front (same class, same hint).

    Vault-level errors (missing, wrong key) concern every reference and are kept as they are.
    """
    if isinstance(exc, SecretError):
        return type(exc)(f"{ref}: {exc.message}", hint=exc.hint)
    return exc
