"""The local vault (``vault.enc``) served as a dso provider: get, versions, list, watch, ping.

Reads go through :class:`kernel.vault.Vault`; the decrypted entries are kept in a
:class:`~providers.local.snapshot.VaultSnapshot` while the file is unchanged (one ``stat`` and
one 60-byte ``pread`` per call tell), so ``docker dso secret set`` in another process is seen
at the next call without decrypting on every one. A batch is answered from one snapshot: a
consistent view. ``get`` and ``versions`` are answered on the reading thread (no hand-off to
a worker: the hand-off costs more than a call from memory). Versions are the vault's per-name
version numbers as decimal strings. Settings: providers.local.settings; user documentation:
docs/providers/local.md.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from kernel.errors import DSOError, VaultNotFoundError
from kernel.protocol import CORE_VERSION, Method
from kernel.vault import PASSPHRASE_ENV, KeySource, Vault, validate_name
from providers.local.errors import fault_for_error, translated
from providers.local.fields import check_version, select_field
from providers.local.settings import LocalSettings
from providers.local.snapshot import VaultSnapshot
from providers.local.watcher import FileWatcher, InotifyUnavailable
from providers.sdk import (
    BackendUnavailable,
    GetResult,
    InvalidRequest,
    Provider,
    ProviderFault,
    SecretData,
    SecretNotFound,
    SecretRef,
    VersionsResult,
    WireError,
    get_logger,
)

log = get_logger("local")


class LocalProvider(Provider):
    """Serves the secrets of one local vault file."""

    name = "local"
    version = CORE_VERSION
    #: From memory these take microseconds, less than handing them to a worker thread. After a
    #: change the file is decrypted on the reading thread (well under a millisecond for a vault
    #: of hundreds of secrets); only a vault re-created with a passphrase (a new salt) makes
    #: that call derive a key first.
    inline_methods: ClassVar[frozenset[str]] = frozenset({Method.PING, Method.GET, Method.VERSIONS})

    def __init__(self) -> None:
        # Guards the settings, the opened vault and the watcher.
        self._lock = threading.Lock()
        # Serialises baseline reads and change checks, so no change is compared twice.
        self._watch_lock = threading.Lock()
        self._settings: LocalSettings | None = None
        self._vault: VaultSnapshot | None = None
        self._watcher: FileWatcher | None = None
        #: Watched reference id → vault name.
        self._watched: dict[str, str] = {}
        #: Vault name → version last seen by the watcher (None: absent or deleted).
        self._known: dict[str, int | None] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        LocalSettings.parse(settings)

    def configure(self, settings: Mapping[str, Any]) -> None:
        """Validate the settings and open the vault now, so a wrong key or passphrase fails
        here as ``auth_failed``. A vault that does not exist yet is not an error at this point
        (the agent may start before ``docker dso init``): requests answer ``unavailable`` until
        it appears."""
        parsed = LocalSettings.parse(settings)
        vault: VaultSnapshot | None = None
        try:
            vault = VaultSnapshot(self._open(parsed))
        except VaultNotFoundError as exc:
            log.warning("no vault yet", extra={"path": str(parsed.path), "hint": exc.hint or ""})
        except DSOError as exc:
            fault = fault_for_error(exc)
            if PASSPHRASE_ENV in exc.message and PASSPHRASE_ENV not in os.environ:
                fault.message += (
                    f"; the provider receives {PASSPHRASE_ENV} only when its `env` list in the"
                    " configuration names it"
                )
            raise fault from None
        with self._lock:
            old = self._settings
            self._settings = parsed
            previous, self._vault = self._vault, vault
            restart = self._watcher is not None and old != parsed
        if previous is not None:
            previous.close()
        if restart:
            self._restart_watcher()
        log.info("configured", extra={"path": str(parsed.path), "found": vault is not None})

    def close(self) -> None:
        self._stop_watcher()
        with self._lock:
            vault, self._vault = self._vault, None
        if vault is not None:
            vault.close()

    def _stop_watcher(self) -> None:
        with self._lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    # -- values ---------------------------------------------------------------------------------

    def get(self, refs: Sequence[SecretRef]) -> GetResult:
        """Values of a batch from one snapshot of the vault; per-reference failures by id."""
        vault = self._require_vault()
        with translated():
            entries = vault.entries()
        values: dict[str, SecretData] = {}
        errors: dict[str, WireError] = {}
        for ref in refs:
            entry = entries.get(ref.path)
            try:
                if entry is None:
                    raise _missing(ref.path)
                check_version(ref.path, entry.version, ref.version)
                value = entry.value.reveal()
                if ref.field is not None:
                    value = select_field(value, ref.path, ref.field)
                values[ref.id] = SecretData(value, str(entry.version))
            except ProviderFault as exc:
                errors[ref.id] = exc.to_wire()
        return GetResult(values, errors)

    def versions(self, refs: Sequence[SecretRef]) -> VersionsResult:
        """Version numbers of a batch from one snapshot of the vault, never values.

        A ``field`` is not looked up here (that needs the value); ``get`` reports a missing one.
        """
        vault = self._require_vault()
        with translated():
            entries = vault.entries()
        versions: dict[str, str] = {}
        errors: dict[str, WireError] = {}
        for ref in refs:
            entry = entries.get(ref.path)
            try:
                if entry is None:
                    raise _missing(ref.path)
                check_version(ref.path, entry.version, ref.version)
                versions[ref.id] = str(entry.version)
            except ProviderFault as exc:
                errors[ref.id] = exc.to_wire()
        return VersionsResult(versions, errors)

    def list_names(self, prefix: str | None) -> list[str]:
        vault = self._require_vault()
        with translated():
            names = sorted(vault.entries())
        return [name for name in names if prefix is None or name.startswith(prefix)]

    # -- watch ----------------------------------------------------------------------------------

    def watch(self, refs: Sequence[SecretRef]) -> None:
        """Replace the watched set. The file watcher starts with the first watched reference
        (before the baseline is read, so no write slips between) and stops with the last."""
        watched = {ref.id: ref.path for ref in refs if _is_valid_name(ref.path)}
        with self._watch_lock:
            self._watched = watched
            if not watched:
                self._known = {}
        if not watched:
            self._stop_watcher()
            return
        self._ensure_watcher()
        with self._watch_lock:
            current = self._read_versions(set(watched.values()))
            if current is not None:
                self._known = current

    def _ensure_watcher(self) -> None:
        with self._lock:
            if self._watcher is not None:
                return
            settings = self._settings
            if settings is None:
                raise InvalidRequest("watch before configure")
            try:
                self._watcher = FileWatcher(
                    settings.path,
                    self._on_vault_change,
                    mode=settings.watch,
                    poll_interval=settings.poll_interval,
                )
            except InotifyUnavailable as exc:
                raise BackendUnavailable(
                    f"cannot watch {settings.path.parent} with inotify ({exc.strerror or exc});"
                    " set watch to 'auto' or 'poll'"
                ) from None
            log.debug("watching the vault", extra={"mode": self._watcher.mode.value})

    def _restart_watcher(self) -> None:
        self._stop_watcher()
        with self._watch_lock:
            watching = bool(self._watched)
        if watching:
            self._ensure_watcher()
            self._on_vault_change()

    def _on_vault_change(self) -> None:
        """Runs on the watcher thread: notify the watched ids whose secret's version moved."""
        with self._watch_lock:
            paths = set(self._watched.values())
            current = self._read_versions(paths)
            if current is None:
                return
            moved = {path for path in paths if self._known.get(path, -1) != current.get(path)}
            self._known = current
            refs = sorted(ref_id for ref_id, path in self._watched.items() if path in moved)
        if refs:
            log.debug("watched secrets changed", extra={"refs": len(refs)})
            self.notify_changed(refs=refs)

    def _read_versions(self, paths: Iterable[str]) -> dict[str, int | None] | None:
        """Current versions for the watcher; None when the vault cannot be read right now."""
        names = sorted(paths)
        if not names:
            return {}
        with self._lock:
            settings = self._settings
        if settings is not None and not settings.path.exists():
            return dict.fromkeys(names)  # no vault (deleted, or not created yet): nothing exists
        try:
            vault = self._require_vault()
            with translated():
                return vault.versions(names)
        except ProviderFault as exc:
            log.info("cannot read the vault to check for changes", extra={"code": exc.code.value})
            return None

    # -- the vault ------------------------------------------------------------------------------

    def _open(self, settings: LocalSettings) -> Vault:
        keys = KeySource.from_env(settings.key_file)
        return Vault.open(settings.path, keys)

    def _require_vault(self) -> VaultSnapshot:
        """The opened vault, opening it now if it did not exist at ``configure``."""
        with self._lock:
            if self._vault is not None:
                return self._vault
            settings = self._settings
            if settings is None:
                raise InvalidRequest("configure the local provider first")
            with translated():
                self._vault = VaultSnapshot(self._open(settings))
            return self._vault


def _is_valid_name(path: str) -> bool:
    try:
        validate_name(path)
    except DSOError:
        return False
    return True


def _missing(path: str) -> ProviderFault:
    """The fault for a path the vault does not hold: a name the vault would refuse is an
    ``invalid_request``, a valid one ``not_found``. Names found in the vault are valid (it
    validated them when they were set), so only misses pay for the check."""
    try:
        validate_name(path)
    except DSOError as exc:
        return fault_for_error(exc)
    return _not_found(path)


def _not_found(path: str) -> SecretNotFound:
    return SecretNotFound(
        f"no secret named {path!r} in the local vault"
        " (hint: `docker dso secret list` shows what exists)"
    )
