"""Who is asking: the peer credentials of a socket connection (``SO_PEERCRED``), and who may.

The kernel fills in the caller's pid, uid and gid at ``connect()``; they cannot be forged by
what the client sends. Allowed: uid 0, the agent's own uid, and members of group ``dso``
(primary or supplementary group of the calling *process*, read from ``/proc/<pid>/status``;
when that process is gone, the group's member list). The socket file's mode (0660 ``root:dso``)
already keeps others from connecting; this check holds even where the file mode is wider.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import struct
from dataclasses import dataclass

#: The group whose members may use the agent's socket.
GROUP = "dso"
_CRED = struct.Struct("3i")


@dataclass(frozen=True, slots=True)
class Peer:
    """The process at the other end of a connection."""

    pid: int
    uid: int
    gid: int

    @property
    def user(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return str(self.uid)

    def to_dict(self) -> dict[str, object]:
        return {"pid": self.pid, "uid": self.uid, "gid": self.gid, "user": self.user}


def peer_of(sock: socket.socket) -> Peer:
    """The credentials the kernel recorded for ``sock``'s peer."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
    pid, uid, gid = _CRED.unpack(raw)
    return Peer(pid, uid, gid)


def group_id(name: str = GROUP) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


class Authorizer:
    """Decides whether a peer may use the socket."""

    def __init__(self, *, uid: int | None = None, group: str = GROUP) -> None:
        self.uid = os.getuid() if uid is None else uid
        self.group = group

    def allows(self, peer: Peer) -> bool:
        if peer.uid in (0, self.uid):
            return True
        gid = group_id(self.group)
        if gid is None:
            return False
        if peer.gid == gid:
            return True
        groups = _process_groups(peer.pid)
        if groups is not None:
            return gid in groups
        try:
            return peer.user in grp.getgrgid(gid).gr_mem
        except KeyError:
            return False


def _process_groups(pid: int) -> set[int] | None:
    """The supplementary groups of a live process, or ``None`` if it cannot be read."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:] if g.isdigit()}
    except OSError:
        return None
    return set()
