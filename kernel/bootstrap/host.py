"""The machine a bootstrap changes: who ``root`` and group ``dso`` are, and the changes that are
not files (adding the group, ``systemctl daemon-reload``).

:class:`SystemHost` is the real machine. :class:`PrefixHost` lays the files out under a directory
(``--root``, for a package's tree or a test): it adds no group and reloads no systemd, since
neither belongs to the tree, and as a user other than root the files keep that user's owner.
Tests put a fake in their place (``tests/unit/bootstrap``).
"""

from __future__ import annotations

import grp
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from kernel.errors import StorageError
from kernel.system.command import run_captured

#: The group whose members may use the agent's socket and read its configuration.
GROUP = "dso"
#: systemd creates this directory when it is PID 1 (``sd_booted()``'s test).
SYSTEMD_DIR = Path("/run/systemd/system")
#: Seconds ``groupadd`` or ``systemctl daemon-reload`` may take.
COMMAND_TIMEOUT = 60.0


class Host:
    """The real machine: root is uid 0, groups are the system's, systemd may run."""

    #: Whether a bootstrap adds the group and reloads systemd here (not in a ``--root`` tree).
    manages_system = True

    def __init__(self, *, systemd_dir: Path = SYSTEMD_DIR) -> None:
        self.systemd_dir = systemd_dir

    @property
    def root_uid(self) -> int:
        """The owner of everything a bootstrap creates."""
        return 0

    def group_id(self, name: str) -> int | None:
        """The id of group ``name`` (``root`` is 0), None when it does not exist."""
        if name == "root":
            return 0
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            return None

    def add_group(self, name: str) -> None:
        _command(("groupadd", "--system", name), f"could not add group {name}")

    def remove_group(self, name: str) -> None:
        _command(("groupdel", name), f"could not remove group {name}")

    def chown(self, path: Path, uid: int, gid: int) -> None:
        os.chown(path, uid, gid)

    def systemd_running(self) -> bool:
        return self.systemd_dir.is_dir()

    def daemon_reload(self) -> None:
        _command(("systemctl", "daemon-reload"), "systemctl daemon-reload failed")


class PrefixHost(Host):
    """A tree under ``--root``: as root, files belong to root and group ``dso`` when this machine
    has one (else root's group); as anyone else, to that user and their group (``dpkg-deb
    --root-owner-group`` gives a package's files to root anyway)."""

    manages_system = False

    def __init__(self, *, euid: int | None = None, egid: int | None = None) -> None:
        super().__init__()
        self._euid = os.geteuid() if euid is None else euid
        self._egid = os.getegid() if egid is None else egid

    @property
    def root_uid(self) -> int:
        return 0 if self._euid == 0 else self._euid

    def group_id(self, name: str) -> int | None:
        if self._euid != 0:
            return self._egid
        found = super().group_id(name)
        return 0 if found is None else found

    def add_group(self, name: str) -> None:
        raise StorageError(f"a tree under --root gets no group {name}: its installer adds it")

    def remove_group(self, name: str) -> None:
        raise StorageError(f"a tree under --root has no group {name} to remove")

    def systemd_running(self) -> bool:
        return False

    def daemon_reload(self) -> None:
        raise StorageError("systemd does not read a tree under --root")


def _command(argv: Sequence[str], what: str) -> None:
    """Run ``argv``; raise :class:`StorageError` saying ``what`` with its own message."""
    try:
        done = run_captured(argv, COMMAND_TIMEOUT)
    except FileNotFoundError:
        raise StorageError(
            f"{what}: {argv[0]} is not installed",
            hint=f"install it (Debian: apt-get install {_package(argv[0])}), then run again",
        ) from None
    except subprocess.TimeoutExpired:
        raise StorageError(f"{what}: {argv[0]} did not finish in {COMMAND_TIMEOUT:g} s") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise StorageError(f"{what}: {said[-1] if said else f'exit status {done.returncode}'}")


def _package(program: str) -> str:
    return {"groupadd": "passwd", "groupdel": "passwd", "systemctl": "systemd"}.get(
        program, program
    )
