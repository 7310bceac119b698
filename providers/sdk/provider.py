"""The :class:`Provider` base class a provider subclasses, and the per-request deadline.

Override ``get_secret`` (one reference at a time) or ``get`` (a whole batch, when the back end
has a batch call); the optional ``versions``/``get_version``, ``list_names`` and ``watch`` add
the matching capabilities, detected from what the subclass overrides. Methods run on a small
thread pool, several at once: keep shared state behind a lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, ClassVar

from kernel.protocol.handshake import Capability
from kernel.protocol.messages import Method, WireError
from kernel.protocol.methods import Changed, GetResult, SecretData, SecretRef, VersionsResult
from providers.sdk.errors import DeadlineExceeded, wire_error_for

_deadline: ContextVar[float | None] = ContextVar("dso_provider_deadline", default=None)

#: Sends a wire message (a list) to the kernel; installed by ``serve``.
Sender = Callable[[list[Any]], None]


def current_deadline() -> float | None:
    """The absolute deadline (unix epoch seconds) of the request being handled, if any."""
    return _deadline.get()


def time_left(default: float = 30.0) -> float:
    """Seconds until the current request's deadline (``default`` outside a request).

    Use it as the back-end call's timeout; raises :class:`DeadlineExceeded` when none is left.
    """
    deadline = _deadline.get()
    if deadline is None:
        return default
    left = deadline - time.time()
    if left <= 0:
        raise DeadlineExceeded("the request's deadline passed")
    return left


class Provider:
    """Base class of a provider. Subclass it, set ``name`` and ``version``, pass it to
    :func:`providers.sdk.serve`. The SDK creates one instance per process."""

    #: The provider's name: ``dso-provider-<name>``, and its key in dso.yaml.
    name: ClassVar[str] = ""
    #: The provider's own release, shown by ``docker dso providers list``.
    version: ClassVar[str] = "0"
    #: Threads running requests concurrently (a slow ``get`` never blocks ``ping``).
    max_workers: ClassVar[int] = 8
    #: Methods answered on the reading thread, skipping the pool hand-off (lower latency).
    #: Only for methods that never block: an inline method stalls every other request.
    inline_methods: ClassVar[frozenset[str]] = frozenset({Method.PING})

    _send: Sender | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        """Check ``settings`` as :meth:`configure` would, without connecting to anything:
        ``dso-provider-<name> --check-settings``, which ``docker dso config validate`` runs.

        Raise :class:`~providers.sdk.errors.InvalidRequest` (with ``setting=`` the dotted key)
        for a bad setting. The default accepts everything (the check happens at ``configure``).
        """

    def configure(self, settings: Mapping[str, Any]) -> None:
        """Apply the ``settings`` map from dso.yaml. Called first, and again on reload.

        Raise :class:`~providers.sdk.errors.InvalidRequest` for a bad setting and
        :class:`~providers.sdk.errors.AuthFailed` if the credentials are refused.
        """

    def ping(self) -> None:
        """Liveness check; runs inline by default, so it must not block. Raise to report ill."""

    def close(self) -> None:
        """Release resources before exit (``shutdown``, end of stdin, SIGTERM)."""

    # -- values ---------------------------------------------------------------------------------

    def get(self, refs: Sequence[SecretRef]) -> GetResult:
        """Values and version ids for a batch. The default calls :meth:`get_secret` per ref and
        reports each failure under that ref's id; override for a back-end batch call."""
        values: dict[str, SecretData] = {}
        errors: dict[str, WireError] = {}
        for ref in refs:
            try:
                _check_deadline()
                values[ref.id] = self.get_secret(ref)
            except Exception as exc:
                errors[ref.id] = wire_error_for(exc, f"get {ref.path!r}")
        return GetResult(values, errors)

    def get_secret(self, ref: SecretRef) -> SecretData:
        """The value and version id of one reference; raise a ``ProviderFault`` on failure."""
        raise NotImplementedError(f"{type(self).__name__} implements neither get nor get_secret")

    # -- optional capabilities ------------------------------------------------------------------

    def versions(self, refs: Sequence[SecretRef]) -> VersionsResult:
        """Version ids only, without fetching values. The default calls :meth:`get_version`
        per ref. Not overriding either leaves out the ``versions`` capability."""
        versions: dict[str, str] = {}
        errors: dict[str, WireError] = {}
        for ref in refs:
            try:
                _check_deadline()
                versions[ref.id] = self.get_version(ref)
            except Exception as exc:
                errors[ref.id] = wire_error_for(exc, f"versions {ref.path!r}")
        return VersionsResult(versions, errors)

    def get_version(self, ref: SecretRef) -> str:
        """The current version id of one reference (capability ``versions``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement versions")

    def list_names(self, prefix: str | None) -> list[str]:
        """Secret paths under ``prefix`` (capability ``list``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement list")

    def watch(self, refs: Sequence[SecretRef]) -> None:
        """Replace the watched set with ``refs`` (empty: stop watching) and return at once;
        report changes later with :meth:`notify_changed` (capability ``watch``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement watch")

    def notify_changed(self, *, refs: Iterable[str] = (), paths: Iterable[str] = ()) -> None:
        """Tell the kernel that watched secrets changed, by watched ref id and/or by path.

        Thread-safe; call it from any thread, e.g. a background watcher.
        """
        changed = Changed(tuple(refs), tuple(paths))
        if not changed.refs and not changed.paths:
            return
        if self._send is None:
            raise RuntimeError("notify_changed called outside serve()")
        self._send([2, Method.CHANGED.value, changed.to_wire()])

    # -- introspection --------------------------------------------------------------------------

    @classmethod
    def capabilities(cls) -> frozenset[Capability]:
        """What the handshake announces, from the methods this class overrides."""
        caps = {Capability.GET}
        if _overrides(cls, "versions") or _overrides(cls, "get_version"):
            caps.add(Capability.VERSIONS)
        if _overrides(cls, "list_names"):
            caps.add(Capability.LIST)
        if _overrides(cls, "watch"):
            caps.add(Capability.WATCH)
        return frozenset(caps)


def _overrides(cls: type[Provider], method: str) -> bool:
    return getattr(cls, method) is not getattr(Provider, method)


def _check_deadline() -> None:
    deadline = _deadline.get()
    if deadline is not None and time.time() > deadline:
        raise DeadlineExceeded("the request's deadline passed before this reference was read")


def _set_deadline(deadline: float | None) -> None:
    """Used by ``serve`` around each request; each worker thread has its own context."""
    _deadline.set(deadline)
