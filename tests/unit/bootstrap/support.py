"""A fake machine for bootstrap tests: root is the test's own uid, group ``dso`` is an id root can
give files to (the test's own group when the tests do not run as root), and adding the group or
reloading systemd is recorded instead of done; any of them can be made to fail."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from kernel.bootstrap.host import Host
from kernel.errors import StorageError

#: A group id no file here has: as root, tests give "dso" files to it and see the chown happen.
DSO_GID_AS_ROOT = 54321


class FakeHost(Host):
    """Records ``add_group``, ``remove_group`` and ``daemon_reload``; ``fail`` names the ones
    that raise."""

    def __init__(
        self, *, systemd: bool = True, dso_exists: bool = False, fail: set[str] | None = None
    ) -> None:
        super().__init__()
        self.systemd = systemd
        self.dso_gid = DSO_GID_AS_ROOT if os.geteuid() == 0 else os.getegid()
        self.groups: dict[str, int] = {"root": os.getegid()}
        if dso_exists:
            self.groups["dso"] = self.dso_gid
        self.fail = fail or set()
        self.calls: list[tuple[str, ...]] = []

    @property
    def root_uid(self) -> int:
        return os.geteuid()

    def group_id(self, name: str) -> int | None:
        return self.groups.get(name)

    def _call(self, *call: str) -> None:
        self.calls.append(call)
        if call[0] in self.fail:
            raise StorageError(f"{call[0]} failed (injected)")

    def add_group(self, name: str) -> None:
        self._call("add_group", name)
        self.groups[name] = self.dso_gid

    def remove_group(self, name: str) -> None:
        self._call("remove_group", name)
        self.groups.pop(name, None)

    def systemd_running(self) -> bool:
        return self.systemd

    def daemon_reload(self) -> None:
        self._call("daemon_reload")


def snapshot(root: Path) -> dict[str, tuple[str, int, int, int, bytes | None]]:
    """Every path under ``root``: kind, mode, uid, gid and a file's bytes."""
    found = {}
    for path in sorted(root.rglob("*")):
        st = os.lstat(path)
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
        data = path.read_bytes() if kind == "file" else None
        found[str(path.relative_to(root))] = (
            kind,
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            data,
        )
    return found


def mode_owner(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
