"""File-system facts the checks share: who owns a path, and whether others could change it."""

from __future__ import annotations

import grp
import os
import pwd
import stat


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def describe(st: os.stat_result) -> str:
    """``mode 0700, root:root``."""
    return f"mode {stat.S_IMODE(st.st_mode):04o}, {user_name(st.st_uid)}:{group_name(st.st_gid)}"


def unsafe(st: os.stat_result, euid: int) -> str | None:
    """Why others could change what is in (or at) this path, or None: an owner other than
    dso's user or root, or group/world write permission (a sticky directory excepted)."""
    if st.st_uid not in (euid, 0):
        return f"belongs to {user_name(st.st_uid)}, not to dso's user ({user_name(euid)}) or root"
    sticky = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
    if st.st_mode & stat.S_IWOTH and not sticky:
        return "is world-writable"
    if st.st_mode & stat.S_IWGRP and not sticky:
        return f"is writable by group {group_name(st.st_gid)}"
    return None
