"""The comparison behind a plan: each wanted path against what is there, and the steps that
close the gap (a directory created, a mode or owner fixed, a file written or kept), collected in a
:class:`Plan`. :mod:`kernel.bootstrap.plan` says what is wanted; nothing is changed here.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kernel.bootstrap.config_text import ProviderChoice, check_text, render_config
from kernel.bootstrap.host import Host
from kernel.bootstrap.steps import (
    Backup,
    CreateKey,
    CreateVault,
    MakeDirectory,
    Owner,
    SetAttributes,
    Step,
    WriteFile,
    describe_stat,
)
from kernel.errors import ConfigError, StorageError, VaultKeyError
from kernel.paths import Layout

__all__ = ["Expected", "Plan", "Planner"]

#: A vault key is this many bytes (kernel.vault.keys).
KEY_SIZE = 32


@dataclass(frozen=True, slots=True)
class Expected:
    """A path as a bootstrap leaves it (verified at the end)."""

    path: Path
    #: ``directory`` or ``file``.
    kind: str
    mode: int
    #: None: whoever runs it (local mode).
    owner: Owner | None
    what: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "mode": f"{self.mode:04o}",
            "owner": str(self.owner) if self.owner is not None else None,
            "what": self.what,
        }


@dataclass
class Plan:
    """The steps of one bootstrap, and what it keeps."""

    #: ``agent`` or ``local``.
    mode: str
    #: The layout the plan sets up (under ``--root`` when given).
    layout: Layout
    #: ``/``, or the ``--root`` directory every path is under.
    root: Path = Path("/")
    steps: list[Step] = field(default_factory=list)
    expected: list[Expected] = field(default_factory=list)
    #: Lines about what is already in place and kept.
    kept: list[str] = field(default_factory=list)
    #: What the operator should know (no systemd, options not applied…).
    notes: list[str] = field(default_factory=list)
    #: The unit file (agent mode).
    unit: Path | None = None
    #: The group the plan needs (agent mode on a real host).
    group: str | None = None
    #: The local vault is part of the setup (verified by opening it).
    vault: bool = False
    #: The vault is opened with DSO_VAULT_PASSPHRASE, not a key file (local mode).
    passphrase: bool = False
    #: The command to run next.
    next: str | None = None

    @property
    def nothing_to_do(self) -> bool:
        return not self.steps

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "root": str(self.root),
            "steps": [step.to_dict() for step in self.steps],
            "expected": [item.to_dict() for item in self.expected],
            "kept": list(self.kept),
            "notes": list(self.notes),
            "next": self.next,
        }


class Planner:
    """Compares wanted paths with what is there and appends the steps that close the gap."""

    def __init__(self, host: Host, plan: Plan) -> None:
        self.host = host
        self.plan = plan
        #: Directories the plan creates (their children need no check).
        self.created: set[Path] = set()
        #: Groups the plan adds (a path cannot belong to them yet).
        self.new_groups: set[str] = set()

    # -- inspection ---------------------------------------------------------------------------

    def _stat(self, path: Path) -> os.stat_result | None:
        if path.parent in self.created:
            return None
        try:
            return os.stat(path)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            raise StorageError(
                f"a part of {path} is a file, not a directory",
                hint="move it aside, then run the bootstrap again",
            ) from None
        except OSError as exc:
            raise StorageError(
                f"cannot examine {path}: {exc.strerror}",
                hint="run it as root (sudo)" if os.geteuid() != 0 else None,
            ) from None

    def _fits(self, st: os.stat_result, mode: int, owner: Owner | None) -> bool:
        if stat.S_IMODE(st.st_mode) != mode:
            return False
        if owner is None:
            return True
        return owner.group not in self.new_groups and owner.matches(st, self.host)

    def _attributes(
        self, path: Path, st: os.stat_result, mode: int, owner: Owner | None, what: str
    ) -> None:
        if self._fits(st, mode, owner):
            self.plan.kept.append(f"{path} ({describe_stat(st)}, {what})")
        else:
            self.plan.steps.append(SetAttributes(path, mode, owner, was=describe_stat(st)))

    def _expect(self, path: Path, kind: str, mode: int, owner: Owner | None, what: str) -> None:
        self.plan.expected.append(Expected(path, kind, mode, owner, what))

    # -- paths ----------------------------------------------------------------------------------

    def ancestors(self, path: Path) -> None:
        """Create the missing directories above ``path`` (0755, root's), below the root."""
        base = self.plan.root
        for parent in reversed(path.parents):
            if parent == base or base not in (parent, *parent.parents):
                continue
            if parent in self.created:
                continue
            st = self._stat(parent)
            if st is None:
                owner = Owner("root") if self.plan.mode == "agent" else None
                self.plan.steps.append(MakeDirectory(parent, 0o755, owner))
                self.created.add(parent)
            elif not stat.S_ISDIR(st.st_mode):
                raise _not_a(parent, "directory")

    def directory(self, path: Path, mode: int, owner: Owner | None, what: str) -> None:
        self.ancestors(path)
        self._expect(path, "directory", mode, owner, what)
        if path in self.created:
            return
        st = self._stat(path)
        if st is None:
            self.plan.steps.append(MakeDirectory(path, mode, owner))
            self.created.add(path)
        elif not stat.S_ISDIR(st.st_mode):
            raise _not_a(path, "directory")
        else:
            self._attributes(path, st, mode, owner, what)

    def _existing_file(self, path: Path) -> os.stat_result | None:
        self.ancestors(path)
        st = self._stat(path)
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise _not_a(path, "regular file")
        return st

    def file(self, path: Path, data: bytes, mode: int, owner: Owner | None, what: str) -> None:
        """A file whose content is dso's (the unit): written when missing or different."""
        st = self._existing_file(path)
        self._expect(path, "file", mode, owner, what)
        if st is None:
            self.plan.steps.append(WriteFile(path, data, mode, owner, what))
        elif _read(path) != data:
            self.plan.steps.append(WriteFile(path, data, mode, owner, what, replaces=True))
        else:
            self._attributes(path, st, mode, owner, what)

    def config(
        self,
        path: Path,
        providers: Sequence[ProviderChoice],
        default_provider: str | None,
        *,
        mode: str,
        file_mode: int,
        owner: Owner | None,
        force: bool,
        providers_given: bool,
        now: datetime | None,
    ) -> None:
        """Plan the configuration file: generated when missing (or forced), else checked
        and kept."""
        text = render_config(providers, mode=mode, default_provider=default_provider)
        try:
            check_text(text, str(path))
        except ConfigError as exc:  # the generator's bug, or a value it should have refused
            raise ConfigError(
                f"the generated configuration is invalid: {exc.message}",
                hint="if the values given are right, this is a bug in dso: please report it",
            ) from None
        st = self._existing_file(path)
        self._expect(path, "file", file_mode, owner, "configuration")
        data = text.encode()
        if st is None:
            self.plan.steps.append(WriteFile(path, data, file_mode, owner, "configuration"))
            return
        current = _read(path)
        if force and current != data:
            stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
            backup = path.with_name(f"{path.name}.{stamp}.bak")
            self.plan.steps.append(Backup(path, backup))
            self.plan.steps.append(
                WriteFile(path, data, file_mode, owner, "configuration", replaces=True)
            )
            return
        try:
            check_text(current.decode("utf-8-sig"), str(path))
        except UnicodeDecodeError:
            raise ConfigError("is not UTF-8 text", path=path, hint=_KEEP_HINT) from None
        except ConfigError as exc:
            exc.hint = f"{exc.hint}; {_KEEP_HINT}" if exc.hint else _KEEP_HINT
            raise
        self._attributes(path, st, file_mode, owner, "configuration, valid")
        if providers_given and not force and current != data:
            self.plan.notes.append(
                f"kept the existing {path}: the providers given were not applied "
                "(--force-config regenerates it, keeping a backup)"
            )

    def vault(self, layout: Layout, owner: Owner | None, *, passphrase: bool) -> None:
        """The local vault and, unless a passphrase protects it, its key file."""
        self.plan.vault = True
        self.plan.passphrase = passphrase
        vault_st = self._existing_file(layout.vault)
        if not passphrase:
            key_st = self._existing_file(layout.vault_key)
            self._expect(layout.vault_key, "file", 0o600, owner, "vault key")
            if key_st is None:
                if vault_st is not None:
                    raise VaultKeyError(
                        f"the vault {layout.vault} exists, but its key {layout.vault_key} is "
                        "missing; nothing was changed",
                        hint="restore the key from your backup (a vault cannot be opened "
                        "without it), or move the vault aside to start with an empty one",
                    )
                self.plan.steps.append(CreateKey(layout.vault_key, owner))
            elif key_st.st_size != KEY_SIZE:
                raise VaultKeyError(
                    f"the vault key file {layout.vault_key} is {key_st.st_size} bytes; a key is "
                    f"{KEY_SIZE} bytes; nothing was changed",
                    hint="restore it from your backup",
                )
            else:
                self._attributes(layout.vault_key, key_st, 0o600, owner, "vault key")
        self._expect(layout.vault, "file", 0o600, owner, "local vault")
        if vault_st is None:
            self.plan.steps.append(
                CreateVault(layout.vault, layout.vault_key, owner, passphrase=passphrase)
            )
        else:
            self._attributes(layout.vault, vault_st, 0o600, owner, "local vault")


_KEEP_HINT = (
    "an existing configuration is kept, so it must be valid: fix it (`docker dso config "
    "validate` lists every problem), or regenerate it with --force-config (a backup is kept)"
)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}") from None


def _not_a(path: Path, kind: str) -> StorageError:
    return StorageError(
        f"{path} exists and is not a {kind}; nothing was changed",
        hint=f"move it aside (mv {path} {path}.old), then run the bootstrap again",
    )
