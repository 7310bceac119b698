"""Turning secret references into secret values: the :class:`Resolver` interface.

Injection (compose ``up``, ``validate``) and rotation only ever talk to a :class:`Resolver`; the
one in use is :class:`~kernel.injection.host_resolver.ProviderHostResolver`, which sends every
reference to its provider process (``local`` — the local vault — needs no configuration at all).

Resolution is batched: one call for every reference of a project, one ``get`` per provider.
Failures are per reference: :meth:`Resolver.resolve` returns, for each reference, either a
:class:`Resolved` or the :class:`~kernel.errors.DSOError` explaining why it failed (naming the
reference, never a value), so ``validate`` can list every problem and ``up`` can stop at the first
(:func:`require`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from kernel.errors import DSOError
from kernel.reference import SecretReference
from kernel.secret_value import SecretValue

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
