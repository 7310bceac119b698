"""Synthetic ``docker inspect`` documents for unit tests of the rotation machinery."""

from __future__ import annotations

import copy
from typing import Any

OLD_ID = "3bed6bd2ec7f" + "0" * 52


def inspect_doc(**changes: Any) -> dict[str, Any]:
    """A container on a user-defined network with an alias; ``changes`` patch dotted paths."""
    doc: dict[str, Any] = {
        "Id": OLD_ID,
        "Name": "/web",
        "Image": "sha256:" + "9" * 64,
        "State": {"Running": True, "Status": "running"},
        "Mounts": [],
        "Config": {
            "Hostname": OLD_ID[:12],
            "Image": "dso-test/busybox:1",
            "Env": ["DB_PASSWORD=old", "PATH=/bin"],
            "Labels": {"app": "web"},
            "Cmd": ["httpd", "-f"],
        },
        "HostConfig": {"NetworkMode": "appnet", "PortBindings": {}, "Binds": None, "Links": None},
        "NetworkSettings": {
            "Networks": {
                "appnet": {
                    "IPAMConfig": None,
                    "Aliases": ["web", OLD_ID[:12]],
                    "NetworkID": "n" * 64,
                    "IPAddress": "172.20.0.2",
                    "Links": None,
                    "DriverOpts": None,
                }
            }
        },
    }
    for path, value in changes.items():
        target = doc
        keys = path.split("__")
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = copy.deepcopy(value)
    return doc
