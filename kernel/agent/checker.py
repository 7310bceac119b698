"""The cheap change check: which managed containers hold older versions than their providers.

One ``versions`` call per provider covers every unique secret the managed containers reference
(the cost grows with unique secrets, not with containers), and never returns a value. A
reference pinned to a version (``dso://app/db@3``) cannot move and is not asked about. What a
container holds is its ``dso.versions`` label (``provider:version``), so a restarted agent with
unchanged secrets finds nothing to do, and a secret changed while it was down is found at once.

Each provider's reachability is logged once per change of state: ``Provider connection lost,
retrying...`` (WARNING) when a check fails, ``Secret backend connected: <name>`` (INFO) when it
answers (again).
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kernel.errors import DSOError, ProviderError
from kernel.log import get_logger
from kernel.protocol import SecretRef, VersionsResult
from kernel.reference import SecretReference, parse_reference

if TYPE_CHECKING:
    from kernel.agent.managed import Managed
    from kernel.provider_host.supervisor import SupervisedProvider
    from kernel.rotation.targets import Target
    from kernel.runtime import Runtime

log = get_logger("agent.check")
#: Wire codes of a back end that is down rather than of one secret's problem.
_OUTAGE_CODES = frozenset({"unavailable", "timeout"})


@dataclass(slots=True)
class CheckResult:
    """What one check found."""

    #: Lock key → the target to rotate and the references (as written) that moved.
    lagging: dict[str, tuple[Target, set[str]]] = field(default_factory=dict)
    #: Provider → ``versions`` calls made (one per provider per check).
    calls: dict[str, int] = field(default_factory=dict)
    #: Providers whose check failed (their containers are left alone this time).
    failed: dict[str, str] = field(default_factory=dict)
    #: Unique secrets asked about.
    secrets: int = 0
    #: Lock key → reference (as written) → the provider's current ``provider:version``, for
    #: each lagging target: what a rotation now would deliver.
    wanted: dict[str, dict[str, str]] = field(default_factory=dict)


class VersionChecker:
    """Compares providers' current versions with what the managed containers hold."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = threading.Lock()
        #: Provider → "up" / "down", to log each change of state once.
        self._state: dict[str, str] = {}
        #: (provider, path) → error code already logged for that secret.
        self._problems: dict[tuple[str, str], str] = {}

    def check(
        self,
        managed: Iterable[Managed],
        *,
        only: Mapping[str, Collection[str]] | None = None,
    ) -> CheckResult:
        """Check every reference of ``managed`` (or, with ``only``, provider → secret paths:
        those a watch notification or a webhook named)."""
        config = self.runtime.config
        wanted: dict[str, dict[str, str]] = {}  # provider → path → id
        # (container, variable, reference as written, provider, path)
        uses: list[tuple[Managed, str, str, str, str]] = []
        for container in managed:
            for variable, text in container.references.items():
                ref = _parse(text)
                if ref is None or ref.version is not None:
                    continue
                provider = ref.provider or config.default_provider
                if only is not None and ref.path not in only.get(provider, ()):
                    continue
                ids = wanted.setdefault(provider, {})
                ids.setdefault(ref.path, str(len(ids)))
                uses.append((container, variable, text, provider, ref.path))
        result = CheckResult(secrets=sum(len(paths) for paths in wanted.values()))
        current: dict[tuple[str, str], str] = {}
        for provider, ids in wanted.items():
            refs = [SecretRef(ref_id, path) for path, ref_id in ids.items()]
            result.calls[provider] = 1
            try:
                answer = _versions(self.runtime.host.client(provider), refs)
            except DSOError as exc:
                result.failed[provider] = exc.message
                self._note(provider, "down", exc.message)
                continue
            by_id = {ref_id: path for path, ref_id in ids.items()}
            outage = [e for e in answer.errors.values() if e.code in _OUTAGE_CODES]
            if outage and not answer.versions:
                # Every secret failed the way a back end that is down fails: an outage.
                result.failed[provider] = outage[0].message
                self._note(provider, "down", outage[0].message)
                continue
            self._note(provider, "up")
            for ref_id, version in answer.versions.items():
                if ref_id in by_id:
                    current[(provider, by_id[ref_id])] = f"{provider}:{version}"
                    with self._lock:
                        self._problems.pop((provider, by_id[ref_id]), None)
            for ref_id, error in answer.errors.items():
                self._problem(provider, by_id.get(ref_id, ref_id), error.code, error.message)
        for container, variable, text, provider, path in uses:
            now = current.get((provider, path))
            if now is None or container.versions.get(variable) == now:
                continue
            target = container.target
            _, moved = result.lagging.setdefault(target.lock_key, (target, set()))
            moved.add(text)
            result.wanted.setdefault(target.lock_key, {})[text] = now
        return result

    def _problem(self, provider: str, path: str, code: str, message: str) -> None:
        """One secret cannot be checked: logged once until its problem changes."""
        key = (provider, path)
        with self._lock:
            if self._problems.get(key) == code:
                return
            self._problems[key] = code
        log.warning(
            "%s: cannot check %s: %s", provider, path, message, extra={"provider": provider}
        )

    def _note(self, provider: str, state: str, reason: str = "") -> None:
        with self._lock:
            before, self._state[provider] = self._state.get(provider), state
        if before == state:
            return
        if state == "up":
            log.info("Secret backend connected: %s", provider, extra={"provider": provider})
        else:
            log.warning(
                "Provider connection lost, retrying...",
                extra={"provider": provider, "reason": reason},
            )

    def states(self) -> dict[str, str]:
        """Provider → ``up``/``down`` as last seen."""
        with self._lock:
            return dict(self._state)


def _versions(client: SupervisedProvider, refs: list[SecretRef]) -> VersionsResult:
    """``versions``; from a provider that does not offer it (optional in the protocol), the
    versions of a ``get`` whose values are dropped at once."""
    try:
        return client.versions(refs)
    except ProviderError as exc:
        if exc.code != "invalid_request" or "'versions'" not in exc.message:
            raise
    got = client.get(refs)
    return VersionsResult(
        versions={ref_id: data.version for ref_id, data in got.values.items()},
        errors=dict(got.errors),
    )


def _parse(text: str) -> SecretReference | None:
    try:
        return parse_reference(text)
    except DSOError:
        return None
